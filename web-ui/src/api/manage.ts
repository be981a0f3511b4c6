// The management routes of issue 18 (users and grants, the account, the
// system page and the logs), on the shared client.
//
// Every type comes from proto/openapi.yaml (`npm run gen:api`); the calls use
// the shared client.
//
// All times are Unix milliseconds.

import { api as defaultApi, ApiError, errorFromResponse, type ApiClient } from '../lib/api'

import type { components } from './schema'

type Schemas = components['schemas']

export type Role = Schemas['Role']
export type User = Schemas['User']
export type Permission = Schemas['Permission']
/** One user's grant on one camera. */
export type Grant = Schemas['Grant']
export type GrantRequest = Schemas['GrantRequest']
export type CreateUserRequest = Schemas['CreateUserRequest']
export type UpdateUserRequest = Schemas['UpdateUserRequest']
export type PasswordRequest = Schemas['PasswordRequest']
export type TokenResponse = Schemas['TokenResponse']
/** One recorder's status with its last state changes (`GET /api/workers/{id}`). */
export type WorkerDetail = Schemas['WorkerDetail']
/** A recorder's state change. */
export type ChangeItem = Schemas['ChangeItem']
export type RecorderStatus = Schemas['RecorderStatus']
export type StorageReport = Schemas['StorageReport']
export type CameraStorage = Schemas['CameraStorage']
export type TranscodingReport = Schemas['TranscodingReport']

// --- the routes of issue 18 -----------------------------------------------------

/** A log line's level, most severe first. */
export type LogLevel = Schemas['Level']

/** Levels, most severe first: a filter keeps its own and those before it. */
export const LOG_LEVELS: readonly LogLevel[] = ['ERROR', 'WARN', 'INFO', 'DEBUG', 'TRACE']

/** One formatted line of the log ring (`seq` increasing; `camera` when it names one). */
export type LogLine = Schemas['LogLineItem']

/** One 10 s sample of a camera. */
export type SystemSample = Schemas['Sample']

/** A camera's last hour: samples oldest first, at most 360. */
export type SystemCamera = Schemas['CameraSeriesReport']

/** `GET /api/system`: the process, and (reallive-nvr) each camera's last hour. */
export type SystemReport = Schemas['SystemReport']

/** Filters of `GET /api/logs` and its stream. */
export interface LogQuery {
  /** At or above this level; the server's default is INFO. */
  level?: LogLevel
  camera?: number
  /** Only lines with a greater `seq`. */
  since?: number
}

// --- calls ----------------------------------------------------------------------

const enc = encodeURIComponent

function query(params: object): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue
    q.set(k, String(v))
  }
  const s = q.toString()
  return s ? `?${s}` : ''
}

/** The management calls, on the app's client (its token and 401 handling). */
export class ManageApi {
  constructor(private readonly client: ApiClient = defaultApi) {}

  me() {
    return this.client.me()
  }

  users(signal?: AbortSignal) {
    return this.client.request<User[]>('GET', '/api/users', { signal })
  }

  createUser(body: CreateUserRequest) {
    return this.client.request<User>('POST', '/api/users', { body })
  }

  updateUser(id: number, body: UpdateUserRequest) {
    return this.client.request<User>('PUT', `/api/users/${enc(id)}`, { body })
  }

  deleteUser(id: number) {
    return this.client.request<void>('DELETE', `/api/users/${enc(id)}`)
  }

  grants(cameraId: number, signal?: AbortSignal) {
    return this.client.request<Grant[]>('GET', `/api/cameras/${enc(cameraId)}/grants`, { signal })
  }

  setGrant(cameraId: number, userId: number, permission: Permission) {
    const body: GrantRequest = { user_id: userId, permission }
    return this.client.request<Grant>('POST', `/api/cameras/${enc(cameraId)}/grants`, { body })
  }

  removeGrant(cameraId: number, userId: number) {
    return this.client.request<void>('DELETE', `/api/cameras/${enc(cameraId)}/grants/${enc(userId)}`)
  }

  /**
   * Changes the password; every older token stops working, so the new one is
   * kept. A 401 here is a wrong current password: it is thrown, and the
   * session is kept (the shared `request` would sign the user out).
   */
  async changePassword(body: PasswordRequest): Promise<TokenResponse> {
    let res: Response
    try {
      res = await this.client.fetch('/api/auth/password', {
        method: 'POST',
        headers: { ...this.client.authHeaders(), Accept: 'application/json', 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        cache: 'no-store',
      })
    } catch {
      throw new ApiError(0, 'network', 'cannot reach the server')
    }
    if (!res.ok) throw await errorFromResponse(res)
    let r: TokenResponse
    try {
      r = (await res.json()) as TokenResponse
    } catch {
      throw new ApiError(res.status, 'bad_response', 'the server sent an unreadable answer')
    }
    if (typeof r?.token === 'string' && r.token) this.client.setToken(r.token)
    return r
  }

  /** Revokes every token of the user, this one too. */
  logoutAll() {
    return this.client.request<void>('POST', '/api/auth/logout-all')
  }

  system(signal?: AbortSignal) {
    return this.client.request<SystemReport>('GET', '/api/system', { signal })
  }

  worker(cameraId: number, signal?: AbortSignal) {
    return this.client.request<WorkerDetail>('GET', `/api/workers/${enc(cameraId)}`, { signal })
  }

  storage(signal?: AbortSignal) {
    return this.client.request<StorageReport>('GET', '/api/storage', { signal })
  }

  transcoding(signal?: AbortSignal) {
    return this.client.request<TranscodingReport>('GET', '/api/transcoding/status', { signal })
  }

  logs(q: LogQuery = {}, signal?: AbortSignal) {
    return this.client.request<LogLine[]>('GET', `/api/logs${query({ ...q, level: q.level?.toLowerCase() })}`, { signal })
  }

  /** The live log stream (SSE), token in the URL since `EventSource` sends no header. */
  logStreamUrl(q: Omit<LogQuery, 'since'> = {}): string {
    const params: Record<string, string | number> = {}
    if (q.level) params.level = q.level.toLowerCase()
    if (q.camera != null) params.camera = q.camera
    return this.client.mediaUrl('/api/logs/stream', params)
  }
}

/** The app's management calls. */
export const manage = new ManageApi()

/** Whether a line at `line` passes a filter at `filter` (ERROR passes every filter). */
export function levelPasses(line: LogLevel, filter: LogLevel): boolean {
  return LOG_LEVELS.indexOf(line) <= LOG_LEVELS.indexOf(filter)
}

/** The most lines a page keeps, as the server's ring. */
export const MAX_LOG_LINES = 2000

/**
 * `have` followed by the lines of `incoming` newer than its last one, oldest
 * first, at most `max` (the oldest dropped). `have` is not changed.
 */
export function appendLines(have: readonly LogLine[], incoming: readonly LogLine[], max = MAX_LOG_LINES): LogLine[] {
  let last = have.length ? have[have.length - 1]!.seq : -Infinity
  const out = have.slice()
  for (const l of [...incoming].sort((a, b) => a.seq - b.seq)) {
    if (l.seq <= last) continue
    out.push(l)
    last = l.seq
  }
  return out.length > max ? out.slice(out.length - max) : out
}
