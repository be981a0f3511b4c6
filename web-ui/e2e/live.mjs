#!/usr/bin/env node
// End-to-end check of live playback: log in through the form, wait for the
// grid, optionally open one camera full-size, and wait until some camera's
// video decoder has produced more than MIN_FRAMES frames.
//
// Prints one JSON line and exits 0 ({"ok":true,"framesDecoded":N,"ms":T,
// "firstFrameMs":F,"path":{...},"tiles":[{cameraId,name,state,badge,badgeTitle,
// transcoded,note,overlay}]}) or 1 ({"ok":false,"reason":"...",
// "stats":[...]}). `ms` counts from the moment the live page appeared to
// MIN_FRAMES; `firstFrameMs` from the click on "Sign in" to the first
// decoded frame (what a user waits for); `path` is the
// selected ICE candidate pair's local end (candidateType, protocol,
// relayProtocol). Never hangs: a hard timeout ends the run.
//
// Sound: the success line also carries `audioSamples` and `audioCodec` (of
// the camera that received the most audio) whenever the page reports them.
// With MIN_AUDIO_SAMPLES > 0 the run succeeds only once some camera also
// received more audio samples than that; then the script clicks the camera's
// "Unmute" button, as a user would, checks that its video is no longer muted,
// and reports `"unmuted":true`.
//
// Env: BASE_URL, RL_USERNAME, RL_PASSWORD, RL_CAMERA_NAME (optional),
//      MIN_FRAMES (60), MIN_AUDIO_SAMPLES (0: no check), TIMEOUT_MS (10000),
//      CHROMIUM (/usr/bin/chromium),
//      CHROMIUM_EXTRA_ARGS (space-separated flags added to the fixed ones),
//      SCREENSHOT (a path: a PNG of the page at success), VIEWPORT (1280x800),
//      SCREENSHOT_PHONE (a path: then the page at 390x844, the whole page),
//      SETTLE_MS (0: wait this long after success before reading the tiles),
//      HARD_TIMEOUT_MS (default: 3 × TIMEOUT_MS + 30000).

import { closeBrowser, envInt, guardRun, launchChromium, sleep } from './harness.mjs'

let browser = null
let lastStats = []
let done = false

function intEnv(name, dflt) {
  try {
    return envInt(name, dflt)
  } catch (e) {
    finish(false, { reason: e.message })
    process.exit(1)
  }
}

const BASE_URL = process.env.BASE_URL || 'http://127.0.0.1:8080'
const USERNAME = process.env.RL_USERNAME ?? ''
const PASSWORD = process.env.RL_PASSWORD ?? ''
const CAMERA_NAME = process.env.RL_CAMERA_NAME || ''
const MIN_FRAMES = intEnv('MIN_FRAMES', 60)
const MIN_AUDIO_SAMPLES = intEnv('MIN_AUDIO_SAMPLES', 0)
const TIMEOUT_MS = intEnv('TIMEOUT_MS', 10_000)
const HARD_TIMEOUT_MS = intEnv('HARD_TIMEOUT_MS', 3 * TIMEOUT_MS + 30_000)
const POLL_MS = 200
// Restart phase (optional): after the first success, print a phase line,
// wait for RESTART_FILE to appear (holding the epoch ms at which the server
// came back), then measure until a new connection decodes RESUME_FRAMES.
const RESTART_FILE = process.env.RESTART_FILE || ''
const RESUME_FRAMES = intEnv('RESUME_FRAMES', 30)
// A PNG of the page at success, when set (a path).
const SCREENSHOT = process.env.SCREENSHOT || ''
const SCREENSHOT_PHONE = process.env.SCREENSHOT_PHONE || ''
// How long to wait after success before reading the tiles (their notes
// settle) and taking the screenshot.
const SETTLE_MS = intEnv('SETTLE_MS', 0)
const RESTART_WAIT_MS = intEnv('RESTART_WAIT_MS', 60_000)

function finish(ok, fields) {
  if (done) return
  done = true
  const line = ok ? { ok: true, ...fields } : { ok: false, reason: fields.reason, stats: fields.stats ?? lastStats }
  process.stdout.write(`${JSON.stringify(line)}\n`)
  process.exitCode = ok ? 0 : 1
}

const disarm = guardRun(HARD_TIMEOUT_MS, (reason) => finish(false, { reason }))


async function readStats(page) {
  try {
    const s = await page.evaluate(() => (window.__reallive ? window.__reallive.stats() : null))
    if (Array.isArray(s)) lastStats = s
    return s
  } catch {
    return null
  }
}

/** The camera that received the most audio, when the page reports audio at all. */
function bestAudio(stats) {
  let best = null
  for (const s of stats ?? []) {
    if (typeof s.audioSamples !== 'number') continue
    if (best == null || s.audioSamples > best.audioSamples) best = s
  }
  return best ? { cameraId: best.cameraId, audioSamples: best.audioSamples, audioCodec: best.audioCodec ?? null } : null
}

