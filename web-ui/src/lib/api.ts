// The RealLive HTTP API, as the UI uses it. All URLs are relative: the app is
// served from the same origin as the API.

import type { components } from '../api/schema'

type Schemas = components['schemas']

export type Role = Schemas['Role']
export type CameraStatus = Schemas['CameraStatus']
/** The highest permission the user holds on a camera (admins: `control`). */
export type Permission = Schemas['Permission']
export type User = Schemas['User']
export type LoginResponse = Schemas['TokenResponse']
/** A camera as `GET /api/cameras` lists it, with the caller's permission. */
export type Camera = Schemas['CameraView']
export type IceServerConfig = Schemas['IceServer']
/** `GET /api/cameras/{id}/stream`; only the ICE servers matter to the UI. */
export type StreamInfo = Partial<Schemas['StreamInfo']>

/** Whether this permission lets the user watch recordings. */
export function canPlayBack(p: Permission): boolean {
  return p === 'playback' || p === 'control'
}

export const TOKEN_KEY = 'reallive.token'

/** An error answered by the server (`{"error": {"code", "message", "field"?}}`) or met on the way. */
export class ApiError extends Error {
  /** HTTP status; 0 when the request never got an answer. */
  readonly status: number
  /** The server's machine-readable code, or a local one (`network`, `http_<status>`). */
  readonly code: string
  /** Seconds to wait before trying again (from `Retry-After`), when the server said. */
  readonly retryAfter: number | null
  /** The request field the server blamed (`url`, `name`, `retention.max_bytes`…), when it named one. */
  readonly field: string | null

  constructor(status: number, code: string, message: string, retryAfter: number | null = null, field: string | null = null) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.retryAfter = retryAfter
    this.field = field
  }
}

/**
 * Reads `Retry-After` as whole seconds: either delta-seconds or an HTTP date.
 * `null` when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value == null) return null
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number.parseInt(v, 10)
  const at = Date.parse(v)
  if (Number.isNaN(at)) return null
  return Math.max(0, Math.ceil((at - now) / 1000))
}

/** Turns a non-2xx response into an [`ApiError`], whatever its body. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  const retryAfter = parseRetryAfter(res.headers.get('Retry-After'))
  let code = `http_${res.status}`
  let message = res.statusText || `HTTP ${res.status}`
  let field: string | null = null
  let text = ''
  try {
    text = await res.text()
  } catch {
    // An unreadable body keeps the status line.
  }
  if (text) {
    try {
      const body: unknown = JSON.parse(text)
      const err = (body as { error?: { code?: unknown; message?: unknown; field?: unknown } } | null)?.error
      if (err && typeof err === 'object') {
        if (typeof err.code === 'string' && err.code) code = err.code
        if (typeof err.message === 'string' && err.message) message = err.message
        if (typeof err.field === 'string' && err.field) field = err.field
      }
    } catch {
      // Not JSON: a proxy's or the server's plain-text page. Keep it short.
      const plain = text.trim()
      if (plain && plain.length <= 200 && !plain.startsWith('<')) message = plain
    }
  }
  return new ApiError(res.status, code, message, retryAfter, field)
}

type Storage = Pick<globalThis.Storage, 'getItem' | 'setItem' | 'removeItem'>

function defaultStorage(): Storage | null {
  try {
    return globalThis.localStorage ?? null
  } catch {
    return null
  }
}

export interface ApiClientOptions {
  fetch?: typeof fetch
  storage?: Storage | null
}

/**
 * The API client: holds the bearer token (in `localStorage`), and drops it
 * and tells its listeners when the server answers 401 to an authenticated call.
 */
export class ApiClient {
  private readonly fetchFn: typeof fetch
  private readonly storage: Storage | null
  private memoryToken: string | null = null
  private readonly unauthorizedListeners = new Set<() => void>()

  constructor(opts: ApiClientOptions = {}) {
    this.fetchFn = opts.fetch ?? ((input, init) => globalThis.fetch(input, init))
    this.storage = opts.storage === undefined ? defaultStorage() : opts.storage
  }

  get token(): string | null {
    if (this.storage) {
      try {
        return this.storage.getItem(TOKEN_KEY)
      } catch {
        // Storage refused (privacy mode): fall back to memory.
      }
    }
    return this.memoryToken
  }

