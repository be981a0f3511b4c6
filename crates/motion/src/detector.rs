//! The detector: frame differencing against a slowly adapting background,
//! in zones, with light-change rejection and hysteresis. Sans-IO: a frame
//! and its time in, events out.

use crate::{GrayFrame, MotionError};

/// Whether a zone is watched or ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneKind {
    /// Motion here counts.
    Include,
    /// Motion here never counts, even inside an include zone.
    Exclude,
}

/// A polygon in 0..1 coordinates of the picture (x right, y down).
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    /// Shown in events.
    pub name: String,
    /// Include or exclude.
    pub kind: ZoneKind,
    /// At least three corners.
    pub points: Vec<(f32, f32)>,
}

/// How the detector decides.
#[derive(Clone, Debug, PartialEq)]
pub struct MotionSettings {
    /// 1 (only large, sharp changes) to 100 (the faintest): sets how much a
    /// pixel must differ from the background to count as changed.
    pub sensitivity: u8,
    /// The share of a zone (percent) that must change for motion.
    pub min_area_percent: f32,
    /// Zones; with no include zone the whole picture is watched.
    pub zones: Vec<Zone>,
    /// Consecutive frames with motion before an event starts.
    pub frames_to_start: u32,
    /// Seconds without motion before an event ends.
    pub secs_to_end: f32,
    /// Change spread over this share (percent) of the picture at once is a
    /// light change (lights, a camera's IR switch), not motion: the
    /// background is re-learnt instead. The picture is cut into an 8 × 6
    /// grid, and a cell counts when 2 % of its watched pixels changed; a
    /// moving object fills a few cells, a light change nearly all.
    pub light_change_percent: f32,
}

impl Default for MotionSettings {
    fn default() -> Self {
        MotionSettings {
            sensitivity: 60,
            min_area_percent: 0.5,
            zones: Vec::new(),
            frames_to_start: 2,
            secs_to_end: 3.0,
            light_change_percent: 60.0,
        }
    }
}

impl MotionSettings {
    /// Checks the values; the error says which and why.
    pub fn validate(&self) -> Result<(), MotionError> {
        let bad = |m: String| Err(MotionError::BadSettings(m));
        if !(1..=100).contains(&self.sensitivity) {
            return bad(format!(
                "sensitivity {} is outside 1..=100",
                self.sensitivity
            ));
        }
        if !(0.0..=100.0).contains(&self.min_area_percent) {
            return bad(format!(
                "min_area_percent {} is outside 0..=100",
                self.min_area_percent
            ));
        }
        if !(1.0..=100.0).contains(&self.light_change_percent) {
            return bad(format!(
                "light_change_percent {} is outside 1..=100",
                self.light_change_percent
            ));
        }
        if self.frames_to_start == 0 || !(0.0..=3600.0).contains(&self.secs_to_end) {
            return bad("frames_to_start must be at least 1, secs_to_end 0..=3600".into());
        }
        for z in &self.zones {
            if z.points.len() < 3 {
                return bad(format!("zone '{}' needs at least 3 points", z.name));
            }
            if z.points
                .iter()
                .any(|(x, y)| !(0.0..=1.0).contains(x) || !(0.0..=1.0).contains(y))
            {
                return bad(format!("zone '{}' has a point outside 0..1", z.name));
            }
        }
        Ok(())
    }

