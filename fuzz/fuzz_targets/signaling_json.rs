//! Signaling frames from hostile clients: parsing and the hub never panic,
//! and whatever parses re-serialises to something that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reallive_signaling::{Directory, Hub, Message};

struct Nobody;

impl Directory for Nobody {
    fn camera_exists(&self, camera: i64) -> bool {
        camera == 1
    }
    fn stream_key_matches(&self, camera: i64, key: &str) -> bool {
        camera == 1 && key == "k"
    }
    fn user_for_token(&self, token: &str) -> Option<i64> {
        (token == "t").then_some(1)
    }
    fn may_view(&self, _user: i64, camera: i64) -> bool {
        camera == 1
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Message::parse(text);
    if let Ok(m) = &parsed {
        assert_eq!(Message::parse(&m.to_json()).ok().as_ref(), Some(m));
    }
    let mut hub = Hub::new();
    hub.connect(1);
    let _ = hub.handle(1, parsed, &Nobody);
    let _ = hub.disconnect(1, &Nobody);
});
