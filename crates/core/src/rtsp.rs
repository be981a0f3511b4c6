//! Camera URLs and keeping their credentials out of sight.
//!
//! [`RtspUrl`] is the one camera URL type: the NVR's config, its API and
//! the capture backends all hold one. [`redact`] is the one redactor: every
//! string that may carry a URL (a GStreamer error, a camera's RTSP reply, a
//! config error) passes through it before it is logged or returned.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::Error;

/// An `rtsp://` or `rtsps://` URL with a host, possibly with credentials.
///
/// `Debug` and `Display` show `user:***@` in place of `user:password@`;
/// only [`RtspUrl::expose`] gives the URL itself, for a config file, and
/// [`RtspUrl::location`], [`RtspUrl::user`] and [`RtspUrl::password`] give
/// its parts, so a client can pass the credentials apart from the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspUrl {
    /// As given, credentials included.
    raw: String,
    /// Without userinfo.
    location: String,
    user: Option<String>,
    password: Option<String>,
}

impl RtspUrl {
    /// Checks `url`: the scheme is `rtsp` or `rtsps`, there is a host, any
    /// port is a number, there is no whitespace, and the user name and
    /// password are well percent-encoded. The error never quotes the URL.
    ///
    /// Host and port rules follow GStreamer's `gst_rtsp_url_parse`, which
    /// takes the authority to end at the first `/` or `?`: an unencoded `/`
    /// in a password would otherwise make part of the password the host,
    /// and the rest of it visible in the path.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidUrl { reason };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid(
                "is not a URL; expected rtsp://host/path or rtsps://host/path",
            ));
        };
        if !scheme.eq_ignore_ascii_case("rtsp") && !scheme.eq_ignore_ascii_case("rtsps") {
            return Err(invalid("must be an rtsp:// or rtsps:// URL"));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "contains whitespace or a control character; percent-encode it",
            ));
        }
        let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        if tail.contains('@') {
            return Err(invalid(
                "has `@` after the host; in the user name and password, percent-encode \
                 `@`, `/`, `?` and `#` as %40, %2F, %3F and %23",
            ));
        }
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        check_host_port(host_port).map_err(invalid)?;
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                let bad = || invalid("has a bad percent-encoding in its user name or password");
                let u = percent_decode(u).ok_or_else(bad)?;
                let p = p.map(|p| percent_decode(p).ok_or_else(bad)).transpose()?;
                (Some(u), p)
            }
        };
        Ok(RtspUrl {
            raw: url.to_owned(),
            location: format!("{scheme}://{host_port}{tail}"),
            user,
            password,
        })
    }

    /// The URL itself, password included: for a config file, never a log.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URL without credentials.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The user name, percent-decoded.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The password, percent-decoded. Never log it.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Strings that must never appear in output: give them to [`redact`].
    pub fn secrets(&self) -> Vec<&str> {
        self.password.as_deref().into_iter().collect()
    }
}

impl FromStr for RtspUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        RtspUrl::parse(s)
    }
}

impl fmt::Debug for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RtspUrl")
            .field(&redact(&self.raw, &[]))
            .finish()
    }
}

impl fmt::Display for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.raw, &[]))
    }
}

