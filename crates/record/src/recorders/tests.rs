//! Binding cameras by id, the one-time import of the legacy files, and
//! what the registry keeps in the database. Real accounts database and
//! store in a temporary directory; no camera runs (mode "off").

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reallive_auth::{NewUser, Role};

use super::*;

async fn accounts(dir: &Path) -> Accounts {
    let acc = Accounts::open(dir).await.unwrap();
    acc.create_user(NewUser {
        username: "admin".into(),
        email: "admin@example.test".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        role: Role::Admin,
    })
    .await
    .unwrap();
    acc
}

fn cameras(text: &str) -> Vec<CameraConfig> {
    NvrConfigFile::check(text).unwrap().cameras
}

const GATE: &str =
    "[[cameras]]\nname = \"gate\"\nurl = \"rtsp://u:gate-secret@192.0.2.1/s\"\nmode = \"off\"\n";

fn ids(bound: &[BoundCamera]) -> Vec<(i64, String, bool)> {
    bound
        .iter()
        .map(|b| (b.id, b.config.name.clone(), b.from_file()))
        .collect()
}

#[tokio::test]
async fn a_file_camera_is_created_once_and_found_by_id_after() {
    let dir = tempfile::tempdir().unwrap();
    let acc = accounts(dir.path()).await;
    let file = cameras(GATE);
    let first = bind_cameras(&acc, &file, dir.path()).await.unwrap();
    let again = bind_cameras(&acc, &file, dir.path()).await.unwrap();
    assert_eq!(ids(&first), ids(&again));
    assert_eq!(acc.snapshot().cameras().count(), 1);
}

#[tokio::test]
async fn a_camera_made_later_under_a_file_cameras_name_is_never_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let acc = accounts(dir.path()).await;
    let file = cameras(GATE);
    let first = bind_cameras(&acc, &file, dir.path()).await.unwrap();
    // The NVR's camera is deleted, and someone makes another "gate".
    acc.delete_camera(first[0].id).await.unwrap();
    let owner = owner(&acc).unwrap();
    let (other, _) = acc.create_camera(owner, "gate", None).await.unwrap();
    let bound = bind_cameras(&acc, &file, dir.path()).await.unwrap();
    assert!(bound.is_empty(), "adopted by name: {bound:?}");
    assert!(acc.camera_sources().await.unwrap().is_empty());
    // Nor does it get the old id, so none of its recordings (kept by
    // camera id): ids are never reused.
    assert_ne!(other.id, first[0].id);
}

#[tokio::test]
async fn the_legacy_files_import_once_by_name_then_are_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let acc = accounts(dir.path()).await;
    // What an older NVR left: cameras made by name, its two files.
    let owner = owner(&acc).unwrap();
    let (gate, _) = acc.create_camera(owner, "gate", None).await.unwrap();
    let (door, _) = acc.create_camera(owner, "door", None).await.unwrap();
    let door_toml = "[[cameras]]\nname = \"door\"\nurl = \"rtsp://u:door-secret@192.0.2.2/s\"\nmode = \"off\"\n";
    std::fs::write(dir.path().join(LEGACY_CAMERAS_FILE), door_toml).unwrap();
    let mut quiet = cameras(GATE)[0].motion.clone();
    quiet.sensitivity = 17;
    std::fs::write(
        dir.path().join(LEGACY_MOTION_FILE),
        crate::config::motion_overrides_to_toml(&[("gate".to_string(), quiet.clone())].into()),
    )
    .unwrap();

    let file = cameras(GATE);
    let bound = bind_cameras(&acc, &file, dir.path()).await.unwrap();
    assert_eq!(
        ids(&bound),
        vec![
            (gate.id, "gate".into(), true),
            (door.id, "door".into(), false)
        ]
    );
    assert_eq!(bound[0].config.motion, quiet, "motion.toml's settings");
    assert_eq!(
        bound[1].config.url.expose(),
        "rtsp://u:door-secret@192.0.2.2/s"
    );
    for name in [LEGACY_CAMERAS_FILE, LEGACY_MOTION_FILE] {
        assert!(!dir.path().join(name).exists(), "{name} renamed");
        assert!(dir.path().join(format!("{name}.imported")).exists());
    }
    // Once: a later start binds the same, from the database alone.
    let again = bind_cameras(&acc, &file, dir.path()).await.unwrap();
    assert_eq!(again, bound);
}

