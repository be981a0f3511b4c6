//! The `Host` check against DNS rebinding: a web page the user visits can
//! make its own name resolve to 127.0.0.1 and then read a loopback
//! server's answers as same-origin. A server that checks `Host` answers
//! only the names it is reached by: the configured names, `localhost`,
//! and IP literals (which no attacker's page can be served from).

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// Whether a `Host` header value names this server: `localhost`, an IP
/// literal (`[v6]` too), or one of `names` (any case, any port).
pub fn allowed_host(host: &str, names: &[String]) -> bool {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        // [v6] or [v6]:port
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) if after.is_empty() || after.starts_with(':') => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::Ipv4Addr>().is_ok()
        || names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// `app`, answering 421 to a request whose `Host` is not [allowed](allowed_host).
pub fn check_host(app: Router, names: Vec<String>) -> Router {
    let names: std::sync::Arc<[String]> = names.into();
    app.layer(middleware::from_fn(move |req: Request, next: Next| {
        let names = names.clone();
        async move {
            let ok = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri().authority().map(|a| a.as_str()))
                .is_some_and(|h| allowed_host(h, &names));
            if ok {
                next.run(req).await
            } else {
                misdirected()
            }
        }
    }))
}

fn misdirected() -> Response {
    ApiError::with_status(
        StatusCode::MISDIRECTED_REQUEST,
        "misdirected_request",
        "this server does not answer to that host name; add it to host_names",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_by_name_ip_and_localhost() {
        let names = vec!["nvr.example.org".to_string()];
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:8080",
            "192.168.1.20:80",
            "[::1]",
            "[::1]:8080",
            "[fe80::1]:1",
            "nvr.example.org",
            "NVR.example.org:443",
        ] {
            assert!(allowed_host(ok, &names), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[::1",
            "[::1]x",
            "[evil]",
            "",
            "nvr.example.org.evil",
        ] {
            assert!(!allowed_host(bad, &names), "{bad}");
        }
    }
}
