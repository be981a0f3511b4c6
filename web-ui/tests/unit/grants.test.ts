import { describe, expect, it } from 'vitest'
import {
  buildMatrix,
  cellKind,
  diffCell,
  diffMatrix,
  isLevel,
  levelOf,
  withCell,
  type MatrixCamera,
  type MatrixUser,
} from '../../src/lib/grants'

const users: MatrixUser[] = [
  { id: 3, username: 'carol', role: 'viewer' },
  { id: 1, username: 'root', role: 'admin' },
  { id: 2, username: 'bob', role: 'operator' },
]
const cameras: MatrixCamera[] = [
  { id: 20, name: 'Yard', owner_id: 2 },
  { id: 10, name: 'Door', owner_id: 1 },
]
const grants = new Map([
  [10, [{ user_id: 3, username: 'carol', permission: 'view' as const }, { user_id: 99, username: 'gone', permission: 'control' as const }]],
  [20, [{ user_id: 3, username: 'carol', permission: 'playback' as const }]],
])

describe('grants matrix', () => {
  it('builds rows and columns in id order, cells from the grants', () => {
    const m = buildMatrix(users, cameras, grants)
    expect(m.users.map((u) => u.id)).toEqual([1, 2, 3])
    expect(m.cameras.map((c) => c.id)).toEqual([10, 20])
    expect(levelOf(m, 3, 10)).toBe('view')
    expect(levelOf(m, 3, 20)).toBe('playback')
    expect(levelOf(m, 2, 10)).toBe('none')
    // A grant of a user not in the list is left out.
    expect(Object.keys(m.cells).sort()).toEqual(['3:10', '3:20'])
  })

  it('knows which cells are fixed by role or ownership', () => {
    expect(cellKind(users[1]!, cameras[0]!)).toBe('admin')
    expect(cellKind(users[2]!, cameras[0]!)).toBe('owner')
    expect(cellKind(users[2]!, cameras[1]!)).toBe('grant')
    expect(cellKind(users[0]!, { id: 5, name: 'x' })).toBe('grant')
  })

  it('turns a cell change into one call', () => {
    expect(diffCell(3, 10, 'view', 'view')).toBeNull()
    expect(diffCell(3, 10, 'none', 'view')).toEqual({ method: 'POST', cameraId: 10, userId: 3, permission: 'view' })
    expect(diffCell(3, 10, 'view', 'control')).toEqual({ method: 'POST', cameraId: 10, userId: 3, permission: 'control' })
    expect(diffCell(3, 10, 'playback', 'none')).toEqual({ method: 'DELETE', cameraId: 10, userId: 3 })
    expect(diffCell(3, 10, 'none', 'none')).toBeNull()
  })

  it('diffs two matrices into the calls, leaving the first as it was', () => {
    const a = buildMatrix(users, cameras, grants)
    let b = withCell(a, 3, 10, 'none')
    b = withCell(b, 2, 10, 'control')
    b = withCell(b, 3, 20, 'playback') // unchanged
    expect(levelOf(a, 3, 10)).toBe('view')
    expect(b.cells['3:10']).toBeUndefined()
    expect(diffMatrix(a, b)).toEqual([
      { method: 'POST', cameraId: 10, userId: 2, permission: 'control' },
      { method: 'DELETE', cameraId: 10, userId: 3 },
    ])
    expect(diffMatrix(a, a)).toEqual([])
  })

  it('accepts only real levels from a select', () => {
    expect(isLevel('none')).toBe(true)
    expect(isLevel('control')).toBe(true)
    expect(isLevel('admin')).toBe(false)
    expect(isLevel(undefined)).toBe(false)
  })
})