#[tokio::test]
async fn a_half_done_import_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let acc = accounts(dir.path()).await;
    let owner = owner(&acc).unwrap();
    let (door, _) = acc.create_camera(owner, "door", None).await.unwrap();
    let door_toml = "[[cameras]]\nname = \"door\"\nurl = \"rtsp://192.0.2.2/s\"\nmode = \"off\"\n";
    std::fs::write(dir.path().join(LEGACY_CAMERAS_FILE), door_toml).unwrap();
    // A crash after the first binding: bound, not marked, not renamed.
    acc.bind_camera_source(door.id, CameraOrigin::Api, Some(door_toml))
        .await
        .unwrap();
    let bound = bind_cameras(&acc, &[], dir.path()).await.unwrap();
    assert_eq!(ids(&bound), vec![(door.id, "door".into(), false)]);
    assert!(acc.meta(IMPORTED).await.unwrap().is_some());
    // A crash after the mark, before the rename: renamed next time.
    std::fs::rename(
        dir.path().join(format!("{LEGACY_CAMERAS_FILE}.imported")),
        dir.path().join(LEGACY_CAMERAS_FILE),
    )
    .unwrap();
    let again = bind_cameras(&acc, &[], dir.path()).await.unwrap();
    assert_eq!(again, bound);
    assert!(!dir.path().join(LEGACY_CAMERAS_FILE).exists());
}

