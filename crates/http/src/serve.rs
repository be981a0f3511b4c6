//! [`serve`]: the HTTP listener every RealLive server runs, with the
//! limits `axum::serve` lacks. A client that opens a connection and sends
//! no complete request head within [`ServeLimits::header_read_timeout`] is
//! cut off, and at most [`ServeLimits::max_connections`] connections are
//! open at once (the next wait in the kernel's accept queue), of which one
//! client (an IPv4 address, an IPv6 /64) holds at most
//! [`ServeLimits::max_connections_per_client`]: more from it are closed at
//! once, so one address cannot hold the server. Each request
//! carries `ConnectInfo<SocketAddr>`, as with
//! `into_make_service_with_connect_info`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// Limits on the connections a server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// A request head must arrive within this (slowloris).
    pub header_read_timeout: Duration,
    /// HTTP connections open at once. (A connection upgraded to a
    /// WebSocket leaves the count: the live shell bounds those.)
    pub max_connections: usize,
    /// HTTP connections one client holds at once (by
    /// `reallive_auth::client_bucket`); another from it is closed on accept.
    pub max_connections_per_client: usize,
    /// At shutdown, requests in flight get this long to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_client: 256,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish (within the grace). Upgrades (WebSockets) are
/// handed to their handlers and outlive this.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(
        listener,
        app,
        ServeOptions {
            limits,
            ..ServeOptions::default()
        },
        shutdown,
    )
    .await
}

/// How [`serve_with`] serves.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// Connection limits.
    pub limits: ServeLimits,
    /// TLS, when on.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Who may say who the client is.
    pub trusted_proxies: TrustedProxies,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("limits", &self.limits)
            .field("tls", &self.tls.is_some())
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// Reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are
/// believed (`docs/design/remote.md`). From anyone else both headers are
/// ignored. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Arc<[ipnet::IpNet]>);

impl TrustedProxies {
    /// These networks.
    pub fn new(nets: Vec<ipnet::IpNet>) -> Self {
        TrustedProxies(nets.into())
    }

    fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Who the client is, and whether it came over TLS, for a request
    /// from `peer` with `headers`: from a trusted proxy, the rightmost
    /// address of `X-Forwarded-For` that is not itself a trusted proxy and
    /// `X-Forwarded-Proto`; from anyone else, `peer` and `tls`.
    pub fn client(
        &self,
        peer: SocketAddr,
        tls: bool,
        headers: &axum::http::HeaderMap,
    ) -> (SocketAddr, bool) {
        if !self.trusts(peer.ip()) {
            return (peer, tls);
        }
        let hops: Vec<std::net::IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|h| h.trim().parse().ok())
            .collect();
        let client = hops
            .iter()
            .rev()
            .find(|ip| !self.trusts(**ip))
            .or(hops.first())
            .map_or(peer, |ip| SocketAddr::new(*ip, peer.port()));
        let proto = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("https")
            });
        (client, proto.unwrap_or(tls))
    }
}

/// Whether a request came over TLS: a request extension [`serve_with`]
/// sets, so handlers can build `https://` and `wss://` URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverTls(pub bool);

/// [`serve`], with the options: with TLS, a connection whose first byte is
/// a TLS handshake (`0x16`) is served `app` over TLS, and any other gets a
/// `308` to the same host and path over `https://` and nothing else; from
/// a trusted proxy, the client is the one it names
/// (`docs/design/remote.md`). A trusted proxy's connections count against
/// `max_connections` but not the per-client cap: they are many clients'.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let ServeOptions {
        limits,
        tls,
        trusted_proxies,
    } = options;
    let max = limits.max_connections.clamp(1, u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(max));
    let closing = tokio_util::sync::CancellationToken::new();
    let per_client = crate::ClientSlots::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let client = if trusted_proxies.trusts(peer.ip()) {
            None
        } else {
            let Some(c) = per_client.take(peer.ip(), limits.max_connections_per_client) else {
                tracing::debug!(%peer, "too many connections from one client; closed");
                drop(stream);
                continue;
            };
            Some(c)
        };
        let app = app.clone();
        let closing = closing.clone();
        let tls = tls.clone();
        let proxies = trusted_proxies.clone();
        tokio::spawn(async move {
            let done = match tls {
                None => connection(stream, app, peer, false, proxies, limits, &closing).await,
                Some(acceptor) => {
                    tls_or_redirect(stream, app, acceptor, peer, proxies, limits, &closing).await
                }
            };
            if let Err(e) = done {
                tracing::debug!(%peer, "connection: {e}");
            }
            drop(permit);
            drop(client);
        });
    }
    drop(listener);
    closing.cancel();
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("requests still running at shutdown were cut off");
    }
    Ok(())
}

