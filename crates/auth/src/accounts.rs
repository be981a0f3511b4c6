//! The accounts database: users, cameras, grants, streaming sessions and
//! where pulled cameras' video comes from, in SQLite through sqlx.
//!
//! Reads come from an in-memory [`Snapshot`] and do no I/O. Each write is
//! one transaction, after which the snapshot is reloaded before the call
//! returns; writes and reloads are serialised, so an older reload never
//! replaces a newer one. Another process writing the same file (the
//! `user` admin subcommands) is noticed within a second through
//! `PRAGMA data_version`. See `docs/design/auth.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection as _, SqliteConnection};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::stream_key::{generate_stream_key, stream_key_matches};
use crate::{AuthError, Permission, Role, Secret, validate};

mod sources;

pub use sources::{CameraOrigin, CameraSource};

/// File name of the accounts database inside the data dir.
pub const ACCOUNTS_FILE: &str = "accounts.sqlite";

/// How often another process's writes are looked for.
const EXTERNAL_POLL: Duration = Duration::from_secs(1);

/// A user as the API shows it: no password hash.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct User {
    /// Stable id.
    pub id: i64,
    /// Unique, case-insensitively.
    pub username: String,
    /// Unique, case-insensitively.
    pub email: String,
    /// What the user may do globally.
    pub role: Role,
    /// Bumped by a password change; tokens carry it.
    #[serde(skip)]
    pub token_version: i64,
    /// Unix seconds; RFC 3339 on the wire.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A camera's streaming state, set by the live path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CameraStatus {
    /// No publisher.
    Offline,
    /// A publisher is connected, no media yet.
    Online,
    /// Media is flowing.
    Streaming,
}

impl CameraStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CameraStatus::Offline => "offline",
            CameraStatus::Online => "online",
            CameraStatus::Streaming => "streaming",
        }
    }
}

impl FromStr for CameraStatus {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        [
            CameraStatus::Offline,
            CameraStatus::Online,
            CameraStatus::Streaming,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| AuthError::Unknown {
            what: "camera status",
            value: s.to_string(),
        })
    }
}

/// A camera as the API shows it: no stream key hash.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Camera {
    /// Stable id.
    pub id: i64,
    /// The user who created it.
    pub owner_id: i64,
    /// Unique; 1-64 characters, stored exactly as given.
    pub name: String,
    /// Free text such as `1280x720`.
    pub resolution: Option<String>,
    /// Streaming state.
    pub status: CameraStatus,
    /// Unix seconds; RFC 3339 on the wire.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// One user's grant on one camera.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Grant {
    /// The user granted.
    pub user_id: i64,
    /// Their username, for display.
    pub username: String,
    /// The level granted.
    pub permission: Permission,
}

/// What to create a user with. The password is already hashed: hashing is
/// the caller's blocking work.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Checked against [`validate::username`].
    pub username: String,
    /// Checked against [`validate::email`].
    pub email: String,
    /// A PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
}

/// Changes to a user; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct UserUpdate {
    /// New email.
    pub email: Option<String>,
    /// New role. Refused if it would leave no admin.
    pub role: Option<Role>,
    /// New PHC string; also revokes every token issued before.
    pub password_hash: Option<String>,
}

/// Changes to a camera; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct CameraUpdate {
    /// New name.
    pub name: Option<String>,
    /// New resolution; `Some(None)` clears it.
    pub resolution: Option<Option<String>>,
}

/// A camera row ready to insert: checked, with a fresh stream key's hash.
/// Shared by every way of creating a camera.
#[derive(Debug)]
struct NewCamera {
    owner: i64,
    name: String,
    resolution: Option<String>,
    key_hash: [u8; 32],
    created_at: i64,
}

impl NewCamera {
    /// Checks the input and draws a stream key, which is returned here
    /// and never again.
    fn new(
        owner: i64,
        name: &str,
        resolution: Option<&str>,
    ) -> Result<(NewCamera, Secret), AuthError> {
        validate::camera_name(name)?;
        if let Some(r) = resolution {
            validate::resolution(r)?;
        }
        let (key, key_hash) = generate_stream_key();
        let new = NewCamera {
            owner,
            name: name.to_string(),
            resolution: resolution.map(str::to_string),
            key_hash,
            created_at: now_unix(),
        };
        Ok((new, key))
    }

