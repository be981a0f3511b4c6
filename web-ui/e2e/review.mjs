#!/usr/bin/env node
// End-to-end check of the review UI (issue 17) against a real reallive-nvr
// that has recorded two cameras, one of them with a finished motion event.
// Driven by apps/nvr/tests/review_ui.rs, which starts the NVR and reads the
// figures below; it can also be run by hand against any NVR in that state.
//
// Steps, each reported as "pass" or "fail: why" (a failed step does not
// stop the later ones, which start from their own page):
//   timeline  the motion camera's timeline draws recorded spans and the event
//   scrub     dragging the cursor loads a thumbnail (thumbMs: from the
//             pointer's last move to the thumbnail's load)
//   play      clicking the event plays it from its pre-roll (clickToFrameMs:
//             click to the first presented frame; playStartMs: the wall
//             clock of that frame, through the playlist's PROGRAM-DATE-TIME)
//   export    the event is exported, the job reaches 100 % and the file is
//             downloaded (exportMs: request to done; downloadPath)
//   lock      a range is locked and listed
//   refused   the viewer (view only on STILL_CAMERA) gets a clear error on
//             that camera's timeline and no spans
//   hlsFallback  in a fresh phone-sized context where WebRTC cannot connect
//             (the answer's ICE candidates are dropped), STILL_CAMERA's live
//             tile says HLS and its video decodes frames within 15 s of
//             opening the page (hlsFallback: when each happened; with
//             SCREENSHOT_DIR, live-hls-fallback-phone.png), and how far
//             behind live it plays over HLS_LATENCY_MS (6000) ms:
//             hlsFallback.latency.behindLiveMs {min, median, p90, max};
//             its trace has [behindLiveMs, currentTime, buffered end,
//             readyState, hls.js latency] per sample
// plus screenshots of every page at 1280x800 and 375x812 when SCREENSHOT_DIR
// is set (and timeline-scrub-desktop.png, taken while the thumbnail shows).
// Diagnostics ride along: playDebug (the playlist head, the media events and
// buffered ranges up to the first frame), eventThumb (the Review row's
// thumbnail: size, mean brightness, bright pixels), notes, pageErrors.
//
// Prints one JSON line and exits 0 ({"ok":true,...}) or 1 ({"ok":false,
// "reason":...,"steps":{...},...}). Never hangs: a hard timeout ends the run.
//
// Env: BASE_URL, RL_ADMIN_USER (admin), RL_ADMIN_PASSWORD, RL_VIEWER_USER,
//      RL_VIEWER_PASSWORD, MOTION_CAMERA, STILL_CAMERA (ids), EVENT_ID,
//      EVENT_START_MS, PRE_ROLL_MS (5000), DOWNLOAD_DIR (the export goes
//      there; default: not saved), SCREENSHOT_DIR (optional),
//      STEPS (optional comma list, default all), TIMEOUT_MS (15000, per
//      wait), HARD_TIMEOUT_MS (150000), CHROMIUM (/usr/bin/chromium).

import { closeBrowser, envInt, guardRun, launchChromium, sleep } from './harness.mjs'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

let browser = null
let done = false
const result = { steps: {}, notes: [], screenshots: [] }

const intEnv = (name, dflt) => envInt(name, dflt, -Infinity)

const BASE_URL = (process.env.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '')
const ADMIN_USER = process.env.RL_ADMIN_USER || 'admin'
const ADMIN_PASSWORD = process.env.RL_ADMIN_PASSWORD ?? ''
const VIEWER_USER = process.env.RL_VIEWER_USER || ''
const VIEWER_PASSWORD = process.env.RL_VIEWER_PASSWORD ?? ''
const MOTION_CAMERA = intEnv('MOTION_CAMERA', 2)
const STILL_CAMERA = intEnv('STILL_CAMERA', 1)
const EVENT_ID = process.env.EVENT_ID || ''
const EVENT_START_MS = intEnv('EVENT_START_MS', 0)
const PRE_ROLL_MS = intEnv('PRE_ROLL_MS', 5000)
const DOWNLOAD_DIR = process.env.DOWNLOAD_DIR || ''
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || ''
const STEPS = (process.env.STEPS || 'timeline,scrub,play,export,lock,hlsFallback,refused').split(',').map((s) => s.trim())
const TIMEOUT_MS = intEnv('TIMEOUT_MS', 15_000)
const HARD_TIMEOUT_MS = intEnv('HARD_TIMEOUT_MS', 150_000)
const DESKTOP = { width: 1280, height: 800 }
const PHONE = { width: 375, height: 812 }
/** What the live HLS fallback has, from opening the page, to say so and show frames. */
const HLS_FALLBACK_MS = 15_000
/** How long the HLS fallback's distance behind live is sampled, once it plays. */
const HLS_LATENCY_MS = intEnv('HLS_LATENCY_MS', 6000)
const tid = (id) => `[data-testid="${id}"]`
// The brief names the img itself; the UI marks the box around it.
const THUMB_SELECTOR = 'img[data-testid="timeline-thumb"], [data-testid="timeline-thumb"] img'