fn check_host_port(host_port: &str) -> Result<(), &'static str> {
    let port = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("has an unclosed `[` in its host");
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Err("has a bad IPv6 address in `[...]`");
        }
        match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("has text after its `[...]` host")?,
            ),
        }
    } else {
        let (host, port) = match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        };
        if host.is_empty() {
            return Err("has no host");
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        {
            return Err("has a bad host name");
        }
        port
    };
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        let number = port
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| port.parse::<u16>());
        if !matches!(number, Some(Ok(1..))) {
            return Err("has a bad port; expected a number from 1 to 65535");
        }
    }
    Ok(())
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Replaces `user:password@` with `user:***@` (and a lone `user@` with
/// `***@`) in every `scheme://` in `text`, and every occurrence of each of
/// `secrets` (three characters or more) with `***`.
///
/// The userinfo ends at the last `@` before whitespace or a quote, so a
/// password with an unencoded `/` is still hidden. GStreamer writes the
/// location into its own error strings, and cameras echo URLs back in RTSP
/// errors, so everything from a pipeline passes through here before it is
/// logged or returned.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let token_end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .unwrap_or(tail.len());
        // A path may hold `@` (a file name); only an `@` before the path
        // ends userinfo, unless the token has no `/` before its last `@`
        // that could start a path of a URL without credentials.
        let token = &tail[..token_end];
        let at = match token.rfind('@') {
            Some(at) if is_userinfo(&token[..at]) => Some(at),
            _ => None,
        };
        rest = match at {
            Some(at) => {
                match token[..at].split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str("***"),
                }
                &tail[at..]
            }
            None => tail,
        };
    }
    out.push_str(rest);
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s, "***");
    }
    out
}

/// Whether `before_at` (what precedes the last `@` of a URL token) is
/// userinfo, not a path: `file:///tmp/a@b.mp4` has an empty authority.
fn is_userinfo(before_at: &str) -> bool {
    !before_at.is_empty() && !before_at.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_text_and_known_secrets() {
        let cases = [
            (
                "rtsp://admin:hunter2@10.0.0.5:554/stream1",
                "rtsp://admin:***@10.0.0.5:554/stream1",
            ),
            (
                "failed rtsp://u@h/x and rtsp://a:b@c/y",
                "failed rtsp://***@h/x and rtsp://a:***@c/y",
            ),
            ("rtsp://host/no-creds", "rtsp://host/no-creds"),
            (
                "401 for user admin with hunter2",
                "401 for user admin with ***",
            ),
            ("file:///tmp/a@b.mp4", "file:///tmp/a@b.mp4"),
            ("rtsp://u:p/q@r@h/s", "rtsp://u:***@h/s"),
            (
                "'rtsps://u:pw@[::1]:322/s?x=1'",
                "'rtsps://u:***@[::1]:322/s?x=1'",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input, &["hunter2"]), want, "{input}");
        }
    }

    #[test]
    fn parses_and_splits_credentials() {
        let url = RtspUrl::parse("rtsp://admin:s%40cret@10.0.0.9:554/h264?ch=1").unwrap();
        assert_eq!(url.location(), "rtsp://10.0.0.9:554/h264?ch=1");
        assert_eq!(url.user(), Some("admin"));
        assert_eq!(url.password(), Some("s@cret"));
        assert_eq!(url.expose(), "rtsp://admin:s%40cret@10.0.0.9:554/h264?ch=1");
        assert_eq!(url.to_string(), "rtsp://admin:***@10.0.0.9:554/h264?ch=1");
        assert!(!format!("{url} {url:?}").contains("cret"));
        let bare: RtspUrl = "rtsps://[::1]:322/s".parse().unwrap();
        assert_eq!(bare.location(), "rtsps://[::1]:322/s");
        assert_eq!(bare.user(), None);
    }

    #[test]
    fn refuses_bad_urls_without_quoting_them() {
        let cases = [
            ("", "is not a URL"),
            ("http://h/s", "must be an rtsp"),
            ("rtsp://u:pw@", "has no host"),
            ("rtsp://u:p w@h/s", "whitespace"),
            ("rtsp://u:p/q@h/s", "`@` after the host"),
            ("rtsp://h:0/s", "bad port"),
            ("rtsp://h:99999/s", "bad port"),
            ("rtsp://[::1/s", "unclosed"),
            ("rtsp://[zz]/s", "bad IPv6"),
            ("rtsp://u:%zz@h/s", "percent-encoding"),
        ];
        for (input, want) in cases {
            let err = RtspUrl::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input}: {err}");
            assert!(!err.contains("pw") || input.is_empty(), "{err}");
        }
    }
}