    /// Inserts the camera inside the caller's transaction; returns its id.
    /// `Conflict` when the name is taken, `NotFound` when the owner is gone.
    async fn insert(&self, c: &mut SqliteConnection) -> Result<i64, AuthError> {
        let id = next_id(c, IdTable::Cameras).await?;
        sqlx::query(
            "INSERT INTO cameras (id, owner_id, name, resolution, stream_key_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(self.owner)
        .bind(&self.name)
        .bind(self.resolution.as_deref())
        .bind(&self.key_hash[..])
        .bind(self.created_at)
        .execute(&mut *c)
        .await
        .map_err(conflict)?;
        Ok(id)
    }
}

/// The tables whose ids are never reused.
#[derive(Clone, Copy, Debug)]
enum IdTable {
    Users,
    Cameras,
}

/// The next id of `table`, inside the caller's transaction: one past any
/// id it ever handed out (`id_seq`), so a deleted row's id never names
/// another. A failed insert rolls the counter back with it.
async fn next_id(c: &mut SqliteConnection, table: IdTable) -> Result<i64, AuthError> {
    // One statement, and a write first: a transaction that read before it
    // writes cannot wait for the write lock (SQLite answers "locked" at
    // once), so the counter is bumped before anything is read.
    let sql = match table {
        IdTable::Users => {
            "UPDATE id_seq SET last = MAX(last, (SELECT COALESCE(MAX(id), 0) FROM users)) + 1 \
             WHERE name = 'users' RETURNING last"
        }
        IdTable::Cameras => {
            "UPDATE id_seq SET last = MAX(last, (SELECT COALESCE(MAX(id), 0) FROM cameras)) + 1 \
             WHERE name = 'cameras' RETURNING last"
        }
    };
    Ok(sqlx::query_scalar(sql).fetch_one(&mut *c).await?)
}

/// Whether `user` owns `camera` with an owner's rights: only while their
/// role may run cameras, so demoting an operator takes their cameras'
/// control away at once.
fn owns(user: &User, camera: &Camera) -> bool {
    camera.owner_id == user.id && user.role.can_manage_cameras()
}

/// A new account's first token version: random, so that no token of any
/// other account, past or future, can carry it (beside ids that are never
/// reused). Below 2^53, so it stays exact in JSON.
fn first_token_version() -> i64 {
    use rand_core::{OsRng, RngCore};
    i64::try_from(OsRng.next_u64() >> 11).unwrap_or(1)
}

#[derive(Clone, Debug)]
struct UserRow {
    user: User,
    password_hash: String,
}

/// An immutable view of every table, as of the last write or reload.
#[derive(Debug, Default)]
pub struct Snapshot {
    users: BTreeMap<i64, UserRow>,
    by_name: HashMap<String, i64>,
    cameras: BTreeMap<i64, Camera>,
    key_hashes: HashMap<i64, Vec<u8>>,
    /// camera -> user -> level
    grants: HashMap<i64, BTreeMap<i64, Permission>>,
    /// user -> camera -> level
    grants_by_user: HashMap<i64, BTreeMap<i64, Permission>>,
}

impl Snapshot {
    /// The user with `id`.
    pub fn user(&self, id: i64) -> Option<&User> {
        self.users.get(&id).map(|r| &r.user)
    }

    /// The user named `name`, case-insensitively, with their password hash.
    pub fn user_by_name(&self, name: &str) -> Option<(&User, &str)> {
        let id = self.by_name.get(&name.to_ascii_lowercase())?;
        self.users
            .get(id)
            .map(|r| (&r.user, r.password_hash.as_str()))
    }

    /// Every user, by id.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values().map(|r| &r.user)
    }

    /// The camera with `id`, whoever may see it.
    pub fn camera(&self, id: i64) -> Option<&Camera> {
        self.cameras.get(&id)
    }

    /// Every camera, by id.
    pub fn cameras(&self) -> impl Iterator<Item = &Camera> {
        self.cameras.values()
    }

    /// What `user` may do with `camera`: `None` if they may not even see
    /// it. Admins and owners hold [`Permission::Control`]; an owner only
    /// while their role may run cameras (a demoted owner keeps only what
    /// they were granted).
    pub fn access(&self, user: &User, camera: &Camera) -> Option<Permission> {
        if user.role == Role::Admin || owns(user, camera) {
            return Some(Permission::Control);
        }
        self.grants
            .get(&camera.id)
            .and_then(|g| g.get(&user.id))
            .copied()
    }

    /// Whether `user` may change or delete `camera`, its key and grants.
    pub fn may_manage(&self, user: &User, camera: &Camera) -> bool {
        user.role == Role::Admin || owns(user, camera)
    }

    /// The cameras `user` may see, by id.
    pub fn visible_cameras<'a>(&'a self, user: &'a User) -> impl Iterator<Item = &'a Camera> {
        let granted = self.grants_by_user.get(&user.id);
        self.cameras.values().filter(move |c| {
            user.role == Role::Admin
                || owns(user, c)
                || granted.is_some_and(|g| g.contains_key(&c.id))
        })
    }

    /// The grants on `camera`, by user id.
    pub fn grants(&self, camera: i64) -> Vec<Grant> {
        self.grants
            .get(&camera)
            .into_iter()
            .flatten()
            .filter_map(|(uid, p)| {
                Some(Grant {
                    user_id: *uid,
                    username: self.user(*uid)?.username.clone(),
                    permission: *p,
                })
            })
            .collect()
    }

