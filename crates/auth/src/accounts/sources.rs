//! Where a camera's video comes from, for the programs that fetch it (the
//! NVR), and a small key-value table for their bookkeeping.
//!
//! A program binds its camera to the accounts camera by the id written at
//! creation, never by name: a camera renamed in the API stays the same
//! camera, and a config-file camera is found by its `file_name`. The
//! settings are opaque here and may hold RTSP passwords, so they live in
//! the database alone: not in the [`Snapshot`](super::Snapshot), not in
//! [`Camera`], not in any `Debug` output.

use std::fmt;

use sqlx::SqliteConnection;

use super::{Accounts, Camera, NewCamera, conflict, now_unix, one_row};
use crate::AuthError;

/// How a pulled camera came to be, and so who owns its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraOrigin {
    /// Declared in the fetching program's config file.
    File {
        /// The config file's name for the camera: how the program finds
        /// it again. Unique, and unrelated to the accounts name, which the
        /// API may change.
        name: String,
    },
    /// Created through the API.
    Api,
}

impl CameraOrigin {
    /// The stored `origin` and `file_name`.
    fn columns(&self) -> (&'static str, Option<&str>) {
        match self {
            CameraOrigin::File { name } => ("file", Some(name)),
            CameraOrigin::Api => ("api", None),
        }
    }

    fn from_columns(origin: &str, file_name: Option<String>) -> Result<Self, AuthError> {
        match (origin, file_name) {
            ("file", Some(name)) => Ok(CameraOrigin::File { name }),
            ("api", None) => Ok(CameraOrigin::Api),
            (o, _) => Err(AuthError::Internal(format!(
                "camera source with origin '{o}' and an unexpected file name"
            ))),
        }
    }

