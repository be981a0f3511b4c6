// Timeline geometry, with no DOM: a view is a window of wall-clock time
// [start, end) in Unix ms drawn across `width` pixels. Everything the
// timeline bar draws (spans, gaps, event marks, clusters, ticks, cursor) and
// every way it moves (zoom around a point, pan, pinch) is computed here.

/** A window of wall-clock time, Unix ms, `start < end`. */
export interface View {
  start: number
  end: number
}

/** A horizontal stretch of the bar, in px. */
export interface Rect {
  x: number
  w: number
  start: number
  end: number
}

export const SECOND = 1000
export const MINUTE = 60 * SECOND
export const HOUR = 60 * MINUTE
export const DAY = 24 * HOUR

/** The zoom levels of the buttons. */
export const ZOOMS = [
  { id: '24h', label: '24 h', span: DAY },
  { id: '6h', label: '6 h', span: 6 * HOUR },
  { id: '1h', label: '1 h', span: HOUR },
  { id: '10m', label: '10 min', span: 10 * MINUTE },
] as const

/** The narrowest and widest windows wheel and pinch may reach. */
export const MIN_SPAN = MINUTE
export const MAX_SPAN = 7 * DAY

export const spanOf = (v: View): number => v.end - v.start

/** Wall time to x, in px (not clamped: outside the view is outside [0, width]). */
export function timeToX(t: number, view: View, width: number): number {
  return ((t - view.start) / spanOf(view)) * width
}

/** x in px to wall time. */
export function xToTime(x: number, view: View, width: number): number {
  return view.start + (x / width) * spanOf(view)
}

export function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v))
}

/** Bounds a window may not leave, e.g. `{max: now}`: the future holds nothing. */
export interface Bounds {
  min?: number
  max?: number
}

/**
 * Moves (never resizes) `view` to lie inside `bounds`. A window wider than the
 * bounds keeps its end at `max`.
 */
export function clampView(view: View, bounds: Bounds = {}): View {
  const span = spanOf(view)
  let start = view.start
  const { min, max } = bounds
  if (min != null && max != null && span >= max - min) start = max - span
  else {
    if (max != null && start + span > max) start = max - span
    if (min != null && start < min) start = min
  }
  return { start, end: start + span }
}

/**
 * A window `span` wide in which `anchor` (a wall time) keeps its place on
 * screen: zooming in on the mouse keeps what is under it under it. The span is
 * held within [minSpan, maxSpan], then the window within `bounds`.
 */
export function zoomAround(
  view: View,
  anchor: number,
  span: number,
  bounds: Bounds = {},
  minSpan = MIN_SPAN,
  maxSpan = MAX_SPAN,
): View {
  const next = clamp(span, minSpan, maxSpan)
  const old = spanOf(view)
  const f = old > 0 ? clamp((anchor - view.start) / old, 0, 1) : 0.5
  const start = anchor - f * next
  return clampView({ start, end: start + next }, bounds)
}

/** Zooms by `factor` (< 1 zooms in) around `anchor`. */
export function zoomBy(view: View, anchor: number, factor: number, bounds: Bounds = {}): View {
  return zoomAround(view, anchor, spanOf(view) * factor, bounds)
}

/** The zoom factor for a wheel movement: 100 px of `deltaY` doubles or halves the window. */
export function wheelFactor(deltaY: number, deltaMode = 0): number {
  const px = deltaMode === 1 ? deltaY * 16 : deltaMode === 2 ? deltaY * 400 : deltaY
  return 2 ** clamp(px / 100, -3, 3)
}

/** A window `span` wide centred on `center`, kept inside `bounds`. */
export function windowAround(center: number, span: number, bounds: Bounds = {}): View {
  return clampView({ start: center - span / 2, end: center + span / 2 }, bounds)
}

/** Moves a window by `deltaMs`, kept inside `bounds`. */
export function pan(view: View, deltaMs: number, bounds: Bounds = {}): View {
  return clampView({ start: view.start + deltaMs, end: view.end + deltaMs }, bounds)
}

/**
 * Two-finger pinch: the fingers were `startDist` px apart over window
 * `startView`, with their midpoint at `startMidX`; now they are `dist` apart
 * with the midpoint at `midX`. The time under the first midpoint follows the
 * fingers, and the window shrinks as they spread.
 */
export function pinchView(
  startView: View,
  startDist: number,
  startMidX: number,
  dist: number,
  midX: number,
  width: number,
  bounds: Bounds = {},
): View {
  const anchor = xToTime(startMidX, startView, width)
  const ratio = dist > 0 && startDist > 0 ? startDist / dist : 1
  const span = clamp(spanOf(startView) * ratio, MIN_SPAN, MAX_SPAN)
  const start = anchor - (midX / width) * span
  return clampView({ start, end: start + span }, bounds)
}

