// Sparklines for the System page: a series of samples as one SVG path, and a
// state strip as coloured segments. Pure functions of their input.

/** One point: when, and the value (`null`: no value then). */
export interface SparkPoint {
  t: number
  v: number | null
}

export interface SparkOptions {
  width: number
  height: number
  /** The time at the left edge; defaults to the first sample's. */
  start?: number
  /** The time at the right edge; defaults to the last sample's. */
  end?: number
  /** The value at the top; defaults to the largest sample (at least `minMax`). */
  max?: number
  /** The smallest top, so a flat low line stays low. Default 1. */
  minMax?: number
  /** Samples further apart than this break the line (a gap). Default 25 s. */
  gapMs?: number
  /** Inset from the edges, so the stroke is not cut. Default 1. */
  pad?: number
}

const round = (n: number) => Math.round(n * 10) / 10

/** The largest finite value, or `null` when none. */
export function sparkMax(points: readonly SparkPoint[]): number | null {
  let m: number | null = null
  for (const p of points) if (p.v != null && Number.isFinite(p.v)) m = m == null ? p.v : Math.max(m, p.v)
  return m
}

/**
 * The `d` of an SVG path through the points: `M` starts a run, `L` continues
 * it; a missing value or a gap longer than `gapMs` starts a new run. A run of
 * one point is drawn as a short dash so it shows. Empty when nothing to draw.
 */
export function sparkPath(points: readonly SparkPoint[], o: SparkOptions): string {
  const pts = points.filter((p) => Number.isFinite(p.t)).slice().sort((a, b) => a.t - b.t)
  if (pts.length === 0) return ''
  const pad = o.pad ?? 1
  const gap = o.gapMs ?? 25_000
  const start = o.start ?? pts[0]!.t
  const end = o.end ?? pts[pts.length - 1]!.t
  const top = o.max ?? Math.max(o.minMax ?? 1, sparkMax(pts) ?? 0)
  const w = Math.max(0, o.width - 2 * pad)
  const h = Math.max(0, o.height - 2 * pad)
  const span = end - start
  const x = (t: number) => pad + (span > 0 ? ((t - start) / span) * w : w)
  const y = (v: number) => pad + h - (top > 0 ? (Math.min(Math.max(v, 0), top) / top) * h : 0)

  const runs: Array<Array<[number, number]>> = []
  let run: Array<[number, number]> = []
  let lastT: number | null = null
  for (const p of pts) {
    if (p.t < start || p.t > end) continue
    const ok = p.v != null && Number.isFinite(p.v)
    if (!ok || (lastT != null && p.t - lastT > gap)) {
      if (run.length) runs.push(run)
      run = []
    }
    if (ok) {
      run.push([round(x(p.t)), round(y(p.v!))])
      lastT = p.t
    } else {
      lastT = null
    }
  }
  if (run.length) runs.push(run)

  const parts: string[] = []
  for (const r of runs) {
    const [x0, y0] = r[0]!
    if (r.length === 1) {
      const x1 = Math.min(round(x0 + 2), pad + w)
      parts.push(`M${round(x1 - 2)} ${y0}L${x1} ${y0}`)
      continue
    }
    parts.push(`M${x0} ${y0}` + r.slice(1).map(([a, b]) => `L${a} ${b}`).join(''))
  }
  return parts.join('')
}

/** A stretch of one state. */
export interface StateSegment {
  state: string
  start: number
  end: number
}

/**
 * Consecutive samples of the same state as segments; each sample lasts until
 * the next one, the last one `stepMs` (a sample period).
 */
export function stateSegments(samples: readonly { at_ms: number; state: string }[], stepMs = 10_000): StateSegment[] {
  const s = [...samples].sort((a, b) => a.at_ms - b.at_ms)
  const out: StateSegment[] = []
  s.forEach((p, i) => {
    const next = s[i + 1]
    const end = next ? Math.min(next.at_ms, p.at_ms + 2.5 * stepMs) : p.at_ms + stepMs
    const last = out[out.length - 1]
    if (last && last.state === p.state && last.end >= p.at_ms) last.end = end
    else out.push({ state: p.state, start: p.at_ms, end })
  })
  return out
}

/** How a recorder state reads at a glance. */
export type StateTone = 'ok' | 'warn' | 'bad' | 'off'

/** `running` is good, `starting`/`backoff` are on the way, `unhealthy` is bad, `stopped` is off. */
export function stateTone(state: string): StateTone {
  switch (state) {
    case 'running':
      return 'ok'
    case 'starting':
    case 'backoff':
      return 'warn'
    case 'unhealthy':
    case 'failed':
    case 'error':
      return 'bad'
    default:
      return 'off'
  }
}

/** Plain words for a recorder state. */
export function stateLabel(state: string): string {
  switch (state) {
    case 'running':
      return 'Recording'
    case 'starting':
      return 'Starting'
    case 'backoff':
      return 'Retrying'
    case 'unhealthy':
      return 'No picture'
    case 'stopped':
      return 'Stopped'
    default:
      return state ? state[0]!.toUpperCase() + state.slice(1) : 'Unknown'
  }
}
