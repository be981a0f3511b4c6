//! Sending a camera's picture and sound at the same distance from capture.
//!
//! A viewer syncs the two tracks by the sender's clock: the `webrtc` crate's
//! sender reports map each track's RTP time to the instant its packet was
//! *written*, and the relay maps it to the instant it *arrived*. Both hold
//! only if the two tracks leave at the same delay after capture, and they
//! do not: `x264enc` (zerolatency) hands a frame over about 1 ms after its
//! pts, while an Opus packet exists only once its 20 ms of sound has been
//! captured and encoded, about 20 ms after its pts. Sent as they come, the
//! sound is stamped 20 ms late and every viewer plays it 20 ms late.
//!
//! [`SendAlign`] measures each track's send delay (its packets' handover
//! time less their pts, both on this process's clock) and holds the
//! faster track's packets until they are as old as the slower track's are
//! when they leave. A viewer that plays sound delays the picture by that
//! much anyway to line the two up, so this costs it nothing; the picture
//! alone (a recorder, a viewer without sound) arrives that much later.
//!
//! Each delay is the least seen over the last two to four seconds, so one
//! late packet (a scheduler hiccup) neither holds the picture nor sticks,
//! and a change in the pipeline is followed within seconds. The hold is
//! capped at [`MAX_HOLD`]: an audio path slower than that is a fault to
//! log, not a reason to delay the picture without bound.

use std::time::{Duration, Instant};

/// The longest a video frame is held for the sound.
pub(crate) const MAX_HOLD: Duration = Duration::from_millis(100);

/// How long each half of a delay's window lasts.
const WINDOW: Duration = Duration::from_secs(2);

/// The least of a quantity over the last one to two windows.
#[derive(Debug, Clone, Copy)]
struct WindowMin {
    current: i64,
    previous: Option<i64>,
    since: Instant,
}

impl WindowMin {
    fn new(value: i64, now: Instant) -> Self {
        WindowMin {
            current: value,
            previous: None,
            since: now,
        }
    }

    fn add(&mut self, value: i64, now: Instant) {
        if now.saturating_duration_since(self.since) >= WINDOW {
            self.previous = Some(self.current);
            self.current = value;
            self.since = now;
        } else {
            self.current = self.current.min(value);
        }
    }

    fn get(&self) -> i64 {
        self.previous.map_or(self.current, |p| p.min(self.current))
    }
}

/// Aligns the send times of one source's video and audio (see the module
/// docs). Both tracks' pts must be on the same clock, as a source's are.
#[derive(Debug)]
pub(crate) struct SendAlign {
    epoch: Instant,
    video: Option<WindowMin>,
    audio: Option<WindowMin>,
}

impl SendAlign {
    pub(crate) fn new(now: Instant) -> Self {
        SendAlign {
            epoch: now,
            video: None,
            audio: None,
        }
    }

    /// The handover's distance after the pts, in ns on the epoch's clock
    /// (only differences between the tracks mean anything).
    fn delay_ns(&self, now: Instant, pts_90k: i64) -> i64 {
        let at =
            i64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(i64::MAX);
        at.saturating_sub(pts_90k.saturating_mul(100_000) / 9)
    }

    /// An audio packet handed over `now`: it goes at once.
    pub(crate) fn audio(&mut self, now: Instant, pts_90k: i64) {
        let d = self.delay_ns(now, pts_90k);
        match &mut self.audio {
            Some(w) => w.add(d, now),
            None => self.audio = Some(WindowMin::new(d, now)),
        }
    }