#[tokio::test]
async fn the_registry_keeps_api_cameras_and_motion_changes_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let acc = accounts(dir.path()).await;
    let file = cameras(GATE);
    let (store, _) = Store::open(reallive_store::StoreConfig::new(dir.path()))
        .await
        .unwrap();
    let recorders = Recorders::new(RecordersConfig {
        accounts: acc.clone(),
        store: store.clone(),
        live: None,
        open_source: Arc::new(|_, _, _| unreachable!("no camera runs in mode off")),
        decoder: None,
        clock: Arc::new(reallive_core::SystemClock),
        floor_warning: Arc::default(),
        stop: CancellationToken::new(),
    });
    for b in bind_cameras(&acc, &file, dir.path()).await.unwrap() {
        recorders.insert(b);
    }
    let door =
        cameras("[[cameras]]\nname = \"door\"\nurl = \"rtsp://192.0.2.2/s\"\nmode = \"off\"\n")
            .remove(0);
    let id = recorders.add(door.clone()).await.unwrap();
    let mut dup = door.clone();
    dup.name = "DOOR".into();
    assert_eq!(
        recorders.add(dup).await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let gate = bind_cameras(&acc, &file, dir.path()).await.unwrap()[0].id;
    let mut quiet = file[0].motion.clone();
    quiet.sensitivity = 11;
    recorders.set_motion(gate, quiet.clone()).await.unwrap();
    recorders.set_motion(id, quiet.clone()).await.unwrap();

    // What the next start reads.
    let bound = bind_cameras(&acc, &file, dir.path()).await.unwrap();
    assert_eq!(
        ids(&bound),
        vec![(gate, "gate".into(), true), (id, "door".into(), false)]
    );
    assert!(bound.iter().all(|b| b.config.motion == quiet));
    // Back to the file's settings: nothing kept over it.
    recorders
        .set_motion(gate, file[0].motion.clone())
        .await
        .unwrap();
    let sources = acc.camera_sources().await.unwrap();
    assert!(
        sources
            .iter()
            .any(|s| s.camera_id == gate && s.settings.is_none())
    );

    // A file camera cannot be removed; an API camera is, its account and
    // recordings kept.
    assert_eq!(
        recorders.remove(gate).await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    recorders.remove(id).await.unwrap();
    let bound = bind_cameras(&acc, &file, dir.path()).await.unwrap();
    assert_eq!(ids(&bound), vec![(gate, "gate".into(), true)]);
    assert!(acc.snapshot().cameras().any(|c| c.id == id));
    store.close().await;
}

#[tokio::test]
async fn a_file_cameras_edits_are_kept_as_overrides_that_win_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let acc = accounts(dir.path()).await;
    let file = cameras(GATE);
    let (store, _) = Store::open(reallive_store::StoreConfig::new(dir.path()))
        .await
        .unwrap();
    let recorders = Recorders::new(RecordersConfig {
        accounts: acc.clone(),
        store: store.clone(),
        live: None,
        open_source: Arc::new(|_, _, _| unreachable!("no camera runs in mode off")),
        decoder: None,
        clock: Arc::new(reallive_core::SystemClock),
        floor_warning: Arc::default(),
        stop: CancellationToken::new(),
    });
    for b in bind_cameras(&acc, &file, dir.path()).await.unwrap() {
        recorders.insert(b);
    }
    let view = |id| {
        recorders
            .sources()
            .into_iter()
            .find(|v| v.id == id)
            .unwrap()
    };
    let gate = recorders.sources()[0].id;
    let before = view(gate);
    assert!(before.from_file && before.overridden.is_empty());

    // A new URL, retention and motion; the tag must match.
    let mut edited = before.config.clone();
    edited.url = RtspUrl::parse("rtsp://u:new-secret@192.0.2.9/main").unwrap();
    edited.retention.max_age_days = Some(3);
    edited.motion.sensitivity = 90;
    let stale = recorders
        .update(gate, edited.clone(), "not-the-tag")
        .await
        .unwrap_err();
    assert!(matches!(stale, RecordError::Stale(_)), "{stale}");
    recorders
        .update(gate, edited.clone(), &before.etag)
        .await
        .unwrap();
    let after = view(gate);
    assert_eq!(after.config, edited);
    assert_ne!(after.etag, before.etag);
    assert_eq!(after.overridden, vec!["motion", "retention", "url"]);
    // The old tag is stale now: the earlier editor is told.
    let e = recorders
        .update(gate, before.config.clone(), &before.etag)
        .await
        .unwrap_err();
    assert!(matches!(e, RecordError::Stale(_)));
    // The store keeps the new retention from now on.
    let policy = store.retention_policy();
    assert_eq!(
        policy.cameras[&CameraId(gate).store_key()].max_age_ns,
        Some(3 * 86_400 * 1_000_000_000)
    );

    // The next start: the file is as it was, the edits win over it.
    let bound = bind_cameras(&acc, &file, dir.path()).await.unwrap();
    assert_eq!(bound[0].config, edited);
    assert_eq!(bound[0].file.as_ref(), Some(&file[0]));

    // Back to the file: nothing kept.
    recorders.clear_overrides(gate).await.unwrap();
    assert_eq!(view(gate).config, file[0]);
    assert!(view(gate).overridden.is_empty());
    assert!(
        acc.camera_sources()
            .await
            .unwrap()
            .iter()
            .any(|s| s.camera_id == gate && s.settings.is_none())
    );
    let bound = bind_cameras(&acc, &file, dir.path()).await.unwrap();
    assert_eq!(bound[0].config, file[0]);
    store.close().await;
}

#[test]
fn overrides_name_only_the_fields_that_differ_and_mark_removed_ones() {
    let file = cameras(
        "[[cameras]]\nname = \"gate\"\nurl = \"rtsp://192.0.2.1/s\"\nsub_url = \"rtsp://192.0.2.1/sub\"\nmode = \"off\"\n",
    )
    .remove(0);
    let mut edited = file.clone();
    edited.sub_url = None;
    edited.mode = RecordMode::Continuous;
    let o = overrides_of(&file, &edited);
    let keys: Vec<&str> = o.keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["mode", "sub_url"]);
    let text = overrides_settings(&o).unwrap();
    let (back, fields) = apply_overrides(&file, &text).unwrap();
    assert_eq!(back, edited);
    assert_eq!(fields, vec!["mode", "sub_url"]);
    assert_eq!(overrides_settings(&overrides_of(&file, &file)), None);
    // The older format, motion settings only, still reads.
    let mut quiet = file.motion.clone();
    quiet.sensitivity = 7;
    let legacy =
        crate::config::motion_overrides_to_toml(&[("gate".to_string(), quiet.clone())].into());
    let (back, fields) = apply_overrides(&file, &legacy).unwrap();
    assert_eq!(back.motion, quiet);
    assert_eq!(fields, vec!["motion"]);
}
