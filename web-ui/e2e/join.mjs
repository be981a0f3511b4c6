#!/usr/bin/env node
// How long a viewer waits for a camera's first picture: signs in once, then
// opens the camera's live page JOINS times, each a fresh page load, and
// measures from the page's RTCPeerConnection being made to the first video
// frame presented (requestVideoFrameCallback). Between joins it leaves the
// page and waits GAP_MS, so the joins land at different points of the
// camera's GOP.
//
// Prints one JSON line and exits 0 ({"ok":true,"joins":[ms...],
// "medianMs":M,"worstMs":W,"fromLoadMs":[ms...]}) or 1 ({"ok":false,
// "reason":"..."}). `joins` is RTCPeerConnection to first frame; `fromLoadMs`
// is navigation start to first frame (what the user sees, page load
// included). Never hangs: a hard timeout ends the run.
//
// With HOLD_MS, each join also stays that long after its first frame, and
// reports the jitter buffer's mean delay over its second half
// (`jitterMs`, from getStats: jitterBufferDelay / jitterBufferEmittedCount):
// what the browser holds back once any catch-up is over.
//
// Env: BASE_URL, RL_USERNAME, RL_PASSWORD, RL_CAMERA_ID, JOINS (10),
//      GAP_MS (1300), HOLD_MS (0), TIMEOUT_MS (10000, per join), CHROMIUM
//      (/usr/bin/chromium), CHROMIUM_EXTRA_ARGS,
//      HARD_TIMEOUT_MS (default: JOINS × (TIMEOUT_MS + GAP_MS) + 60000).

import { closeBrowser, envInt, guardRun, launchChromium, sleep } from './harness.mjs'

let browser = null
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
const CAMERA_ID = intEnv('RL_CAMERA_ID', 0)
const JOINS = intEnv('JOINS', 10)
const GAP_MS = intEnv('GAP_MS', 1300)
const HOLD_MS = intEnv('HOLD_MS', 0)
const TIMEOUT_MS = intEnv('TIMEOUT_MS', 10_000)
const HARD_TIMEOUT_MS = intEnv('HARD_TIMEOUT_MS', JOINS * (TIMEOUT_MS + GAP_MS + HOLD_MS) + 60_000)

function finish(ok, fields) {
  if (done) return
  done = true
  const line = ok ? { ok: true, ...fields } : { ok: false, reason: fields.reason, ...fields }
  process.stdout.write(`${JSON.stringify(line)}\n`)
  process.exitCode = ok ? 0 : 1
}

const disarm = guardRun(HARD_TIMEOUT_MS, (reason) => finish(false, { reason }))


// In every page, before the app runs: note when a peer connection is made,
// and when each video element presents its first frame.
function instrument() {
  const j = { pcAt: null, firstFrameAt: null, pc: null }
  Object.defineProperty(window, '__join', { value: j })
  const Orig = window.RTCPeerConnection
  window.RTCPeerConnection = class extends Orig {
    constructor(...args) {
      super(...args)
      if (j.pcAt == null) {
        j.pcAt = performance.now()
        j.pc = this
      }
    }
  }
  const seen = new WeakSet()
  const watch = () => {
    for (const v of document.querySelectorAll('video')) {
      if (seen.has(v) || typeof v.requestVideoFrameCallback !== 'function') continue
      seen.add(v)
      v.requestVideoFrameCallback((now) => {
        if (j.firstFrameAt == null) j.firstFrameAt = now
      })
    }
  }
  new MutationObserver(watch).observe(document, { subtree: true, childList: true })
}

/** The video inbound-rtp's (jitterBufferDelay s, emitted count) now. */
async function jitter(page) {
  return page.evaluate(async () => {
    const pc = window.__join?.pc
    if (!pc) return null
    for (const s of (await pc.getStats()).values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        return [s.jitterBufferDelay ?? 0, s.jitterBufferEmittedCount ?? 0]
      }
    }
    return null
  })
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

async function run() {
  if (!USERNAME) throw new Error('RL_USERNAME is not set')
  if (!CAMERA_ID) throw new Error('RL_CAMERA_ID is not set')
  browser = await launchChromium()
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  await context.addInitScript(instrument)
  const page = await context.newPage()
  page.setDefaultTimeout(TIMEOUT_MS)

  await page.goto(`${BASE_URL}/login`, { waitUntil: 'domcontentloaded', timeout: TIMEOUT_MS })
  await page.locator('#login-username').fill(USERNAME)
  await page.locator('#login-password').fill(PASSWORD)
  await page.locator('.login-card button[type=submit]').click()
  await page.locator('section.live').waitFor({ state: 'visible', timeout: TIMEOUT_MS })
  // The grid connects too: leave it, so the first join is a first join.
  await page.goto(`${BASE_URL}/account`, { waitUntil: 'domcontentloaded' })
  await sleep(GAP_MS)

  const joins = []
  const fromLoad = []
  const jitterMs = []
  for (let i = 0; i < JOINS; i++) {
    await page.goto(`${BASE_URL}/cameras/${CAMERA_ID}`, { waitUntil: 'commit', timeout: TIMEOUT_MS })
    const deadline = Date.now() + TIMEOUT_MS
    let got = null
    while (Date.now() < deadline) {
      got = await page
        .evaluate(() => {
          const j = window.__join
          const nav = performance.timeOrigin
          return j && j.firstFrameAt != null && j.pcAt != null
            ? { join: j.firstFrameAt - j.pcAt, load: j.firstFrameAt, nav }
            : null
        })
        .catch(() => null)
      if (got) break
      await sleep(10)
    }
    if (!got) throw new Error(`join ${i + 1}: no frame within ${TIMEOUT_MS} ms`)
    joins.push(Math.round(got.join))
    fromLoad.push(Math.round(got.load))
    if (HOLD_MS) {
      await sleep(HOLD_MS / 2)
      const a = await jitter(page)
      await sleep(HOLD_MS / 2)
      const b = await jitter(page)
      if (a && b && b[1] > a[1]) jitterMs.push(Math.round(((b[0] - a[0]) / (b[1] - a[1])) * 1000))
    }
    // Leave: the page's connection closes, and the camera has no viewer.
    await page.goto(`${BASE_URL}/account`, { waitUntil: 'domcontentloaded' })
    await sleep(GAP_MS)
  }
  finish(true, {
    joins,
    medianMs: median(joins),
    worstMs: Math.max(...joins),
    fromLoadMs: fromLoad,
    ...(HOLD_MS ? { jitterMs } : {}),
  })
}

run()
  .catch((e) => finish(false, { reason: String(e?.message ?? e).split('\n')[0] }))
  .finally(async () => {
    disarm()
    await closeBrowser()
  })
