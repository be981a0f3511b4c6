import { describe, expect, it } from 'vitest'
import {
  cellCentre,
  cellRect,
  clamp01,
  freeName,
  insidePolygon,
  movePoint,
  nearPoint,
  normalise,
  pixelCentre,
  removePoint,
  removeZone,
  svgPoints,
  validateZone,
  validateZones,
  watchedAt,
  watchedPixels,
  type ZoneLike,
} from '../../src/lib/zones'

type P = [number, number]

// The expected values below were worked out by hand from the detector's rule
// (crates/motion/src/detector.rs `inside`): for each edge (i, j = i - 1)
// whose ends lie on different sides of the horizontal through y (`yi > y`
// differs from `yj > y`), the point toggles when x < the edge's x at y.
// So a point on a left or top edge is inside, on a right or bottom edge
// outside. (The same table, run through the detector's function copied into
// a Rust program, gave the same answers.)

const square: P[] = [
  [0.2, 0.2],
  [0.8, 0.2],
  [0.8, 0.8],
  [0.2, 0.8],
]

// A "U": two arms joined at the bottom; the notch x 0.3..0.7, y 0.1..0.6 is outside.
const u: P[] = [
  [0.1, 0.1],
  [0.3, 0.1],
  [0.3, 0.6],
  [0.7, 0.6],
  [0.7, 0.1],
  [0.9, 0.1],
  [0.9, 0.9],
  [0.1, 0.9],
]

const triangle: P[] = [
  [0, 0],
  [1, 0],
  [0, 1],
]

describe('insidePolygon (the detector rule)', () => {
  const table: Array<[string, P[], number, number, boolean]> = [
    ['square: centre', square, 0.5, 0.5, true],
    ['square: left of it', square, 0.1, 0.5, false],
    ['square: right of it', square, 0.9, 0.5, false],
    ['square: above', square, 0.5, 0.1, false],
    ['square: below', square, 0.5, 0.9, false],
    // Edges: the crossing at x = 0.2 is not passed (0.2 < 0.2 is false), the one at 0.8 is.
    ['square: on the left edge', square, 0.2, 0.5, true],
    ['square: on the right edge', square, 0.8, 0.5, false],
    // y = 0.2: the vertical edges straddle it (0.2 > 0.2 false, 0.8 > 0.2 true).
    ['square: on the top edge', square, 0.5, 0.2, true],
    // y = 0.8: no edge straddles it (0.8 > 0.8 is false for both ends).
    ['square: on the bottom edge', square, 0.5, 0.8, false],
    ['square: top-left corner', square, 0.2, 0.2, true],
    ['square: top-right corner', square, 0.8, 0.2, false],
    ['square: bottom-left corner', square, 0.2, 0.8, false],
    ['square: bottom-right corner', square, 0.8, 0.8, false],
    ['U: in the notch', u, 0.5, 0.3, false],
    ['U: left arm', u, 0.2, 0.3, true],
    ['U: right arm', u, 0.8, 0.3, true],
    ['U: the bottom', u, 0.5, 0.8, true],
    ['U: above the notch, between the arms', u, 0.5, 0.05, false],
    // The notch's floor (y = 0.6) has the polygon below it: only the edge at x 0.9 is crossed.
    ['U: on the floor of the notch', u, 0.5, 0.6, true],
    // x = 0.3 is the left arm's right edge: crossings at 0.7 and 0.9 are passed, twice = outside.
    ['U: on the left arm’s inner edge', u, 0.3, 0.3, false],
    // x = 0.7 is the right arm's left edge: only 0.9 is passed.
    ['U: on the right arm’s inner edge', u, 0.7, 0.3, true],
    ['triangle: inside', triangle, 0.25, 0.25, true],
    ['triangle: beyond the long side', triangle, 0.6, 0.6, false],
    // On the long side: the edge's x at y 0.5 is (1 - 0) * (0.5 - 1) / (0 - 1) + 0 = 0.5, and 0.5 < 0.5 is false.
    ['triangle: on the long side', triangle, 0.5, 0.5, false],
    // x = 0 is a left edge: its crossing (0 < 0) is not passed, the long side's (0 < 0.5) is.
    ['triangle: on the left side', triangle, 0, 0.5, true],
  ]
  it.each(table)('%s', (_what, poly, x, y, want) => {
    expect(insidePolygon(poly, x, y)).toBe(want)
  })

  // Points on a sloping edge, where the answer hangs on rounding: the
  // detector computes in 32-bit floats, so double precision would get every
  // one of these wrong. Each answer was produced by the detector's `inside`
  // (copied verbatim into a Rust program, the numbers parsed as f32).
  const rounding: Array<[P[], number, number, boolean]> = [
    [[[0.6987, 0.7303], [0.1855, 0.7312], [0.9176, 0.5485]], 0.4136, 0.7308, true],
    [[[0.9378, 0.3877], [0.2118, 0.3875], [0.9162, 0.3272]], 0.5748, 0.3876, false],
    [[[0.2083, 0.1687], [0.9566, 0.1699], [0.0921, 0.2335]], 0.2083, 0.1687, false],
    [[[0.5045, 0.6842], [0.8309, 0.7251], [0.8038, 0.5099]], 0.7902, 0.72, false],
    [[[0.5309, 0.4541], [0.9339, 0.4355], [0.9125, 0.1837]], 0.7259, 0.4451, false],
    [[[0.9098, 0.0727], [0.8622, 0.0739], [0.4404, 0.0597]], 0.886, 0.0733, true],
  ]
  it.each(rounding)('on a sloping edge, in 32-bit floats as the detector: %j at (%f, %f)', (poly, x, y, want) => {
    expect(insidePolygon(poly, x, y)).toBe(want)
  })

  it('an empty or degenerate polygon holds nothing', () => {
    expect(insidePolygon([], 0.5, 0.5)).toBe(false)
    expect(
      insidePolygon(
        [
          [0.1, 0.5],
          [0.9, 0.5],
        ],
        0.5,
        0.5,
      ),
    ).toBe(false)
  })

  it('the order of the corners does not matter', () => {
    const reversed = [...u].reverse()
    for (const [x, y] of [
      [0.5, 0.3],
      [0.2, 0.3],
      [0.5, 0.8],
      [0.95, 0.5],
    ] as P[]) {
      expect(insidePolygon(reversed, x, y)).toBe(insidePolygon(u, x, y))
    }
  })
})

