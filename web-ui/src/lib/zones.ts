// The motion zone editor's geometry: pure functions, no DOM.
//
// Zones are polygons in normalised picture coordinates (0..1, x right, y
// down), as `[[cameras.motion.zones]]` and `PUT /api/cameras/{id}/motion`
// hold them. Whether a spot is watched follows the detector exactly
// (crates/motion/src/detector.rs): `inside` is its even-odd ray cast, done in
// 32-bit floats as the detector does, and `watchedAt` its mask rule (a pixel
// counts when its centre `(x + 0.5) / w` is in no exclude zone and, when
// there are include zones, in one of them).

/** A corner: `[x, y]`, each 0..1. */
export type Point = readonly [number, number]

/** Include (motion here counts) or exclude (never counts, even inside an include zone). */
export type ZoneKind = 'include' | 'exclude'

/**
 * A zone as the API holds it. `kind` may be absent (the server's default is
 * `include`); points are read as `[x, y]` pairs.
 */
export interface ZoneLike {
  name: string
  kind?: ZoneKind
  points: readonly (readonly number[])[]
}

/** Zone names are 1 to 64 characters. */
export const MAX_ZONE_NAME = 64

/** A polygon needs at least this many corners. */
export const MIN_POINTS = 3

const f32 = Math.fround

/** `v` within 0..1 (NaN becomes 0). */
export function clamp01(v: number): number {
  if (!(v > 0)) return 0
  return v > 1 ? 1 : v
}

/** `v` rounded to 4 decimals (a tenth of a pixel on a 1280 px picture is plenty). */
export function round4(v: number): number {
  const r = Math.round(v * 10_000) / 10_000
  return r === 0 ? 0 : r // no -0
}

/**
 * A position in pixels on a picture `width` × `height` (such as a pointer's
 * offset in the drawn image) as normalised `[x, y]`, clamped to 0..1 and
 * rounded to 4 decimals.
 */
export function normalise(px: number, py: number, width: number, height: number): [number, number] {
  const x = width > 0 ? px / width : 0
  const y = height > 0 ? py / height : 0
  return [round4(clamp01(x)), round4(clamp01(y))]
}

function xy(p: readonly number[] | undefined): [number, number] {
  return [p?.[0] ?? Number.NaN, p?.[1] ?? Number.NaN]
}

/**
 * Even-odd point-in-polygon, the detector's `inside`:
 * `if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside`,
 * every value and every step in 32-bit floats as in Rust, so a point on an
 * edge lands on the same side as there. An empty polygon contains nothing.
 */
export function insidePolygon(points: readonly (readonly number[])[], x: number, y: number): boolean {
  const n = points.length
  if (n === 0) return false
  const px = f32(x)
  const py = f32(y)
  let inside = false
  let j = n - 1
  for (let i = 0; i < n; i++) {
    const [xi0, yi0] = xy(points[i])
    const [xj0, yj0] = xy(points[j])
    const xi = f32(xi0)
    const yi = f32(yi0)
    const xj = f32(xj0)
    const yj = f32(yj0)
    if (yi > py !== yj > py) {
      const cross = f32(f32(f32(f32(xj - xi) * f32(py - yi)) / f32(yj - yi)) + xi)
      if (px < cross) inside = !inside
    }
    j = i
  }
  return inside
}

function kindOf(z: ZoneLike): ZoneKind {
  return z.kind === 'exclude' ? 'exclude' : 'include'
}

/**
 * Whether the detector watches the spot `(x, y)`: in no exclude zone, and in
 * some include zone when there is one (none: the whole picture is watched).
 */
export function watchedAt(zones: readonly ZoneLike[], x: number, y: number): boolean {
  let includes = 0
  let inInclude = false
  for (const z of zones) {
    const inside = insidePolygon(z.points, x, y)
    if (kindOf(z) === 'exclude') {
      if (inside) return false
    } else {
      includes++
      if (inside) inInclude = true
    }
  }
  return includes === 0 || inInclude
}

/** The detector's centre of pixel `i` of `n` along one side: `(i + 0.5) / n` in 32-bit floats. */
export function pixelCentre(i: number, n: number): number {
  return f32(f32(i + 0.5) / f32(n))
}

/**
 * How many pixels of a `width` × `height` analysis picture the detector
 * watches with these zones (its mask in `resize`).
 */