    /// Whether `key` is `camera`'s current stream key (constant time).
    pub fn stream_key_matches(&self, camera: i64, key: &str) -> bool {
        self.key_hashes
            .get(&camera)
            .is_some_and(|h| stream_key_matches(key, h))
    }
}

/// The accounts database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Accounts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: SqlitePool,
    path: PathBuf,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Serialises writes with reloads.
    write: tokio::sync::Mutex<()>,
    stop: CancellationToken,
}

/// Unix seconds as RFC 3339, for the wire.
pub fn rfc3339<S: serde::Serializer>(secs: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&reallive_core::time::rfc3339_ms(
        secs.saturating_mul(1_000_000_000),
    ))
}

fn now_unix() -> i64 {
    reallive_core::time::UtcNs::now().secs()
}

fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Accounts change rarely and matter: a committed user or key must
        // survive power loss.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
}

impl Accounts {
    /// Opens (creating and migrating if needed) `data_dir/accounts.sqlite`
    /// and loads the snapshot. Starts the watcher for other processes'
    /// writes, which stops at [`close`](Self::close).
    pub async fn open(data_dir: &Path) -> Result<Accounts, AuthError> {
        tokio::fs::create_dir_all(data_dir)
            .await
            .map_err(|e| AuthError::Internal(format!("creating {}: {e}", data_dir.display())))?;
        let path = data_dir.join(ACCOUNTS_FILE);
        // Password and key hashes live here: readable by us alone. SQLite
        // gives the -wal and -shm files the same mode.
        let created = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(AuthError::Internal(format!(
                    "creating {}: {e}",
                    path.display()
                )));
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(connect_options(&path))
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let accounts = Accounts {
            inner: Arc::new(Inner {
                pool,
                path,
                snapshot: RwLock::new(Arc::default()),
                write: tokio::sync::Mutex::new(()),
                stop: CancellationToken::new(),
            }),
        };
        {
            let _w = accounts.inner.write.lock().await;
            accounts.reload().await?;
        }
        accounts.spawn_watcher().await?;
        Ok(accounts)
    }

    /// Stops the watcher and closes the database cleanly.
    pub async fn close(&self) {
        self.inner.stop.cancel();
        self.inner.pool.close().await;
    }