  setToken(token: string | null): void {
    this.memoryToken = token
    if (!this.storage) return
    try {
      if (token) this.storage.setItem(TOKEN_KEY, token)
      else this.storage.removeItem(TOKEN_KEY)
    } catch {
      // Memory only.
    }
  }

  /** Calls `fn` whenever the token turns out to be expired or revoked. */
  onUnauthorized(fn: () => void): () => void {
    this.unauthorizedListeners.add(fn)
    return () => this.unauthorizedListeners.delete(fn)
  }

  /** Drops the token and tells the listeners (the app goes to the login page). */
  handleUnauthorized(): void {
    this.setToken(null)
    for (const fn of [...this.unauthorizedListeners]) fn()
  }

  /** Headers for an authenticated call. */
  authHeaders(): Record<string, string> {
    const t = this.token
    return t ? { Authorization: `Bearer ${t}` } : {}
  }

  /** The `fetch` this client uses, for other clients (WHEP) to share. */
  get fetch(): typeof fetch {
    return this.fetchFn
  }

  /** One JSON call; 401 on an authenticated call drops the token. */
  async request<T>(
    method: string,
    path: string,
    opts: { body?: unknown; auth?: boolean; signal?: AbortSignal; headers?: Record<string, string> } = {},
  ): Promise<T> {
    const auth = opts.auth ?? true
    const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers }
    if (auth) {
      const t = this.token
      if (!t) {
        this.handleUnauthorized()
        throw new ApiError(401, 'unauthenticated', 'not signed in')
      }
      headers.Authorization = `Bearer ${t}`
    }
    const init: RequestInit = { method, headers, signal: opts.signal, cache: 'no-store' }
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json'
      init.body = JSON.stringify(opts.body)
    }
    let res: Response
    try {
      res = await this.fetchFn(path, init)
    } catch (e) {
      if ((e as { name?: string } | null)?.name === 'AbortError') throw e
      throw new ApiError(0, 'network', 'cannot reach the server')
    }
    if (!res.ok) {
      const err = await errorFromResponse(res)
      if (res.status === 401 && auth) this.handleUnauthorized()
      throw err
    }
    if (res.status === 204) return undefined as T
    // An answer with no body (the 202 of start, stop and trigger) is `undefined`.
    let text: string
    try {
      text = await res.text()
    } catch {
      throw new ApiError(res.status, 'bad_response', 'the server sent an unreadable answer')
    }
    if (text.trim() === '') return undefined as T
    try {
      return JSON.parse(text) as T
    } catch {
      throw new ApiError(res.status, 'bad_response', 'the server sent an unreadable answer')
    }
  }

  /** Signs in and keeps the token. A 401 here is a wrong password, not an expired session. */
  async login(username: string, password: string): Promise<LoginResponse> {
    const r = await this.request<LoginResponse>('POST', '/api/auth/login', {
      body: { username, password },
      auth: false,
    })
    this.setToken(r.token)
    return r
  }

  async me(): Promise<User> {
    const r = await this.request<{ user: User }>('GET', '/api/auth/me')
    return r.user
  }

  async cameras(signal?: AbortSignal): Promise<Camera[]> {
    return this.request<Camera[]>('GET', '/api/cameras', { signal })
  }

  async streamInfo(cameraId: number): Promise<StreamInfo> {
    return this.request<StreamInfo>('GET', `/api/cameras/${encodeURIComponent(cameraId)}/stream`)
  }

  /**
   * Signs out: the server revokes the token (and ends this user's live
   * sessions), then it is forgotten here. Forgotten even when the server
   * cannot be reached, so the browser never stays signed in.
   */
  async logout(): Promise<void> {
    try {
      if (this.token) await this.request<void>('POST', '/api/auth/logout')
    } catch {
      // Offline or already signed out: nothing more to revoke from here.
    } finally {
      this.setToken(null)
    }
  }

  /** A media URL (img, playlist, download) carrying the token as `?token=`. */
  mediaUrl(path: string, params: Record<string, string | number> = {}): string {
    const q = new URLSearchParams()
    for (const [k, v] of Object.entries(params)) q.set(k, String(v))
    const t = this.token
    if (t) q.set('token', t)
    const qs = q.toString()
    return qs ? `${path}?${qs}` : path
  }
}

/** The app's one client. */
export const api = new ApiClient()