    /// The per-pixel difference (0..255) that counts as a change.
    fn pixel_threshold(&self) -> i32 {
        // 1 → 70, 60 → 30, 100 → 4.
        70 - (i32::from(self.sensitivity) - 1) * 66 / 99
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum MotionEvent {
    /// Motion began at `at_ms` (the first of the frames that started it).
    Started {
        /// Milliseconds on the caller's clock.
        at_ms: i64,
        /// The zone with the most change.
        zone: String,
        /// The share of that zone that changed, in percent.
        score: f32,
    },
    /// Motion ended (at the last frame with motion).
    Ended {
        /// When it started.
        start_ms: i64,
        /// The last frame with motion.
        end_ms: i64,
        /// The highest score seen.
        peak_score: f32,
        /// The frame of the highest score: the event's best picture.
        peak_ms: i64,
        /// The zone of the peak.
        zone: String,
    },
}

/// One frame's result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    /// The highest share of a zone that changed, in percent.
    pub score: f32,
    /// This frame was taken as a light change and ignored.
    pub light_change: bool,
    /// The cells of the [`GRID_COLS`] × [`GRID_ROWS`] grid where 2 % or
    /// more of the watched pixels changed: bit `row * GRID_COLS + col`.
    /// What a live meter draws over the picture.
    pub cells: u64,
    /// The watched zone `score` is of (`frame` without include zones);
    /// `None` when nothing was compared (the first frame, a light change).
    pub zone: Option<String>,
    /// Events this frame caused.
    pub events: Vec<MotionEvent>,
}

/// Fixed point: the background holds pixel × 16.
const FP: i32 = 16;

/// The background learns at a pace set for pictures this far apart (the
/// default 5 fps). Pictures further apart learn as many steps as fit in
/// the gap, so a stream analysed at its keyframes only (one a second)
/// takes in a parked car as fast, in seconds, as a 5 fps sub-stream.
const LEARN_STEP_MS: i64 = 200;
/// Columns of the grid that light changes (and [`Observation::cells`])
/// are judged on.
pub const GRID_COLS: usize = 8;
/// Its rows.
pub const GRID_ROWS: usize = 6;
const GRID_X: usize = GRID_COLS;
const GRID_Y: usize = GRID_ROWS;

#[derive(Debug)]
struct Active {
    start_ms: i64,
    last_motion_ms: i64,
    peak: f32,
    peak_ms: i64,
    zone: usize,
}

/// The motion detector of one camera.
#[derive(Debug)]
pub struct Detector {
    settings: MotionSettings,
    width: u32,
    height: u32,
    /// Background, pixel × [`FP`].
    background: Vec<i32>,
    /// Per pixel: 0 not watched, k the k-th watched zone (1-based).
    mask: Vec<u8>,
    /// Names and pixel counts of the watched zones.
    zones: Vec<(String, u32)>,
    /// Consecutive frames with motion, and when the run began.
    run: Option<(u32, i64)>,
    active: Option<Active>,
    /// When the last picture was taken.
    last_ms: Option<i64>,
}

impl Detector {
    /// A detector with `settings` (validated).
    pub fn new(settings: MotionSettings) -> Result<Self, MotionError> {
        settings.validate()?;
        Ok(Detector {
            settings,
            width: 0,
            height: 0,
            background: Vec::new(),
            mask: Vec::new(),
            zones: Vec::new(),
            run: None,
            active: None,
            last_ms: None,
        })
    }

