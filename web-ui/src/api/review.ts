// The review routes of issue 17 (timeline, events, exports, locks): their
// types come from proto/openapi.yaml (`npm run gen:api`), their calls use the
// shared client.
//
// All times are Unix milliseconds.

import { api as defaultApi, type ApiClient } from '../lib/api'

import type { components } from './schema'

type Schemas = components['schemas']

/** What the recorders write; the spec types it as a string. */
export type EventKind = 'motion' | 'trigger'

/** A recorded stretch; the holes between spans are gaps. */
export type TimelineSpan = Schemas['TimelineSpan']
/** One event on the timeline. */
export type TimelineEvent = Schemas['TimelineEvent']
/** More than two events in one resolution bucket. */
export type TimelineCluster = Schemas['TimelineCluster']
/** `GET /api/cameras/{id}/timeline`. */
export type TimelineAnswer = Schemas['TimelineAnswer']
/** One item of `GET /api/events` and of the event stream. */
export type EventItem = Schemas['EventItem']
/** `POST /api/events/reviewed`. */
export type ReviewedRequest = Schemas['ReviewedRequest']
export type ReviewedAnswer = Schemas['ReviewedAnswer']
/** An export job, kept until deleted. */
export type ExportJob = Schemas['ExportJob']
export type ExportState = ExportJob['state']
/** `POST /api/exports`. */
export type NewExport = Schemas['NewExport']
export type ExportCreated = Schemas['ExportCreated']
/** A range kept from retention. */
export type LockItem = Schemas['LockItem']
/** `POST /api/cameras/{id}/locks`. */
export type NewLock = Schemas['NewLock']

/** Filters of `GET /api/events` (`camera` is required by the server). */
export interface EventQuery {
  camera: number
  start?: number
  end?: number
  kind?: EventKind
  zone?: string
  reviewed?: boolean
  before?: number
  limit?: number
}

/** The longest export the server takes. */
export const MAX_EXPORT_MS = 6 * 3600_000

const cam = (id: number) => `/api/cameras/${encodeURIComponent(id)}`

function query(params: object): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue
    q.set(k, String(v))
  }
  const s = q.toString()
  return s ? `?${s}` : ''
}

/** The review calls, on the app's client (its token and 401 handling). */
export class ReviewApi {
  constructor(private readonly client: ApiClient = defaultApi) {}

  timeline(cameraId: number, start: number, end: number, resolutionMs: number, signal?: AbortSignal) {
    const q = query({ start: Math.floor(start), end: Math.ceil(end), resolution_ms: Math.max(1, Math.round(resolutionMs)) })
    return this.client.request<TimelineAnswer>('GET', `${cam(cameraId)}/timeline${q}`, { signal })
  }

  events(q: EventQuery, signal?: AbortSignal) {
    return this.client.request<EventItem[]>('GET', `/api/events${query(q)}`, { signal })
  }

  markReviewed(body: ReviewedRequest) {
    return this.client.request<ReviewedAnswer>('POST', '/api/events/reviewed', { body })
  }

  exports(signal?: AbortSignal) {
    return this.client.request<ExportJob[]>('GET', '/api/exports', { signal })
  }

  exportJob(id: number) {
    return this.client.request<ExportJob>('GET', `/api/exports/${encodeURIComponent(id)}`)
  }

  createExport(body: NewExport) {
    return this.client.request<ExportCreated>('POST', '/api/exports', { body })
  }

  deleteExport(id: number) {
    return this.client.request<void>('DELETE', `/api/exports/${encodeURIComponent(id)}`)
  }

  locks(cameraId: number, signal?: AbortSignal) {
    return this.client.request<LockItem[]>('GET', `${cam(cameraId)}/locks`, { signal })
  }

  createLock(cameraId: number, body: NewLock) {
    return this.client.request<LockItem>('POST', `${cam(cameraId)}/locks`, { body })
  }

  deleteLock(cameraId: number, lockId: number) {
    return this.client.request<void>('DELETE', `${cam(cameraId)}/locks/${encodeURIComponent(lockId)}`)
  }

  /** The HLS VOD playlist of a range, token in the URL (Safari's native player needs it). */
  vodUrl(cameraId: number, start: number, end: number, withToken: boolean): string {
    const params = { start: Math.floor(start), end: Math.ceil(end) }
    return withToken ? this.client.mediaUrl(`${cam(cameraId)}/vod.m3u8`, params) : `${cam(cameraId)}/vod.m3u8${query(params)}`
  }

  thumbnailUrl(cameraId: number, at: number): string {
    return this.client.mediaUrl(`${cam(cameraId)}/thumbnail.jpg`, { at: Math.floor(at) })
  }

  eventThumbnailUrl(eventId: number): string {
    return this.client.mediaUrl(`/api/events/${encodeURIComponent(eventId)}/thumbnail.jpg`)
  }

  exportFileUrl(id: number): string {
    return this.client.mediaUrl(`/api/exports/${encodeURIComponent(id)}/file`)
  }

  eventStreamUrl(): string {
    return this.client.mediaUrl('/api/events/stream')
  }
}

/** The app's review calls. */
export const review = new ReviewApi()

/** Pre- and post-roll around an event when playing or exporting it. */
export const EVENT_ROLL_MS = 5000

/** The range to play or export for an event: 5 s before its start to 5 s after its end (or now). */
export function eventRange(start: number, end: number | null | undefined, now: number = Date.now()): { start: number; end: number } {
  const e = end ?? now
  return { start: start - EVENT_ROLL_MS, end: Math.min(Math.max(e, start) + EVENT_ROLL_MS, Math.max(now, start + EVENT_ROLL_MS)) }
}
