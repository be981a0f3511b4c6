// The camera management routes of issue 18 (the NVR's RTSP sources, the
// probe, start/stop/trigger, motion settings and their live meter, and the
// pusher cameras' stream keys), on the shared client.
//
// All times are Unix milliseconds. URLs with a password come back redacted
// (`rtsp://admin:***@10.0.0.5/stream1`): never send one back unless the user
// typed it.

import { api as defaultApi, ApiError, type ApiClient, type Camera } from '../lib/api'
import type { RecorderStatus, StorageReport } from './manage'
import type { components } from './schema'

type Schemas = components['schemas']

// The shapes are the server's, generated from proto/openapi.yaml
// (`npm run gen:api`): one definition, checked by the schema test.

/** When a camera records: `continuous`, `motion` or `off`. */
export type RecordMode = Schemas['RecordMode']
/** How RTP travels from the camera: `tcp` or `udp`. */
export type Transport = Schemas['Transport']
/**
 * Which RTSP client reads the camera: `retina` (RealLive's own, the
 * default) or `gstreamer` (for a camera retina cannot read).
 */
export type Backend = Schemas['Backend']
/** A camera's retention: either limit may be absent (no limit). */
export type Retention = Schemas['NewRetention']
/** One RTSP source of the NVR (`GET /api/nvr/cameras`), passwords redacted. */
export type SourceItem = Schemas['SourceItem']
/** `POST /api/nvr/cameras`. */
export type NewSource = Schemas['NewSource']
/** `PATCH /api/nvr/cameras/{id}`: only the fields to change. */
export type SourcePatch = Schemas['SourcePatch']
/** `POST /api/nvr/cameras/probe`. */
export type ProbeRequest = Schemas['ProbeRequest']
/** One audio track a camera sends. */
export type ProbeAudio = Schemas['ProbeAudio']
/** A video stream as probed. */
export type ProbeStream = Schemas['ProbeStream']
/** What the probe found: the main stream, its audio, a picture, and the sub-stream when asked. */
export type ProbeResult = Schemas['ProbeResult']
/** `DELETE /api/nvr/cameras/{id}`. */
export type DeleteSourceResult = Schemas['DeleteSourceResult']
/** A motion zone: a polygon of `[x, y]` corners in 0..1 (x right, y down), at least 3. */
export type ZoneConfig = Schemas['ZoneConfig']
/** `GET`/`PUT /api/cameras/{id}/motion`. */
export type MotionConfig = Schemas['MotionConfig']
/** One `sample` of `GET /api/cameras/{id}/motion/live`. */
export type MotionSample = Schemas['MotionSample']

/** `POST /api/cameras` (a pusher camera): the camera and its key, shown only once. */
export type CreatedCamera = Schemas['CreatedCamera']
/** `POST /api/cameras/{id}/stream-key`. */
export type StreamKeyResponse = Schemas['StreamKeyResponse']

/** The delete question's two answers. */
export type KeepRecordings = 'keep' | 'delete'

// --- words ----------------------------------------------------------------------

/** What each probe failure means, for someone standing next to the camera. */
export const PROBE_MESSAGES: Readonly<Record<string, string>> = {
  auth: 'The camera refused the user name or password in the URL.',
  not_found: 'The camera answered, but has no stream at that path.',
  unreachable: 'Nothing answered at that address and port. Check the IP address, the port (usually 554) and that the camera is on.',
  timeout: 'The camera did not answer within 10 seconds.',
  unsupported_codec: 'The camera sends a codec RealLive cannot record (only H.264 and H.265).',
  bad_url: 'That is not an rtsp:// URL.',
}

/** A probe failure in plain words. */
export function probeMessage(e: unknown): string {
  if (e instanceof ApiError) {
    const known = PROBE_MESSAGES[e.code]
    if (known) return known
    if (e.status === 429) return 'Too many connection tests are running. Wait a few seconds and try again.'
    if (e.status === 0) return 'Cannot reach the RealLive server. Check your connection.'
    if (e.status === 403) return 'Only an admin can test cameras.'
    return e.message
  }
  return 'The test failed for an unknown reason.'
}

