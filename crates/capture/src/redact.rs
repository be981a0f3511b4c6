//! Keeping credentials out of logs and errors.

/// Replaces the userinfo of every `scheme://user:pass@host` in `text` with
/// `***`, and every occurrence of each of `secrets` too.
///
/// GStreamer writes the location into its own error strings, and cameras
/// echo URLs back in RTSP errors, so everything from a pipeline passes
/// through here before it is logged or returned.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn strips_userinfo_and_known_secrets() {
        let cases = [
            (
                "rtsp://admin:hunter2@10.0.0.5:554/stream1",
                "rtsp://***@10.0.0.5:554/stream1",
            ),
            (
                "failed rtsp://u@h/x and rtsp://a:b@c/y",
                "failed rtsp://***@h/x and rtsp://***@c/y",
            ),
            ("rtsp://host/no-creds", "rtsp://host/no-creds"),
            (
                "401 for user admin with hunter2",
                "401 for user admin with ***",
            ),
            ("file:///tmp/a@b.mp4", "file:///tmp/a@b.mp4"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input, &["hunter2"]), want, "{input}");
        }
    }
}