function finish(ok, fields = {}) {
  if (done) return
  done = true
  const line = { ok, ...fields, ...result }
  process.stdout.write(`${JSON.stringify(line)}\n`)
  process.exitCode = ok ? 0 : 1
}

const disarm = guardRun(HARD_TIMEOUT_MS, (reason) => finish(false, { reason }))

const log = (...a) => process.stderr.write(`review.mjs: ${a.join(' ')}\n`)

/** Polls `fn` until it returns something truthy; throws `what` after `ms`. */
async function until(fn, what, ms = TIMEOUT_MS, every = 50) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`${what} (waited ${ms} ms)`)
    await sleep(every)
  }
}

/**
 * Opens an SPA path. The NVR answers the router's paths with index.html;
 * where it does not (an older server), load `/` and let the router take
 * the path from history.
 */
async function go(page, path) {
  const res = await page.goto(BASE_URL + path, { waitUntil: 'domcontentloaded', timeout: TIMEOUT_MS })
  if (res && res.status() === 404) {
    result.notes.push(`the server answered ${path.split('?')[0]} with 404, not index.html: navigated from /`)
    await page.goto(`${BASE_URL}/`, { waitUntil: 'domcontentloaded', timeout: TIMEOUT_MS })
    await page.evaluate((p) => {
      window.history.pushState(window.history.state, '', p)
      window.dispatchEvent(new PopStateEvent('popstate', { state: window.history.state }))
    }, path)
  } else if (res && !res.ok()) {
    throw new Error(`GET ${path} answered HTTP ${res.status()}`)
  }
}

async function shot(page, name) {
  if (!SCREENSHOT_DIR) return
  try {
    await sleep(300)
    await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-desktop.png`) })
    await page.setViewportSize(PHONE)
    await sleep(500)
    await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-phone.png`) })
    result.screenshots.push(`${name}-desktop.png`, `${name}-phone.png`)
  } catch (e) {
    result.notes.push(`screenshot ${name}: ${String(e?.message ?? e).split('\n')[0]}`)
  } finally {
    await page.setViewportSize(DESKTOP).catch(() => {})
    await sleep(200)
  }
}

async function login(page, user, password) {
  await go(page, '/')
  const form = page.locator('#login-username')
  await form.waitFor({ state: 'visible', timeout: TIMEOUT_MS })
  await form.fill(user)
  await page.locator('#login-password').fill(password)
  await page.locator('form button[type=submit]').first().click()
  const outcome = await Promise.race([
    page.locator(tid('nav-live')).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'in'),
    page.locator('#login-error').waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'error'),
  ]).catch(() => 'timeout')
  if (outcome === 'error') {
    const msg = await page.locator('#login-error').textContent().catch(() => '')
    throw new Error(`login as ${user} failed: ${(msg ?? '').trim()}`)
  }
  if (outcome !== 'in') throw new Error(`no nav-live within ${TIMEOUT_MS} ms of logging in as ${user}`)
}

async function logout(page) {
  const button = page.getByRole('button', { name: /log\s*out|sign\s*out/i }).first()
  if (await button.isVisible().catch(() => false)) {
    await button.click()
  } else {
    result.notes.push('no visible "Log out" button: dropped the token from localStorage instead')
    await page.evaluate(() => localStorage.clear())
    await page.reload({ waitUntil: 'domcontentloaded' })
  }
  await page.locator('#login-username').waitFor({ state: 'visible', timeout: TIMEOUT_MS })
}

/** Opens a camera's timeline, zoomed to 10 minutes when that button exists. */
async function openTimeline(page, camera) {
  await go(page, `/cameras/${camera}/timeline`)
  await page.locator(tid('timeline-bar')).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS })
  const zoom = page.locator(tid('zoom-10m')).first()
  if (await zoom.isVisible().catch(() => false)) await zoom.click()
  else result.notes.push('no zoom-10m button')
  // The spans and events of the new window.
  await until(async () => (await page.locator(tid('timeline-span')).count()) > 0, 'no timeline-span drawn')
}