    /// Looks at one frame taken at `at_ms`.
    pub fn process(&mut self, frame: &GrayFrame<'_>, at_ms: i64) -> Observation {
        let steps = self.last_ms.map_or(1, |last| {
            (at_ms.saturating_sub(last) + LEARN_STEP_MS / 2) / LEARN_STEP_MS
        });
        self.last_ms = Some(at_ms);
        // One step learns 1/16 (1/128 where something moves); `n` steps
        // learn what `n` of them in a row would.
        let learn = (steps > 1).then(|| {
            let n = steps.clamp(2, 150) as i32;
            (
                1.0 - (15.0f32 / 16.0).powi(n),
                1.0 - (127.0f32 / 128.0).powi(n),
            )
        });
        if frame.width() != self.width || frame.height() != self.height {
            // First frame, or a new size: learn the scene again.
            self.resize(frame);
            return self.quiet(at_ms, 0.0, false);
        }
        let threshold = self.settings.pixel_threshold();
        // Compare with the global brightness taken out, so a scene that
        // just got brighter or darker does not differ everywhere.
        let frame_mean = mean(frame);
        let bg_mean = self.background.iter().map(|&b| i64::from(b)).sum::<i64>()
            / self.background.len().max(1) as i64;
        let shift = frame_mean as i32 * FP - bg_mean as i32;
        let mut changed = vec![0u32; self.zones.len() + 1];
        let mut cells = [(0u32, 0u32); GRID_X * GRID_Y];
        // Per cell: the raw (uncompensated) difference summed, in FP units.
        let mut raw = [0i64; GRID_X * GRID_Y];
        let w = self.width as usize;
        for y in 0..self.height {
            let row = frame.row(y);
            let base = y as usize * w;
            let cy = y as usize * GRID_Y / self.height as usize;
            for (x, &p) in row.iter().enumerate() {
                let i = base + x;
                let b = self.background[i];
                let v = i32::from(p) * FP;
                let d = (v - shift - b).abs() / FP;
                let moved = d > threshold;
                let zone = self.mask[i];
                if zone != 0 {
                    let k = cy * GRID_X + x * GRID_X / w;
                    let cell = &mut cells[k];
                    cell.0 += 1;
                    cell.1 += u32::from(moved);
                    raw[k] += i64::from(v - b);
                }
                if moved {
                    changed[usize::from(zone)] += 1;
                }
                // Learn slowly, and slower still where something moves.
                self.background[i] = match learn {
                    None => b + ((v - b) >> if moved { 7 } else { 4 }),
                    Some((still, moving)) => {
                        b + ((v - b) as f32 * if moved { moving } else { still }) as i32
                    }
                };
            }
        }
        let watched_cells = cells.iter().filter(|c| c.0 > 0).count();
        let moved_cells = cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 > 0 && c.1 * 50 >= c.0)
            .fold(0u64, |bits, (k, _)| bits | 1 << k);
        let changed_cells = moved_cells.count_ones() as usize;
        // A light change moves the brightness of nearly every cell the same
        // way, however much of it clips; compare each cell's own mean.
        let (mut up, mut down) = (0usize, 0usize);
        for (c, r) in cells.iter().zip(raw.iter()) {
            if c.0 > 0 {
                let m = r / i64::from(c.0) / i64::from(FP);
                if m > i64::from(threshold) {
                    up += 1
                } else if m < -i64::from(threshold) {
                    down += 1
                }
            }
        }
        let share = |n: usize| n as f32 * 100.0 / watched_cells.max(1) as f32;
        let light = watched_cells > 0
            && (share(changed_cells) >= self.settings.light_change_percent
                || share(up.max(down)) >= self.settings.light_change_percent);
        if light {
            // Lights switched, or the camera went to IR: the old background
            // is useless. Take this frame as the new one.
            for y in 0..self.height {
                for (x, &p) in frame.row(y).iter().enumerate() {
                    self.background[y as usize * w + x] = i32::from(p) * FP;
                }
            }
            let mut seen = self.quiet(at_ms, 0.0, true);
            seen.cells = moved_cells;
            return seen;
        }
        let (zone, score) = self
            .zones
            .iter()
            .enumerate()
            .map(|(k, (_, area))| (k, changed[k + 1] as f32 * 100.0 / (*area).max(1) as f32))
            .fold((0, 0.0f32), |best, z| if z.1 > best.1 { z } else { best });
        let mut seen = if score >= self.settings.min_area_percent && score > 0.0 {
            self.motion(at_ms, zone, score)
        } else {
            self.quiet(at_ms, score, false)
        };
        seen.cells = moved_cells;
        seen.zone = self.zones.get(zone).map(|z| z.0.clone());
        seen
    }

    /// Ends an open event now (the camera dropped, or the detector stops).
    pub fn flush(&mut self) -> Option<MotionEvent> {
        self.run = None;
        self.active.take().map(|a| self.ended(a))
    }

    /// Whether an event is open.
    pub fn in_event(&self) -> bool {
        self.active.is_some()
    }

    /// Whether the scene is still: no event open and no motion in the
    /// last picture (no run of moving pictures that may start one).
    pub fn is_still(&self) -> bool {
        self.active.is_none() && self.run.is_none()
    }

    fn motion(&mut self, at_ms: i64, zone: usize, score: f32) -> Observation {
        let mut events = Vec::new();
        if let Some(a) = self.active.as_mut() {
            a.last_motion_ms = at_ms;
            if score > a.peak {
                a.peak = score;
                a.peak_ms = at_ms;
                a.zone = zone;
            }
        } else {
            let (n, first) = self.run.map_or((1, at_ms), |(n, t)| (n + 1, t));
            self.run = Some((n, first));
            if n >= self.settings.frames_to_start {
                self.run = None;
                self.active = Some(Active {
                    start_ms: first,
                    last_motion_ms: at_ms,
                    peak: score,
                    peak_ms: at_ms,
                    zone,
                });
                events.push(MotionEvent::Started {
                    at_ms: first,
                    zone: self.zones[zone].0.clone(),
                    score,
                });
            }
        }
        Observation {
            score,
            light_change: false,
            cells: 0,
            zone: None,
            events,
        }
    }