    /// The current snapshot. Hold it briefly; it does not change under you.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a panic elsewhere mid-swap of an Arc,
        // which cannot leave it torn.
        match self.inner.snapshot.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Whether the database answers a query.
    pub async fn ping(&self) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.inner.pool)
            .await
            .is_ok()
    }

    /// Whether no user exists yet (first start).
    pub fn is_empty(&self) -> bool {
        self.snapshot().users.is_empty()
    }

    async fn reload(&self) -> Result<(), AuthError> {
        let pool = &self.inner.pool;
        type UserTuple = (i64, String, String, String, String, i64, i64);
        let users: Vec<UserTuple> = sqlx::query_as(
            "SELECT id, username, email, password_hash, role, token_version, created_at FROM users",
        )
        .fetch_all(pool)
        .await?;
        type CameraRow = (i64, i64, String, Option<String>, String, Vec<u8>, i64);
        let cameras: Vec<CameraRow> =
            sqlx::query_as(
                "SELECT id, owner_id, name, resolution, status, stream_key_hash, created_at FROM cameras",
            )
            .fetch_all(pool)
            .await?;
        let grants: Vec<(i64, i64, String)> =
            sqlx::query_as("SELECT user_id, camera_id, permission FROM camera_grants")
                .fetch_all(pool)
                .await?;
        let mut snap = Snapshot::default();
        for (id, username, email, password_hash, role, token_version, created_at) in users {
            snap.by_name.insert(username.to_ascii_lowercase(), id);
            snap.users.insert(
                id,
                UserRow {
                    user: User {
                        id,
                        username,
                        email,
                        role: role.parse()?,
                        token_version,
                        created_at,
                    },
                    password_hash,
                },
            );
        }
        for (id, owner_id, name, resolution, status, key_hash, created_at) in cameras {
            snap.key_hashes.insert(id, key_hash);
            snap.cameras.insert(
                id,
                Camera {
                    id,
                    owner_id,
                    name,
                    resolution,
                    status: status.parse()?,
                    created_at,
                },
            );
        }
        for (user, camera, permission) in grants {
            let p: Permission = permission.parse()?;
            snap.grants.entry(camera).or_default().insert(user, p);
            snap.grants_by_user
                .entry(user)
                .or_default()
                .insert(camera, p);
        }
        let snap = Arc::new(snap);
        match self.inner.snapshot.write() {
            Ok(mut s) => *s = snap,
            Err(p) => *p.into_inner() = snap,
        }
        Ok(())
    }

    async fn spawn_watcher(&self) -> Result<(), AuthError> {
        let mut conn = SqliteConnection::connect_with(&connect_options(&self.inner.path)).await?;
        let mut seen: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut conn)
            .await?;
        let weak = Arc::downgrade(&self.inner);
        let stop = self.inner.stop.clone();
        let span = tracing::info_span!("accounts-watcher");
        tokio::spawn(
            async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(EXTERNAL_POLL) => {}
                    }
                    let Some(inner) = weak.upgrade() else { break };
                    let v: i64 = match sqlx::query_scalar("PRAGMA data_version")
                        .fetch_one(&mut conn)
                        .await
                    {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!("checking for outside changes: {e}");
                            continue;
                        }
                    };
                    if v != seen {
                        seen = v;
                        let accounts = Accounts { inner };
                        let _w = accounts.inner.write.lock().await;
                        if let Err(e) = accounts.reload().await {
                            tracing::warn!("reloading accounts: {e}");
                        }
                    }
                }
                let _ = conn.close().await;
            }
            .instrument(span),
        );
        Ok(())
    }

    /// Runs `f` in one transaction, then reloads the snapshot.
    async fn write<T, F>(&self, f: F) -> Result<T, AuthError>
    where
        F: for<'c> FnOnce(
            &'c mut SqliteConnection,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, AuthError>> + Send + 'c>,
        >,
    {
        let _w = self.inner.write.lock().await;
        let mut tx = self.inner.pool.begin().await?;
        let out = match f(&mut tx).await {
            Ok(out) => out,
            Err(e) => {
                // Now, under the write lock: a transaction merely dropped
                // rolls back later, and would hold the database's write
                // lock against the next writer meanwhile.
                let _ = tx.rollback().await;
                return Err(e);
            }
        };
        tx.commit().await?;
        self.reload().await?;
        Ok(out)
    }

    /// Creates a user.
    pub async fn create_user(&self, new: NewUser) -> Result<User, AuthError> {
        validate::username(&new.username)?;
        validate::email(&new.email)?;
        let created_at = now_unix();
        let token_version = first_token_version();
        let id = self
            .write(move |c| {
                Box::pin(async move {
                    let id = next_id(c, IdTable::Users).await?;
                    sqlx::query(
                        "INSERT INTO users (id, username, email, password_hash, role, token_version, created_at) \
                         VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(id)
                    .bind(&new.username)
                    .bind(&new.email)
                    .bind(&new.password_hash)
                    .bind(new.role.as_str())
                    .bind(token_version)
                    .bind(created_at)
                    .execute(&mut *c)
                    .await
                    .map_err(conflict)?;
                    Ok(id)
                })
            })
            .await?;
        self.user_or_missing(id)
    }

    fn user_or_missing(&self, id: i64) -> Result<User, AuthError> {
        self.snapshot()
            .user(id)
            .cloned()
            .ok_or(AuthError::NotFound("user"))
    }

    fn camera_or_missing(&self, id: i64) -> Result<Camera, AuthError> {
        self.snapshot()
            .camera(id)
            .cloned()
            .ok_or(AuthError::NotFound("camera"))
    }

    /// The database file (`data_dir/accounts.sqlite`).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Signs the user out everywhere: every token issued so far stops
    /// working (the token version moves on). `NotFound` for no such user.
    pub async fn revoke_tokens(&self, id: i64) -> Result<User, AuthError> {
        self.write(move |c| {
            Box::pin(async move {
                one_row(
                    sqlx::query("UPDATE users SET token_version = token_version + 1 WHERE id = ?")
                        .bind(id)
                        .execute(&mut *c)
                        .await,
                    "user",
                )
            })
        })
        .await?;
        self.user_or_missing(id)
    }

    /// Changes a user. A new password hash bumps the token version.
    pub async fn update_user(&self, id: i64, update: UserUpdate) -> Result<User, AuthError> {
        if let Some(e) = &update.email {
            validate::email(e)?;
        }
        self.write(move |c| {
            Box::pin(async move {
                let role: Option<String> =
                    sqlx::query_scalar("SELECT role FROM users WHERE id = ?")
                        .bind(id)
                        .fetch_optional(&mut *c)
                        .await?;
                let role: Role = role.ok_or(AuthError::NotFound("user"))?.parse()?;
                if role == Role::Admin && update.role.is_some_and(|r| r != Role::Admin) {
                    last_admin_guard(c, id).await?;
                }
                sqlx::query(
                    "UPDATE users SET email = COALESCE(?, email), role = COALESCE(?, role),
                     password_hash = COALESCE(?, password_hash),
                     token_version = token_version + (? IS NOT NULL) WHERE id = ?",
                )
                .bind(update.email.as_deref())
                .bind(update.role.map(Role::as_str))
                .bind(update.password_hash.as_deref())
                .bind(update.password_hash.as_deref())
                .bind(id)
                .execute(&mut *c)
                .await
                .map_err(conflict)?;
                Ok(())
            })
        })
        .await?;
        self.user_or_missing(id)
    }

    /// Deletes a user and their grants. Refused for the last admin, and for
    /// a user who still owns cameras.
    pub async fn delete_user(&self, id: i64) -> Result<(), AuthError> {
        self.write(move |c| {
            Box::pin(async move {
                let role: Option<String> =
                    sqlx::query_scalar("SELECT role FROM users WHERE id = ?")
                        .bind(id)
                        .fetch_optional(&mut *c)
                        .await?;
                let role: Role = role.ok_or(AuthError::NotFound("user"))?.parse()?;
                if role == Role::Admin {
                    last_admin_guard(c, id).await?;
                }
                let owned: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM cameras WHERE owner_id = ?")
                        .bind(id)
                        .fetch_one(&mut *c)
                        .await?;
                if owned > 0 {
                    return Err(AuthError::Conflict(format!(
                        "the user owns {owned} camera(s); delete them first"
                    )));
                }
                sqlx::query("DELETE FROM users WHERE id = ?")
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Creates a camera owned by `owner`. The stream key is returned here
    /// and never again.
    pub async fn create_camera(
        &self,
        owner: i64,
        name: &str,
        resolution: Option<&str>,
    ) -> Result<(Camera, Secret), AuthError> {
        let (new, key) = NewCamera::new(owner, name, resolution)?;
        let id = self
            .write(move |c| Box::pin(async move { new.insert(c).await }))
            .await?;
        Ok((self.camera_or_missing(id)?, key))
    }

    /// Renames a camera or changes its resolution.
    pub async fn update_camera(&self, id: i64, update: CameraUpdate) -> Result<Camera, AuthError> {
        if let Some(n) = &update.name {
            validate::camera_name(n)?;
        }
        if let Some(Some(r)) = &update.resolution {
            validate::resolution(r)?;
        }
        self.write(move |c| {
            Box::pin(async move {
                let (set_res, res) = match update.resolution {
                    Some(r) => (true, r),
                    None => (false, None),
                };
                one_row(
                    sqlx::query(
                        "UPDATE cameras SET name = COALESCE(?, name),
                     resolution = CASE WHEN ? THEN ? ELSE resolution END WHERE id = ?",
                    )
                    .bind(update.name.as_deref())
                    .bind(set_res)
                    .bind(res.as_deref())
                    .bind(id)
                    .execute(&mut *c)
                    .await
                    .map_err(conflict),
                    "camera",
                )
            })
        })
        .await?;
        self.camera_or_missing(id)
    }

    /// Deletes a camera with its grants and sessions.
    pub async fn delete_camera(&self, id: i64) -> Result<(), AuthError> {
        self.write(move |c| {
            Box::pin(async move {
                one_row(
                    sqlx::query("DELETE FROM cameras WHERE id = ?")
                        .bind(id)
                        .execute(&mut *c)
                        .await,
                    "camera",
                )
            })
        })
        .await
    }

    /// Replaces a camera's stream key; the old one stops working when this
    /// returns.
    pub async fn regenerate_stream_key(&self, id: i64) -> Result<Secret, AuthError> {
        let (key, hash) = generate_stream_key();
        self.write(move |c| {
            Box::pin(async move {
                one_row(
                    sqlx::query("UPDATE cameras SET stream_key_hash = ? WHERE id = ?")
                        .bind(&hash[..])
                        .bind(id)
                        .execute(&mut *c)
                        .await,
                    "camera",
                )
            })
        })
        .await?;
        Ok(key)
    }

    /// Sets a camera's streaming state.
    pub async fn set_camera_status(&self, id: i64, status: CameraStatus) -> Result<(), AuthError> {
        self.write(move |c| {
            Box::pin(async move {
                one_row(
                    sqlx::query("UPDATE cameras SET status = ? WHERE id = ?")
                        .bind(status.as_str())
                        .bind(id)
                        .execute(&mut *c)
                        .await,
                    "camera",
                )
            })
        })
        .await
    }

    /// Grants `user` `permission` on `camera`, replacing any earlier grant.
    pub async fn grant(
        &self,
        camera: i64,
        user: i64,
        permission: Permission,
    ) -> Result<Grant, AuthError> {
        let snap = self.snapshot();
        let username = snap
            .user(user)
            .map(|u| u.username.clone())
            .ok_or(AuthError::NotFound("user"))?;
        snap.camera(camera).ok_or(AuthError::NotFound("camera"))?;
        drop(snap);
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO camera_grants (user_id, camera_id, permission) VALUES (?, ?, ?)
                     ON CONFLICT (user_id, camera_id) DO UPDATE SET permission = excluded.permission",
                )
                .bind(user)
                .bind(camera)
                .bind(permission.as_str())
                .execute(&mut *c)
                .await
                // A user or camera deleted since the check above.
                .map_err(|e| match e.as_database_error() {
                    Some(d) if d.is_foreign_key_violation() => AuthError::NotFound("user"),
                    _ => e.into(),
                })?;
                Ok(())
            })
        })
        .await?;
        Ok(Grant {
            user_id: user,
            username,
            permission,
        })
    }

    /// Removes `user`'s grant on `camera`.
    pub async fn revoke(&self, camera: i64, user: i64) -> Result<(), AuthError> {
        self.write(move |c| {
            Box::pin(async move {
                let r =
                    sqlx::query("DELETE FROM camera_grants WHERE user_id = ? AND camera_id = ?")
                        .bind(user)
                        .bind(camera)
                        .execute(&mut *c)
                        .await?;
                if r.rows_affected() == 0 {
                    return Err(AuthError::NotFound("grant"));
                }
                Ok(())
            })
        })
        .await
    }
}

