//! Turning one camera's frames into recording files: rotation, gaps,
//! clamping and wall-clock anchoring, without I/O.
//!
//! The rules are in `docs/design/recording.md` ("Fragment and file rules",
//! "Time"). The writer feeds every frame with the wall clock at its arrival
//! and carries out the returned [`Output`]s in order.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use reallive_core::{AudioFrame, CodecParameters, EncodedFrame};

use crate::StoreError;
use crate::mp4::{self, Fmp4Muxer, MuxedFragment};

/// Durations that shape files, in 90 kHz ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Target fragment length when `part_90k` is 0 (1 s).
    pub fragment_90k: u64,
    /// LL-HLS part target (default 200 ms): fragments start at every
    /// keyframe and are cut before they grow past this; 0 cuts them by
    /// `fragment_90k` instead (`docs/design/ll-hls.md`).
    pub part_90k: u64,
    /// Target file length; a file rotates at the first keyframe after it (default 60 s).
    pub file_90k: i64,
    /// A jump in decode time larger than this is a gap, not jitter (default 2 s).
    pub gap_90k: i64,
    /// Wall clock and media clock may disagree by this much before the file is re-anchored (default 5 s).
    pub wall_tolerance_90k: i64,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            fragment_90k: 90_000,
            part_90k: 18_000,
            file_90k: 60 * 90_000,
            gap_90k: 2 * 90_000,
            wall_tolerance_90k: 5 * 90_000,
        }
    }
}

/// What the writer must do, in order.
#[derive(Clone, Debug)]
pub enum Output {
    /// Create a new file starting at `start_utc_ns` and write `init`.
    StartFile {
        /// Wall-clock time of the file's first frame.
        start_utc_ns: i64,
        /// `ftyp` + `moov`.
        init: Bytes,
        /// The parameter sets the file is described with.
        params: Arc<CodecParameters>,
    },
    /// Append a fragment to the current file.
    Fragment(MuxedFragment),
    /// Close the current file; it ends at `end_utc_ns`.
    EndFile {
        /// Wall-clock time just past its last frame.
        end_utc_ns: i64,
        /// Whether the next file continues this one without a gap.
        continuous: bool,
    },
    /// Timestamps went backwards and were clamped (reported once per session).
    Clamped {
        /// How far back the source stepped, in ticks.
        step_90k: i64,
    },
}

/// Ticks to nanoseconds.
fn ns(ticks: i64) -> i64 {
    (i128::from(ticks) * 1_000_000_000 / 90_000) as i64
}

#[derive(Debug)]
struct OpenFile {
    muxer: Fmp4Muxer,
    start_utc_ns: i64,
    first_dts: i64,
    duration_90k: i64,
}

/// One camera's recording state.
#[derive(Debug)]
pub struct Segmenter {
    cfg: SegmenterConfig,
    file: Option<OpenFile>,
    /// Added to every incoming timestamp since the source stepped back.
    offset_90k: i64,
    last_dts: Option<i64>,
    last_duration: i64,
    /// End of the previous file, and whether the next one continues it.
    prev_end_utc_ns: Option<i64>,
    continuous: bool,
    clamp_reported: bool,
    skipped: u64,
    /// Audio for the next file: what came while no file was open, with
    /// parameters the open file does not have, or past its end.
    audio_held: VecDeque<AudioFrame>,
    /// Audio counts of the files already closed.
    audio_written: u64,
    audio_dropped: u64,
}

impl Segmenter {
    /// A segmenter with no file open.
    pub fn new(cfg: SegmenterConfig) -> Self {
        Segmenter {
            cfg,
            file: None,
            offset_90k: 0,
            last_dts: None,
            last_duration: 3000,
            prev_end_utc_ns: None,
            continuous: false,
            clamp_reported: false,
            skipped: 0,
            audio_held: VecDeque::new(),
            audio_written: 0,
            audio_dropped: 0,
        }
    }

    /// Audio packets written so far, in all files.
    pub fn audio_frames_written(&self) -> u64 {
        self.audio_written
            + self
                .file
                .as_ref()
                .map_or(0, |f| f.muxer.audio_frames_written())
    }

    /// Audio packets dropped so far: before a file's first frame, or past
    /// the bound on audio waiting for its video.
    pub fn audio_frames_dropped(&self) -> u64 {
        self.audio_dropped
            + self
                .file
                .as_ref()
                .map_or(0, |f| f.muxer.audio_frames_dropped())
    }

