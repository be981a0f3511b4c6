//! The emergency space watcher: when free space falls under the retention
//! floor, retention runs at once (past-retention first, then the oldest
//! footage, never locked ranges), not at its next pass, and the status
//! page and `/api/health` say so until space is back above the floor.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reallive_store::Store;
use reallive_store::retention::RetentionPolicy;
use tokio_util::sync::CancellationToken;

/// How often the watcher looks at the disk.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// What free space calls for: `None` when it is above `floor_bytes`,
/// else the warning the status page shows (critical under
/// `critical_bytes`).
pub fn verdict(free_bytes: u64, floor_bytes: u64, critical_bytes: u64) -> Option<String> {
    (free_bytes < floor_bytes).then(|| {
        format!(
            "free space {} MiB is under the floor of {} MiB{}",
            free_bytes >> 20,
            floor_bytes >> 20,
            if free_bytes < critical_bytes {
                " (critical): deleting the oldest footage"
            } else {
                ""
            }
        )
    })
}

/// Watches `store`'s disk every [`WATCH_INTERVAL`] until `stop` fires.
/// Under the floor of `retention` it runs retention at once; `warning`
/// holds the current [`verdict`] for the status page, and each change is
/// logged once. `critical_free` defaults to half the floor.
pub async fn watch(
    store: Store,
    retention: RetentionPolicy,
    critical_free: Option<u64>,
    warning: Arc<Mutex<Option<String>>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(disk) = store.disk_space().await else {
            continue;
        };
        let floor = retention.free_floor(disk.total_bytes);
        let now = verdict(disk.free_bytes, floor, critical_free.unwrap_or(floor / 2));
        if now.is_some()
            && let Err(e) = store.run_retention(0).await
        {
            tracing::warn!("emergency retention failed: {e}");
        }
        let mut w = warning.lock().unwrap_or_else(PoisonError::into_inner);
        if now != *w {
            match &now {
                Some(m) => tracing::warn!("{m}"),
                None => tracing::info!("free space is back above the floor"),
            }
        }
        *w = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_and_the_critical_line() {
        const MIB: u64 = 1 << 20;
        let cases = [
            (2048 * MIB, 1024 * MIB, 512 * MIB, None),
            (1024 * MIB, 1024 * MIB, 512 * MIB, None),
            (
                1023 * MIB,
                1024 * MIB,
                512 * MIB,
                Some("free space 1023 MiB is under the floor of 1024 MiB"),
            ),
            (
                100 * MIB,
                1024 * MIB,
                512 * MIB,
                Some(
                    "free space 100 MiB is under the floor of 1024 MiB (critical): deleting the oldest footage",
                ),
            ),
            (0, 0, 0, None),
        ];
        for (free, floor, critical, want) in cases {
            assert_eq!(
                verdict(free, floor, critical).as_deref(),
                want,
                "{free} {floor} {critical}"
            );
        }
    }
}