    /// A video frame handed over `now`: when to send it. `now` itself
    /// until sound has been seen, or when the sound is no slower.
    pub(crate) fn video(&mut self, now: Instant, pts_90k: i64) -> Instant {
        let d = self.delay_ns(now, pts_90k);
        let video = match &mut self.video {
            Some(w) => {
                w.add(d, now);
                w.get()
            }
            None => {
                self.video = Some(WindowMin::new(d, now));
                d
            }
        };
        let Some(audio) = self.audio.as_ref().map(WindowMin::get) else {
            return now;
        };
        // This frame is `d - video` later than the video's best; it goes
        // once it is as old as the audio's best.
        let hold = audio.saturating_sub(d.max(video));
        if hold <= 0 {
            return now;
        }
        now + Duration::from_nanos(hold.unsigned_abs()).min(MAX_HOLD)
    }

    /// The video's and the audio's current send delays, ms: for a log line.
    pub(crate) fn delays_ms(&self) -> Option<(f64, f64)> {
        let v = self.video.as_ref()?.get();
        let a = self.audio.as_ref()?.get();
        let floor = v.min(a);
        Some(((v - floor) as f64 / 1e6, (a - floor) as f64 / 1e6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS_90K: i64 = 90;

    /// `t0` plus `pts_90k` plus `delay_ms`.
    fn at(t0: Instant, pts_90k: i64, delay_ms: u64) -> Instant {
        t0 + Duration::from_nanos(pts_90k as u64 * 100_000 / 9) + Duration::from_millis(delay_ms)
    }

    /// Feeds 1 s of a 30 fps picture handed over `video_ms` after its pts
    /// and 20 ms sound packets handed over `audio_ms` after theirs; returns
    /// the hold of the last frame.
    fn run(video_ms: u64, audio_ms: u64) -> Duration {
        let t0 = Instant::now();
        let mut a = SendAlign::new(t0);
        let mut last = Duration::ZERO;
        let mut pts_a = 0i64;
        for i in 0..30i64 {
            let pts_v = i * 3000;
            while pts_a <= pts_v {
                a.audio(at(t0, pts_a, audio_ms), pts_a);
                pts_a += 20 * MS_90K;
            }
            let now = at(t0, pts_v, video_ms);
            last = a.video(now, pts_v) - now;
        }
        last
    }

    #[test]
    fn the_picture_waits_for_the_slower_sound() {
        assert_eq!(run(1, 22), Duration::from_millis(21));
    }

    #[test]
    fn the_picture_never_waits_for_faster_sound() {
        assert_eq!(run(30, 5), Duration::ZERO);
    }

    #[test]
    fn the_hold_is_capped() {
        assert_eq!(run(1, 500), MAX_HOLD);
    }

    #[test]
    fn without_sound_the_picture_goes_at_once() {
        let t0 = Instant::now();
        let mut a = SendAlign::new(t0);
        let now = t0 + Duration::from_millis(5);
        assert_eq!(a.video(now, 0), now);
    }

    #[test]
    fn a_late_frame_is_not_held_further() {
        // The video's best is 1 ms after pts; a frame handed over 15 ms
        // after its pts waits only what is left of the sound's 22 ms.
        let t0 = Instant::now();
        let mut a = SendAlign::new(t0);
        a.audio(at(t0, 0, 22), 0);
        let first = at(t0, 0, 1);
        assert_eq!(a.video(first, 0) - first, Duration::from_millis(21));
        let late = at(t0, 30 * MS_90K, 15);
        assert_eq!(a.video(late, 30 * MS_90K) - late, Duration::from_millis(7));
    }

    #[test]
    fn one_slow_packet_does_not_stick() {
        let t0 = Instant::now();
        let mut a = SendAlign::new(t0);
        // A stall: the first sound packet comes 80 ms after its pts ...
        a.audio(at(t0, 0, 80), 0);
        // ... then 5 s of packets 22 ms after theirs: after two windows
        // the stall is forgotten.
        for i in 1..=250i64 {
            a.audio(at(t0, i * 20 * MS_90K, 22), i * 20 * MS_90K);
        }
        let pts = 5010 * MS_90K;
        let now = at(t0, pts, 1);
        assert_eq!(a.video(now, pts) - now, Duration::from_millis(21));
    }
}
