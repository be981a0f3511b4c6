//! Just enough HTTP/1.1 for WHIP: one request per connection, `http://`
//! only, bounded response size.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest response read (an SDP answer is a few KiB).
const MAX_RESPONSE: usize = 256 * 1024;

/// A response.
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `(host:port, path)` of an `http://` URL.
pub(crate) fn split(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported here: {url}"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    let host = if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok((host, path.to_string()))
}

/// Sends one request and reads the whole response, within 10 s.
pub(crate) async fn request(
    hostport: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut s = TcpStream::connect(hostport)
            .await
            .map_err(|e| format!("{hostport}: {e}"))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
        s.write_all(body).await.map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        (&mut s)
            .take(MAX_RESPONSE as u64)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| e.to_string())?;
        parse(&raw)
    })
    .await
    .map_err(|_| format!("{hostport}: no answer within 10 s"))?
}

fn parse(raw: &[u8]) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("a truncated HTTP response")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "a non-UTF-8 HTTP header")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("a malformed HTTP status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        return Err("chunked WHIP answers are not supported".into());
    }
    Ok(Response {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_responses() {
        assert_eq!(
            split("http://127.0.0.1:8080/whip/3").unwrap(),
            ("127.0.0.1:8080".into(), "/whip/3".into())
        );
        assert_eq!(split("http://cam.local/x").unwrap().0, "cam.local:80");
        assert!(split("https://x/whip").is_err());
        let r =
            parse(b"HTTP/1.1 201 Created\r\nLocation: /whip/3/sessions/a\r\n\r\nv=0\r\n").unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("location"), Some("/whip/3/sessions/a"));
        assert_eq!(r.body, b"v=0\r\n");
        assert!(parse(b"HTTP/1.1 201").is_err());
    }
}