    fn quiet(&mut self, at_ms: i64, score: f32, light_change: bool) -> Observation {
        self.run = None;
        let mut events = Vec::new();
        let end_after = (self.settings.secs_to_end * 1000.0) as i64;
        if self
            .active
            .as_ref()
            .is_some_and(|a| at_ms - a.last_motion_ms >= end_after)
            && let Some(a) = self.active.take()
        {
            events.push(self.ended(a));
        }
        Observation {
            score,
            light_change,
            cells: 0,
            zone: None,
            events,
        }
    }

    fn ended(&self, a: Active) -> MotionEvent {
        MotionEvent::Ended {
            start_ms: a.start_ms,
            end_ms: a.last_motion_ms,
            peak_score: a.peak,
            peak_ms: a.peak_ms,
            zone: self.zones[a.zone].0.clone(),
        }
    }

    /// Takes `frame` as the background and rasterizes the zones for its size.
    fn resize(&mut self, frame: &GrayFrame<'_>) {
        self.width = frame.width();
        self.height = frame.height();
        let (w, h) = (self.width as usize, self.height as usize);
        self.background = (0..h)
            .flat_map(|y| frame.row(y as u32).iter().map(|&p| i32::from(p) * FP))
            .collect();
        let includes: Vec<&Zone> = self
            .settings
            .zones
            .iter()
            .filter(|z| z.kind == ZoneKind::Include)
            .collect();
        let excludes: Vec<&Zone> = self
            .settings
            .zones
            .iter()
            .filter(|z| z.kind == ZoneKind::Exclude)
            .collect();
        self.zones = if includes.is_empty() {
            vec![("frame".to_string(), 0)]
        } else {
            includes.iter().map(|z| (z.name.clone(), 0)).collect()
        };
        self.mask = vec![0; w * h];
        for y in 0..h {
            let fy = (y as f32 + 0.5) / h as f32;
            for x in 0..w {
                let fx = (x as f32 + 0.5) / w as f32;
                if excludes.iter().any(|z| inside(&z.points, fx, fy)) {
                    continue;
                }
                let k = if includes.is_empty() {
                    Some(0)
                } else {
                    includes.iter().position(|z| inside(&z.points, fx, fy))
                };
                if let Some(k) = k {
                    // At most 255 zones; more are never watched.
                    if let Ok(id) = u8::try_from(k + 1) {
                        self.mask[y * w + x] = id;
                        self.zones[k].1 += 1;
                    }
                }
            }
        }
    }
}

fn mean(frame: &GrayFrame<'_>) -> i64 {
    let mut sum = 0i64;
    for y in 0..frame.height() {
        sum += frame.row(y).iter().map(|&p| i64::from(p)).sum::<i64>();
    }
    sum / (i64::from(frame.width()) * i64::from(frame.height())).max(1)
}