/** `rtsp://…` (any case); the probe and the server refuse anything else. */
export function isRtspUrl(url: string): boolean {
  return /^rtsp:\/\/[^\s/]+/i.test(url.trim())
}

/** Whether a URL still holds the server's `***` in place of a password. */
export function hasRedactedPassword(url: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*\*\*\*[^/\s]*@/i.test(url.trim())
}

const FIELD_WORDS: Readonly<Record<string, string>> = {
  name: 'name',
  url: 'address',
  sub_url: 'second stream',
  mode: 'recording',
  transport: 'transport',
  backend: 'RTSP client',
  max_restarts: 'restarts',
  retention: 'retention',
  max_age_days: 'days kept',
  max_bytes: 'size limit',
  pre_roll_secs: 'seconds before motion',
  post_roll_secs: 'seconds after motion',
  motion: 'motion settings',
}

/** Field names (`overridden`, `retention.max_bytes`) in words: `recording, size limit`. */
export function fieldWords(fields: readonly string[]): string {
  return fields.map((f) => FIELD_WORDS[f] ?? FIELD_WORDS[f.split('.').pop() ?? ''] ?? f).join(', ')
}

/** The RTSP clients in words, as the form offers them. */
export const BACKEND_WORDS: Readonly<Record<Backend, string>> = {
  retina: 'RealLive (retina) — recommended',
  gstreamer: 'GStreamer (compatibility)',
}

/**
 * Whether a camera's status error is the server's hint that retina cannot
 * read this camera (it ends with `try backend = "gstreamer" for it`).
 */
export function suggestsGstreamer(error: string | null | undefined): boolean {
  return !!error && error.includes('backend = "gstreamer"')
}

/** The rule for camera names: it names a directory. */
export const CAMERA_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/

/**
 * A camera name made from the URL's host (`rtsp://u:p@192.168.1.20/x` →
 * `192-168-1-20`), or '' when the URL has no readable host.
 */
