//! Counters the API keeps, rendered as Prometheus text at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use reallive_auth::{CameraStatus, Snapshot};

/// Request and login counters. Lock-free; one per server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// By status class: 1xx .. 5xx.
    requests: [AtomicU64; 5],
    logins_ok: AtomicU64,
    logins_failed: AtomicU64,
    rate_limited: AtomicU64,
}

/// How a login ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Token issued.
    Ok,
    /// Wrong username or password.
    Failed,
    /// Refused by the rate limiter.
    RateLimited,
}

impl Metrics {
    /// Counts one response with `status`.
    pub fn request(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a login attempt.
    pub fn login(&self, outcome: LoginOutcome) {
        let c = match outcome {
            LoginOutcome::Ok => &self.logins_ok,
            LoginOutcome::Failed => &self.logins_failed,
            LoginOutcome::RateLimited => &self.rate_limited,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition (version 0.0.4).
    pub fn render(&self, accounts: &Snapshot, uptime_secs: u64) -> String {
        let mut out = String::with_capacity(2048);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str(
            "# HELP reallive_http_requests_total HTTP responses by status class.\n\
             # TYPE reallive_http_requests_total counter\n",
        );
        for (i, c) in self.requests.iter().enumerate() {
            let _ = writeln!(
                out,
                "reallive_http_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                load(c)
            );
        }
        out.push_str(
            "# HELP reallive_logins_total Login attempts by result.\n\
             # TYPE reallive_logins_total counter\n",
        );
        for (result, c) in [
            ("ok", &self.logins_ok),
            ("failed", &self.logins_failed),
            ("rate_limited", &self.rate_limited),
        ] {
            let _ = writeln!(
                out,
                "reallive_logins_total{{result=\"{result}\"}} {}",
                load(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP reallive_users Users.\n# TYPE reallive_users gauge\nreallive_users {}",
            accounts.users().count()
        );
        out.push_str("# HELP reallive_cameras Cameras by status.\n# TYPE reallive_cameras gauge\n");
        for status in [
            CameraStatus::Offline,
            CameraStatus::Online,
            CameraStatus::Streaming,
        ] {
            let n = accounts.cameras().filter(|c| c.status == status).count();
            let _ = writeln!(
                out,
                "reallive_cameras{{status=\"{}\"}} {n}",
                status.as_str()
            );
        }
        let _ = writeln!(
            out,
            "# HELP reallive_uptime_seconds Seconds since start.\n# TYPE reallive_uptime_seconds gauge\nreallive_uptime_seconds {uptime_secs}"
        );
        out
    }
}