/** The event's mark on the bar: by id, else the first one. */
async function eventMark(page) {
  const byId = page.locator(`${tid('timeline-event')}[data-event-id="${EVENT_ID}"]`)
  await until(async () => (await page.locator(tid('timeline-event')).count()) > 0, 'no timeline-event drawn')
  if ((await byId.count()) > 0) return byId.first()
  result.notes.push(`no timeline-event with data-event-id=${EVENT_ID}: used the first`)
  return page.locator(tid('timeline-event')).first()
}

async function box(locator, what) {
  const b = await locator.boundingBox()
  if (!b) throw new Error(`${what} has no box (hidden?)`)
  return b
}

/** Drags on the bar from x0 to x1 (page coordinates) at the bar's middle height. */
async function dragOnBar(page, x0, x1, { hold = false, from = null } = {}) {
  const bar = await box(page.locator(tid('timeline-bar')).first(), 'timeline-bar')
  const y = from?.y ?? bar.y + bar.height / 2
  await page.mouse.move(from?.x ?? x0, y)
  await page.mouse.down()
  const steps = 12
  for (let i = 1; i <= steps; i++) {
    await page.mouse.move(x0 + ((x1 - x0) * i) / steps, y)
    await sleep(16)
  }
  if (!hold) await page.mouse.up()
}

// ---------------------------------------------------------------- steps

async function stepTimeline(page) {
  await openTimeline(page, MOTION_CAMERA)
  const mark = await eventMark(page)
  await box(mark, 'the timeline-event')
  result.spans = await page.locator(tid('timeline-span')).count()
  const widest = await page
    .locator(tid('timeline-span'))
    .evaluateAll((els) => Math.max(0, ...els.map((e) => Number(e.getAttribute('width')) || e.getBoundingClientRect().width)))
  if (!(widest > 0)) throw new Error('every timeline-span is 0 px wide')
  result.events = await page.locator(tid('timeline-event')).count()
}

async function stepScrub(page) {
  await openTimeline(page, MOTION_CAMERA)
  const mark = await box(await eventMark(page), 'the timeline-event')
  // Loads and pointer times, as the page sees them.
  await page.evaluate((THUMB) => {
    const w = window
    w.__e2e = { loads: [], lastMove: 0, up: 0, thumb: THUMB }
    document.addEventListener(
      'load',
      (e) => {
        const t = e.target
        if (t instanceof HTMLImageElement && t.matches(THUMB))
          w.__e2e.loads.push({ src: t.currentSrc || t.src, at: performance.now() })
      },
      true,
    )
    window.addEventListener('pointermove', () => (w.__e2e.lastMove = performance.now()), true)
    window.addEventListener('pointerup', () => (w.__e2e.up = performance.now()), true)
  }, THUMB_SELECTOR)
  const target = mark.x + mark.width / 2
  const cursor = page.locator(tid('timeline-cursor')).first()
  const cb = (await cursor.isVisible().catch(() => false)) ? await cursor.boundingBox() : null
  const bar = await box(page.locator(tid('timeline-bar')).first(), 'timeline-bar')
  // Start on the cursor's handle when there is one, else a quarter into the bar.
  const from = cb ? { x: cb.x + cb.width / 2, y: cb.y + cb.height / 2 } : { x: bar.x + bar.width / 4, y: bar.y + bar.height / 2 }
  if (!cb) result.notes.push('no visible timeline-cursor: dragged on timeline-bar')
  await dragOnBar(page, from.x, target, { hold: true, from })

  // The thumbnail for where the pointer stopped: its src settles (a UI may
  // debounce), then it has loaded. Held still first; released if nothing
  // shows while held.
  const settled = async (sinceKey) =>
    page.evaluate((key) => {
      const img = document.querySelector(window.__e2e.thumb)
      if (!img || !img.complete || img.naturalWidth === 0) return null
      const src = img.currentSrc || img.src
      const load = [...window.__e2e.loads].reverse().find((l) => l.src === src)
      if (!load) return null
      return { src, loadAt: load.at, since: window.__e2e[key], now: performance.now(), width: img.naturalWidth }
    }, sinceKey)
  const stable = async (sinceKey, ms) => {
    let prev = null
    let sameSince = 0
    return until(
      async () => {
        const s = await settled(sinceKey)
        if (!s) return (prev = null)
        if (!prev || prev.src !== s.src) {
          prev = s
          sameSince = Date.now()
          return null
        }
        return Date.now() - sameSince >= 300 ? s : null
      },
      'no timeline-thumb loaded (naturalWidth > 0) for the pointer position',
      ms,
      25,
    )
  }
  let s = await stable('lastMove', 2000).catch(() => null)
  let measuredFrom = 'last pointer move (held)'
  // The thumbnail shows only while the pointer is down: shoot it now.
  if (s && SCREENSHOT_DIR) {
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'timeline-scrub-desktop.png') }).catch(() => {})
    result.screenshots.push('timeline-scrub-desktop.png')
  }
  await page.mouse.up()
  if (!s) {
    s = await stable('up', 5000)
    measuredFrom = 'pointer up'
  }
  result.thumbMs = Math.max(0, Math.round(s.loadAt - s.since))
  result.thumbFrom = measuredFrom
  result.thumbWidth = s.width
  await shot(page, 'timeline')
}