describe('watchedAt (the detector mask)', () => {
  // The zones of the detector's own tests.
  const leftHalf: ZoneLike = {
    name: 'left',
    kind: 'exclude',
    points: [
      [0, 0],
      [0.6, 0],
      [0.6, 1],
      [0, 1],
    ],
  }
  const right: ZoneLike = {
    name: 'right',
    kind: 'include',
    points: [
      [0.7, 0],
      [1, 0],
      [1, 1],
      [0.7, 1],
    ],
  }

  it('no zones: everything is watched', () => {
    expect(watchedAt([], 0.1, 0.9)).toBe(true)
  })

  it('an exclude zone alone leaves the rest watched', () => {
    expect(watchedAt([leftHalf], 0.3, 0.5)).toBe(false)
    expect(watchedAt([leftHalf], 0.65, 0.5)).toBe(true)
    // On the exclude zone's right edge: not inside it, so watched.
    expect(watchedAt([leftHalf], 0.6, 0.5)).toBe(true)
  })

  it('with an include zone only it is watched, minus the excludes', () => {
    expect(watchedAt([leftHalf, right], 0.3, 0.5)).toBe(false)
    expect(watchedAt([leftHalf, right], 0.65, 0.5)).toBe(false)
    expect(watchedAt([leftHalf, right], 0.85, 0.5)).toBe(true)
    expect(watchedAt([leftHalf, right], 0.7, 0.5)).toBe(true)
    expect(watchedAt([leftHalf, right], 1, 0.5)).toBe(false)
  })

  it('an exclude zone wins inside an include zone', () => {
    const hole: ZoneLike = {
      name: 'tree',
      kind: 'exclude',
      points: [
        [0.8, 0.4],
        [0.9, 0.4],
        [0.9, 0.6],
        [0.8, 0.6],
      ],
    }
    expect(watchedAt([right, hole], 0.85, 0.5)).toBe(false)
    expect(watchedAt([right, hole], 0.75, 0.5)).toBe(true)
  })

  it('a zone without a kind is an include zone, as the server reads it', () => {
    const z: ZoneLike = { name: 'z', points: square }
    expect(watchedAt([z], 0.1, 0.1)).toBe(false)
    expect(watchedAt([z], 0.5, 0.5)).toBe(true)
  })

  it('counts pixels by their centres, (x + 0.5) / w', () => {
    expect(pixelCentre(0, 10)).toBeCloseTo(0.05, 6)
    expect(pixelCentre(9, 10)).toBeCloseTo(0.95, 6)
    // Centres 0.05 … 0.55 are left of 0.6: six columns of ten are excluded.
    expect(watchedPixels([leftHalf], 10, 10)).toBe(40)
    // Centres 0.75 … 0.95 are in the right zone: three columns.
    expect(watchedPixels([leftHalf, right], 10, 10)).toBe(30)
    // The detector test's "right half" (0.5 … 1): on 4 columns, centres 0.625 and 0.875.
    const half: ZoneLike = {
      name: 'door',
      kind: 'include',
      points: [
        [0.5, 0],
        [1, 0],
        [1, 1],
        [0.5, 1],
      ],
    }
    expect(watchedPixels([half], 4, 3)).toBe(6)
    expect(watchedPixels([], 7, 5)).toBe(35)
  })
})

describe('normalise', () => {
  it('divides by the size, clamps to 0..1 and rounds to 4 decimals', () => {
    expect(normalise(100, 50, 400, 200)).toEqual([0.25, 0.25])
    expect(normalise(1, 2, 3, 7)).toEqual([0.3333, 0.2857])
    expect(normalise(-5, 250, 400, 200)).toEqual([0, 1])
    expect(normalise(401, -0.0001, 400, 200)).toEqual([1, 0])
    expect(normalise(10, 10, 0, 0)).toEqual([0, 0])
  })
  it('never gives -0 or NaN', () => {
    const [x, y] = normalise(-0.00001, Number.NaN, 100, 100)
    expect(Object.is(x, -0)).toBe(false)
    expect(y).toBe(0)
    expect(clamp01(Number.NaN)).toBe(0)
  })
})