/// Serves one connection: TLS when it starts with a handshake, else a
/// redirect to `https://`.
async fn tls_or_redirect(
    stream: tokio::net::TcpStream,
    app: Router,
    acceptor: tokio_rustls::TlsAcceptor,
    peer: SocketAddr,
    proxies: TrustedProxies,
    limits: ServeLimits,
    closing: &tokio_util::sync::CancellationToken,
) -> Result<(), BoxError> {
    let mut first = [0u8; 1];
    // A silent client is cut off like one that sends half a request head.
    let n = tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut first))
        .await
        .map_err(|_| "no first byte in time")??;
    if n == 1 && first[0] == 0x16 {
        let tls = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
            .await
            .map_err(|_| "TLS handshake not done in time")??;
        connection(tls, app, peer, true, proxies, limits, closing).await
    } else {
        connection(
            stream,
            redirect_to_https(),
            peer,
            false,
            proxies,
            limits,
            closing,
        )
        .await
    }
}

/// A router that answers every request with a `308` to `https://` on the
/// same host and path.
fn redirect_to_https() -> Router {
    Router::new().fallback(|req: axum::extract::Request| async move {
        use axum::http::{StatusCode, header};
        use axum::response::IntoResponse as _;
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()));
        let Some(host) = host else {
            return (StatusCode::BAD_REQUEST, "use https://").into_response();
        };
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", axum::http::uri::PathAndQuery::as_str);
        let to = format!("https://{host}{path}");
        match axum::http::HeaderValue::from_str(&to) {
            Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
            Err(_) => (StatusCode::BAD_REQUEST, "use https://").into_response(),
        }
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `app` on one connection until it closes, or until `closing`
/// (then the request in flight finishes and no more are taken).
async fn connection<I>(
    io: I,
    app: Router,
    peer: SocketAddr,
    over_tls: bool,
    proxies: TrustedProxies,
    limits: ServeLimits,
    closing: &tokio_util::sync::CancellationToken,
) -> Result<(), BoxError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let (client, tls) = proxies.client(peer, over_tls, req.headers());
        req.extensions_mut()
            .insert(ConnectInfo::<SocketAddr>(client));
        req.extensions_mut().insert(OverTls(tls));
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r?,
        () = closing.cancelled() => {
            // Finish the request in flight, take no more.
            conn.as_mut().graceful_shutdown();
            conn.await?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn get_peer(addr: SocketAddr) -> String {
        reallive_test_support::http::request(addr, "GET", "/peer", &[], b"")
            .await
            .map(|r| r.text())
            .unwrap_or_default()
    }

    async fn start(limits: ServeLimits) -> (SocketAddr, tokio_util::sync::CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/peer",
            axum::routing::get(|ConnectInfo(p): ConnectInfo<SocketAddr>| async move {
                p.ip().to_string()
            }),
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move { serve(listener, app, limits, s.cancelled_owned()).await });
        (addr, stop)
    }

    /// Hostile: a client that sends half a request head and waits is cut
    /// off at the timeout instead of holding the connection for ever.
    #[tokio::test]
    async fn a_slow_request_head_is_cut_off() {
        let limits = ServeLimits {
            header_read_timeout: Duration::from_millis(300),
            ..ServeLimits::default()
        };
        let (addr, stop) = start(limits).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the connection stayed open");
        // A complete request is served, with the peer's address.
        let r = get_peer(addr).await;
        assert!(r.ends_with("127.0.0.1"), "{r}");
        stop.cancel();
    }

    /// At most `max_connections` at once; the next is served when one
    /// closes.
    #[tokio::test]
    async fn connections_are_capped() {
        let limits = ServeLimits {
            max_connections: 2,
            ..ServeLimits::default()
        };
        let (addr, stop) = start(limits).await;
        let a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let b = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let third = tokio::time::timeout(Duration::from_millis(500), get_peer(addr)).await;
        assert!(third.is_err(), "a third connection was served");
        drop(a);
        let r = tokio::time::timeout(Duration::from_secs(5), get_peer(addr))
            .await
            .expect("served once a slot freed");
        assert!(r.ends_with("127.0.0.1"), "{r}");
        drop(b);
        stop.cancel();
    }

    /// One address holds at most its share: another connection from it is
    /// closed at once, while a second address is still served.
    #[tokio::test]
    async fn one_client_holds_at_most_its_share() {
        let limits = ServeLimits {
            max_connections: 8,
            max_connections_per_client: 2,
            ..ServeLimits::default()
        };
        let (addr, stop) = start(limits).await;
        let from = |last: u8| {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(SocketAddr::from(([127, 0, 0, last], 0))).unwrap();
            s
        };
        let a = from(2).connect(addr).await.unwrap();
        let b = from(2).connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The third from 127.0.0.2 is closed without an answer.
        let mut c = from(2).connect(addr).await.unwrap();
        c.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .ok();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "closed, not served: {:?}",
            String::from_utf8_lossy(&buf)
        );
        // Another address is served meanwhile.
        let r = tokio::time::timeout(Duration::from_secs(5), get_peer(addr))
            .await
            .expect("another client is served");
        assert!(r.ends_with("127.0.0.1"), "{r}");
        // A freed place is given back.
        drop(a);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut d = from(2).connect(addr).await.unwrap();
        d.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), d.read_to_end(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert!(String::from_utf8_lossy(&buf).contains("127.0.0.2"));
        drop(b);
        stop.cancel();
    }

    /// With TLS on: a TLS client is served, and knows it; a plain request
    /// on the same port gets a 308 to `https://` and nothing else.
    #[tokio::test]
    async fn tls_is_served_and_plain_http_is_redirected() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = crate::tls::self_signed(dir.path(), &["localhost".into()]).unwrap();
        let cert = crate::tls::ReloadingCert::open(files).unwrap();
        let pin = crate::tls::fingerprint(&cert.leaf());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/peer",
            axum::routing::get(|axum::Extension(t): axum::Extension<OverTls>| async move {
                format!("tls={}", t.0)
            }),
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        let acceptor = cert.acceptor();
        tokio::spawn(async move {
            let options = ServeOptions {
                tls: Some(acceptor),
                ..ServeOptions::default()
            };
            serve_with(listener, app, options, s.cancelled_owned()).await
        });

        let (status, body, shown) =
            reallive_test_support::tls::get(addr, "localhost", "/peer", &pin)
                .await
                .unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        assert_eq!(body, "tls=true");
        assert_eq!(shown, Some(pin));
        // Another pin: refused, never served.
        assert!(
            reallive_test_support::tls::get(addr, "localhost", "/peer", &"0".repeat(64))
                .await
                .is_err()
        );

        let plain = reallive_test_support::http::request(
            addr,
            "GET",
            "/peer?x=1",
            &[("Host", "cam.example.org:8443")],
            b"",
        )
        .await
        .unwrap();
        assert_eq!(plain.status, 308);
        assert_eq!(
            plain.header("location"),
            Some("https://cam.example.org:8443/peer?x=1")
        );
        assert!(!plain.text().contains("tls="), "{}", plain.text());
        stop.cancel();
    }

    /// Forwarded headers count only from a trusted proxy; the client is
    /// the rightmost address that is not one.
    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        use axum::http::{HeaderMap, HeaderValue};
        let proxies = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.1.2.3"),
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.9:5000".parse().unwrap();
        let (client, tls) = proxies.client(proxy, false, &h);
        // 6.6.6.6 is what the client claimed; 203.0.113.7 is who the
        // trusted proxy saw.
        assert_eq!(client.ip().to_string(), "203.0.113.7");
        assert!(tls);
        assert_eq!(
            proxies.client(stranger, false, &h),
            (stranger, false),
            "a stranger's headers are ignored"
        );
        let v6_mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        assert_eq!(
            proxies.client(v6_mapped, false, &h).0.ip().to_string(),
            "203.0.113.7"
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(proxy, false, &h),
            (proxy, false),
            "no proxies: nothing believed"
        );
    }
}
