//! Just enough HTTP/1.1 for WHIP, WHEP and the login: one request per
//! connection, over TCP or TLS ([`Network`]), bounded response size.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::net::{NetError, Network, Target, refuse_redirect};

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

/// Sends one request to `target` (its path is not used: `path` is) and
/// reads the whole response, within 10 s. A clear-text request answered
/// with a redirect to `https://` is refused, not followed.
pub(crate) async fn request(
    net: &Network,
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, NetError> {
    let origin = target.origin();
    let mut s = net.connect(target).await?;
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            target.authority(),
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
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
    .map_err(|_| NetError::Io(format!("{origin}: no answer within 10 s")))?
    .map_err(|e| NetError::Io(format!("{origin}: {e}")))?;
    if !target.tls && matches!(r.status, 301 | 302 | 307 | 308) {
        let location = r.header("location");
        if location.is_some_and(|l| l.starts_with("https://")) {
            return Err(refuse_redirect(&origin, location));
        }
    }
    Ok(r)
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
    fn responses() {
        let r =
            parse(b"HTTP/1.1 201 Created\r\nLocation: /whip/3/sessions/a\r\n\r\nv=0\r\n").unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("location"), Some("/whip/3/sessions/a"));
        assert_eq!(r.body, b"v=0\r\n");
        assert!(parse(b"HTTP/1.1 201").is_err());
    }
}