/** Parses an HLS playlist into PROGRAM-DATE-TIME anchors on its media timeline. */
function pdtAnchors(text) {
  const anchors = []
  let pos = 0
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
      anchors.push({ pos, wall: Date.parse(line.slice('#EXT-X-PROGRAM-DATE-TIME:'.length)) })
    } else if (line.startsWith('#EXTINF:')) {
      pos += Number.parseFloat(line.slice('#EXTINF:'.length))
    }
  }
  return anchors
}

function wallAt(anchors, t) {
  let a = null
  for (const x of anchors) if (x.pos <= t + 1e-6) a = x
  return a ? Math.round(a.wall + (t - a.pos) * 1000) : null
}

async function stepPlay(page, playlists) {
  await openTimeline(page, MOTION_CAMERA)
  const mark = await eventMark(page)
  await box(mark, 'the timeline-event')
  // Whatever plays now is paused, so the first frame presented after the
  // click is the event's.
  await page.evaluate(() => {
    const w = window
    for (const v of document.querySelectorAll('video')) v.pause()
    w.__play = { t0: 0, first: null }
    // The click's own time, as the page got it.
    document.addEventListener(
      'click',
      (e) => {
        if (!w.__play.t0 && e.target instanceof Element && e.target.closest('[data-testid="timeline-event"]'))
          w.__play.t0 = performance.now()
      },
      true,
    )
    const watch = () => {
      for (const v of document.querySelectorAll('video[data-testid="player-video"]')) {
        if (v.__e2eWatched) continue
        v.__e2eWatched = true
        const onFrame = (now, meta) => {
          if (w.__play.t0 && now >= w.__play.t0 && !w.__play.first) {
            const b = v.buffered
            const ranges = []
            for (let k = 0; k < b.length; k++) ranges.push([+b.start(k).toFixed(3), +b.end(k).toFixed(3)])
            w.__play.first = { at: now, mediaTime: meta.mediaTime, currentTime: v.currentTime, buffered: ranges }
          }
          v.requestVideoFrameCallback(onFrame)
        }
        v.requestVideoFrameCallback(onFrame)
        // The media events up to the first frames: what the player did.
        w.__play.seeks = []
        for (const type of ['loadstart', 'emptied', 'loadedmetadata', 'seeking', 'seeked', 'waiting', 'playing', 'error']) {
          v.addEventListener(type, () => {
            if (w.__play.seeks.length < 24)
              w.__play.seeks.push(`${type}@${Math.round(performance.now() - w.__play.t0)}ms:${v.currentTime.toFixed(3)}`)
          })
        }
        v.addEventListener('playing', () => {
          if (w.__play.t0 && !w.__play.playing) w.__play.playing = performance.now()
        })
      }
      requestAnimationFrame(watch)
    }
    watch()
  })
  playlists.length = 0
  const mb = await box(mark, 'the timeline-event')
  await page.mouse.click(mb.x + mb.width / 2, mb.y + mb.height / 2)
  const video = page.locator(`video${tid('player-video')}`).first()
  await video.waitFor({ state: 'attached', timeout: TIMEOUT_MS })
  const first = await until(() => page.evaluate(() => window.__play.first), 'no frame presented after clicking the event')
  const times = await page.evaluate(() => ({ t0: window.__play.t0, playing: window.__play.playing }))
  result.clickToFrameMs = Math.round(first.at - times.t0)
  // A cross-check: the video's first `playing` event.
  if (times.playing) result.clickToPlayingMs = Math.round(times.playing - times.t0)
  // It plays: time advances and frames are decoded.
  const q0 = await video.evaluate((v) => v.currentTime)
  const played = await until(
    () =>
      video.evaluate((v, t) => {
        const q = v.getVideoPlaybackQuality()
        return v.currentTime > t + 0.5 && q.totalVideoFrames > 10
          ? { currentTime: v.currentTime, frames: q.totalVideoFrames, dropped: q.droppedVideoFrames }
          : null
      }, q0),
    'player-video did not play (currentTime advancing, more than 10 frames decoded)',
  )
  result.playedFrames = played.frames
  result.droppedFrames = played.dropped
  // The first frame's wall clock, through the playlist that was loaded.
  const pl = playlists.filter((p) => p.text.includes('#EXT-X-PROGRAM-DATE-TIME'))
  if (pl.length) {
    const last = pl[pl.length - 1]
    result.playlistUrl = last.url.replace(/token=[^&]+/, 'token=…')
    result.playStartMs = wallAt(pdtAnchors(last.text), first.mediaTime)
    result.playStartMediaTime = first.mediaTime
    result.playDebug = {
      firstPdt: pdtAnchors(last.text)[0]?.wall ?? null,
      playlists: pl.length,
      currentTime: first.currentTime,
      buffered: first.buffered,
      mediaEvents: await page.evaluate(() => window.__play.seeks ?? []),
      playlistHead: last.text.split('\n').slice(0, 14).join(' | ').replace(/token=[^&\s]+/g, 'token=…'),
    }
  } else {
    result.notes.push('no VOD playlist with PROGRAM-DATE-TIME was loaded')
  }
  result.expectedStartMs = EVENT_START_MS - PRE_ROLL_MS
  result.playerClock = (await page.locator(tid('player-clock')).first().textContent({ timeout: 2000 }).catch(() => null))?.trim() ?? null
  if (result.playStartMs == null) throw new Error('could not map the first frame to wall time')
}