    /// Feeds one audio packet, timed on the same clock as the video.
    ///
    /// It goes into the open file when that file has an audio track with
    /// these parameters. Otherwise it waits, and the next keyframe starts
    /// a new file that has them: files still start and rotate on
    /// keyframes, never mid-GOP.
    pub fn push_audio(&mut self, mut frame: AudioFrame) {
        frame.pts_90k += self.offset_90k;
        if let Some(f) = self.file.as_mut()
            && self.audio_held.is_empty()
            && f.muxer
                .audio_params()
                .is_some_and(|p| Arc::ptr_eq(p, &frame.params) || **p == *frame.params)
        {
            f.muxer.push_audio(frame);
            return;
        }
        self.audio_dropped += mp4::push_bounded(&mut self.audio_held, frame);
    }

    /// Frames dropped because no file could start (waiting for a keyframe).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Whether a file is open.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Feeds one frame that arrived at `now_utc_ns`.
    pub fn push(
        &mut self,
        mut frame: EncodedFrame,
        now_utc_ns: i64,
    ) -> Result<Vec<Output>, StoreError> {
        let mut out = Vec::new();
        frame.dts_90k += self.offset_90k;
        frame.pts_90k += self.offset_90k;
        if let Some(last) = self.last_dts {
            let step = frame.dts_90k - last;
            if step <= 0 && -step <= self.cfg.gap_90k {
                let shift = last + self.last_duration - frame.dts_90k;
                self.offset_90k += shift;
                frame.dts_90k += shift;
                frame.pts_90k += shift;
                if !self.clamp_reported {
                    self.clamp_reported = true;
                    out.push(Output::Clamped { step_90k: -step });
                }
            } else if step <= 0 || step > self.cfg.gap_90k + self.last_duration {
                // A real discontinuity: the camera dropped out or reset its
                // clock. Start a fresh timeline from this frame's own time.
                self.end_file(None, false, &mut out);
                frame.dts_90k -= self.offset_90k;
                frame.pts_90k -= self.offset_90k;
                self.offset_90k = 0;
                self.last_dts = None;
            }
        }
        if let Some(f) = &self.file {
            let media_now = f.start_utc_ns + ns(frame.dts_90k - f.first_dts);
            let params_changed = f
                .muxer
                .params()
                .is_some_and(|p| !Arc::ptr_eq(p, &frame.params) && **p != *frame.params);
            if (media_now - now_utc_ns).abs() > ns(self.cfg.wall_tolerance_90k) {
                self.end_file(Some(frame.dts_90k), false, &mut out);
            } else if params_changed
                || (frame.keyframe
                    && (frame.dts_90k - f.first_dts >= self.cfg.file_90k
                        || !self.audio_held.is_empty()))
            {
                self.end_file(
                    Some(frame.dts_90k),
                    !params_changed || frame.keyframe,
                    &mut out,
                );
            }
        }
        if self.file.is_none() {
            if !frame.keyframe || !frame.params.is_complete() {
                self.skipped += 1;
                return Ok(out);
            }
            let start = match (self.continuous, self.prev_end_utc_ns) {
                (true, Some(prev)) => prev,
                // After a gap: now, but never before the previous file's end.
                (false, Some(prev)) => now_utc_ns.max(prev),
                (_, None) => now_utc_ns,
            };
            let mut muxer = Fmp4Muxer::with_parts(self.cfg.fragment_90k, self.cfg.part_90k);
            for a in self.audio_held.drain(..) {
                muxer.push_audio(a);
            }
            self.file = Some(OpenFile {
                muxer,
                start_utc_ns: start,
                first_dts: frame.dts_90k,
                duration_90k: 0,
            });
        }
        let dts = frame.dts_90k;
        let own_duration = frame.duration_90k;
        let params = frame.params.clone();
        let Some(f) = self.file.as_mut() else {
            return Ok(out);
        };
        let muxed = f.muxer.push(frame)?;
        if let Some(init) = muxed.init {
            out.push(Output::StartFile {
                start_utc_ns: f.start_utc_ns,
                init,
                params,
            });
        }
        if let Some(frag) = muxed.fragment {
            f.duration_90k += frag.duration_90k as i64;
            out.push(Output::Fragment(frag));
        }
        if let Some(last) = self.last_dts {
            self.last_duration = (dts - last).max(1);
        } else if let Some(d) = own_duration {
            self.last_duration = i64::from(d.max(1));
        }
        self.last_dts = Some(dts);
        Ok(out)
    }

