//! A minimal HTTP/1.1 client for API tests: one request per connection,
//! raw control over headers and bodies (oversized, malformed, wrong type).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `error.code` of an API error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Sends one request and reads the whole response. `headers` are added
/// as given; `Host` (unless given), `Content-Length` and
/// `Connection: close` are added here.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect(addr).await?;
    // A `Host` given in `headers` replaces the address (tests of the
    // server's host check).
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or_else(|| addr.to_string(), |(_, v)| v.to_string());
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await?;
    // The server may answer (413) before reading a large body and close;
    // a failed write is then not the test's concern.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    // A reset after the response (unread body) still leaves the response.
    let _ = s.read_to_end(&mut raw).await;
    parse(&raw)
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

fn parse(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("header not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty response"))?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("chunk size"))?;
        let size_text = std::str::from_utf8(&b[..eol]).map_err(|_| bad("chunk size"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("chunk size"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// A client bound to one server, optionally signed in.
#[derive(Debug, Clone)]
pub struct Api {
    /// The server.
    pub addr: SocketAddr,
    /// Sent as `Authorization: Bearer` when set.
    pub token: Option<String>,
}

impl Api {
    /// A signed-out client.
    pub fn new(addr: SocketAddr) -> Self {
        Api { addr, token: None }
    }

    /// The same server with `token`.
    pub fn with_token(&self, token: &str) -> Self {
        Api {
            addr: self.addr,
            token: Some(token.to_string()),
        }
    }

    /// A request with an optional JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> HttpResponse {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let bytes = match body {
            Some(v) => {
                headers.push(("Content-Type", "application/json"));
                serde_json::to_vec(v).unwrap_or_default()
            }
            None => Vec::new(),
        };
        request(self.addr, method, path, &headers, &bytes)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// GET.
    pub async fn get(&self, path: &str) -> HttpResponse {
        self.call("GET", path, None).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> HttpResponse {
        self.call("POST", path, Some(&body)).await
    }

    /// PUT JSON.
    pub async fn put(&self, path: &str, body: serde_json::Value) -> HttpResponse {
        self.call("PUT", path, Some(&body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> HttpResponse {
        self.call("DELETE", path, None).await
    }

    /// Logs in and returns a client carrying the token.
    pub async fn login(&self, username: &str, password: &str) -> Api {
        let r = self
            .post(
                "/api/auth/login",
                serde_json::json!({ "username": username, "password": password }),
            )
            .await;
        assert_eq!(r.status, 200, "login as {username}: {}", r.text());
        let token = r.json()["token"].as_str().unwrap_or_default().to_string();
        self.with_token(&token)
    }
}