/** The event row's thumbnail: its size and mean brightness (0..255), once loaded. */
async function eventThumb(row) {
  const img = row.locator(tid('event-thumb')).first()
  if (!(await img.count())) {
    result.notes.push('no event-thumb in the event row')
    return null
  }
  const loaded = await until(
    () => img.evaluate((i) => i.complete && i.naturalWidth > 0),
    'event-thumb did not load',
    5000,
    100,
  ).catch(() => false)
  if (!loaded) {
    result.notes.push('the event-thumb did not load within 5 s')
    return null
  }
  return img.evaluate((i) => {
    const c = document.createElement('canvas')
    c.width = i.naturalWidth
    c.height = i.naturalHeight
    const g = c.getContext('2d')
    g.drawImage(i, 0, 0)
    const d = g.getImageData(0, 0, c.width, c.height).data
    let sum = 0
    let bright = 0
    for (let k = 0; k < d.length; k += 4) {
      const y = (d[k] + d[k + 1] + d[k + 2]) / 3
      sum += y
      if (y > 100) bright++
    }
    return { width: i.naturalWidth, height: i.naturalHeight, mean: Math.round(sum / (d.length / 4)), brightPixels: bright }
  })
}

async function stepExport(page) {
  await go(page, '/review')
  const row = page.locator(`${tid('event-row')}[data-event-id="${EVENT_ID}"]`).first()
  let t0
  const viaReview = await row.waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => true, () => false)
  if (viaReview) result.eventThumb = await eventThumb(row)
  await shot(page, 'review')
  if (viaReview) {
    let button = row.locator(tid('event-export')).first()
    if (!(await button.isVisible().catch(() => false))) {
      // The export button may sit in the selected event's panel.
      await row.click()
      button = page.locator(tid('event-export')).first()
    }
    await button.waitFor({ state: 'visible', timeout: TIMEOUT_MS })
    t0 = Date.now()
    await button.click()
    // A form may ask for a name first.
    const start = page.locator(tid('export-start')).first()
    if (await start.waitFor({ state: 'visible', timeout: 1500 }).then(() => true, () => false)) {
      const name = page.locator(tid('export-name')).first()
      if (await name.isVisible().catch(() => false)) await name.fill('e2e event export')
      t0 = Date.now()
      await start.click()
    }
  } else {
    result.notes.push(`no event-row for event ${EVENT_ID} on /review: exported from the timeline selection`)
    await openTimeline(page, MOTION_CAMERA)
    const mb = await box(await eventMark(page), 'the timeline-event')
    await page.locator(tid('select-range')).first().click()
    await dragOnBar(page, mb.x - 4, mb.x + mb.width + 4)
    await page.locator(tid('export-name')).first().fill('e2e event export')
    t0 = Date.now()
    await page.locator(tid('export-start')).first().click()
  }
  await sleep(300)
  if (!new URL(page.url()).pathname.startsWith('/exports')) await go(page, '/exports')
  const list = page.locator(tid('export-row'))
  await until(async () => (await list.count()) > 0, 'no export-row on /exports')
  // The newest is listed first.
  const exportRow = list.first()
  result.exportId = Number(await exportRow.getAttribute('data-export-id'))
  const seen = new Set()
  const doneAt = await until(
    async () => {
      const state = await exportRow.getAttribute('data-state')
      const p = await exportRow
        .locator(tid('export-progress'))
        .first()
        .evaluate((el) => Number(el.value), null, { timeout: 200 })
        .catch(() => null)
      if (p != null) seen.add(`${state}:${Math.round(p)}`)
      return state === 'done' ? Date.now() : null
    },
    'the export did not reach data-state=done',
    60_000,
    100,
  ).catch(async (e) => {
    throw new Error(`${e.message}; state ${await exportRow.getAttribute('data-state').catch(() => '?')}`)
  })
  result.exportMs = doneAt - t0
  result.exportProgressSeen = [...seen]
  const progress = exportRow.locator(tid('export-progress')).first()
  if (await progress.count()) {
    const v = await until(
      () => progress.evaluate((p) => (Number(p.value) >= 100 ? Number(p.value) : null)),
      'export-progress did not reach 100',
      5000,
    )
    result.exportProgress = v
  } else {
    result.notes.push('the done export-row has no export-progress (hidden once done?)')
  }
  await shot(page, 'exports')
  if (DOWNLOAD_DIR) {
    const link = exportRow.locator(tid('export-download')).first()
    await link.waitFor({ state: 'visible', timeout: TIMEOUT_MS })
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: TIMEOUT_MS }), link.click()])
    const path = join(DOWNLOAD_DIR, `export-${result.exportId}.mp4`)
    await download.saveAs(path)
    const failure = await download.failure()
    if (failure) throw new Error(`the download failed: ${failure}`)
    result.downloadPath = path
    result.downloadName = download.suggestedFilename()
  }
}