export function watchedPixels(zones: readonly ZoneLike[], width: number, height: number): number {
  let n = 0
  for (let y = 0; y < height; y++) {
    const fy = pixelCentre(y, height)
    for (let x = 0; x < width; x++) {
      if (watchedAt(zones, pixelCentre(x, width), fy)) n++
    }
  }
  return n
}

/** The centre of cell `index` (row-major) of a `cols` × `rows` grid, normalised. */
export function cellCentre(index: number, cols: number, rows: number): [number, number] {
  const col = index % cols
  const row = Math.floor(index / cols)
  return [(col + 0.5) / cols, (row + 0.5) / rows]
}

/** Cell `index` (row-major) of a `cols` × `rows` grid as a normalised rectangle; `null` when outside the grid. */
export function cellRect(index: number, cols: number, rows: number): { x: number; y: number; w: number; h: number } | null {
  if (!Number.isInteger(index) || !(cols > 0) || !(rows > 0) || index < 0 || index >= cols * rows) return null
  const col = index % cols
  const row = Math.floor(index / cols)
  return { x: col / cols, y: row / rows, w: 1 / cols, h: 1 / rows }
}

/**
 * What is wrong with a zone, in plain words; empty when nothing. `others` are
 * the other zones of the camera (for duplicate names).
 */
export function validateZone(zone: ZoneLike, others: readonly ZoneLike[] = []): string[] {
  const errors: string[] = []
  const name = zone.name.trim()
  if (name === '') errors.push('The zone needs a name.')
  else if ([...zone.name].length > MAX_ZONE_NAME) errors.push(`The name is too long: at most ${MAX_ZONE_NAME} characters.`)
  else if (others.some((o) => o.name.trim() === name)) errors.push(`Another zone is already called "${name}".`)
  if (zone.points.length < MIN_POINTS) {
    errors.push(`The zone needs at least ${MIN_POINTS} corners; it has ${zone.points.length}.`)
  }
  const outside = zone.points.findIndex((p) => {
    const [x, y] = xy(p)
    return !(x >= 0 && x <= 1 && y >= 0 && y <= 1)
  })
  if (outside >= 0) errors.push(`Corner ${outside + 1} is outside the picture.`)
  return errors
}

/** `validateZone` for each zone, against the others. */
export function validateZones(zones: readonly ZoneLike[]): string[][] {
  return zones.map((z, i) => validateZone(z, zones.filter((_, k) => k !== i)))
}

/** The zone with corner `index` moved to `to` (clamped to the picture, rounded); the zone itself is not changed. */
export function movePoint<Z extends ZoneLike>(zone: Z, index: number, to: readonly number[]): Z {
  if (index < 0 || index >= zone.points.length) return zone
  const [x, y] = xy(to)
  const p: [number, number] = [round4(clamp01(x)), round4(clamp01(y))]
  return { ...zone, points: zone.points.map((q, i) => (i === index ? p : [...q])) }
}

/** The zone without corner `index`; unchanged when it would be left with fewer than 3. */
export function removePoint<Z extends ZoneLike>(zone: Z, index: number): Z {
  if (zone.points.length <= MIN_POINTS || index < 0 || index >= zone.points.length) return zone
  return { ...zone, points: zone.points.filter((_, i) => i !== index).map((q) => [...q]) }
}

/** The zones without the one at `index`. */
export function removeZone<Z>(zones: readonly Z[], index: number): Z[] {
  return zones.filter((_, i) => i !== index)
}

/** A name not yet taken: `Driveway`, `Driveway 2`, `Driveway 3`… */
export function freeName(zones: readonly ZoneLike[], base: string): string {
  const taken = new Set(zones.map((z) => z.name.trim()))
  if (!taken.has(base)) return base
  for (let i = 2; ; i++) {
    const n = `${base} ${i}`
    if (!taken.has(n)) return n
  }
}

/**
 * Whether a click at normalised `p` is on the normalised point `q`: within
 * `tolerancePx` pixels on a picture drawn `width` × `height`.
 */
export function nearPoint(p: readonly number[], q: readonly number[], tolerancePx: number, width: number, height: number): boolean {
  const [px, py] = xy(p)
  const [qx, qy] = xy(q)
  const dx = (px - qx) * width
  const dy = (py - qy) * height
  return dx * dx + dy * dy <= tolerancePx * tolerancePx
}

/** A polygon as the `points` attribute of an SVG `<polygon>` / `<polyline>`. */
export function svgPoints(points: readonly (readonly number[])[]): string {
  return points.map((p) => `${p[0] ?? 0},${p[1] ?? 0}`).join(' ')
}
