//! SDP offers from hostile clients: what a signaling `offer`, a WHIP POST
//! or a WHEP POST hands the relay. `relay::Core::accept` is the one entry
//! point all three reach (through the async `Relay` shell): it checks the
//! offer's direction against the role and has str0m parse and answer it.
//! An input of even length is offered as a publisher's, of odd length as a
//! subscriber's (each accept builds a whole `Rtc`: one per input keeps the
//! rate up); candidate lines in an accepted offer are then trickled
//! (`Core::add_candidate`).
//!
//! Invariants:
//! - nothing panics out of `Core::accept`, whatever the offer (str0m's own
//!   asserts are caught there and refuse the offer);
//! - an accepted offer has media, and its answer is an SDP answer that
//!   parses, is ICE-lite, and answers at least one and at most every
//!   m-line of the offer;
//! - a publisher's accepted offer does not only receive, a subscriber's
//!   does not only send;
//! - closing the session leaves the relay with no peer.
#![no_main]

use std::cell::RefCell;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use reallive_relay::{Core, PeerRole};
use str0m::change::SdpAnswer;

thread_local! {
    // One core for the whole run: it generates a DTLS certificate, which
    // is slow, and holds no session between inputs.
    static CORE: RefCell<Core> = RefCell::new(
        Core::new(vec!["127.0.0.1:8189".parse().expect("an address")]).expect("a relay core"),
    );
}

fn m_lines(sdp: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with("m=")).count()
}

fn offer(core: &mut Core, role: PeerRole, sdp: &str) {
    let now = Instant::now();
    let Ok((session, answer)) = core.accept(1, role, sdp, now) else {
        assert_eq!(core.peers(), 0);
        return;
    };
    assert_eq!(core.peers(), 1);
    assert!(m_lines(sdp) > 0, "accepted an offer without media");
    // The rule `check_direction` enforces; `a=inactive` m-lines aside.
    if !sdp.lines().any(|l| l.starts_with("a=inactive")) {
        let refused = match role {
            PeerRole::Publisher => "a=recvonly",
            PeerRole::Subscriber => "a=sendonly",
        };
        let directions: Vec<&str> = sdp
            .lines()
            .filter(|l| {
                ["a=sendonly", "a=recvonly", "a=sendrecv"]
                    .iter()
                    .any(|d| l.starts_with(d))
            })
            .map(str::trim)
            .collect();
        assert!(
            directions.is_empty() || directions.iter().any(|d| *d != refused),
            "{role:?} accepted with only {refused}"
        );
    }
    assert!(answer.contains("a=ice-lite"), "{answer}");
    // str0m skips lines it does not know (a second `v=0` session among
    // them), so the answer may have fewer m-lines than the text, not more.
    let answered = m_lines(&answer);
    assert!(answered >= 1 && answered <= m_lines(sdp), "{answer}");
    if let Err(e) = SdpAnswer::from_sdp_string(&answer) {
        panic!("the relay's answer does not parse: {e}\n{answer}");
    }
    for line in sdp.lines() {
        let l = line.trim();
        if l.starts_with("a=candidate:") || l.starts_with("candidate:") {
            let _ = core.add_candidate(session, l);
        }
    }
    core.close(session, now);
    assert_eq!(core.peers(), 0);
}

/// libfuzzer-sys's panic hook aborts at once, even under a `catch_unwind`.
/// `Core::accept` catches str0m's asserts (a panic there must not end the
/// relay), so this hook lets a panic raised in str0m unwind to it; any
/// other panic, or one that escapes `Core::accept`, still aborts.
fn let_str0m_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info
                .location()
                .is_some_and(|l| l.file().contains("/str0m-"))
            {
                return;
            }
            fuzzer_hook(info);
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    let_str0m_panics_unwind();
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    let role = if sdp.len() % 2 == 0 {
        PeerRole::Publisher
    } else {
        PeerRole::Subscriber
    };
    CORE.with_borrow_mut(|core| offer(core, role, sdp));
});