/** `audioSamples` and `audioCodec` for the JSON line, when known. */
function audioFields(audio) {
  return audio ? { audioSamples: audio.audioSamples, audioCodec: audio.audioCodec } : {}
}

/**
 * Clicks the camera's "Unmute" button (the focused player's, or the grid
 * tile's after hovering it) and checks that its video now plays unmuted.
 */
async function unmute(page, cameraId, timeoutMs) {
  const tile = page.locator(`.tile[data-camera-id="${cameraId}"]`)
  const button = tile.locator('[data-testid="sound-toggle"]')
  await tile.hover({ timeout: timeoutMs }).catch(() => {})
  try {
    await button.waitFor({ state: 'visible', timeout: timeoutMs })
  } catch {
    throw new Error(`camera ${cameraId} received audio but shows no sound button within ${timeoutMs} ms`)
  }
  const label = await button.getAttribute('aria-label')
  if (label !== 'Unmute') throw new Error(`the sound button of camera ${cameraId} says ${JSON.stringify(label)}, not "Unmute"`)
  await button.click({ timeout: timeoutMs })
  const muted = await tile.locator('video').evaluate((v) => v.muted)
  if (muted) throw new Error(`camera ${cameraId}'s video is still muted after clicking "Unmute"`)
  const after = await button.getAttribute('aria-label')
  if (after !== 'Mute') throw new Error(`after unmuting, the sound button says ${JSON.stringify(after)}, not "Mute"`)
  return true
}

async function run() {
  if (!USERNAME) throw new Error('RL_USERNAME is not set')
  browser = await launchChromium()
  const [vw, vh] = (process.env.VIEWPORT || '1280x800').split('x').map(Number)
  const context = await browser.newContext({ viewport: { width: vw || 1280, height: vh || 800 } })
  const page = await context.newPage()
  page.setDefaultTimeout(TIMEOUT_MS)
  const pageErrors = []
  page.on('pageerror', (e) => pageErrors.push(String(e?.message ?? e)))

  const res = await page.goto(BASE_URL, { waitUntil: 'domcontentloaded', timeout: TIMEOUT_MS })
  if (res && !res.ok()) throw new Error(`GET ${BASE_URL} answered HTTP ${res.status()}`)

  // A stale token from nowhere cannot exist (fresh profile), so this is the login form.
  await page.locator('#login-username').waitFor({ state: 'visible', timeout: TIMEOUT_MS })
  await page.locator('#login-username').fill(USERNAME)
  await page.locator('#login-password').fill(PASSWORD)
  const signedIn = Date.now()
  await page.locator('.login-card button[type=submit]').click()

  // Either the live page appears or the login form says why not.
  const outcome = await Promise.race([
    page.locator('section.live').waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'live'),
    page.locator('#login-error').waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'error'),
  ]).catch(() => 'timeout')
  if (outcome === 'error') {
    const msg = await page.locator('#login-error').textContent().catch(() => '')
    throw new Error(`login failed: ${(msg ?? '').trim()}`)
  }
  if (outcome !== 'live') throw new Error(`the live page did not appear within ${TIMEOUT_MS} ms after logging in`)
  const t0 = Date.now()
  const deadline = t0 + TIMEOUT_MS
  const left = () => Math.max(1, deadline - Date.now())

  if (CAMERA_NAME) {
    // Find the tile by its exact name (text, so no selector escaping).
    let id = null
    while (id == null && Date.now() < deadline) {
      id = await page.evaluate((name) => {
        for (const el of document.querySelectorAll('.tile')) {
          if (el.querySelector('.tile-name')?.textContent === name) return el.getAttribute('data-camera-id')
        }
        return null
      }, CAMERA_NAME)
      if (id == null) await sleep(POLL_MS)
    }
    if (id == null) {
      const names = await page.locator('.tile-name').allTextContents().catch(() => [])
      throw new Error(`no camera tile named ${JSON.stringify(CAMERA_NAME)} (tiles: ${JSON.stringify(names)})`)
    }
    await page.locator(`.tile[data-camera-id="${id}"] .tile-link`).click({ timeout: left() })
    await page.locator('.tile.focused').waitFor({ state: 'visible', timeout: left() })
  }

  let firstFrameMs = null
  let audio = null
  let best = 0
  while (Date.now() < deadline) {
    const stats = await readStats(page)
    best = (stats ?? []).reduce((m, s) => Math.max(m, Number(s.framesDecoded) || 0), 0)
    audio = bestAudio(stats) ?? audio
    if (best > 0 && firstFrameMs == null) firstFrameMs = Date.now() - signedIn
    const heard = MIN_AUDIO_SAMPLES === 0 || (audio != null && audio.audioSamples > MIN_AUDIO_SAMPLES)
    if (best > MIN_FRAMES && heard) {
      const ms = Date.now() - t0
      // The user's flow: hear the camera. Not part of `ms`.
      const sound = MIN_AUDIO_SAMPLES > 0 ? { unmuted: await unmute(page, audio.cameraId, left()) } : {}
      if (RESTART_FILE) {
        await resumeAfterRestart(page, best, ms, { ...audioFields(audio), ...sound })
        return
      }
      const paths = await page.evaluate(() => window.__reallive?.paths?.() ?? []).catch(() => [])
      if (SETTLE_MS > 0) await sleep(Math.min(SETTLE_MS, left()))
      const tiles = await tileFields(page)
      if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT }).catch(() => {})
      if (SCREENSHOT_PHONE) {
        // The same page on a phone: the layout reflows, nothing reconnects.
        await page.setViewportSize({ width: 390, height: 844 }).catch(() => {})
        await sleep(500)
        await page.screenshot({ path: SCREENSHOT_PHONE, fullPage: true }).catch(() => {})
      }
      finish(true, { framesDecoded: best, ms, firstFrameMs, path: paths[0] ?? null, tiles, ...audioFields(audio), ...sound })
      return
    }
    // Fast polls until the first frame, so its time is measured closely.
    await sleep(Math.min(firstFrameMs == null ? 20 : POLL_MS, left()))
  }
  await readStats(page)
  const extra = pageErrors.length ? `; page errors: ${pageErrors.slice(0, 3).join(' | ')}` : ''
  if (best > MIN_FRAMES) {
    const got = audio ? `${audio.audioSamples} samples, codec ${audio.audioCodec ?? 'unknown'}` : 'none reported'
    throw new Error(`no camera received more than ${MIN_AUDIO_SAMPLES} audio samples within ${TIMEOUT_MS} ms (most: ${got})${extra}`)
  }
  throw new Error(`no camera decoded more than ${MIN_FRAMES} frames within ${TIMEOUT_MS} ms${extra}`)
}