/** What `resolution_ms` to ask the server for: one bucket per pixel. */
export function resolutionFor(view: View, width: number): number {
  return Math.max(1, Math.ceil(spanOf(view) / Math.max(1, width)))
}

/** Local midnight to the next local midnight of a `YYYY-MM-DD` day (DST-safe). */
export function dayWindow(day: string): View | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day)
  if (!m) return null
  const y = Number(m[1])
  const mo = Number(m[2]) - 1
  const d = Number(m[3])
  const start = new Date(y, mo, d).getTime()
  const end = new Date(y, mo, d + 1).getTime()
  if (Number.isNaN(start) || end <= start) return null
  return { start, end }
}

const pad = (n: number) => String(n).padStart(2, '0')

/** The local `YYYY-MM-DD` of an instant (for `<input type=date>`). */
export function dayOf(t: number): string {
  const d = new Date(t)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`
}

/** Local `HH:MM`. */
export function formatHM(t: number): string {
  const d = new Date(t)
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`
}

/** Local `HH:MM:SS`. */
export function formatClock(t: number): string {
  const d = new Date(t)
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']

/** `Sun 6 Dec` (local). */
export function formatDay(t: number): string {
  const d = new Date(t)
  return `${DAYS[d.getDay()]} ${d.getDate()} ${MONTHS[d.getMonth()]}`
}

/** `Sun 6 Dec 03:12:45` (local). */
export function formatDateTime(t: number): string {
  return `${formatDay(t)} ${formatClock(t)}`
}

/** `4 s`, `2 min 5 s`, `1 h 20 min`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s} s`
  const m = Math.floor(s / 60)
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`
  const h = Math.floor(m / 60)
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`
}

/** `512 B`, `3.4 MB`. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '—'
  if (n < 1024) return `${n} B`
  const units = ['KB', 'MB', 'GB', 'TB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`
}

/** Tick steps, finest first. */
export const TICK_STEPS = [
  10 * SECOND,
  30 * SECOND,
  MINUTE,
  2 * MINUTE,
  5 * MINUTE,
  10 * MINUTE,
  15 * MINUTE,
  30 * MINUTE,
  HOUR,
  2 * HOUR,
  3 * HOUR,
  6 * HOUR,
  12 * HOUR,
  DAY,
]

export interface Tick {
  t: number
  x: number
  label: string
  /** Local midnight: labelled with the day. */
  major: boolean
}

/** The offset of local time from UTC at `t`, in ms (east positive). */
function localOffset(t: number): number {
  return -new Date(t).getTimezoneOffset() * MINUTE
}

/**
 * Labelled ticks at least `minPx` apart, on round local times (every 10 min,
 * every hour...). Midnights are labelled with the day.
 */
export function ticks(view: View, width: number, minPx = 64): Tick[] {
  const span = spanOf(view)
  if (!(span > 0) || !(width > 0)) return []
  const step = TICK_STEPS.find((s) => (s / span) * width >= minPx) ?? TICK_STEPS[TICK_STEPS.length - 1]!
  const out: Tick[] = []
  const push = (t: number) => {
    if (t < view.start || t > view.end) return
    if (out.length && out[out.length - 1]!.t >= t) return // a DST repeat
    const d = new Date(t)
    const major = d.getHours() === 0 && d.getMinutes() === 0 && d.getSeconds() === 0
    const label = major ? formatDay(t) : step < MINUTE ? formatClock(t) : formatHM(t)
    out.push({ t, x: timeToX(t, view, width), label, major })
  }
  if (step < HOUR) {
    // Steps dividing an hour: align on local time once; offset changes
    // (whole or half hours) keep the alignment.
    const off = localOffset(view.start)
    for (let t = Math.ceil((view.start + off) / step) * step - off, i = 0; t <= view.end && i < 2000; t += step, i++) push(t)
  } else {
    // Hours and days: walk the local calendar, so 00:00, 06:00... stay put
    // across DST changes.
    const d0 = new Date(view.start)
    const hours = step / HOUR
    for (let i = 0; i < 2000; i++) {
      const t =
        step >= DAY
          ? new Date(d0.getFullYear(), d0.getMonth(), d0.getDate() + i).getTime()
          : new Date(d0.getFullYear(), d0.getMonth(), d0.getDate(), i * hours).getTime()
      if (t > view.end) break
      // A skipped hour (spring forward) lands off the grid: leave it out.
      if (step < DAY && new Date(t).getHours() % hours !== 0) continue
      push(t)
    }
  }
  return out
}

/** `[start, end)` clipped to the view and turned into px, at least `minW` wide; `null` when outside. */
export function rectFor(start: number, end: number, view: View, width: number, minW = 0): Rect | null {
  const s = Math.max(start, view.start)
  const e = Math.min(end, view.end)
  if (e < s || (e === s && minW === 0)) return null
  const x = timeToX(s, view, width)
  const w = Math.max(minW, timeToX(e, view, width) - x)
  return { x, w, start: s, end: e }
}

/** Recorded spans, sorted and merged (overlapping or touching spans become one). */
export function mergeSpans(spans: readonly { start: number; end: number }[]): { start: number; end: number }[] {
  const sorted = spans.filter((s) => s.end > s.start).map((s) => ({ start: s.start, end: s.end })).sort((a, b) => a.start - b.start)
  const out: { start: number; end: number }[] = []
  for (const s of sorted) {
    const last = out[out.length - 1]
    if (last && s.start <= last.end) last.end = Math.max(last.end, s.end)
    else out.push(s)
  }
  return out
}

/**
 * The recorded spans as rects. Spans closer than a pixel are drawn as one, so a
 * day of 2-second files is a few rects, not thousands.
 */
export function spanRects(spans: readonly { start: number; end: number }[], view: View, width: number): Rect[] {
  const pxMs = spanOf(view) / Math.max(1, width)
  const merged = mergeSpans(spans)
  const joined: { start: number; end: number }[] = []
  for (const s of merged) {
    const last = joined[joined.length - 1]
    if (last && s.start - last.end < pxMs) last.end = Math.max(last.end, s.end)
    else joined.push({ ...s })
  }
  return joined.map((s) => rectFor(s.start, s.end, view, width, 1)).filter((r): r is Rect => r != null)
}

/**
 * The holes: the parts of the view up to `until` (now; the future is not a
 * gap) that no span covers, at least a pixel wide.
 */
export function gapRects(
  spans: readonly { start: number; end: number }[],
  view: View,
  width: number,
  until: number = view.end,
): Rect[] {
  const end = Math.min(view.end, until)
  if (end <= view.start) return []
  const pxMs = spanOf(view) / Math.max(1, width)
  const out: Rect[] = []
  let t = view.start
  for (const s of mergeSpans(spans)) {
    if (s.end <= t) continue
    if (s.start >= end) break
    if (s.start - t >= pxMs) {
      const r = rectFor(t, s.start, view, width)
      if (r) out.push(r)
    }
    t = Math.max(t, s.end)
    if (t >= end) break
  }
  if (end - t >= pxMs) {
    const r = rectFor(t, end, view, width)
    if (r) out.push(r)
  }
  return out
}

/** An event drawn on the bar. */
export interface Mark extends Rect {
  id: number
}

/** Events as marks at least `minW` px wide; a running event (end `null`) runs to `now`. */
export function eventMarks(
  events: readonly { id: number; start: number; end?: number | null }[],
  view: View,
  width: number,
  now: number = view.end,
  minW = 4,
): Mark[] {
  const out: Mark[] = []
  for (const e of events) {
    const end = e.end ?? Math.max(e.start, now)
    if (end < view.start || e.start > view.end) continue
    const r = rectFor(e.start, Math.max(end, e.start), view, width, minW)
    if (r) {
      // Keep a narrow mark centred on its time, and on the bar.
      if (r.w === minW && timeToX(end, view, width) - timeToX(e.start, view, width) < minW) {
        r.x = clamp(timeToX(e.start, view, width) - minW / 2, 0, Math.max(0, width - minW))
      }
      out.push({ ...r, id: e.id })
    }
  }
  return out
}

/** A cluster drawn on the bar, with its count. */
export interface ClusterMark extends Rect {
  count: number
  /** Where to write the count. */
  cx: number
}

export function clusterMarks(
  clusters: readonly { start: number; end: number; count: number }[],
  view: View,
  width: number,
  minW = 14,
): ClusterMark[] {
  const out: ClusterMark[] = []
  for (const c of clusters) {
    const r = rectFor(c.start, Math.max(c.end, c.start), view, width, 1)
    if (!r) continue
    const mid = r.x + r.w / 2
    const w = Math.max(minW, r.w)
    const x = clamp(mid - w / 2, 0, Math.max(0, width - w))
    out.push({ ...r, x, w, count: c.count, cx: x + w / 2 })
  }
  return out
}

/** The selected range between two instants, in order. */
export function rangeOf(a: number, b: number): View {
  return a <= b ? { start: a, end: b } : { start: b, end: a }
}

/** The last event starting before `t - slackMs`, or `null`. */
export function previousEvent<T extends { start: number }>(events: readonly T[], t: number, slackMs = 2000): T | null {
  let best: T | null = null
  for (const e of events) if (e.start < t - slackMs && (best == null || e.start > best.start)) best = e
  return best
}

/** The first event starting after `t + slackMs`, or `null`. */
export function nextEvent<T extends { start: number }>(events: readonly T[], t: number, slackMs = 1000): T | null {
  let best: T | null = null
  for (const e of events) if (e.start > t + slackMs && (best == null || e.start < best.start)) best = e
  return best
}

/** Whether `t` falls in a recorded span. */
export function isRecorded(spans: readonly { start: number; end: number }[], t: number): boolean {
  return spans.some((s) => t >= s.start && t < s.end)
}

/**
 * The invisible hit area of a mark drawn at `m`: at least `minW` px wide
 * (a finger is about 44 px), centred on the mark and kept on the bar. The
 * drawn mark keeps its own geometry; only where it can be tapped grows.
 */
export function hitRect(m: { x: number; w: number }, width: number, minW = 44): { x: number; w: number } {
  const w = Math.min(Math.max(m.w, minW), Math.max(width, m.w))
  return { x: clamp(m.x + m.w / 2 - w / 2, 0, Math.max(0, width - w)), w }
}

/** How a tick's label sits on its tick: centred, or starting / ending there at the edges. */
export type TickAlign = 'center' | 'start' | 'end'

export interface TickLabel extends Tick {
  align: TickAlign
  /** The label would not fit (or would overlap the previous one): draw the tick only. */
  hidden: boolean
}

/** The estimated width of a tick label in px (tabular digits at the axis' font size). */
export function labelWidth(label: string, charPx = 7.5): number {
  return Math.ceil(label.length * charPx)
}

/**
 * Places the labels of `list` inside [0, width]: centred on their tick where
 * that fits, else starting (left edge) or ending (right edge) at the tick so
 * the tick still marks the labelled instant; a label that would still leave
 * the bar, or overlap the previous label by less than `gap` px, is hidden.
 */
export function placeTickLabels(list: readonly Tick[], width: number, charPx = 7.5, gap = 6): TickLabel[] {
  let lastRight = -Infinity
  return list.map((t) => {
    const w = labelWidth(t.label, t.major ? charPx * 1.1 : charPx)
    let align: TickAlign = 'center'
    let left = t.x - w / 2
    if (left < 0) {
      align = 'start'
      left = t.x
    } else if (left + w > width) {
      align = 'end'
      left = t.x - w
    }
    const hidden = left < 0 || left + w > width || left < lastRight + gap
    if (!hidden) lastRight = left + w
    return { ...t, align, hidden }
  })
}

/** The zoom a timeline opens at when its footage tells nothing better. */
export const DEFAULT_SPAN = HOUR

/**
 * The window span a timeline opens at, from the footage of the last day up to
 * `now` (of every camera shown). When the recordings fill at least `fill` of
 * the default hour, the hour is kept. Otherwise the footage there is a sliver
 * (a short clip, a camera recording on events only): the smallest zoom level
 * whose window, ending at now, holds the whole newest recorded span, so that
 * span is readable (40 s of footage a minute ago opens at 10 min). No footage
 * at all keeps the hour.
 */
export function openingSpan(
  spans: readonly { start: number; end: number }[],
  now: number,
  fill = 0.25,
  levels: readonly number[] = ZOOMS.map((z) => z.span),
): number {
  const merged = mergeSpans(spans.filter((s) => s.start < now)).map((s) => ({ start: s.start, end: Math.min(s.end, now) }))
  const newest = merged[merged.length - 1]
  if (!newest) return DEFAULT_SPAN
  let covered = 0
  for (const s of merged) covered += Math.max(0, s.end - Math.max(s.start, now - DEFAULT_SPAN))
  if (covered >= DEFAULT_SPAN * fill) return DEFAULT_SPAN
  const sorted = [...levels].sort((a, b) => a - b)
  // The window ends a little past now (5 %): the newest span must start
  // inside its first 95 %, with a margin so it is not pressed to the edge.
  return sorted.find((z) => newest.start >= now - z * 0.9) ?? sorted[sorted.length - 1]!
}

/**
 * Where the cursor opens: a minute before now, unless the newest footage ended
 * earlier. Then at the start of a short clip (under 2 min: the server widens
 * a clip shorter than its resolution, so only its start is sure), else 30 s
 * before the end of a long one, so "Play" plays something.
 */
export function openingCursor(spans: readonly { start: number; end: number }[], now: number): number {
  const t = now - MINUTE
  const merged = mergeSpans(spans.filter((s) => s.start < now))
  const newest = merged[merged.length - 1]
  if (!newest || newest.end >= t) return t
  return newest.end - newest.start < 2 * MINUTE ? newest.start : newest.end - 30 * SECOND
}
