//! Table tests of [`CameraRun`]: no sleeps, no sockets. Frame `n` is at
//! 10 fps (pts `n * 9000`), a keyframe every 10 frames, and arrives at
//! `n * 100 ms` on both clocks unless a test steps the wall clock.

use std::sync::Arc;

use bytes::Bytes;
use reallive_core::{AudioParameters, Codec, CodecParameters};

use super::*;

const SEC: i64 = 1_000_000_000;
/// The wall clock at frame 0.
const U0: i64 = 1_700_000_000 * SEC;

fn frame(n: i64) -> EncodedFrame {
    EncodedFrame {
        data: Bytes::from(vec![0u8; 100]),
        pts_90k: n * 9000,
        dts_90k: n * 9000,
        duration_90k: Some(9000),
        keyframe: n % 10 == 0,
        params: Arc::new(CodecParameters::new(Codec::H264)),
    }
}

/// An audio packet at frame `n`'s time, as long as a frame.
fn audio(n: i64) -> AudioFrame {
    AudioFrame {
        data: Bytes::from_static(&[0x21, 0x10]),
        pts_90k: n * 9000,
        duration_90k: 9000,
        params: Arc::new(AudioParameters::opus(1)),
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// Frames `a..b`.
    Frames(i64, i64),
    /// Audio packets `a..b`, with no video between them.
    Audio(i64, i64),
    /// The camera's audio ended.
    AudioEnded,
    MotionOn,
    MotionOff,
    /// A manual trigger of this many seconds.
    Trigger(u64),
    /// The writes from now on fail until `WritesOk`.
    WritesFail,
    WritesOk,
    /// The wall clock jumps by this many seconds.
    ClockJump(i64),
    Config(RunConfig),
    Drop,
}

/// What the shell saw.
#[derive(Debug, Default)]
struct Seen {
    /// Files, as the frame numbers written into each, with the UTC of
    /// each write.
    files: Vec<Vec<(i64, i64)>>,
    /// A file is open in `files.last()`.
    open: bool,
    offered: Vec<i64>,
    decoded: Vec<i64>,
    /// (kind, start, end) in seconds from U0; end `None` until ended.
    events: Vec<(EventKind, i64, Option<i64>)>,
    /// Pauses after failures, in ms.
    pauses: Vec<u128>,
    /// Audio written: (its frame number, video frames written before it).
    audio: Vec<(i64, usize)>,
}

impl Seen {
    fn frames(&self) -> Vec<Vec<i64>> {
        self.files
            .iter()
            .map(|f| f.iter().map(|(n, _)| *n).collect())
            .collect()
    }
}

struct Sim {
    run: CameraRun,
    t0: Instant,
    step_ns: i64,
    fail: bool,
    last: i64,
    seen: Seen,
}

impl Sim {
    fn new(config: RunConfig) -> Self {
        Sim {
            run: CameraRun::new(config),
            t0: Instant::now(),
            step_ns: 0,
            fail: false,
            last: 0,
            seen: Seen::default(),
        }
    }

    fn now(&self, n: i64) -> Now {
        Now {
            at: self.t0 + Duration::from_millis(n as u64 * 100),
            utc: UtcNs(U0 + n * SEC / 10 + self.step_ns),
        }
    }

    fn drain(&mut self) {
        while let Some(a) = self.run.poll() {
            match a {
                RunAction::Offer(f) => self.seen.offered.push(f.pts_90k / 9000),
                RunAction::Decode(f) => self.seen.decoded.push(f.pts_90k / 9000),
                RunAction::WriteAudio(a) => {
                    let written = self.seen.files.iter().map(Vec::len).sum();
                    self.seen.audio.push((a.pts_90k / 9000, written));
                }
                RunAction::Write { frame, utc_ns } => {
                    if !self.seen.open {
                        assert!(frame.keyframe, "a file starts at a keyframe");
                        self.seen.files.push(Vec::new());
                        self.seen.open = true;
                    }
                    let now = self.now(self.last);
                    if self.fail {
                        let before = self.run.paused_until;
                        self.run.write_done(false, now);
                        let until = self.run.paused_until.expect("paused");
                        assert!(before.is_none_or(|b| b <= until));
                        self.seen.pauses.push((until - now.at).as_millis());
                    } else {
                        self.seen
                            .files
                            .last_mut()
                            .expect("open")
                            .push((frame.pts_90k / 9000, utc_ns));
                        self.run.write_done(true, now);
                    }
                }
                RunAction::FinishFile => {
                    assert!(self.seen.open, "FinishFile without an open file");
                    self.seen.open = false;
                    if self.seen.files.last().is_some_and(Vec::is_empty) {
                        self.seen.files.pop();
                    }
                }
                RunAction::StartEvent {
                    kind,
                    utc_ns,
                    end_utc_ns,
                    ..
                } => self.seen.events.push((
                    kind,
                    (utc_ns - U0) / SEC,
                    end_utc_ns.map(|e| (e - U0) / SEC),
                )),
                RunAction::EndEvent { utc_ns, .. } => {
                    let open = self
                        .seen
                        .events
                        .iter_mut()
                        .rev()
                        .find(|e| e.0 == EventKind::Motion && e.2.is_none())
                        .expect("an EndEvent ends an open motion event");
                    open.2 = Some((utc_ns - U0) / SEC);
                }
            }
        }
    }

    fn step(&mut self, s: &Step) {
        match s {
            Step::Frames(a, b) => {
                for n in *a..*b {
                    self.last = n;
                    let now = self.now(n);
                    self.run.frame(frame(n), now);
                    self.drain();
                }
            }
            Step::Audio(a, b) => {
                for n in *a..*b {
                    self.run.audio(audio(n));
                    self.drain();
                }
            }
            Step::AudioEnded => self.run.audio_ended(),
            Step::MotionOn => {
                let utc = self.run.clock().utc_ns(self.last * 9000).expect("mapped");
                self.run.motion_started("gate".into(), 12.0, utc);
            }
            Step::MotionOff => {
                let utc = self.run.clock().utc_ns(self.last * 9000).expect("mapped");
                self.run.motion_ended("gate".into(), 30.0, utc, Some(utc));
            }
            Step::Trigger(s) => {
                let now = self.now(self.last);
                self.run.trigger(Duration::from_secs(*s), now);
            }
            Step::WritesFail => self.fail = true,
            Step::WritesOk => self.fail = false,
            Step::ClockJump(s) => self.step_ns += s * SEC,
            Step::Config(c) => self.run.set_config(*c),
            Step::Drop => self.run.camera_dropped(),
        }
        self.drain();
    }
}

fn run(config: RunConfig, steps: &[Step]) -> Seen {
    let mut sim = Sim::new(config);
    for s in steps {
        sim.step(s);
    }
    assert!(
        !sim.seen.open || sim.run.open,
        "the shell and the run agree"
    );
    sim.seen
}

fn events(pre: u64, post: u64) -> RunConfig {
    RunConfig {
        mode: RunMode::Events,
        pre_roll: Duration::from_secs(pre),
        post_roll: Duration::from_secs(post),
        ..RunConfig::default()
    }
}

fn range(a: i64, b: i64) -> Vec<i64> {
    (a..b).collect()
}

use Step::*;

#[test]
fn continuous_writes_every_frame_from_the_first_keyframe_and_finishes_at_the_end() {
    let seen = run(RunConfig::default(), &[Frames(3, 35), Drop]);
    assert_eq!(seen.frames(), vec![range(10, 35)]);
    assert!(!seen.open);
    assert_eq!(seen.offered, range(3, 35), "every frame goes live");
    assert!(seen.decoded.is_empty(), "no motion on this stream");
    // Written as they arrive: stamped with their arrival.
    for (n, utc) in &seen.files[0] {
        assert_eq!(*utc, U0 + n * SEC / 10);
    }
}

#[test]
fn motion_stillness_writes_nothing() {
    let seen = run(events(1, 1), &[Frames(0, 100), Drop]);
    assert!(seen.files.is_empty());
    assert_eq!(seen.offered.len(), 100);
}

#[test]
fn motion_an_event_writes_from_pre_roll_to_post_roll_within_a_gop() {
    // Motion from frame 45 to 60; 1 s (10 frames) each side.
    let seen = run(
        events(1, 1),
        &[
            Frames(0, 46),
            MotionOn,
            Frames(46, 61),
            MotionOff,
            Frames(61, 100),
        ],
    );
    // The ring starts at a keyframe at least 1 s before 45: 30; the post-roll
    // runs 1 s past 60, to 70.
    assert_eq!(seen.frames(), vec![range(30, 70)]);
    assert!(!seen.open, "the file finished after the post-roll");
    assert_eq!(seen.events, vec![(EventKind::Motion, 4, Some(6))]);
    // Pre-roll frames are stamped with when they were seen, not written.
    for (n, utc) in &seen.files[0] {
        assert_eq!(*utc, U0 + n * SEC / 10, "frame {n}");
    }
}

#[test]
fn two_close_events_merge_into_one_file() {
    let seen = run(
        events(1, 2),
        &[
            Frames(0, 25),
            MotionOn,
            Frames(25, 30),
            MotionOff,
            // Within the 2 s post-roll.
            Frames(30, 40),
            MotionOn,
            Frames(40, 45),
            MotionOff,
            Frames(45, 100),
        ],
    );
    assert_eq!(seen.frames(), vec![range(10, 64)]);
    assert_eq!(seen.events.len(), 2);
}

#[test]
fn a_manual_trigger_while_still_records_its_length_and_the_post_roll() {
    let seen = run(events(1, 1), &[Frames(0, 25), Trigger(2), Frames(25, 80)]);
    // From the ring (10) to 24 + 2 s + 1 s of post-roll.
    assert_eq!(seen.frames(), vec![range(10, 54)]);
    assert_eq!(seen.events, vec![(EventKind::Trigger, 2, Some(4))]);
}

#[test]
fn a_trigger_during_an_event_ends_with_the_later_of_the_two() {
    // Motion from 20 with a trigger at 22; 1 s of post-roll.
    // (trigger seconds, motion ends at, written)
    let table = [
        // The trigger ends later (22 + 5 s).
        (5, 26, range(20, 82)),
        // A short trigger during long motion changes nothing.
        (1, 60, range(20, 69)),
    ];
    for (secs, off, written) in table {
        let seen = run(
            events(0, 1),
            &[
                Frames(0, 21),
                MotionOn,
                Frames(21, 23),
                Trigger(secs),
                Frames(23, off),
                MotionOff,
                Frames(off, 120),
            ],
        );
        assert_eq!(seen.frames(), vec![written], "a {secs} s trigger");
    }
}

#[test]
fn a_drop_during_an_event_ends_it_and_finishes_the_file() {
    let seen = run(
        events(1, 5),
        &[Frames(0, 25), MotionOn, Frames(25, 38), Drop],
    );
    assert_eq!(seen.frames(), vec![range(10, 38)]);
    assert!(!seen.open);
    // Ended at the newest frame (37 → 3.7 s).
    assert_eq!(seen.events, vec![(EventKind::Motion, 2, Some(3))]);
    // The next run starts clean: nothing is written without an event.
    let seen = run(
        events(1, 5),
        &[
            Frames(0, 25),
            MotionOn,
            Frames(25, 38),
            Drop,
            Frames(38, 60),
        ],
    );
    assert_eq!(seen.frames(), vec![range(10, 38)]);
}

#[test]
fn a_failed_write_pauses_1_2_4_s_keeps_frames_live_and_resumes_at_a_keyframe() {
    for config in [RunConfig::default(), events(2, 1)] {
        let mut steps = vec![Frames(0, 20)];
        if config.mode == RunMode::Events {
            steps.push(MotionOn);
        }
        steps.extend([
            Frames(20, 23),
            WritesFail,
            // Fails at 23, paused to 33; fails again at 33 → 53; at 53 → 93.
            Frames(23, 60),
            WritesOk,
            Frames(60, 120),
        ]);
        let seen = run(config, &steps);
        assert_eq!(seen.pauses, vec![1000, 2000, 4000], "{config:?}");
        assert_eq!(seen.offered, range(0, 120), "live never pauses");
        let files = seen.frames();
        assert_eq!(files[0], range(0, 23), "{config:?}");
        // Writing resumes at 93 with the ring: at least 2 s (continuous:
        // the default 5 s) before it, from a keyframe.
        let resumed = files.last().expect("a file after the pause");
        let first = resumed[0];
        assert_eq!(first % 10, 0, "resumes at a keyframe");
        assert!(first <= 73, "{config:?}: resumed at {first}");
        assert_eq!(*resumed.last().expect("frames"), 119);
    }
}

#[test]
fn a_success_resets_the_pause() {
    let seen = run(
        RunConfig::default(),
        &[
            Frames(0, 15),
            WritesFail,
            Frames(15, 16),
            WritesOk,
            Frames(16, 40),
            WritesFail,
            Frames(40, 41),
        ],
    );
    assert_eq!(seen.pauses, vec![1000, 1000]);
}

#[test]
fn clock_steps_move_only_the_frames_after_them() {
    for step in [3600, -3600] {
        let seen = run(
            RunConfig::default(),
            &[Frames(0, 30), ClockJump(step), Frames(30, 50), Drop],
        );
        let file = &seen.files[0];
        for (n, utc) in file {
            let expected = U0 + n * SEC / 10 + if *n >= 30 { step * SEC } else { 0 };
            assert_eq!(*utc, expected, "frame {n} after a {step} s step");
        }
    }
    // Pre-roll frames seen before a step, written after it, are placed by
    // the newest arrival: the ring moves with the clock, all together.
    let seen = run(
        events(1, 1),
        &[
            Frames(0, 25),
            ClockJump(3600),
            Frames(25, 26),
            MotionOn,
            Frames(26, 40),
        ],
    );
    let file = &seen.files[0];
    assert_eq!(file[0].0, 10);
    assert!(
        file.windows(2).all(|w| w[1].1 - w[0].1 == SEC / 10),
        "contiguous"
    );
}

#[test]
fn a_settings_change_mid_gop_takes_effect_at_the_next_keyframe() {
    // Continuous → events at frame 25: writing stops at 30, not at 25.
    let seen = run(
        RunConfig::default(),
        &[Frames(0, 25), Config(events(1, 1)), Frames(25, 60)],
    );
    assert_eq!(seen.frames(), vec![range(0, 30)]);
    // Events → continuous at 25: writing starts at 30 with the ring (at
    // least the 1 s pre-roll before 29, from a keyframe: 10).
    let seen = run(
        events(1, 1),
        &[Frames(0, 25), Config(RunConfig::default()), Frames(25, 60)],
    );
    assert_eq!(seen.frames(), vec![range(10, 60)]);
}

#[test]
fn motion_on_the_main_stream_decodes_keyframes_of_large_streams_and_all_of_small_ones() {
    let config = RunConfig {
        decode_main: true,
        ..RunConfig::default()
    };
    // The test frames have no parameter sets: not known to be small, so
    // only keyframes.
    let seen = run(config, &[Frames(0, 30)]);
    assert_eq!(seen.decoded, vec![0, 10, 20]);
}

#[test]
fn the_ring_is_bounded_by_bytes() {
    let mut run = CameraRun::new(RunConfig {
        mode: RunMode::Events,
        pre_roll: Duration::from_secs(60),
        max_pre_roll_bytes: 1000,
        ..RunConfig::default()
    });
    let t0 = Instant::now();
    for n in 0..200 {
        run.frame(
            frame(n),
            Now {
                at: t0,
                utc: UtcNs(U0),
            },
        );
        assert!(run.pre_roll_bytes() <= 1000);
        while run.poll().is_some() {}
    }
}

#[test]
fn an_event_ends_once_even_when_told_twice() {
    let seen = run(
        events(0, 0),
        &[
            Frames(0, 10),
            MotionOn,
            MotionOn,
            Frames(10, 12),
            MotionOff,
            MotionOff,
            Drop,
        ],
    );
    assert_eq!(seen.events.len(), 1);
}

fn with_audio(config: RunConfig) -> RunConfig {
    RunConfig {
        audio: true,
        ..config
    }
}

#[test]
fn the_first_file_waits_for_audio_so_it_starts_with_it() {
    // The audio's first packet comes with frame 4 and is for frame 2.
    let seen = run(
        with_audio(RunConfig::default()),
        &[Frames(0, 5), Audio(2, 3), Frames(5, 8), Audio(3, 6), Drop],
    );
    assert_eq!(seen.frames(), vec![range(0, 8)], "one file from the start");
    assert_eq!(seen.offered, range(0, 8), "live never waited");
    // The first packet goes before any video (the store holds it for the
    // file the keyframe opens); the rest as they come.
    assert_eq!(seen.audio, vec![(2, 0), (3, 8), (4, 8), (5, 8)]);
    // A first packet from before the first frame (a transcoder's priming)
    // still goes first: the file takes its audio track from it.
    let seen = run(
        with_audio(RunConfig::default()),
        &[Frames(10, 12), Audio(8, 9), Frames(12, 15), Drop],
    );
    assert_eq!(seen.frames(), vec![range(10, 15)]);
    assert_eq!(seen.audio, vec![(8, 0)]);
}

#[test]
fn a_camera_without_audio_is_waited_for_four_seconds_at_most() {
    // A pre-roll shorter than the wait: the ring keeps every frame.
    let config = with_audio(RunConfig {
        pre_roll: Duration::ZERO,
        ..RunConfig::default()
    });
    let seen = run(config, &[Frames(0, 55), Drop]);
    assert_eq!(seen.frames(), vec![range(0, 55)]);
    // Held until 4 s after the first frame: frame 40 lets them out.
    let seen = run(with_audio(RunConfig::default()), &[Frames(0, 40)]);
    assert!(seen.files.is_empty(), "{:?}", seen.files);
    let seen = run(with_audio(RunConfig::default()), &[Frames(0, 41)]);
    assert_eq!(seen.frames(), vec![range(0, 41)]);
    // An audio channel that ends stops the wait at once.
    let seen = run(
        with_audio(RunConfig::default()),
        &[Frames(0, 3), AudioEnded, Frames(3, 5)],
    );
    assert_eq!(seen.frames(), vec![range(0, 5)]);
    assert!(seen.audio.is_empty());
}

#[test]
fn events_keep_the_pre_rolls_audio_and_write_it_first() {
    // Audio beside every frame; motion at 45 with a 1 s pre-roll.
    let mut steps = Vec::new();
    for n in 0..46 {
        steps.push(Frames(n, n + 1));
        steps.push(Audio(n, n + 1));
    }
    steps.extend([MotionOn, Frames(46, 50), Audio(46, 48), MotionOff]);
    steps.push(Frames(50, 70));
    let seen = run(with_audio(events(1, 1)), &steps);
    assert_eq!(seen.frames(), vec![range(30, 59)]);
    // The ring's audio, from the ring's first frame (30) on, goes before
    // the ring's video; then audio as it comes, while writing.
    let first: Vec<(i64, usize)> = (30..46).map(|n| (n, 0)).collect();
    assert_eq!(&seen.audio[..16], &first[..]);
    assert_eq!(&seen.audio[16..], &[(46, 20), (47, 20)]);
}