async function stepLock(page) {
  await openTimeline(page, MOTION_CAMERA)
  const mb = await box(await eventMark(page), 'the timeline-event')
  page.once('dialog', (d) => d.accept('e2e lock').catch(() => {}))
  await page.locator(tid('select-range')).first().click()
  await dragOnBar(page, mb.x - 4, mb.x + mb.width + 4)
  const note = page.locator(tid('lock-note')).first()
  if (await note.isVisible().catch(() => false)) await note.fill('e2e lock')
  await page.locator(tid('lock-range')).first().click()
  const items = page.locator(`${tid('locks-list')} ${tid('lock-item')}`)
  await until(async () => (await items.count()) > 0, 'no lock-item in locks-list after lock-range')
  result.lockItems = await items.count()
}

/**
 * Runs in the page before the app: WebRTC can no longer connect. The answer
 * loses its `a=candidate` lines, so the browser has no pair to check and
 * the ICE-lite server never checks first: the session stays `connecting`.
 */
function blockIce() {
  const Native = window.RTCPeerConnection
  window.RTCPeerConnection = class extends Native {
    setRemoteDescription(desc) {
      if (desc?.sdp) {
        const sdp = desc.sdp
          .split(/\r?\n/)
          .filter((l) => !l.startsWith('a=candidate'))
          .join('\r\n')
        desc = { type: desc.type, sdp }
      }
      return super.setRemoteDescription(desc)
    }
  }
}

