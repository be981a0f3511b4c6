// The grants matrix of the Users page, as plain data: rows are users, columns
// cameras, a cell is what the user holds on the camera. Changing a cell turns
// into the one call that makes the server agree (`POST` a grant, or `DELETE`
// it). No Vue, no fetch: tested on its own.

import type { Grant, Permission, Role } from '../api/manage'

/** A cell's level: `none` is no grant. */
export type Level = 'none' | Permission

/** The levels a select offers, lowest first. */
export const LEVELS: readonly Level[] = ['none', 'view', 'playback', 'control']

/** Plain words for a level. */
export const LEVEL_LABELS: Record<Level, string> = {
  none: 'No access',
  view: 'Watch live',
  playback: 'Live + recordings',
  control: 'Full control',
}

export interface MatrixUser {
  id: number
  username: string
  role: Role
}

export interface MatrixCamera {
  id: number
  name: string
  /** Its owner holds `control` whatever the grants say. */
  owner_id?: number | null
}

/**
 * Why a cell is not a choice: admins see every camera, owners control theirs.
 * `grant` cells are the ones a select edits.
 */
export type CellKind = 'admin' | 'owner' | 'grant'

export interface Matrix {
  users: MatrixUser[]
  cameras: MatrixCamera[]
  /** `userId:cameraId` → level; a missing key is `none`. */
  cells: Readonly<Record<string, Level>>
}

/** One call that applies a change. */
export type GrantCall =
  | { method: 'POST'; cameraId: number; userId: number; permission: Permission }
  | { method: 'DELETE'; cameraId: number; userId: number }

export function cellKey(userId: number, cameraId: number): string {
  return `${userId}:${cameraId}`
}

/** Builds the matrix from the users, the cameras and each camera's grants. */
export function buildMatrix(
  users: readonly MatrixUser[],
  cameras: readonly MatrixCamera[],
  grants: ReadonlyMap<number, readonly Grant[]>,
): Matrix {
  const known = new Set(users.map((u) => u.id))
  const cells: Record<string, Level> = {}
  for (const c of cameras) {
    for (const g of grants.get(c.id) ?? []) {
      if (known.has(g.user_id)) cells[cellKey(g.user_id, c.id)] = g.permission
    }
  }
  const byId = (a: { id: number }, b: { id: number }) => a.id - b.id
  return { users: [...users].sort(byId), cameras: [...cameras].sort(byId), cells }
}

/** What the user holds on the camera by grant (`none` when nothing). */
export function levelOf(m: Matrix, userId: number, cameraId: number): Level {
  return m.cells[cellKey(userId, cameraId)] ?? 'none'
}

/** Whether the cell is a grant to edit, or fixed by the role or ownership. */
export function cellKind(user: MatrixUser, camera: MatrixCamera): CellKind {
  if (user.role === 'admin') return 'admin'
  if (camera.owner_id != null && camera.owner_id === user.id) return 'owner'
  return 'grant'
}

/** The matrix with one cell changed (the input is left as it was). */
export function withCell(m: Matrix, userId: number, cameraId: number, level: Level): Matrix {
  const cells = { ...m.cells }
  const k = cellKey(userId, cameraId)
  if (level === 'none') delete cells[k]
  else cells[k] = level
  return { ...m, cells }
}

/** The call that takes one cell from `from` to `to`; `null` when nothing changes. */
export function diffCell(userId: number, cameraId: number, from: Level, to: Level): GrantCall | null {
  if (from === to) return null
  if (to === 'none') return { method: 'DELETE', cameraId, userId }
  // A POST replaces an earlier grant, so a change of level is one call.
  return { method: 'POST', cameraId, userId, permission: to }
}

/** Every call that takes `before` to `after`, by camera then user. */
export function diffMatrix(before: Matrix, after: Matrix): GrantCall[] {
  const keys = new Set([...Object.keys(before.cells), ...Object.keys(after.cells)])
  const out: GrantCall[] = []
  for (const k of keys) {
    const [u, c] = k.split(':').map(Number) as [number, number]
    const call = diffCell(u, c, before.cells[k] ?? 'none', after.cells[k] ?? 'none')
    if (call) out.push(call)
  }
  return out.sort((a, b) => a.cameraId - b.cameraId || a.userId - b.userId)
}

/** Whether a value from a select is a level. */
export function isLevel(v: unknown): v is Level {
  return typeof v === 'string' && (LEVELS as readonly string[]).includes(v)
}