    fn check(&self) -> Result<(), AuthError> {
        match self {
            CameraOrigin::File { name } if name.is_empty() => Err(AuthError::Invalid(
                "a file camera needs its file name".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// Where one camera's video comes from. Never serialised; its `Debug`
/// shows the settings' length, not their text.
#[derive(Clone, PartialEq, Eq)]
pub struct CameraSource {
    /// The accounts camera: the binding.
    pub camera_id: i64,
    /// Config file or API.
    pub origin: CameraOrigin,
    /// Opaque to auth (the NVR keeps TOML here); may hold passwords.
    pub settings: Option<String>,
    /// Unix seconds of the last change to the row.
    pub updated_at: i64,
}

impl fmt::Debug for CameraSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Prints a length in place of the text.
        struct Bytes(usize);
        impl fmt::Debug for Bytes {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "<{} bytes>", self.0)
            }
        }
        f.debug_struct("CameraSource")
            .field("camera_id", &self.camera_id)
            .field("origin", &self.origin)
            .field("settings", &self.settings.as_ref().map(|s| Bytes(s.len())))
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Inserts `camera`'s source row inside the caller's transaction.
/// `NotFound` when the camera is missing, `Conflict` when it already has a
/// source or the file name is bound to another camera.
async fn insert_source(
    c: &mut SqliteConnection,
    camera: i64,
    origin: &CameraOrigin,
    settings: Option<&str>,
    now: i64,
) -> Result<(), AuthError> {
    let (origin, file_name) = origin.columns();
    sqlx::query(
        "INSERT INTO camera_sources (camera_id, origin, file_name, settings, updated_at)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(camera)
    .bind(origin)
    .bind(file_name)
    .bind(settings)
    .bind(now)
    .execute(&mut *c)
    .await
    .map_err(|e| match e.as_database_error() {
        Some(d) if d.is_foreign_key_violation() => AuthError::NotFound("camera"),
        _ => conflict(e),
    })?;
    Ok(())
}

impl Accounts {
    /// Every camera source, by camera id. Read from the database: sources
    /// are not in the snapshot.
    pub async fn camera_sources(&self) -> Result<Vec<CameraSource>, AuthError> {
        type Row = (i64, String, Option<String>, Option<String>, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT camera_id, origin, file_name, settings, updated_at
             FROM camera_sources ORDER BY camera_id",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        rows.into_iter()
            .map(|(camera_id, origin, file_name, settings, updated_at)| {
                Ok(CameraSource {
                    camera_id,
                    origin: CameraOrigin::from_columns(&origin, file_name)?,
                    settings,
                    updated_at,
                })
            })
            .collect()
    }

    /// Creates a camera owned by `owner`, as
    /// [`create_camera`](Self::create_camera) does, with its source, in one
    /// transaction: `Conflict` when the camera name or the file name is
    /// taken, and then nothing is written. A pulled camera has no
    /// publisher, so its stream key is drawn and dropped;
    /// [`regenerate_stream_key`](Self::regenerate_stream_key) gives one.
    pub async fn create_sourced_camera(
        &self,
        owner: i64,
        name: &str,
        origin: CameraOrigin,
        settings: Option<&str>,
    ) -> Result<Camera, AuthError> {
        origin.check()?;
        let (new, _key) = NewCamera::new(owner, name, None)?;
        let settings = settings.map(str::to_string);
        let id = self
            .write(move |c| {
                Box::pin(async move {
                    let id = new.insert(c).await?;
                    insert_source(c, id, &origin, settings.as_deref(), new.created_at).await?;
                    Ok(id)
                })
            })
            .await?;
        self.camera_or_missing(id)
    }

    /// Gives an existing camera a source, once: for adopting a camera at
    /// the upgrade import. `NotFound` when the camera does not exist;
    /// `Conflict` when it already has a source or the file name is bound
    /// to another camera.
    pub async fn bind_camera_source(
        &self,
        camera_id: i64,
        origin: CameraOrigin,
        settings: Option<&str>,
    ) -> Result<(), AuthError> {
        origin.check()?;
        let settings = settings.map(str::to_string);
        let now = now_unix();
        self.write(move |c| {
            Box::pin(
                async move { insert_source(c, camera_id, &origin, settings.as_deref(), now).await },
            )
        })
        .await
    }

    /// Replaces a camera's settings. `NotFound` when the camera has no
    /// source (a pushed camera, or none at all).
    pub async fn set_camera_settings(
        &self,
        camera_id: i64,
        settings: Option<&str>,
    ) -> Result<(), AuthError> {
        let settings = settings.map(str::to_string);
        let now = now_unix();
        self.write(move |c| {
            Box::pin(async move {
                one_row(
                    sqlx::query(
                        "UPDATE camera_sources SET settings = ?, updated_at = ? WHERE camera_id = ?",
                    )
                    .bind(settings.as_deref())
                    .bind(now)
                    .bind(camera_id)
                    .execute(&mut *c)
                    .await,
                    "camera source",
                )
            })
        })
        .await
    }

    /// Forgets where a camera's video comes from; the camera and its
    /// recordings stay. `NotFound` when it has no source.
    pub async fn delete_camera_source(&self, camera_id: i64) -> Result<(), AuthError> {
        self.write(move |c| {
            Box::pin(async move {
                one_row(
                    sqlx::query("DELETE FROM camera_sources WHERE camera_id = ?")
                        .bind(camera_id)
                        .execute(&mut *c)
                        .await,
                    "camera source",
                )
            })
        })
        .await
    }

    /// The value stored under `key`, if any.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, AuthError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.inner.pool)
            .await?)
    }

    /// Stores `value` under `key`, replacing any earlier value.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), AuthError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES (?, ?)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(&key)
                .bind(&value)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use reallive_core::ErrorKind;
    use sqlx::sqlite::SqlitePool;

    use super::super::{ACCOUNTS_FILE, connect_options};
    use super::*;
    use crate::{NewUser, Role};

    async fn open_with_owner(dir: &std::path::Path) -> (Accounts, i64) {
        let acc = Accounts::open(dir).await.unwrap();
        let owner = acc
            .create_user(NewUser {
                username: "owner".into(),
                email: "owner@example.com".into(),
                password_hash: "$argon2id$fake".into(),
                role: Role::Admin,
            })
            .await
            .unwrap();
        (acc, owner.id)
    }

    fn file(name: &str) -> CameraOrigin {
        CameraOrigin::File { name: name.into() }
    }

    /// (cameras, sources) rows in the database.
    async fn counts(acc: &Accounts) -> (i64, i64) {
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM cameras), (SELECT COUNT(*) FROM camera_sources)",
        )
        .fetch_one(&acc.inner.pool)
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn sourced_camera_is_listed_with_its_origin_and_settings() {
        let dir = tempfile::tempdir().unwrap();
        let (acc, owner) = open_with_owner(dir.path()).await;
        let cam = acc
            .create_sourced_camera(owner, "Porch", file("porch"), Some("url = \"rtsp://h/\""))
            .await
            .unwrap();
        let api = acc
            .create_sourced_camera(owner, "Yard", CameraOrigin::Api, None)
            .await
            .unwrap();
        assert_eq!(cam.name, "Porch");
        assert_eq!(cam.owner_id, owner);
        let snap = acc.snapshot();
        let names: Vec<_> = snap.cameras().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Porch", "Yard"]);
        drop(snap);

        let sources = acc.camera_sources().await.unwrap();
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].camera_id, cam.id);
        assert_eq!(sources[0].origin, file("porch"));
        assert_eq!(sources[0].settings.as_deref(), Some("url = \"rtsp://h/\""));
        assert!(sources[0].updated_at > 0);
        assert_eq!(sources[1].camera_id, api.id);
        assert_eq!(sources[1].origin, CameraOrigin::Api);
        assert_eq!(sources[1].settings, None);

        let err = acc
            .create_sourced_camera(owner, "Gate", file(""), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        acc.close().await;
    }

    #[tokio::test]
    async fn taken_names_are_refused_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (acc, owner) = open_with_owner(dir.path()).await;
        acc.create_sourced_camera(owner, "Porch", file("porch"), None)
            .await
            .unwrap();
        assert_eq!(counts(&acc).await, (1, 1));

        // The camera name is taken.
        let err = acc
            .create_sourced_camera(owner, "Porch", file("other"), Some("x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        assert!(err.to_string().contains("name exists"), "{err}");
        // The file name is taken: the camera row inserted first is rolled back.
        let err = acc
            .create_sourced_camera(owner, "Gate", file("porch"), Some("x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        assert!(err.to_string().contains("file name"), "{err}");

        assert_eq!(counts(&acc).await, (1, 1));
        assert_eq!(acc.snapshot().cameras().count(), 1);
        acc.close().await;
    }

    #[tokio::test]
    async fn deleting_a_camera_deletes_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let (acc, owner) = open_with_owner(dir.path()).await;
        let cam = acc
            .create_sourced_camera(owner, "Porch", file("porch"), Some("secret"))
            .await
            .unwrap();
        acc.delete_camera(cam.id).await.unwrap();
        assert!(acc.camera_sources().await.unwrap().is_empty());
        assert_eq!(counts(&acc).await, (0, 0));
        // The file name is free again.
        acc.create_sourced_camera(owner, "Porch 2", file("porch"), None)
            .await
            .unwrap();
        acc.close().await;
    }

    #[tokio::test]
    async fn binding_needs_a_camera_and_happens_once() {
        let dir = tempfile::tempdir().unwrap();
        let (acc, owner) = open_with_owner(dir.path()).await;
        let (cam, _key) = acc.create_camera(owner, "Porch", None).await.unwrap();
        let (other, _key) = acc.create_camera(owner, "Gate", None).await.unwrap();

        let err = acc
            .bind_camera_source(cam.id + 100, file("ghost"), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

        acc.bind_camera_source(cam.id, file("porch"), Some("a = 1"))
            .await
            .unwrap();
        let err = acc
            .bind_camera_source(cam.id, CameraOrigin::Api, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        // The file name is bound to another camera.
        let err = acc
            .bind_camera_source(other.id, file("porch"), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");

        let sources = acc.camera_sources().await.unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].camera_id, cam.id);
        assert_eq!(sources[0].origin, file("porch"));
        assert_eq!(sources[0].settings.as_deref(), Some("a = 1"));
        acc.close().await;
    }

    #[tokio::test]
    async fn a_deleted_source_leaves_the_camera() {
        let dir = tempfile::tempdir().unwrap();
        let (acc, owner) = open_with_owner(dir.path()).await;
        let cam = acc
            .create_sourced_camera(owner, "gate", CameraOrigin::Api, Some("x"))
            .await
            .unwrap();
        acc.delete_camera_source(cam.id).await.unwrap();
        assert!(acc.camera_sources().await.unwrap().is_empty());
        assert!(acc.snapshot().cameras().any(|c| c.id == cam.id));
        let e = acc.delete_camera_source(cam.id).await.unwrap_err();
        assert_eq!(e.kind(), reallive_core::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn settings_change_only_where_a_source_exists() {
        let dir = tempfile::tempdir().unwrap();
        let (acc, owner) = open_with_owner(dir.path()).await;
        let (pusher, _key) = acc.create_camera(owner, "Pushed", None).await.unwrap();
        let err = acc
            .set_camera_settings(pusher.id, Some("a = 1"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(acc.camera_sources().await.unwrap().is_empty());

        let cam = acc
            .create_sourced_camera(owner, "Pulled", CameraOrigin::Api, Some("a = 1"))
            .await
            .unwrap();
        acc.set_camera_settings(cam.id, Some("a = 2"))
            .await
            .unwrap();
        let sources = acc.camera_sources().await.unwrap();
        assert_eq!(sources[0].settings.as_deref(), Some("a = 2"));
        acc.set_camera_settings(cam.id, None).await.unwrap();
        assert_eq!(acc.camera_sources().await.unwrap()[0].settings, None);
        acc.close().await;
    }

    #[tokio::test]
    async fn meta_round_trips_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let acc = Accounts::open(dir.path()).await.unwrap();
        assert_eq!(acc.meta("nvr.imported").await.unwrap(), None);
        acc.set_meta("nvr.imported", "1").await.unwrap();
        assert_eq!(
            acc.meta("nvr.imported").await.unwrap().as_deref(),
            Some("1")
        );
        acc.set_meta("nvr.imported", "2").await.unwrap();
        assert_eq!(
            acc.meta("nvr.imported").await.unwrap().as_deref(),
            Some("2")
        );
        assert_eq!(acc.meta("other").await.unwrap(), None);
        acc.close().await;
    }

    #[test]
    fn debug_hides_the_settings() {
        let source = CameraSource {
            camera_id: 7,
            origin: file("porch"),
            settings: Some("url = \"rtsp://u:secret@h/\"".into()),
            updated_at: 1,
        };
        let shown = format!("{source:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<26 bytes>"), "{shown}");
        assert!(shown.contains("porch"), "{shown}");
        let shown = format!("{source:#?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[tokio::test]
    async fn upgrades_an_old_database_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        // A database as the first release left it: migration 1 alone.
        let pool = SqlitePool::connect_with(connect_options(&dir.path().join(ACCOUNTS_FILE)))
            .await
            .unwrap();
        sqlx::migrate!("./migrations")
            .run_to(1, &pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, role, created_at)
             VALUES (1, 'old', 'old@example.com', '$argon2id$fake', 'admin', 1)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO cameras (id, owner_id, name, stream_key_hash, created_at)
             VALUES (5, 1, 'Porch', x'00', 1)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('camera_sources', 'meta')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(tables, 0);
        pool.close().await;

        let acc = Accounts::open(dir.path()).await.unwrap();
        assert_eq!(acc.snapshot().camera(5).unwrap().name, "Porch");
        assert!(acc.camera_sources().await.unwrap().is_empty());
        acc.bind_camera_source(5, file("porch"), Some("a = 1"))
            .await
            .unwrap();
        acc.set_meta("nvr.imported", "1").await.unwrap();
        acc.close().await;

        let acc = Accounts::open(dir.path()).await.unwrap();
        let snap = acc.snapshot();
        assert_eq!(snap.user_by_name("old").unwrap().0.id, 1);
        assert_eq!(snap.camera(5).unwrap().name, "Porch");
        drop(snap);
        let sources = acc.camera_sources().await.unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].camera_id, 5);
        assert_eq!(sources[0].origin, file("porch"));
        assert_eq!(sources[0].settings.as_deref(), Some("a = 1"));
        assert_eq!(
            acc.meta("nvr.imported").await.unwrap().as_deref(),
            Some("1")
        );
        // Ids go on from the old database's highest.
        let (next, _) = acc.create_camera(1, "Yard", None).await.unwrap();
        assert_eq!(next.id, 6);
        acc.close().await;
    }
}