async function stepHlsFallback() {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, timezoneId: 'UTC' })
  try {
    await context.addInitScript(blockIce)
    const page = await context.newPage()
    page.setDefaultTimeout(TIMEOUT_MS)
    // What the fallback fetched and what the page complained about, for a failure.
    const debug = { responses: [], console: [] }
    result.hlsDebug = debug
    page.on('response', (r) => {
      const u = new URL(r.url())
      if (/live\.m3u8$|\/files\//.test(u.pathname) && debug.responses.length < 12)
        debug.responses.push(`${r.status()} ${u.pathname.split('/').slice(-1)[0]} ${r.request().headers().range ?? ''}`.trim())
    })
    page.on('console', (m) => {
      if (m.type() !== 'log' && debug.console.length < 8) debug.console.push(m.text().slice(0, 200))
    })
    page.on('pageerror', (e) => {
      if (debug.console.length < 8) debug.console.push(String(e?.message ?? e).split('\n')[0])
    })
    await login(page, ADMIN_USER, ADMIN_PASSWORD)
    const t0 = Date.now()
    await go(page, `/cameras/${STILL_CAMERA}`)
    const tile = page.locator(`.tile[data-camera-id="${STILL_CAMERA}"]`).first()
    const video = tile.locator('video').first()
    const seen = { badge: '', note: '' }
    const sample = async () => {
      seen.badge = ((await tile.locator(tid('tile-badge')).textContent({ timeout: 500 }).catch(() => '')) ?? '').trim()
      seen.note = ((await tile.locator(tid('tile-note')).textContent({ timeout: 500 }).catch(() => '')) ?? '').trim()
      return /HLS/.test(seen.badge) && /WebRTC could not connect/.test(seen.note)
    }
    const left = () => Math.max(0, t0 + HLS_FALLBACK_MS - Date.now())
    await until(sample, 'the tile did not say HLS', left(), 100).catch((e) => {
      throw new Error(`${e.message}: badge ${JSON.stringify(seen.badge)}, note ${JSON.stringify(seen.note)}`)
    })
    const saidHlsMs = Date.now() - t0
    const q = () =>
      video.evaluate((v) => {
        const b = v.buffered
        const buffered = b.length ? [+b.start(0).toFixed(2), +b.end(b.length - 1).toFixed(2)] : []
        return { frames: v.getVideoPlaybackQuality().totalVideoFrames, time: v.currentTime, ready: v.readyState, buffered, error: v.error?.message ?? null }
      })
    const q0 = await q()
    const q1 = await until(
      async () => {
        const now = await q()
        return now.frames > q0.frames + 5 || now.time > q0.time + 1 ? now : null
      },
      'the HLS video decoded no frames',
      left(),
      100,
    ).catch(async (e) => {
      await sample()
      throw new Error(`${e.message}: ${JSON.stringify(await q())}, badge ${JSON.stringify(seen.badge)}`)
    })
    // The tile says it plays HLS, and WebRTC really did not get through.
    await until(async () => (await sample()) && seen.badge === 'live · HLS', 'the tile does not say "live · HLS"', 2000).catch((e) => {
      throw new Error(`${e.message}: badge ${JSON.stringify(seen.badge)}, note ${JSON.stringify(seen.note)}`)
    })
    const states = await page.evaluate(async () => (await window.__reallive?.stats())?.map((s) => s.state) ?? [])
    if (states.includes('live')) throw new Error(`a WebRTC session connected despite the blocked ICE: ${states}`)
    result.hlsFallback = { saidHlsMs, framesMs: Date.now() - t0, frames: q1.frames, currentTime: q1.time, badge: seen.badge, note: seen.note }
    // How far behind live it plays: wall clock minus the PROGRAM-DATE-TIME
    // of the frame on screen (hls.js `playingDate`), sampled every 250 ms
    // for HLS_LATENCY_MS once it plays.
    const samples = []
    const until2 = Date.now() + HLS_LATENCY_MS
    while (Date.now() < until2) {
      const h = await page.evaluate(() => window.__reallive?.hls?.() ?? [])
      const v = await q()
      if (h[0]?.behindLiveMs != null) samples.push({ ...h[0], t: +v.time.toFixed(2), buf: v.buffered, rs: v.ready })
      await sleep(250)
    }
    const behind = samples.map((x) => x.behindLiveMs).sort((a, b) => a - b)
    const at = (q) => behind[Math.min(behind.length - 1, Math.floor(q * behind.length))]
    result.hlsFallback.latency = behind.length
      ? {
          samples: behind.length,
          behindLiveMs: { min: behind[0], median: at(0.5), p90: at(0.9), max: behind[behind.length - 1] },
          hlsLatencyS: +samples[samples.length - 1].latency.toFixed(3),
          targetLatencyS: samples[samples.length - 1].targetLatency,
          lowLatencyMode: samples[samples.length - 1].lowLatencyMode,
          trace: samples.map((x) => [x.behindLiveMs, x.t, x.buf[1] ?? null, x.rs, +x.latency.toFixed(2)]),
        }
      : null
    if (SCREENSHOT_DIR) {
      // The focused tile is about as tall as the phone: bring its caption in.
      await tile.locator(tid('tile-note')).scrollIntoViewIfNeeded()
      await page.screenshot({ path: join(SCREENSHOT_DIR, 'live-hls-fallback-phone.png') })
      result.screenshots.push('live-hls-fallback-phone.png')
    }
  } finally {
    await context.close().catch(() => {})
  }
}