describe('grid cells', () => {
  it('finds the centre of a cell, row-major', () => {
    expect(cellCentre(0, 8, 6)).toEqual([0.0625, 1 / 12])
    expect(cellCentre(7, 8, 6)).toEqual([0.9375, 1 / 12])
    expect(cellCentre(8, 8, 6)).toEqual([0.0625, 0.25])
    expect(cellCentre(47, 8, 6)).toEqual([0.9375, 11 / 12])
  })
  it('gives a cell as a rectangle, null outside the grid', () => {
    expect(cellRect(9, 8, 6)).toEqual({ x: 0.125, y: 1 / 6, w: 0.125, h: 1 / 6 })
    expect(cellRect(48, 8, 6)).toBeNull()
    expect(cellRect(-1, 8, 6)).toBeNull()
    expect(cellRect(1.5, 8, 6)).toBeNull()
    expect(cellRect(0, 0, 6)).toBeNull()
  })
})

describe('validateZone', () => {
  const ok: ZoneLike = { name: 'Gate', kind: 'include', points: square }
  it('accepts a good zone', () => {
    expect(validateZone(ok)).toEqual([])
  })
  it('needs three corners', () => {
    expect(validateZone({ ...ok, points: square.slice(0, 2) })).toEqual(['The zone needs at least 3 corners; it has 2.'])
  })
  it('needs every corner inside the picture', () => {
    expect(validateZone({ ...ok, points: [[0, 0], [1.2, 0], [0.5, 0.5]] })).toEqual(['Corner 2 is outside the picture.'])
    expect(validateZone({ ...ok, points: [[0, 0], [1, 0], [0.5, -0.01]] })).toEqual(['Corner 3 is outside the picture.'])
    expect(validateZone({ ...ok, points: [[0, 0], [1, 0], [Number.NaN, 0.5]] })).toEqual(['Corner 3 is outside the picture.'])
    expect(validateZone({ ...ok, points: [[0, 0], [1, 1], [0, 1]] })).toEqual([])
  })
  it('needs a name of 1 to 64 characters, not taken', () => {
    expect(validateZone({ ...ok, name: '  ' })).toEqual(['The zone needs a name.'])
    expect(validateZone({ ...ok, name: 'x'.repeat(64) })).toEqual([])
    expect(validateZone({ ...ok, name: 'x'.repeat(65) })).toEqual(['The name is too long: at most 64 characters.'])
    expect(validateZone(ok, [{ ...ok, name: 'Gate ' }])).toEqual(['Another zone is already called "Gate".'])
  })
  it('checks each zone against the others', () => {
    const zs = [ok, { ...ok }, { ...ok, name: 'Road', points: [] }]
    const errs = validateZones(zs)
    expect(errs[0]).toEqual(['Another zone is already called "Gate".'])
    expect(errs[1]).toEqual(['Another zone is already called "Gate".'])
    expect(errs[2]).toEqual(['The zone needs at least 3 corners; it has 0.'])
  })
})

describe('editing helpers', () => {
  const z: ZoneLike = { name: 'a', kind: 'exclude', points: square }
  it('moves a corner, clamped and rounded, without changing the zone', () => {
    const m = movePoint(z, 1, [1.3, 0.123456])
    expect(m.points[1]).toEqual([1, 0.1235])
    expect(m.points[0]).toEqual([0.2, 0.2])
    expect(m.kind).toBe('exclude')
    expect(z.points[1]).toEqual([0.8, 0.2])
    expect(movePoint(z, 9, [0, 0])).toBe(z)
  })
  it('removes a corner, but keeps three', () => {
    const r = removePoint(z, 0)
    expect(r.points).toEqual(square.slice(1))
    expect(removePoint(r, 0)).toBe(r)
  })
  it('removes a zone', () => {
    expect(removeZone(['a', 'b', 'c'], 1)).toEqual(['a', 'c'])
  })
  it('finds a free name', () => {
    expect(freeName([], 'Zone')).toBe('Zone')
    expect(freeName([{ name: 'Zone', points: [] }, { name: 'Zone 2', points: [] }], 'Zone')).toBe('Zone 3')
  })
  it('tells whether a click is on a corner, in pixels', () => {
    // 0.01 of 1000 px is 10 px; of 100 px, 1 px.
    expect(nearPoint([0.51, 0.5], [0.5, 0.5], 14, 1000, 1000)).toBe(true)
    expect(nearPoint([0.52, 0.5], [0.5, 0.5], 14, 1000, 1000)).toBe(false)
    expect(nearPoint([0.5, 0.6], [0.5, 0.5], 14, 1000, 100)).toBe(true)
  })
  it('writes SVG points', () => {
    expect(svgPoints(triangle)).toBe('0,0 1,0 0,1')
  })
})