impl Accounts {
    /// Records a streaming session starting on `camera`; returns its id.
    pub async fn start_session(&self, camera: i64) -> Result<i64, AuthError> {
        let now = now_unix();
        let r = sqlx::query(
            "INSERT INTO sessions (camera_id, start_at, status) VALUES (?, ?, 'active')",
        )
        .bind(camera)
        .bind(now)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| match e.as_database_error() {
            Some(d) if d.is_foreign_key_violation() => AuthError::NotFound("camera"),
            _ => e.into(),
        })?;
        Ok(r.last_insert_rowid())
    }

    /// Records a session's end: `ended` when it closed normally, `error`
    /// when it failed.
    pub async fn end_session(&self, id: i64, failed: bool) -> Result<(), AuthError> {
        sqlx::query(
            "UPDATE sessions SET end_at = ?, status = ? WHERE id = ? AND status = 'active'",
        )
        .bind(now_unix())
        .bind(if failed { "error" } else { "ended" })
        .bind(id)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// At start: sessions a crash left `active` become `error`, and every
    /// camera is `offline` until a publisher connects. Returns how many
    /// sessions were closed.
    pub async fn reset_live_state(&self) -> Result<u64, AuthError> {
        let now = now_unix();
        let n = self
            .write(move |c| {
                Box::pin(async move {
                    let r = sqlx::query(
                        "UPDATE sessions SET end_at = ?, status = 'error' WHERE status = 'active'",
                    )
                    .bind(now)
                    .execute(&mut *c)
                    .await?;
                    sqlx::query("UPDATE cameras SET status = 'offline' WHERE status != 'offline'")
                        .execute(&mut *c)
                        .await?;
                    Ok(r.rows_affected())
                })
            })
            .await?;
        Ok(n)
    }

    /// A camera's sessions, newest first: (id, start, end, status).
    pub async fn sessions(
        &self,
        camera: i64,
    ) -> Result<Vec<(i64, i64, Option<i64>, String)>, AuthError> {
        Ok(sqlx::query_as(
            "SELECT id, start_at, end_at, status FROM sessions WHERE camera_id = ? ORDER BY id DESC",
        )
        .bind(camera)
        .fetch_all(&self.inner.pool)
        .await?)
    }
}