async function stepRefused(page) {
  await logout(page)
  await login(page, VIEWER_USER, VIEWER_PASSWORD)
  await go(page, `/cameras/${STILL_CAMERA}/timeline`)
  const err = page.locator(tid('timeline-error')).first()
  await err.waitFor({ state: 'visible', timeout: TIMEOUT_MS })
  const text = ((await err.textContent()) ?? '').trim().replace(/\s+/g, ' ')
  result.refusedMessage = text
  // Give a late answer the time to draw spans anyway.
  await sleep(500)
  const spans = await page.locator(tid('timeline-span')).count()
  await shot(page, 'timeline-refused')
  if (spans !== 0) throw new Error(`${spans} timeline-span drawn for a camera without playback`)
  if (text.length < 10 || !/playback|record|permission|allow|access/i.test(text))
    throw new Error(`timeline-error does not say why: ${JSON.stringify(text)}`)
}

async function run() {
  if (!ADMIN_PASSWORD) throw new Error('RL_ADMIN_PASSWORD is not set')
  if (SCREENSHOT_DIR) mkdirSync(SCREENSHOT_DIR, { recursive: true })
  if (DOWNLOAD_DIR) mkdirSync(DOWNLOAD_DIR, { recursive: true })
  browser = await launchChromium()
  // UTC, so the player's clock reads like the API's times.
  const context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true, timezoneId: 'UTC' })
  const page = await context.newPage()
  page.setDefaultTimeout(TIMEOUT_MS)
  const pageErrors = []
  page.on('pageerror', (e) => pageErrors.push(String(e?.message ?? e).split('\n')[0]))
  const playlists = []
  page.on('response', async (r) => {
    if (!r.url().includes('.m3u8')) return
    try {
      playlists.push({ url: r.url(), text: await r.text() })
    } catch {
      // A response that went away (navigation) has no body to read.
    }
  })

  await login(page, ADMIN_USER, ADMIN_PASSWORD)
  if (SCREENSHOT_DIR) {
    await sleep(1500)
    await shot(page, 'live')
  }
  const steps = [
    ['timeline', () => stepTimeline(page)],
    ['scrub', () => stepScrub(page)],
    ['play', () => stepPlay(page, playlists)],
    ['export', () => stepExport(page)],
    ['lock', () => stepLock(page)],
    ['hlsFallback', () => stepHlsFallback()],
  ]
  for (const [name, fn] of steps) {
    if (!STEPS.includes(name)) continue
    const t = Date.now()
    try {
      await fn()
      result.steps[name] = 'pass'
    } catch (e) {
      result.steps[name] = `fail: ${String(e?.message ?? e).split('\n')[0]}`
      await page.mouse.up().catch(() => {})
    }
    log(`${name}: ${result.steps[name]} (${Date.now() - t} ms)`)
  }
  if (SCREENSHOT_DIR) {
    try {
      await go(page, `/timeline?cameras=${STILL_CAMERA},${MOTION_CAMERA}`)
      await until(async () => (await page.locator(tid('timeline-bar')).count()) >= 2, 'two timeline-bars', TIMEOUT_MS)
      await sleep(1000)
      await shot(page, 'timeline-two')
    } catch (e) {
      result.notes.push(`two-camera timeline: ${String(e?.message ?? e).split('\n')[0]}`)
    }
  }
  if (STEPS.includes('refused')) {
    try {
      await stepRefused(page)
      result.steps.refused = 'pass'
    } catch (e) {
      result.steps.refused = `fail: ${String(e?.message ?? e).split('\n')[0]}`
    }
    log(`refused: ${result.steps.refused}`)
  }
  if (pageErrors.length) result.pageErrors = pageErrors.slice(0, 5)
  const failed = Object.entries(result.steps).filter(([, v]) => v !== 'pass')
  if (failed.length) finish(false, { reason: failed.map(([k, v]) => `${k}: ${v}`).join('; ') })
  else finish(true)
}

try {
  await run()
} catch (e) {
  finish(false, { reason: String(e?.message ?? e).split('\n')[0] })
} finally {
  await closeBrowser()
  disarm()
}
process.exit(process.exitCode ?? 1)