/// Even-odd point-in-polygon.
fn inside(points: &[(f32, f32)], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut j = points.len() - 1;
    for i in 0..points.len() {
        let (xi, yi) = points[i];
        let (xj, yj) = points[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 320;
    const H: u32 = 180;

    /// A textured static scene, optionally brighter, with a square of
    /// `size` at `(x, y)`.
    fn scene(brightness: i32, square: Option<(u32, u32, u32)>) -> Vec<u8> {
        let mut v = Vec::with_capacity((W * H) as usize);
        for y in 0..H {
            for x in 0..W {
                let base = 60 + ((x * 7 + y * 13) % 40) as i32 + brightness;
                let mut p = base.clamp(0, 255);
                if let Some((sx, sy, s)) = square
                    && (sx..sx + s).contains(&x)
                    && (sy..sy + s).contains(&y)
                {
                    p = 230;
                }
                v.push(p as u8);
            }
        }
        v
    }

    fn run(settings: MotionSettings, frames: &[Vec<u8>]) -> Vec<MotionEvent> {
        let mut d = Detector::new(settings).unwrap();
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let g = GrayFrame::new(f, W, H, W).unwrap();
            out.extend(d.process(&g, i as i64 * 200).events);
        }
        out.extend(d.flush());
        out
    }

    /// 5 fps: `n` frames of a square moving right from `from`.
    fn moving(n: u32, from: u32) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| scene(0, Some((from + i * 8, 60, 40))))
            .collect()
    }

    /// A square that appears and stays is taken into the background in
    /// about the same number of seconds whether pictures come at 5 fps or
    /// one a second (a main stream analysed at its keyframes).
    #[test]
    fn a_slow_stream_takes_in_a_parked_object_as_fast_in_seconds() {
        let settle_ms = |step_ms: i64| {
            let mut d = Detector::new(MotionSettings::default()).unwrap();
            let still = scene(0, None);
            let parked = scene(0, Some((200, 120, 40)));
            let mut at = 0;
            for _ in 0..10 {
                d.process(&GrayFrame::new(&still, W, H, W).unwrap(), at);
                at += step_ms;
            }
            let arrived = at;
            while at - arrived < 600_000 {
                let seen = d.process(&GrayFrame::new(&parked, W, H, W).unwrap(), at);
                if at > arrived && seen.cells == 0 {
                    return at - arrived;
                }
                at += step_ms;
            }
            panic!("never settled at {step_ms} ms a picture");
        };
        let fast = settle_ms(200);
        let slow = settle_ms(1000);
        assert!(fast > 1000, "it moved for a while: {fast} ms");
        assert!(
            (slow - fast).abs() <= 2000,
            "5 fps settles in {fast} ms, 1 fps in {slow} ms"
        );
    }

    /// The cells a live meter draws are where the square is: W = 320 and
    /// H = 180 make cells 40 × 30 pixels, so a 40-pixel square at
    /// (200, 120) fills cell (col 5, row 4) and nothing far from it.
    #[test]
    fn the_moved_cells_are_where_the_motion_is() {
        let mut d = Detector::new(MotionSettings::default()).unwrap();
        let still = scene(0, None);
        for i in 0..5 {
            let seen = d.process(&GrayFrame::new(&still, W, H, W).unwrap(), i * 200);
            assert_eq!(seen.cells, 0, "a still scene moves no cell");
        }
        let moved = scene(0, Some((200, 120, 40)));
        let seen = d.process(&GrayFrame::new(&moved, W, H, W).unwrap(), 1000);
        let cell = |col: usize, row: usize| 1u64 << (row * GRID_COLS + col);
        assert_ne!(seen.cells & cell(5, 4), 0, "{:#050b}", seen.cells);
        for (col, row) in [(0, 0), (7, 0), (0, 5), (2, 2)] {
            assert_eq!(
                seen.cells & cell(col, row),
                0,
                "({col}, {row}) did not move"
            );
        }
        assert_eq!(seen.zone.as_deref(), Some("frame"));
        assert!(seen.score > 0.0);
    }

    #[test]
    fn table() {
        let still: Vec<Vec<u8>> = (0..50).map(|_| scene(0, None)).collect();
        // Sensor noise: up to ±16 per pixel, different in every frame.
        let noisy: Vec<Vec<u8>> = (0..50u32)
            .map(|n| {
                scene(0, None)
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| {
                        let r = (i as u32)
                            .wrapping_mul(2_654_435_761)
                            .wrapping_add(n * 40_503)
                            >> 27;
                        (i32::from(p) + r as i32 - 16).clamp(0, 255) as u8
                    })
                    .collect()
            })
            .collect();
        let mut burst = still[..10].to_vec();
        burst.extend(moving(15, 20));
        burst.extend(still[..30].to_vec());
        let lights: Vec<Vec<u8>> = (0..10)
            .map(|_| scene(0, None))
            .chain((0..20).map(|_| scene(70, None)))
            .collect();
        let ir: Vec<Vec<u8>> = (0..10)
            .map(|_| scene(0, None))
            .chain((0..20).map(|_| {
                // Contrast inverted, as a camera's IR switch does.
                scene(0, None).iter().map(|p| 255 - p).collect()
            }))
            .collect();
        let left_half = Zone {
            name: "left".into(),
            kind: ZoneKind::Exclude,
            points: vec![(0.0, 0.0), (0.6, 0.0), (0.6, 1.0), (0.0, 1.0)],
        };
        let right = Zone {
            name: "door".into(),
            kind: ZoneKind::Include,
            points: vec![(0.7, 0.0), (1.0, 0.0), (1.0, 1.0), (0.7, 1.0)],
        };
        let default = MotionSettings::default();
        /// (what, settings, frames at 5 fps, events as (start, end, zone)).
        type Case<'a> = (
            &'a str,
            MotionSettings,
            Vec<Vec<u8>>,
            Vec<(i64, i64, &'a str)>,
        );
        let cases: Vec<Case<'_>> = vec![
            ("a still scene", default.clone(), still.clone(), vec![]),
            (
                "a still scene with sensor noise",
                default.clone(),
                noisy,
                vec![],
            ),
            (
                "a moving square: one event from its first frame, ended after 3 s quiet",
                default.clone(),
                burst.clone(),
                vec![(2000, 4800, "frame")],
            ),
            (
                "motion only inside an exclude zone",
                MotionSettings {
                    zones: vec![left_half],
                    ..default.clone()
                },
                burst.clone(),
                vec![],
            ),
            (
                "motion outside the only include zone",
                MotionSettings {
                    zones: vec![right.clone()],
                    ..default.clone()
                },
                burst.clone(),
                vec![],
            ),
            ("lights switching on", default.clone(), lights, vec![]),
            (
                "lights switching on, the bright parts clipping",
                default.clone(),
                {
                    // Eight vertical bars, 16 to 226, as colour bars are.
                    let bars = |up: i32| -> Vec<u8> {
                        (0..H)
                            .flat_map(|_| {
                                (0..W).map(move |x| {
                                    (16 + (x * 8 / W) as i32 * 30 + up).min(255) as u8
                                })
                            })
                            .collect()
                    };
                    (0..10)
                        .map(|_| bars(0))
                        .chain((0..20).map(|_| bars(100)))
                        .collect()
                },
                vec![],
            ),
            ("an IR switch", default.clone(), ir, vec![]),
            (
                "a square too small for min_area_percent",
                MotionSettings {
                    min_area_percent: 10.0,
                    ..default.clone()
                },
                burst,
                vec![],
            ),
        ];
        for (name, settings, frames, want) in cases {
            let got: Vec<(i64, i64, String)> = run(settings, &frames)
                .into_iter()
                .filter_map(|e| match e {
                    MotionEvent::Ended {
                        start_ms,
                        end_ms,
                        zone,
                        ..
                    } => Some((start_ms, end_ms, zone)),
                    MotionEvent::Started { .. } => None,
                })
                .collect();
            let want: Vec<(i64, i64, String)> = want
                .into_iter()
                .map(|(a, b, z)| (a, b, z.to_string()))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_right_zone_is_named_and_events_are_started_then_ended() {
        let right = Zone {
            name: "door".into(),
            kind: ZoneKind::Include,
            points: vec![(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)],
        };
        let mut frames: Vec<Vec<u8>> = (0..5).map(|_| scene(0, None)).collect();
        frames.extend(moving(10, 200));
        frames.extend((0..20).map(|_| scene(0, None)));
        let events = run(
            MotionSettings {
                zones: vec![right],
                ..MotionSettings::default()
            },
            &frames,
        );
        assert!(
            matches!(&events[0], MotionEvent::Started { at_ms: 1000, zone, .. } if zone == "door"),
            "{events:?}"
        );
        assert!(
            matches!(&events[1], MotionEvent::Ended { zone, peak_score, .. } if zone == "door" && *peak_score > 1.0),
            "{events:?}"
        );
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn bad_settings_are_refused() {
        for s in [
            MotionSettings {
                sensitivity: 0,
                ..MotionSettings::default()
            },
            MotionSettings {
                min_area_percent: 120.0,
                ..MotionSettings::default()
            },
            MotionSettings {
                zones: vec![Zone {
                    name: "z".into(),
                    kind: ZoneKind::Include,
                    points: vec![(0.0, 0.0), (1.0, 1.5), (0.0, 1.0)],
                }],
                ..MotionSettings::default()
            },
        ] {
            assert!(Detector::new(s).is_err());
        }
    }

    #[test]
    fn a_camera_drop_ends_the_open_event() {
        let mut d = Detector::new(MotionSettings::default()).unwrap();
        let frames: Vec<Vec<u8>> = std::iter::once(scene(0, None))
            .chain(moving(5, 20))
            .collect();
        for (i, f) in frames.iter().enumerate() {
            d.process(&GrayFrame::new(f, W, H, W).unwrap(), i as i64 * 200);
        }
        assert!(d.in_event());
        assert!(matches!(
            d.flush(),
            Some(MotionEvent::Ended {
                start_ms: 200,
                end_ms: 1000,
                ..
            })
        ));
        assert!(d.flush().is_none());
    }
}