/** What each tile shows: its camera, badge, note and overlay, and whether
 * it marks the picture as transcoded by the server. */
async function tileFields(page) {
  return page
    .evaluate(() =>
      [...document.querySelectorAll('.tile')].map((el) => {
        const badge = el.querySelector('[data-testid="tile-badge"]')
        return {
          cameraId: Number(el.getAttribute('data-camera-id')),
          name: el.querySelector('.tile-name')?.textContent ?? null,
          state: el.getAttribute('data-state'),
          badge: badge?.textContent?.trim() ?? null,
          badgeTitle: badge?.getAttribute('title') ?? null,
          transcoded: el.getAttribute('data-transcoded') === 'yes',
          note: el.querySelector('[data-testid="tile-note"]')?.textContent?.trim() ?? null,
          overlay: el.querySelector('.overlay')?.textContent?.trim() ?? null,
        }
      }),
    )
    .catch(() => [])
}

async function resumeAfterRestart(page, firstFrames, firstMs, sound = {}) {
  const fs = await import('node:fs')
  process.stdout.write(`${JSON.stringify({ phase: 1, framesDecoded: firstFrames, ms: firstMs })}\n`)
  // While the server is away, watch for the connection being replaced: a
  // new decoder starts again from zero.
  let low = firstFrames
  let back = null
  const waitUntil = Date.now() + RESTART_WAIT_MS
  while (back == null && Date.now() < waitUntil) {
    const stats = await readStats(page)
    const best = (stats ?? []).reduce((m, s) => Math.max(m, Number(s.framesDecoded) || 0), 0)
    low = Math.min(low, best)
    try {
      back = Number(fs.readFileSync(RESTART_FILE, 'utf8').trim())
    } catch {
      back = null
    }
    if (back == null) await sleep(POLL_MS)
  }
  if (back == null) throw new Error(`RESTART_FILE never appeared within ${RESTART_WAIT_MS} ms`)
  const deadline = back + TIMEOUT_MS
  while (Date.now() < deadline) {
    const stats = await readStats(page)
    const best = (stats ?? []).reduce((m, s) => Math.max(m, Number(s.framesDecoded) || 0), 0)
    low = Math.min(low, best)
    if (low < firstFrames && best >= RESUME_FRAMES && best - low >= RESUME_FRAMES) {
      finish(true, { framesDecoded: firstFrames, ms: firstMs, resumedFrames: best, resumeMs: Date.now() - back, ...sound })
      return
    }
    await sleep(POLL_MS)
  }
  throw new Error(`video did not resume within ${TIMEOUT_MS} ms of the server's return`)
}

try {
  await run()
} catch (e) {
  const msg = String(e?.message ?? e).split('\n')[0]
  finish(false, { reason: msg })
} finally {
  await closeBrowser()
  disarm()
}
process.exit(process.exitCode ?? 1)