    /// Forgets the open file after a write failure: nothing more is written
    /// to it, and the next keyframe starts a new, non-continuous file.
    pub fn abort(&mut self) {
        if let Some(f) = self.file.take() {
            self.prev_end_utc_ns = Some(f.start_utc_ns + ns(f.duration_90k));
        }
        self.continuous = false;
        self.last_dts = None;
        self.offset_90k = 0;
    }

    /// Closes the open file at the end of the stream.
    pub fn finish(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        self.end_file(None, false, &mut out);
        self.last_dts = None;
        out
    }

    fn end_file(&mut self, next_dts: Option<i64>, continuous: bool, out: &mut Vec<Output>) {
        let Some(mut f) = self.file.take() else {
            return;
        };
        if let Some(frag) = f.muxer.finish(next_dts) {
            f.duration_90k += frag.duration_90k as i64;
            out.push(Output::Fragment(frag));
        }
        // Audio past this file's end opens the next one, before what was
        // already waiting for it.
        for a in f.muxer.take_pending_audio().into_iter().rev() {
            self.audio_held.push_front(a);
        }
        self.audio_written += f.muxer.audio_frames_written();
        self.audio_dropped += f.muxer.audio_frames_dropped();
        let end = f.start_utc_ns + ns(f.duration_90k);
        out.push(Output::EndFile {
            end_utc_ns: end,
            continuous,
        });
        self.prev_end_utc_ns = Some(end);
        self.continuous = continuous;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reallive_core::Codec;

    const SEC: i64 = 1_000_000_000;
    const T0: i64 = 1_763_700_000 * SEC;

    fn clip() -> Vec<EncodedFrame> {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/ball-160x120-30f.h264");
        reallive_test_support::clip::annex_b_frames(&path, Codec::H264, 0, 3000)
    }

    /// `n` frames at 30 fps with a keyframe every 10, cycling the clip.
    fn frames(n: usize) -> Vec<EncodedFrame> {
        reallive_test_support::clip::cycled(&clip(), n, 3000)
    }

    #[derive(Debug, PartialEq)]
    enum Ev {
        Start(i64),
        Frag(u32),
        End(i64, bool),
        Clamp,
    }

    fn run(s: &mut Segmenter, input: Vec<(EncodedFrame, i64)>) -> Vec<Ev> {
        let mut evs = Vec::new();
        let mut all: Vec<Output> = Vec::new();
        for (f, now) in input {
            all.extend(s.push(f, now).unwrap());
        }
        all.extend(s.finish());
        for o in all {
            evs.push(match o {
                Output::StartFile { start_utc_ns, .. } => {
                    Ev::Start((start_utc_ns - T0) / 1_000_000)
                }
                Output::Fragment(f) => Ev::Frag(f.frames),
                Output::EndFile {
                    end_utc_ns,
                    continuous,
                } => Ev::End((end_utc_ns - T0) / 1_000_000, continuous),
                Output::Clamped { .. } => Ev::Clamp,
            });
        }
        evs
    }

    fn cfg(file_secs: i64) -> SegmenterConfig {
        // Fragments of one GOP: these tests are about files, not parts.
        SegmenterConfig {
            fragment_90k: 30_000,
            part_90k: 0,
            file_90k: file_secs * 90_000,
            ..SegmenterConfig::default()
        }
    }

    /// Wall clock in step with media time.
    fn live(fs: Vec<EncodedFrame>) -> Vec<(EncodedFrame, i64)> {
        fs.into_iter()
            .map(|f| {
                let t = T0 + ns(f.dts_90k);
                (f, t)
            })
            .collect()
    }

    #[test]
    fn rotates_at_the_keyframe_after_the_target_and_tiles_time() {
        let mut s = Segmenter::new(cfg(1));
        let evs = run(&mut s, live(frames(70)));
        use Ev::*;
        // Files of 1 s (30 frames), fragments of 1/3 s (one GOP of 10), and
        // each file starts exactly where the previous ended (times in ms).
        assert_eq!(
            evs,
            vec![
                Start(0),
                Frag(10),
                Frag(10),
                Frag(10),
                End(1000, true),
                Start(1000),
                Frag(10),
                Frag(10),
                Frag(10),
                End(2000, true),
                Start(2000),
                Frag(10),
                End(2333, false),
            ]
        );
    }

    /// Every byte the segmenter hands out for a video-only source,
    /// fingerprinted before it took audio.
    #[test]
    fn video_only_output_is_unchanged() {
        let mut s = Segmenter::new(cfg(1));
        let mut all = Vec::new();
        for (f, now) in live(frames(70)) {
            all.extend(s.push(f, now).unwrap());
        }
        all.extend(s.finish());
        let mut bytes = Vec::new();
        for o in all {
            match o {
                Output::StartFile { init, .. } => bytes.extend_from_slice(&init),
                Output::Fragment(f) => bytes.extend_from_slice(&f.data),
                _ => {}
            }
        }
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        assert_eq!(hash, 0x529f_f88a_2f95_9514);
    }

    #[test]
    fn waits_for_a_keyframe_to_start() {
        let mut s = Segmenter::new(cfg(60));
        let evs = run(&mut s, live(frames(30)[5..].to_vec()));
        assert_eq!(s.skipped(), 5);
        assert_eq!(evs[0], Ev::Start(333));
    }

    #[test]
    fn forward_gap_ends_the_file_and_the_next_starts_at_the_wall_clock() {
        let mut s = Segmenter::new(cfg(60));
        let mut input = live(frames(20));
        // The camera vanishes for 10 s; its timestamps show it.
        for (f, now) in live(frames(60)[30..50].to_vec()) {
            let mut f = f;
            f.dts_90k += 10 * 90_000;
            f.pts_90k += 10 * 90_000;
            input.push((f, now + 10 * SEC));
        }
        let evs = run(&mut s, input);
        use Ev::*;
        assert_eq!(
            evs,
            vec![
                Start(0),
                Frag(10),
                Frag(10),
                End(666, false),
                Start(11_000),
                Frag(10),
                Frag(10),
                End(11_666, false)
            ]
        );
    }

    #[test]
    fn small_backward_steps_are_clamped_once() {
        let mut s = Segmenter::new(cfg(60));
        let mut input = live(frames(30));
        // Frames 12 and 20 step back 2 frames: jitter, not a reset.
        for i in [12usize, 20] {
            input[i].0.dts_90k -= 3 * 3000;
            input[i].0.pts_90k -= 3 * 3000;
        }
        let evs = run(&mut s, input);
        assert_eq!(evs.iter().filter(|e| **e == Ev::Clamp).count(), 1);
        assert_eq!(
            evs.iter().filter(|e| matches!(e, Ev::Start(_))).count(),
            1,
            "{evs:?}"
        );
        let frames: u32 = evs
            .iter()
            .map(|e| if let Ev::Frag(n) = e { *n } else { 0 })
            .sum();
        assert_eq!(frames, 30, "nothing lost");
    }

    #[test]
    fn clock_reset_starts_a_new_file() {
        let mut s = Segmenter::new(cfg(60));
        // The camera had been up 100 s, then restarts: its timestamps go back
        // to zero while wall time goes on.
        let mut input: Vec<(EncodedFrame, i64)> = live(frames(20))
            .into_iter()
            .map(|(mut f, now)| {
                f.dts_90k += 100 * 90_000;
                f.pts_90k += 100 * 90_000;
                (f, now)
            })
            .collect();
        for (f, now) in live(frames(20)) {
            input.push((f, now + 2 * SEC));
        }
        let evs = run(&mut s, input);
        let starts: Vec<&Ev> = evs.iter().filter(|e| matches!(e, Ev::Start(_))).collect();
        assert_eq!(starts, vec![&Ev::Start(0), &Ev::Start(2000)]);
    }

    #[test]
    fn parameter_change_rotates_continuously() {
        let mut s = Segmenter::new(cfg(60));
        let mut input = live(frames(30));
        let mut p = (*input[0].0.params).clone();
        p.pps[0] = Bytes::from_static(&[0x68, 0xee, 0x3c, 0x80]);
        let p = Arc::new(p);
        for (f, _) in input.iter_mut().skip(10) {
            f.params = p.clone();
        }
        let evs = run(&mut s, input);
        use Ev::*;
        assert_eq!(evs[..4], [Start(0), Frag(10), End(333, true), Start(333)]);
    }

    #[test]
    fn wall_clock_step_reanchors() {
        let mut s = Segmenter::new(cfg(60));
        let mut input = live(frames(30));
        // NTP steps the clock forward an hour after frame 15.
        for (_, now) in input.iter_mut().skip(15) {
            *now += 3600 * SEC;
        }
        let evs = run(&mut s, input);
        let starts: Vec<&Ev> = evs.iter().filter(|e| matches!(e, Ev::Start(_))).collect();
        // The new file starts at the next keyframe (frame 20), anchored to the new clock.
        assert_eq!(starts, vec![&Ev::Start(0), &Ev::Start(3_600_666)]);
    }
}
