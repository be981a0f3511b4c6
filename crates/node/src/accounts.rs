//! Account chores without a running server: the `user` subcommands of
//! `reallive-server`. Each opens the accounts in a data dir, does one
//! thing and closes them.

use std::path::Path;

use reallive_auth::{
    NewUser, PasswordHasher, PasswordParams, Role, Secret, User, UserUpdate, random_token, validate,
};

use crate::{NodeError, open_accounts};

/// argon2id on a blocking thread: it takes a core for a fraction of a
/// second, which a runtime worker must not spend.
async fn hash(password: &Secret) -> Result<String, NodeError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        Ok(PasswordHasher::new(PasswordParams::default())?.hash(password.expose())?)
    })
    .await
    .map_err(|e| NodeError::Invalid(format!("hashing task: {e}")))?
}

/// A password given, or a generated one (returned so it can be shown).
fn password_or_generated(password: Option<Secret>) -> Result<(Secret, bool), NodeError> {
    match password {
        Some(p) => {
            validate::password(p.expose())?;
            Ok((p, false))
        }
        None => Ok((random_token::<12>(), true)),
    }
}

/// Adds a user. Returns the user and, if none was given, the generated
/// password (to show once).
pub async fn add_user(
    data_dir: &Path,
    username: String,
    email: String,
    role: Role,
    password: Option<Secret>,
) -> Result<(User, Option<Secret>), NodeError> {
    validate::username(&username)?;
    validate::email(&email)?;
    let (password, generated) = password_or_generated(password)?;
    let hash = hash(&password).await?;
    let accounts = open_accounts(data_dir).await?;
    let result = accounts
        .create_user(NewUser {
            username,
            email,
            password_hash: hash,
            role,
        })
        .await;
    accounts.close().await;
    Ok((result?, generated.then_some(password)))
}

/// Sets a user's password, revoking their tokens. Returns the generated
/// password if none was given.
pub async fn set_password(
    data_dir: &Path,
    username: &str,
    password: Option<Secret>,
) -> Result<Option<Secret>, NodeError> {
    let (password, generated) = password_or_generated(password)?;
    let hash = hash(&password).await?;
    let accounts = open_accounts(data_dir).await?;
    let id = accounts
        .snapshot()
        .user_by_name(username)
        .map(|(u, _)| u.id);
    let result = match id {
        Some(id) => accounts
            .update_user(
                id,
                UserUpdate {
                    password_hash: Some(hash),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ())
            .map_err(NodeError::from),
        None => Err(NodeError::Invalid(format!("no user named '{username}'"))),
    };
    accounts.close().await;
    result?;
    Ok(generated.then_some(password))
}

/// Every user.
pub async fn list_users(data_dir: &Path) -> Result<Vec<User>, NodeError> {
    let accounts = open_accounts(data_dir).await?;
    let users = accounts.snapshot().users().cloned().collect();
    accounts.close().await;
    Ok(users)
}