export function suggestName(url: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^/@\s]*@)?(\[[^\]]*\]|[^/:?#\s]+)/i.exec(url.trim())
  if (!m) return ''
  const host = m[1]!.replace(/^\[|\]$/g, '')
  return host
    .replace(/[^A-Za-z0-9_-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 64)
}

// --- calls ----------------------------------------------------------------------

const enc = encodeURIComponent

/** The camera management calls, on the app's client (its token and 401 handling). */
export class CamerasApi {
  constructor(private readonly client: ApiClient = defaultApi) {}

  /** Every recorder's state. */
  status(signal?: AbortSignal) {
    return this.client.request<RecorderStatus[]>('GET', '/api/status', { signal })
  }

  storage(signal?: AbortSignal) {
    return this.client.request<StorageReport>('GET', '/api/storage', { signal })
  }

  /** Every camera the user may see, pusher cameras too. */
  cameras(signal?: AbortSignal): Promise<Camera[]> {
    return this.client.cameras(signal)
  }

  sources(signal?: AbortSignal) {
    return this.client.request<SourceItem[]>('GET', '/api/nvr/cameras', { signal })
  }

  source(id: number, signal?: AbortSignal) {
    return this.client.request<SourceItem>('GET', `/api/nvr/cameras/${enc(id)}`, { signal })
  }

  addSource(body: NewSource) {
    return this.client.request<SourceItem>('POST', '/api/nvr/cameras', { body })
  }

  /**
   * Changes the named fields, if nobody saved since `etag`; a 412
   * (`precondition_failed`) says someone did.
   */
  async patchSource(id: number, etag: string, patch: SourcePatch): Promise<SourceItem> {
    const r = await this.client.request<SourceItem | undefined>('PATCH', `/api/nvr/cameras/${enc(id)}`, {
      body: patch,
      headers: { 'If-Match': etag },
    })
    if (!r) throw new ApiError(200, 'bad_response', 'the server sent an unreadable answer')
    return r
  }

  /** Drops what was changed here over a config-file camera. */
  resetOverrides(id: number) {
    return this.client.request<SourceItem>('DELETE', `/api/nvr/cameras/${enc(id)}/overrides`)
  }

  /** Removes an API camera; `keep` leaves its recordings playable. */
  deleteSource(id: number, recordings: KeepRecordings) {
    return this.client.request<DeleteSourceResult>('DELETE', `/api/nvr/cameras/${enc(id)}?recordings=${recordings}`)
  }

  /** Tries a camera's URL (up to 10 s); abort `signal` to give up. */
  probe(body: ProbeRequest, signal?: AbortSignal) {
    return this.client.request<ProbeResult>('POST', '/api/nvr/cameras/probe', { body, signal })
  }

  /** 202, no body. */
  async start(id: number): Promise<void> {
    await this.client.request<void>('POST', `/api/cameras/${enc(id)}/start`)
  }

  /** 202, no body. */
  async stop(id: number): Promise<void> {
    await this.client.request<void>('POST', `/api/cameras/${enc(id)}/stop`)
  }

  /** Records `seconds` as if motion were seen (202, no body); 409 when the camera is not recording. */
  async trigger(id: number, seconds: number): Promise<void> {
    await this.client.request<void>('POST', `/api/cameras/${enc(id)}/trigger`, { body: { seconds } })
  }

  motion(id: number, signal?: AbortSignal) {
    return this.client.request<MotionConfig>('GET', `/api/cameras/${enc(id)}/motion`, { signal })
  }

  setMotion(id: number, body: MotionConfig) {
    return this.client.request<MotionConfig>('PUT', `/api/cameras/${enc(id)}/motion`, { body })
  }

  /** The camera's latest picture (an `<img>` URL with the token); `bust` makes the browser ask again. */
  snapshotUrl(id: number, bust?: number): string {
    return this.client.mediaUrl(`/api/cameras/${enc(id)}/snapshot.jpg`, bust == null ? {} : { t: bust })
  }

  /** The live motion meter (SSE), token in the URL since `EventSource` sends no header. */
  motionLiveUrl(id: number): string {
    return this.client.mediaUrl(`/api/cameras/${enc(id)}/motion/live`)
  }

  /** A camera that a Pi (reallive-pusher) streams to; the key comes only here. */
  createPusher(name: string) {
    return this.client.request<CreatedCamera>('POST', '/api/cameras', { body: { name } })
  }

  /** A new key for a pusher camera; the old one stops working. */
  regenerateKey(id: number) {
    return this.client.request<StreamKeyResponse>('POST', `/api/cameras/${enc(id)}/stream-key`)
  }
}

/** The app's camera management calls. */
export const camerasApi = new CamerasApi()

/**
 * The commands for the Pi: the key goes into a file (never on the
 * pusher's command line, where `ps` would show it).
 */
export function pusherCommands(key: string, cameraId: number, origin: string): { keyFile: string; run: string } {
  const quoted = `'${key.replace(/'/g, `'\\''`)}'`
  return {
    keyFile: `echo ${quoted} > reallive.key && chmod 600 reallive.key`,
    run: `reallive-pusher --source libcamera --server ${origin} --camera ${cameraId} --key-file reallive.key`,
  }
}

// --- the add / edit form ----------------------------------------------------------

/** Bytes in the form's "GB" (GiB, as sizes are shown everywhere in the UI). */
export const GB = 1024 ** 3

/**
 * The form's values: text as typed (numbers too, so an empty box stays empty).
 * The error keys are the server's field names (`max_bytes` for `max_gb`).
 */
export interface SourceForm {
  url: string
  sub_url: string
  name: string
  transport: Transport
  backend: Backend
  mode: RecordMode
  max_age_days: string | number
  max_gb: string | number
  pre_roll_secs: string | number
  post_roll_secs: string | number
}

export type FormKey = keyof SourceForm

export const FORM_KEYS: readonly FormKey[] = [
  'url',
  'sub_url',
  'name',
  'transport',
  'backend',
  'mode',
  'max_age_days',
  'max_gb',
  'pre_roll_secs',
  'post_roll_secs',
]

/** The server's name of a form field, as in `error.field` and `overridden`. */
export function serverFieldOf(k: FormKey): string {
  return k === 'max_gb' ? 'max_bytes' : k
}

/**
 * The form field a server's `error.field` (or an `overridden` entry) names:
 * `retention.max_bytes` → `max_gb`; `null` for a field the form does not
 * show. The server names `retention` for both of its limits, with the
 * limit in the message (`retention.max_bytes: …`).
 */
export function formKeyOf(field: string | null | undefined, message = ''): FormKey | null {
  if (!field) return null
  if (field === 'retention') return /^\s*retention\.max_bytes\b/.test(message) ? 'max_gb' : 'max_age_days'
  const last = field.split('.').pop() ?? ''
  if (last === 'max_bytes') return 'max_gb'
  return (FORM_KEYS as readonly string[]).includes(last) ? (last as FormKey) : null
}

/** A server message without its leading `field: ` (shown under that field already). */
export function withoutFieldPrefix(message: string): string {
  const m = /^[a-z_][a-z0-9_.[\]]*: (.+)$/s.exec(message)
  if (!m) return message
  const rest = m[1]!
  return rest.charAt(0).toUpperCase() + rest.slice(1)
}

const AUDIO_WORDS: Readonly<Record<string, string>> = {
  'mpeg4-generic': 'AAC',
  aac: 'AAC',
  pcma: 'G.711 A-law',
  pcmu: 'G.711 µ-law',
  opus: 'Opus',
  g726: 'G.726',
  l16: 'PCM',
}

/** An audio codec as the camera names it, in the usual words: `mpeg4-generic` → `AAC`. */
export function audioCodecName(codec: string): string {
  const c = codec.toLowerCase()
  return AUDIO_WORDS[c] ?? (c.startsWith('g726') ? 'G.726' : codec.toUpperCase())
}

/** An empty form for a new camera, with the server's defaults. */
export function emptyForm(): SourceForm {
  return {
    url: '',
    sub_url: '',
    name: '',
    transport: 'tcp',
    backend: 'retina',
    mode: 'continuous',
    max_age_days: '',
    max_gb: '',
    pre_roll_secs: 5,
    post_roll_secs: 5,
  }
}

function gbOf(bytes: number | null | undefined): string | number {
  if (bytes == null) return ''
  return Math.round((bytes / GB) * 1000) / 1000
}

/** A saved camera as form values. */
export function formFromSource(s: SourceItem): SourceForm {
  return {
    url: s.url,
    sub_url: s.sub_url ?? '',
    name: s.name,
    transport: s.transport,
    backend: s.backend,
    mode: s.mode,
    max_age_days: s.retention?.max_age_days ?? '',
    max_gb: gbOf(s.retention?.max_bytes),
    pre_roll_secs: s.pre_roll_secs,
    post_roll_secs: s.post_roll_secs,
  }
}

const text = (v: string | number) => String(v).trim()

/** Whether a field holds something else than in `base` (as typed, ignoring spaces around). */
export function fieldChanged(base: SourceForm, form: SourceForm, k: FormKey): boolean {
  return text(base[k]) !== text(form[k])
}

/** A number box: `null` when empty, NaN when not a number. */
function num(v: string | number): number | null {
  const s = text(v)
  if (s === '') return null
  return Number(s)
}

function retentionOf(form: SourceForm): Retention {
  const days = num(form.max_age_days)
  const gb = num(form.max_gb)
  return { max_age_days: days, max_bytes: gb == null ? null : Math.round(gb * GB) }
}

/**
 * What is wrong with the typed values, by form field; `base` is what the
 * camera had (edit), and only fields changed from it are checked: what is
 * saved already is the server's business.
 */
export function checkForm(form: SourceForm, base: SourceForm | null): Partial<Record<FormKey, string>> {
  const errs: Partial<Record<FormKey, string>> = {}
  const changed = (k: FormKey) => base == null || fieldChanged(base, form, k)
  if (changed('name') && !CAMERA_NAME_RE.test(text(form.name))) {
    errs.name = text(form.name) === '' ? 'Give the camera a name.' : 'Use 1 to 64 letters, digits, - or _ (no spaces).'
  }
  for (const k of ['url', 'sub_url'] as const) {
    if (!changed(k)) continue
    const v = text(form[k])
    if (v === '') {
      if (k === 'url') errs.url = 'Type the camera’s RTSP address.'
    } else if (!isRtspUrl(v)) {
      errs[k] = PROBE_MESSAGES.bad_url
    } else if (hasRedactedPassword(v)) {
      errs[k] = 'Type the real password in place of ***.'
    }
  }
  const whole = (k: FormKey, min: number, max: number, msg: string) => {
    if (!changed(k)) return
    const n = num(form[k])
    if (n != null && !(Number.isInteger(n) && n >= min && n <= max)) errs[k] = msg
  }
  whole('max_age_days', 1, 100_000, 'Whole days, 1 or more; leave empty for no limit.')
  if (changed('max_gb')) {
    const n = num(form.max_gb)
    if (n != null && !(n > 0 && Number.isFinite(n))) errs.max_gb = 'A size in GB above 0; leave empty for no limit.'
  }
  if (form.mode === 'motion') {
    whole('pre_roll_secs', 0, 60, 'Whole seconds, 0 to 60.')
    whole('post_roll_secs', 0, 3600, 'Whole seconds, 0 to 3600.')
  }
  return errs
}

/** The body of `POST /api/nvr/cameras` for the typed values. */
export function newSourceFrom(form: SourceForm): NewSource {
  const body: NewSource = {
    name: text(form.name),
    url: text(form.url),
    transport: form.transport,
    backend: form.backend,
    mode: form.mode,
  }
  if (text(form.sub_url)) body.sub_url = text(form.sub_url)
  const r = retentionOf(form)
  if (r.max_age_days != null || r.max_bytes != null) {
    const retention: Retention = {}
    if (r.max_age_days != null) retention.max_age_days = r.max_age_days
    if (r.max_bytes != null) retention.max_bytes = r.max_bytes
    body.retention = retention
  }
  if (form.mode === 'motion') {
    const pre = num(form.pre_roll_secs)
    const post = num(form.post_roll_secs)
    if (pre != null) body.pre_roll_secs = pre
    if (post != null) body.post_roll_secs = post
  }
  return body
}

/**
 * The body of `PATCH /api/nvr/cameras/{id}`: only the fields changed from
 * `base`. An unchanged URL (shown redacted) is never sent back.
 */
export function patchFrom(base: SourceForm, form: SourceForm): SourcePatch {
  const p: SourcePatch = {}
  const changed = (k: FormKey) => fieldChanged(base, form, k)
  if (changed('name')) p.name = text(form.name)
  if (changed('url')) p.url = text(form.url)
  if (changed('sub_url')) p.sub_url = text(form.sub_url) || null
  if (changed('transport')) p.transport = form.transport
  if (changed('backend')) p.backend = form.backend
  if (changed('mode')) p.mode = form.mode
  if (changed('max_age_days') || changed('max_gb')) p.retention = retentionOf(form)
  const pre = num(form.pre_roll_secs)
  const post = num(form.post_roll_secs)
  if (changed('pre_roll_secs') && pre != null) p.pre_roll_secs = pre
  if (changed('post_roll_secs') && post != null) p.post_roll_secs = post
  return p
}

/**
 * After a 412: the form rebased on the camera as someone else saved it.
 * Fields the user did not touch (still as in `before`) take their values;
 * fields the user typed keep what was typed, and `theirs` lists, for those,
 * the other person's value where it differs.
 */
export function rebaseForm(
  before: SourceForm,
  typed: SourceForm,
  latest: SourceForm,
): { form: SourceForm; theirs: Partial<Record<FormKey, string>> } {
  const form = { ...typed }
  const theirs: Partial<Record<FormKey, string>> = {}
  for (const k of FORM_KEYS) {
    if (!fieldChanged(before, typed, k)) {
      ;(form as Record<FormKey, string | number>)[k] = latest[k]
    } else if (fieldChanged(latest, typed, k)) {
      theirs[k] = text(latest[k])
    }
  }
  return { form, theirs }
}