/// `Ok` if the statement changed a row, `NotFound(what)` if none matched.
fn one_row<E: Into<AuthError>>(
    r: Result<sqlx::sqlite::SqliteQueryResult, E>,
    what: &'static str,
) -> Result<(), AuthError> {
    if r.map_err(Into::into)?.rows_affected() == 0 {
        Err(AuthError::NotFound(what))
    } else {
        Ok(())
    }
}

/// Refuses if `id` is the only admin.
async fn last_admin_guard(c: &mut SqliteConnection, id: i64) -> Result<(), AuthError> {
    let others: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND id != ?")
            .bind(id)
            .fetch_one(&mut *c)
            .await?;
    if others == 0 {
        return Err(AuthError::Conflict("this is the last admin".into()));
    }
    Ok(())
}

/// Turns a unique-constraint failure into a conflict naming the field.
fn conflict(e: sqlx::Error) -> AuthError {
    match e.as_database_error() {
        Some(d) if d.is_unique_violation() => {
            let m = d.message();
            let what = if m.contains("users.username") {
                "that username is taken"
            } else if m.contains("users.email") {
                "that email is already registered"
            } else if m.contains("cameras.name") {
                "a camera with that name exists"
            } else if m.contains("camera_sources.file_name") {
                "a camera with that file name exists"
            } else if m.contains("camera_sources.camera_id") {
                "that camera already has a source"
            } else {
                "that already exists"
            };
            AuthError::Conflict(what.into())
        }
        Some(d) if d.is_foreign_key_violation() => AuthError::NotFound("user"),
        _ => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_user(name: &str, role: Role) -> NewUser {
        NewUser {
            username: name.into(),
            email: format!("{name}@example.com"),
            password_hash: "$argon2id$fake".into(),
            role,
        }
    }

    #[tokio::test]
    async fn writes_show_at_once_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let acc = Accounts::open(dir.path()).await.unwrap();
        assert!(acc.is_empty());
        let admin = acc
            .create_user(new_user("admin", Role::Admin))
            .await
            .unwrap();
        let op = acc
            .create_user(new_user("oper", Role::Operator))
            .await
            .unwrap();
        let viewer = acc
            .create_user(new_user("Viewer", Role::Viewer))
            .await
            .unwrap();
        let mut dup = new_user("VIEWER", Role::Viewer);
        dup.email = "other@example.com".into();
        let err = acc.create_user(dup).await.unwrap_err();
        assert!(
            matches!(err, AuthError::Conflict(ref m) if m.contains("username")),
            "{err}"
        );

        let (cam, key) = acc
            .create_camera(op.id, "'; DROP TABLE users; --", None)
            .await
            .unwrap();
        let snap = acc.snapshot();
        assert!(snap.stream_key_matches(cam.id, key.expose()));
        assert_eq!(snap.visible_cameras(&viewer).count(), 0);
        assert_eq!(snap.visible_cameras(&admin).count(), 1);
        assert_eq!(snap.access(&op, &cam), Some(Permission::Control));
        drop(snap);

        acc.grant(cam.id, viewer.id, Permission::Playback)
            .await
            .unwrap();
        let snap = acc.snapshot();
        assert_eq!(snap.access(&viewer, &cam), Some(Permission::Playback));
        assert!(!snap.may_manage(&viewer, &cam));
        drop(snap);

        let key2 = acc.regenerate_stream_key(cam.id).await.unwrap();
        assert!(!acc.snapshot().stream_key_matches(cam.id, key.expose()));
        assert!(acc.snapshot().stream_key_matches(cam.id, key2.expose()));

        // The last admin stays.
        assert!(matches!(
            acc.delete_user(admin.id).await,
            Err(AuthError::Conflict(_))
        ));
        let demote = UserUpdate {
            role: Some(Role::Viewer),
            ..Default::default()
        };
        assert!(matches!(
            acc.update_user(admin.id, demote).await,
            Err(AuthError::Conflict(_))
        ));
        // An owner cannot be deleted out from under their cameras.
        assert!(matches!(
            acc.delete_user(op.id).await,
            Err(AuthError::Conflict(_))
        ));

        let pw = UserUpdate {
            password_hash: Some("$argon2id$other".into()),
            ..Default::default()
        };
        let v2 = acc.update_user(viewer.id, pw).await.unwrap();
        assert_eq!(v2.token_version, viewer.token_version + 1);
        acc.close().await;

        let acc = Accounts::open(dir.path()).await.unwrap();
        let snap = acc.snapshot();
        assert_eq!(snap.users().count(), 3);
        assert_eq!(snap.camera(cam.id).unwrap().name, "'; DROP TABLE users; --");
        assert_eq!(snap.grants(cam.id).len(), 1);
        assert!(snap.stream_key_matches(cam.id, key2.expose()));
        assert_eq!(
            snap.user_by_name("viewer").unwrap().0.token_version,
            viewer.token_version + 1
        );
        drop(snap);

        acc.delete_camera(cam.id).await.unwrap();
        assert!(acc.snapshot().grants(cam.id).is_empty());
        acc.delete_user(op.id).await.unwrap();
        acc.close().await;
    }

    #[tokio::test]
    async fn access_for_every_role_and_grant() {
        let dir = tempfile::tempdir().unwrap();
        let acc = Accounts::open(dir.path()).await.unwrap();
        let owner = acc
            .create_user(new_user("owner", Role::Operator))
            .await
            .unwrap();
        let (cam, _key) = acc.create_camera(owner.id, "porch", None).await.unwrap();
        let users = [
            acc.create_user(new_user("vic", Role::Viewer))
                .await
                .unwrap(),
            acc.create_user(new_user("oto", Role::Operator))
                .await
                .unwrap(),
            acc.create_user(new_user("ada", Role::Admin)).await.unwrap(),
        ];
        use Permission::{Control, Playback, View};
        // role, grant held, access, may manage
        let table = [
            (Role::Viewer, None, None, false),
            (Role::Viewer, Some(View), Some(View), false),
            (Role::Viewer, Some(Playback), Some(Playback), false),
            (Role::Viewer, Some(Control), Some(Control), false),
            (Role::Operator, None, None, false),
            (Role::Operator, Some(View), Some(View), false),
            (Role::Operator, Some(Playback), Some(Playback), false),
            (Role::Operator, Some(Control), Some(Control), false),
            (Role::Admin, None, Some(Control), true),
            (Role::Admin, Some(View), Some(Control), true),
            (Role::Admin, Some(Playback), Some(Control), true),
            (Role::Admin, Some(Control), Some(Control), true),
        ];
        for (role, grant, access, manages) in table {
            let user = users.iter().find(|u| u.role == role).unwrap();
            match grant {
                Some(p) => drop(acc.grant(cam.id, user.id, p).await.unwrap()),
                // NotFound on a role's first row, where nothing is granted yet.
                None => drop(acc.revoke(cam.id, user.id).await),
            }
            let snap = acc.snapshot();
            let what = format!("{role} granted {grant:?}");
            assert_eq!(snap.access(user, &cam), access, "{what}");
            assert_eq!(snap.may_manage(user, &cam), manages, "{what}");
            let visible = snap.visible_cameras(user).any(|c| c.id == cam.id);
            assert_eq!(visible, access.is_some(), "{what}");
        }
        // Owning is not a grant: an operator owns what they create.
        assert_eq!(acc.snapshot().access(&owner, &cam), Some(Control));
        acc.close().await;
    }

    #[tokio::test]
    async fn another_process_writes_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let server = Accounts::open(dir.path()).await.unwrap();
        let cli = Accounts::open(dir.path()).await.unwrap();
        cli.create_user(new_user("later", Role::Viewer))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while server.snapshot().user_by_name("later").is_none() {
            assert!(tokio::time::Instant::now() < deadline, "never noticed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cli.close().await;
        server.close().await;
    }

    /// A deleted user's or camera's id is never handed out again, and a
    /// new account never starts on another's token version: the token of
    /// a deleted user can never name the next one (issue: hostile user).
    #[tokio::test]
    async fn ids_are_never_reused_and_token_versions_start_random() {
        let dir = tempfile::tempdir().unwrap();
        let acc = Accounts::open(dir.path()).await.unwrap();
        let user = |name: &str, role| NewUser {
            username: name.into(),
            email: format!("{name}@example.test"),
            password_hash: "$argon2id$x".into(),
            role,
        };
        let admin = acc.create_user(user("admin", Role::Admin)).await.unwrap();
        let m = acc
            .create_user(user("mallory", Role::Viewer))
            .await
            .unwrap();
        let (cam, _) = acc.create_camera(admin.id, "gate", None).await.unwrap();
        acc.delete_user(m.id).await.unwrap();
        acc.delete_camera(cam.id).await.unwrap();
        // Across a reopen too: the counter is in the database.
        acc.close().await;
        let acc = Accounts::open(dir.path()).await.unwrap();
        let next = acc.create_user(user("root2", Role::Admin)).await.unwrap();
        let (cam2, _) = acc.create_camera(admin.id, "gate", None).await.unwrap();
        assert!(next.id > m.id, "user id {} reused", next.id);
        assert!(cam2.id > cam.id, "camera id {} reused", cam2.id);
        assert_ne!(next.token_version, m.token_version);
        assert_ne!(admin.token_version, m.token_version);
        // A failed insert (a taken name) uses no id.
        assert!(acc.create_user(user("root2", Role::Viewer)).await.is_err());
        let after = acc.create_user(user("third", Role::Viewer)).await.unwrap();
        assert_eq!(after.id, next.id + 1);
    }

    /// Hostile: an operator demoted to viewer keeps no control of the
    /// cameras they made, only what they were granted.
    #[tokio::test]
    async fn a_demoted_owner_loses_control_of_their_cameras() {
        let dir = tempfile::tempdir().unwrap();
        let acc = Accounts::open(dir.path()).await.unwrap();
        let new_user = |name: &str, role| NewUser {
            username: name.into(),
            email: format!("{name}@example.test"),
            password_hash: "$argon2id$x".into(),
            role,
        };
        acc.create_user(new_user("admin", Role::Admin))
            .await
            .unwrap();
        let op = acc
            .create_user(new_user("otto", Role::Operator))
            .await
            .unwrap();
        let (cam, _) = acc.create_camera(op.id, "porch", None).await.unwrap();
        let (other, _) = acc.create_camera(op.id, "gate", None).await.unwrap();
        let snap = acc.snapshot();
        assert_eq!(snap.access(&op, &cam), Some(Permission::Control));
        drop(snap);
        acc.grant(other.id, op.id, Permission::View).await.unwrap();
        let demoted = acc
            .update_user(
                op.id,
                UserUpdate {
                    role: Some(Role::Viewer),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let snap = acc.snapshot();
        assert_eq!(snap.access(&demoted, &cam), None);
        assert!(!snap.may_manage(&demoted, &cam));
        assert_eq!(snap.access(&demoted, &other), Some(Permission::View));
        let seen: Vec<i64> = snap.visible_cameras(&demoted).map(|c| c.id).collect();
        assert_eq!(seen, vec![other.id]);
    }
}
