#!/usr/bin/env node
// End-to-end check of the camera management pages (issue 18) against a
// real reallive-nvr that starts with no camera, and fake RTSP cameras.
// Driven through the UI only (the API is read to check what the UI did,
// never to do it).
//
// Steps, each reported as "pass" or "fail: why" (a failed step does not
// stop the later ones, though most build on the first two):
//   setup    a fresh NVR with no cameras sends the admin to /setup
//   add      in the form: CAM_URL, "Test connection", the snapshot shows;
//            save; the new camera plays live within LIVE_MS (liveMs: from
//            step 2 showing to the first decoded frames, through the app's
//            window.__reallive.stats() hook, as live.mjs reads it)
//   badauth  on /cameras, "Add camera" with BAD_AUTH_URL: "Test connection"
//            shows the auth message under the URL; nothing is saved and
//            GET /api/nvr/cameras still lists one camera
//   zone     on the first camera's motion page, once it has motion events
//            (eventsBeforeZone), draws an exclude zone at EXCLUDE_ZONE's
//            corners, names it "ball-corner" and saves it (zoneSavedAtMs,
//            epoch ms: the caller checks that no event starts after it);
//            GET /api/cameras/{id}/motion holds it, each corner within 0.02
//   viewer   adds a second camera "back" (SECOND_CAM_URL) on /cameras;
//            on /users creates VIEWER_USER (role viewer) and grants it
//            "view" on the first camera only (checked with GET
//            /api/cameras/{id}/grants); signed in as the viewer, the live
//            page shows the first camera alone (viewerSees) and no
//            Cameras or Users entry; then the admin signs in again
//   backend  on /cameras, Edit on "back" (the first camera when there is
//            no "back"): its "RTSP client" reads RealLive (retina), as GET
//            /api/nvr/cameras/{id} says; set to GStreamer and saved, the
//            API then reports backend "gstreamer", and GET /api/status
//            shows the camera recording again (running, its frame count
//            growing: backendFrames)
//   stop     on /system, Stop on the first camera: its state reads
//            Stopped and its state changes list the stop (stopHistory, the
//            newest 3); then Start again (not checked)
//   logs     on /logs (level Normal): a line tells of that stop; no line
//            on the page, nor any of GET /api/logs?level=trace, holds
//            CAM_PASSWORD (logLines: the lines on the page)
// plus screenshots at 1280x800 and 375x812 when SCREENSHOT_DIR is set:
// setup, probe (the form with a probe result), cameras, probe-auth,
// motion-zone, users, viewer-live, camera-form (editing, GStreamer picked),
// system, logs, account. stepMs has each step's time.
//
// Prints one JSON line and exits 0 ({"ok":true,...}) or 1 ({"ok":false,
// "reason":...,"steps":{...},...}). Never hangs: a hard timeout ends the run.
//
// Env: BASE_URL, RL_ADMIN_USER (admin), RL_ADMIN_PASSWORD, CAM_URL (a
//      fake camera's rtsp:// URL with its right password), BAD_AUTH_URL
//      (the same camera with a wrong password), CAM_PASSWORD (CAM_URL's
//      password; default: read from CAM_URL), SECOND_CAM_URL (another
//      camera), EXCLUDE_ZONE ("x1,y1 x2,y2 x3,y3 x4,y4": 0..1 of the
//      picture), VIEWER_USER (viewer-e2e), VIEWER_PASSWORD (10+
//      characters), CAMERA_NAME (optional: the name to save; default the
//      one the form suggests), LIVE_MS (5000), SCREENSHOT_DIR (optional),
//      STEPS (optional comma list, default all), TIMEOUT_MS (15000, per
//      wait), HARD_TIMEOUT_MS (240000), CHROMIUM (/usr/bin/chromium),
//      CHROMIUM_EXTRA_ARGS (space-separated flags added to the fixed ones).

import { closeBrowser, envInt, guardRun, launchChromium, sleep } from './harness.mjs'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

let browser = null
let done = false
const result = { steps: {}, stepMs: {}, notes: [], screenshots: [] }

/** The password in a URL's user info ('' when none or unreadable). */
function passwordOf(url) {
  try {
    return decodeURIComponent(new URL(url).password)
  } catch {
    return ''
  }
}

const intEnv = (name, dflt) => envInt(name, dflt)

const BASE_URL = (process.env.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '')
const ADMIN_USER = process.env.RL_ADMIN_USER || 'admin'
const ADMIN_PASSWORD = process.env.RL_ADMIN_PASSWORD ?? ''
const CAM_URL = process.env.CAM_URL || ''
const BAD_AUTH_URL = process.env.BAD_AUTH_URL || ''
const CAMERA_NAME = process.env.CAMERA_NAME || ''
const SECOND_CAM_URL = process.env.SECOND_CAM_URL || ''
const SECOND_CAM_NAME = 'back'
const EXCLUDE_ZONE = process.env.EXCLUDE_ZONE || ''
const ZONE_NAME = 'ball-corner'
const VIEWER_USER = process.env.VIEWER_USER || 'viewer-e2e'
const VIEWER_PASSWORD = process.env.VIEWER_PASSWORD || ''
/** CAM_URL's password: no log line may show it. */
const CAM_PASSWORD = process.env.CAM_PASSWORD || passwordOf(CAM_URL)
/** How long the fake camera's ball may take to make a first motion event. */
const EVENTS_MS = 20_000
const LIVE_MS = intEnv('LIVE_MS', 5000)
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || ''
const ALL_STEPS = ['setup', 'add', 'badauth', 'zone', 'viewer', 'backend', 'stop', 'logs']
const STEPS = (process.env.STEPS || ALL_STEPS.join(',')).split(',').map((s) => s.trim()).filter(Boolean)
const TIMEOUT_MS = intEnv('TIMEOUT_MS', 15_000)
const HARD_TIMEOUT_MS = intEnv('HARD_TIMEOUT_MS', 240_000)
const DESKTOP = { width: 1280, height: 800 }
const PHONE = { width: 375, height: 812 }
const tid = (id) => `[data-testid="${id}"]`
/** The words of the form's `auth` probe failure (CameraForm / api/cameras.ts PROBE_MESSAGES). */
const AUTH_MESSAGE = 'The camera refused the user name or password in the URL.'

function finish(ok, fields = {}) {
  if (done) return
  done = true
  const line = { ok, ...fields, ...result }
  process.stdout.write(`${JSON.stringify(line)}\n`)
  process.exitCode = ok ? 0 : 1
}

const disarm = guardRun(HARD_TIMEOUT_MS, (reason) => finish(false, { reason }))

const log = (...a) => process.stderr.write(`manage.mjs: ${a.join(' ')}\n`)
const firstLine = (e) => String(e?.message ?? e).split('\n')[0]

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
 * where it does not (a page missing from its list), load `/` and let the
 * router take the path from history, and say so in `notes`.
 */
async function go(page, path) {
  const res = await page.goto(BASE_URL + path, { waitUntil: 'domcontentloaded', timeout: TIMEOUT_MS })
  if (res && res.status() === 404) {
    result.notes.push(`the server answered ${path.split('?')[0]} with 404, not index.html: navigated from /`)
    await page.goto(`${BASE_URL}/`, { waitUntil: 'domcontentloaded', timeout: TIMEOUT_MS })
    await page.locator(tid('nav-live')).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS })
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
    await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-desktop.png`), fullPage: true })
    await page.setViewportSize(PHONE)
    await sleep(500)
    await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-phone.png`), fullPage: true })
    result.screenshots.push(`${name}-desktop.png`, `${name}-phone.png`)
  } catch (e) {
    result.notes.push(`screenshot ${name}: ${firstLine(e)}`)
  } finally {
    await page.setViewportSize(DESKTOP).catch(() => {})
    await sleep(200)
  }
}

/** Signs in through the form; the app then goes where it goes (/setup on a fresh NVR). */
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

/** A GET of the API with the page's own token: to check what the UI did. */
async function apiGet(page, path) {
  return page.evaluate(async (p) => {
    const token = localStorage.getItem('reallive.token')
    const r = await fetch(p, { headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' }, cache: 'no-store' })
    return { status: r.status, body: r.ok ? await r.json() : await r.text() }
  }, path)
}

/** The live players' decoded frames, per camera (the app's read-only test hook). */
async function stats(page) {
  try {
    const s = await page.evaluate(() => (window.__reallive ? window.__reallive.stats() : null))
    return Array.isArray(s) ? s : []
  } catch {
    return []
  }
}

/** Waits for the form's probe to end; throws with what it said when it failed. */
async function probeOutcome(page) {
  const outcome = await Promise.race([
    page.locator(tid('probe-result')).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'ok'),
    page.locator(tid('probe-error')).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'error'),
  ]).catch(() => 'timeout')
  if (outcome === 'timeout') throw new Error(`the probe gave neither probe-result nor probe-error within ${TIMEOUT_MS} ms`)
  return outcome
}

// ---------------------------------------------------------------- steps

/** What the earlier steps made, for the later ones. */
const made = { cameraId: null, cameraName: null, stoppedAtMs: null }

async function stepSetup(page) {
  await login(page, ADMIN_USER, ADMIN_PASSWORD)
  await until(() => new URL(page.url()).pathname === '/setup', `the app did not go to /setup (at ${new URL(page.url()).pathname})`)
  await page.locator(tid('camera-form')).first().waitFor({ state: 'visible' })
  const cams = await apiGet(page, '/api/nvr/cameras')
  if (cams.status !== 200 || !Array.isArray(cams.body) || cams.body.length !== 0) {
    throw new Error(`not a fresh NVR: GET /api/nvr/cameras answered ${cams.status} ${JSON.stringify(cams.body).slice(0, 200)}`)
  }
  await shot(page, 'setup')
}

async function stepAdd(page) {
  if (!CAM_URL) throw new Error('CAM_URL is not set')
  if (new URL(page.url()).pathname !== '/setup') await go(page, '/setup')
  await page.locator(tid('field-url')).first().fill(CAM_URL)
  if (CAMERA_NAME) await page.locator(tid('field-name')).first().fill(CAMERA_NAME)
  const t0 = Date.now()
  await page.locator(tid('probe-btn')).first().click()
  if ((await probeOutcome(page)) === 'error') {
    throw new Error(`the probe of CAM_URL failed: ${(await page.locator(tid('probe-error')).first().textContent())?.trim()}`)
  }
  const snap = page.locator(tid('probe-snapshot')).first()
  await snap.waitFor({ state: 'visible' })
  const size = await until(
    () => snap.evaluate((i) => (i.complete && i.naturalWidth > 0 ? { width: i.naturalWidth, height: i.naturalHeight } : null)),
    'probe-snapshot did not decode',
  )
  result.probeMs = Date.now() - t0
  result.probeSnapshot = size
  result.probeVideo = (await page.locator(tid('probe-video')).first().textContent())?.trim() ?? null
  await shot(page, 'probe')

  made.cameraName = (await page.locator(tid('field-name')).first().inputValue()).trim()
  await page.locator(tid('save-camera')).first().click()
  const step2 = page.locator(`${tid('setup-step-2')}.current`).first()
  const refusal = page.locator(`${tid('form-error')}, [data-testid^="field-error-"]`).first()
  const saved = await Promise.race([
    step2.waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'saved'),
    refusal.waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'refused'),
  ]).catch(() => 'timeout')
  if (saved === 'refused') throw new Error(`saving was refused: ${((await refusal.textContent()) ?? '').trim()}`)
  if (saved !== 'saved') throw new Error(`step 2 did not show within ${TIMEOUT_MS} ms of saving`)
  const shown = Date.now()
  const cams = await apiGet(page, '/api/nvr/cameras')
  const cam = Array.isArray(cams.body) ? cams.body.find((c) => c.name === made.cameraName) : null
  if (!cam) throw new Error(`GET /api/nvr/cameras has no camera named ${made.cameraName}`)
  made.cameraId = cam.id
  result.cameraId = cam.id
  const frames = await until(
    async () => {
      const s = (await stats(page)).find((x) => x.cameraId === cam.id)
      return s && s.framesDecoded > 0 ? s : null
    },
    `camera ${cam.id} decoded no frame`,
    LIVE_MS,
    100,
  ).catch(async (e) => {
    result.liveStats = await stats(page)
    throw e
  })
  result.liveMs = Date.now() - shown
  result.liveFrames = frames.framesDecoded
  // The page saw it too: "Waiting for the first picture…" went away.
  await page.locator(tid('setup-playing')).first().waitFor({ state: 'visible', timeout: 2000 }).catch(() => {
    result.notes.push('frames were decoded but the setup page still waits for its video to play')
  })
}

async function stepBadAuth(page) {
  if (!BAD_AUTH_URL) throw new Error('BAD_AUTH_URL is not set')
  await go(page, '/cameras')
  await page.locator('tr.cam-row, [data-testid^="camera-row-"]').first().waitFor({ state: 'visible' })
  await shot(page, 'cameras')
  await page.locator(tid('add-camera')).first().click()
  const url = page.locator(tid('field-url')).first()
  await url.waitFor({ state: 'visible' })
  await url.fill(BAD_AUTH_URL)
  await page.locator(tid('probe-btn')).first().click()
  if ((await probeOutcome(page)) !== 'error') throw new Error('the probe of BAD_AUTH_URL succeeded')
  const err = page.locator(tid('probe-error')).first()
  const text = ((await err.textContent()) ?? '').trim()
  result.badAuthMessage = text
  if (text !== AUTH_MESSAGE) throw new Error(`probe-error says ${JSON.stringify(text)}, not the auth message`)
  const underUrl = await err.evaluate((el) => !!el.closest('.field')?.querySelector('[data-testid="field-url"]'))
  if (!underUrl) throw new Error('the auth message is not under the URL field')
  if ((await url.inputValue()) !== BAD_AUTH_URL) throw new Error('the typed URL was lost')
  await shot(page, 'probe-auth')
  // Save is not clicked: still one camera.
  const cams = await apiGet(page, '/api/nvr/cameras')
  const n = Array.isArray(cams.body) ? cams.body.length : -1
  result.camerasAfterBadAuth = n
  if (n !== 1) throw new Error(`GET /api/nvr/cameras lists ${n} cameras, not 1`)
}

/** Each element's text, its child elements' texts joined by spaces (runs in the page). */
function spanTexts(els) {
  return els.map((e) =>
    (e.children.length ? [...e.children].map((c) => c.textContent ?? '') : [e.textContent ?? ''])
      .map((t) => t.replace(/\s+/g, ' ').trim())
      .filter(Boolean)
      .join(' '),
  )
}

/** "x1,y1 x2,y2 x3,y3 x4,y4" → four [x, y] in 0..1. */
function parseZone(text) {
  const pts = text
    .trim()
    .split(/\s+/)
    .map((p) => p.split(',').map(Number))
  if (pts.length !== 4 || pts.some((p) => p.length !== 2 || p.some((v) => !Number.isFinite(v) || v < 0 || v > 1))) {
    throw new Error(`EXCLUDE_ZONE must be 4 corners "x,y" in 0..1 separated by spaces, got ${JSON.stringify(text)}`)
  }
  return pts
}

/** The first camera (made by `add`; else the NVR's first, when `add` was not run). */
async function firstCamera(page) {
  if (made.cameraId != null) return made.cameraId
  const cams = await apiGet(page, '/api/nvr/cameras')
  const first = Array.isArray(cams.body) ? [...cams.body].sort((a, b) => a.id - b.id)[0] : null
  if (!first) throw new Error('no camera: the add step did not make one')
  made.cameraId = first.id
  made.cameraName = first.name
  return first.id
}

async function stepZone(page) {
  if (!EXCLUDE_ZONE) throw new Error('EXCLUDE_ZONE is not set')
  const corners = parseZone(EXCLUDE_ZONE)
  const id = await firstCamera(page)
  await go(page, `/cameras/${id}/motion`)
  const stage = page.locator(tid('zone-stage')).first()
  await stage.waitFor({ state: 'visible' })
  // The NVR answers 503 until the camera's first picture; the page asks again every 5 s.
  await until(
    () => page.locator(tid('motion-snapshot')).first().evaluate((i) => i.complete && i.naturalWidth > 0),
    'motion-snapshot did not load',
    Math.max(TIMEOUT_MS, EVENTS_MS),
    100,
  )
  const events = await until(
    async () => {
      const r = await apiGet(page, `/api/events?camera=${id}`)
      return r.status === 200 && Array.isArray(r.body) && r.body.length > 0 ? r.body : null
    },
    `GET /api/events?camera=${id} listed no event (the ball should make motion)`,
    EVENTS_MS,
    500,
  )
  result.eventsBeforeZone = events.length

  await page.locator(tid('tool-exclude')).first().click()
  await stage.scrollIntoViewIfNeeded()
  const box = await stage.boundingBox()
  if (!box || box.width < 10 || box.height < 10) throw new Error(`zone-stage has no usable size: ${JSON.stringify(box)}`)
  const picBox = await page.locator(tid('motion-snapshot')).first().boundingBox()
  if (picBox && (Math.abs(picBox.width - box.width) > 2 || Math.abs(picBox.height - box.height) > 2)) {
    result.notes.push(`the picture (${Math.round(picBox.width)}x${Math.round(picBox.height)}) does not fill the zone stage (${Math.round(box.width)}x${Math.round(box.height)})`)
  }
  for (const [x, y] of corners) {
    // Inside the stage by at least a pixel, so 1.0 still lands on it.
    const px = Math.min(box.width - 1, Math.max(1, x * box.width))
    const py = Math.min(box.height - 1, Math.max(1, y * box.height))
    await stage.click({ position: { x: px, y: py } })
  }
  const drafted = await page.locator('[data-testid^="draft-handle-"]').count()
  if (drafted !== corners.length) throw new Error(`${corners.length} clicks on the picture made ${drafted} corners`)
  await page.locator(tid('zone-finish')).first().click()
  const name = page.locator(tid('zone-name')).first()
  if (!(await name.isVisible().catch(() => false))) {
    // Not selected after Finish: pick the new (last) zone in the list.
    const picks = page.locator('[data-testid^="zone-select-"]')
    await picks.nth((await picks.count()) - 1).click()
  }
  await name.waitFor({ state: 'visible' })
  await name.fill(ZONE_NAME)
  await page.locator(tid('motion-save')).first().click()
  const outcome = await Promise.race([
    page.locator(tid('motion-saved')).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'saved'),
    page.locator(tid('motion-save-error')).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'error'),
  ]).catch(() => 'timeout')
  if (outcome === 'error') {
    const why = ((await page.locator(tid('motion-save-error')).first().textContent()) ?? '').trim()
    const marks = (await page.locator(tid('zone-error')).allTextContents()).map((t) => t.trim()).join('; ')
    throw new Error(`saving the zone was refused: ${why}${marks ? ` (${marks})` : ''}`)
  }
  if (outcome !== 'saved') throw new Error(`no motion-saved within ${TIMEOUT_MS} ms of saving`)
  result.zoneSavedAtMs = Date.now()

  const cfg = await apiGet(page, `/api/cameras/${id}/motion`)
  if (cfg.status !== 200) throw new Error(`GET /api/cameras/${id}/motion answered ${cfg.status}`)
  const zones = Array.isArray(cfg.body?.zones) ? cfg.body.zones : []
  const close = (z) =>
    z.kind === 'exclude' &&
    Array.isArray(z.points) &&
    z.points.length === corners.length &&
    z.points.every((p, i) => Math.abs(p[0] - corners[i][0]) <= 0.02 && Math.abs(p[1] - corners[i][1]) <= 0.02)
  const saved = zones.find(close)
  result.savedZones = zones.map((z) => ({ name: z.name, kind: z.kind, points: z.points.map((p) => p.map((v) => Math.round(v * 1000) / 1000)) }))
  if (!saved) throw new Error(`no saved exclude zone has 4 corners within 0.02 of EXCLUDE_ZONE: ${JSON.stringify(result.savedZones)}`)
  if (saved.name !== ZONE_NAME) result.notes.push(`the zone was saved as ${JSON.stringify(saved.name)}, not ${ZONE_NAME}`)
  // The meter follows the saved zones: with the ball's corner ignored it should go quiet (shown, not checked).
  const meter = page.locator(tid('meter-label')).first()
  await until(async () => ((await meter.textContent()) ?? '').trim() === 'Quiet', 'quiet', 3000, 100).catch(() => {})
  result.meterAfterZone = ((await meter.textContent().catch(() => '')) ?? '').trim()
  await shot(page, 'motion-zone')
}

/** Clicks the top bar's "Log out" and waits for the sign-in form, the token gone. */
async function logout(page) {
  await page.getByRole('button', { name: 'Log out', exact: true }).first().click()
  await page.locator('#login-username').waitFor({ state: 'visible' })
  // The app drops its token once the server has the logout: leaving sooner would keep it.
  await until(() => page.evaluate(() => localStorage.getItem('reallive.token') == null), 'the token stayed after Log out')
}

/** Signs the admin in again when an earlier step failed while someone else was signed in. */
async function ensureAdmin(page) {
  const who = ((await page.locator(tid('nav-account')).first().textContent({ timeout: 2000 }).catch(() => '')) ?? '').trim()
  if (who === ADMIN_USER) return
  result.notes.push(`signed in as ${JSON.stringify(who)} at the start of a step: signing the admin in again`)
  await page.evaluate(() => localStorage.clear()).catch(() => {})
  await login(page, ADMIN_USER, ADMIN_PASSWORD)
}

async function stepViewer(page) {
  if (!SECOND_CAM_URL) throw new Error('SECOND_CAM_URL is not set')
  if (!VIEWER_PASSWORD) throw new Error('VIEWER_PASSWORD is not set')
  const firstId = await firstCamera(page)

  // A second camera, through the form.
  await go(page, '/cameras')
  await page.locator('tr.cam-row').first().waitFor({ state: 'visible' })
  await page.locator(tid('add-camera')).first().click()
  await page.locator(tid('field-url')).first().fill(SECOND_CAM_URL)
  await page.locator(tid('field-name')).first().fill(SECOND_CAM_NAME)
  await page.locator(tid('save-camera')).first().click()
  const refusal = page.locator(`${tid('form-error')}, [data-testid^="field-error-"]`).first()
  const added = await Promise.race([
    page.locator(`tr.cam-row[data-testid="camera-row-${SECOND_CAM_NAME}"]`).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'added'),
    refusal.waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'refused'),
  ]).catch(() => 'timeout')
  if (added === 'refused') throw new Error(`adding ${SECOND_CAM_NAME} was refused: ${((await refusal.textContent()) ?? '').trim()}`)
  if (added !== 'added') throw new Error(`no row for ${SECOND_CAM_NAME} within ${TIMEOUT_MS} ms of saving`)
  const sources = await until(
    async () => {
      const r = await apiGet(page, '/api/nvr/cameras')
      return Array.isArray(r.body) && r.body.length === 2 ? r.body : null
    },
    'GET /api/nvr/cameras does not list 2 cameras',
  )
  const back = sources.find((c) => c.name === SECOND_CAM_NAME)
  if (!back) throw new Error(`GET /api/nvr/cameras has no camera named ${SECOND_CAM_NAME}`)
  result.secondCameraId = back.id

  // The viewer, through the create form.
  await go(page, '/users')
  await page.locator(tid('create-username')).first().waitFor({ state: 'visible' })
  await page.locator(tid('create-username')).first().fill(VIEWER_USER)
  await page.locator(tid('create-email')).first().fill(`${VIEWER_USER}@example.test`)
  await page.locator(tid('create-password')).first().fill(VIEWER_PASSWORD)
  await page.locator(tid('create-role')).first().selectOption('viewer')
  await page.locator(tid('create-submit')).first().click()
  const created = await Promise.race([
    page.locator(tid('create-done')).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'done'),
    page.locator(tid('create-error')).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'error'),
  ]).catch(() => 'timeout')
  if (created === 'error') throw new Error(`creating ${VIEWER_USER} was refused: ${((await page.locator(tid('create-error')).first().textContent()) ?? '').trim()}`)
  if (created !== 'done') throw new Error(`no create-done within ${TIMEOUT_MS} ms`)

  // Its row in the matrix, by the name in the row head.
  const matrix = page.locator(tid('grants-matrix')).first()
  await matrix.waitFor({ state: 'visible' })
  const viewerId = await until(
    () =>
      matrix.evaluate((t, name) => {
        const row = [...t.querySelectorAll('tbody tr')].find((tr) => tr.querySelector('th')?.textContent?.trim() === name)
        return row ? Number(row.getAttribute('data-user-id')) : null
      }, VIEWER_USER),
    `the grants matrix has no row for ${VIEWER_USER}`,
  )
  result.viewerId = viewerId
  const cell = (cameraId) => page.locator(`${tid('grant-cell')}[data-user-id="${viewerId}"][data-camera-id="${cameraId}"]`).first()
  for (const c of [firstId, back.id]) {
    if (!(await cell(c).count())) throw new Error(`the grants matrix has no cell for ${VIEWER_USER} on camera ${c}`)
  }
  if ((await cell(back.id).getAttribute('data-level')) !== 'none') throw new Error(`${VIEWER_USER} starts with access to ${SECOND_CAM_NAME}`)
  await cell(firstId).locator(tid('grant-select')).selectOption('view')
  await until(
    async () => (await cell(firstId).getAttribute('data-level')) === 'view' && !(await cell(firstId).locator('select:disabled').count()),
    'the grant cell did not settle on "view"',
  )
  if (await cell(firstId).locator(tid('grant-error')).count()) {
    throw new Error(`the grant was refused: ${((await cell(firstId).locator(tid('grant-error')).textContent()) ?? '').trim()}`)
  }
  const grants = await apiGet(page, `/api/cameras/${firstId}/grants`)
  const g = Array.isArray(grants.body) ? grants.body.find((x) => x.user_id === viewerId) : null
  if (!g || g.permission !== 'view') throw new Error(`GET /api/cameras/${firstId}/grants: ${JSON.stringify(grants.body)}`)
  const backGrants = await apiGet(page, `/api/cameras/${back.id}/grants`)
  if (!Array.isArray(backGrants.body)) throw new Error(`GET /api/cameras/${back.id}/grants answered ${backGrants.status}`)
  if (backGrants.body.some((x) => x.user_id === viewerId)) throw new Error(`${VIEWER_USER} holds a grant on ${SECOND_CAM_NAME}`)
  await shot(page, 'users')

  // As the viewer.
  await logout(page)
  await login(page, VIEWER_USER, VIEWER_PASSWORD)
  if (new URL(page.url()).pathname !== '/') await go(page, '/')
  // The top bar knows who is signed in once the account link shows the name.
  await until(
    async () => ((await page.locator(tid('nav-account')).first().textContent()) ?? '').trim() === VIEWER_USER,
    `the top bar never showed ${VIEWER_USER}`,
  )
  const tiles = page.locator('ul.grid article.tile[data-camera-id]')
  await until(
    async () => (await tiles.count()) > 0 || (await page.getByText('No cameras to show').count()) > 0,
    'the live page showed no camera tile and no "No cameras" message',
  )
  const seen = await tiles.evaluateAll((els) => els.map((e) => ({ id: Number(e.getAttribute('data-camera-id')), name: e.getAttribute('aria-label') })))
  result.viewerSees = seen
  const navs = { cameras: await page.locator(tid('nav-cameras')).count(), users: await page.locator(tid('nav-users')).count() }
  // "Watch live" plays: wait for its first frames before the picture (reported, not checked).
  const frames = await until(
    async () => {
      const st = (await stats(page)).find((x) => x.cameraId === firstId)
      return st && st.framesDecoded > 0 ? st.framesDecoded : null
    },
    'no frame',
    LIVE_MS,
    100,
  ).catch(() => 0)
  result.viewerLiveFrames = frames
  if (!frames) result.notes.push(`the viewer's live tile decoded no frame within ${LIVE_MS} ms`)
  await shot(page, 'viewer-live')
  if (navs.cameras || navs.users) throw new Error(`the viewer has admin entries in the top bar: ${JSON.stringify(navs)}`)
  if (seen.length !== 1 || seen[0].id !== firstId) {
    throw new Error(`the viewer sees ${JSON.stringify(seen)}, not camera ${firstId} alone`)
  }

  // Back to the admin.
  await logout(page)
  await login(page, ADMIN_USER, ADMIN_PASSWORD)
}

/** A GET of one RTSP camera through the API, failing on anything but 200. */
async function sourceOf(page, id) {
  const r = await apiGet(page, `/api/nvr/cameras/${id}`)
  if (r.status !== 200 || typeof r.body !== 'object') throw new Error(`GET /api/nvr/cameras/${id} answered ${r.status}`)
  return r.body
}

async function stepBackend(page) {
  await ensureAdmin(page)
  const cams = await apiGet(page, '/api/nvr/cameras')
  let cam = Array.isArray(cams.body) ? cams.body.find((c) => c.name === SECOND_CAM_NAME) : null
  if (!cam) {
    const id = await firstCamera(page)
    result.notes.push(`backend: no camera ${SECOND_CAM_NAME} (the viewer step adds it): using camera ${id}`)
    cam = await sourceOf(page, id)
  }
  result.backendCameraId = cam.id
  if (cam.backend !== 'retina') throw new Error(`camera ${cam.name} starts with backend ${JSON.stringify(cam.backend)}, not "retina"`)

  await go(page, '/cameras')
  await page.locator(`tr.cam-row[data-testid="camera-row-${cam.name}"]`).first().waitFor({ state: 'visible' })
  await page.locator(tid(`btn-edit-${cam.name}`)).first().click()
  const field = page.locator(`${tid('camera-form-card')} ${tid('field-backend')}`).first()
  await field.waitFor({ state: 'visible' })
  const shown = await field.inputValue()
  if (shown !== 'retina') throw new Error(`the form's RTSP client reads ${JSON.stringify(shown)}, not "retina" as the API says`)
  const options = (await field.locator('option').allTextContents()).map((t) => t.trim())
  result.backendOptions = options
  await field.selectOption('gstreamer')
  await page.locator(tid('unsaved')).first().waitFor({ state: 'visible' })
  await shot(page, 'camera-form')

  await page.locator(`${tid('camera-form-card')} ${tid('save-camera')}`).first().click()
  const refusal = page.locator(`${tid('form-error')}, [data-testid^="field-error-"], ${tid('conflict')}`).first()
  const saved = await Promise.race([
    page.locator(tid('form-done')).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'saved'),
    refusal.waitFor({ state: 'visible', timeout: TIMEOUT_MS }).then(() => 'refused'),
  ]).catch(() => 'timeout')
  if (saved === 'refused') throw new Error(`saving the RTSP client was refused: ${((await refusal.textContent()) ?? '').trim()}`)
  if (saved !== 'saved') throw new Error(`no form-done within ${TIMEOUT_MS} ms of saving the RTSP client`)
  const savedAt = Date.now()
  const after = await sourceOf(page, cam.id)
  result.backendAfter = after.backend
  if (after.backend !== 'gstreamer') throw new Error(`after saving, GET /api/nvr/cameras/${cam.id} reports backend ${JSON.stringify(after.backend)}`)
  if ((await field.inputValue()) !== 'gstreamer') throw new Error('the form went back to another RTSP client after saving')

  // Still recording: the restarted run (now GStreamer's) is running and its frame count grows.
  const statusOf = async () => {
    const r = await apiGet(page, '/api/status')
    return Array.isArray(r.body) ? (r.body.find((x) => x.id === cam.id) ?? null) : null
  }
  let last = null
  const first = await until(
    async () => {
      const st = (last = await statusOf())
      return st && st.state === 'running' && st.frames > 0 && st.last_frame_age_ms != null && st.last_frame_age_ms < 2000 ? st : null
    },
    `camera ${cam.name} is not recording with GStreamer`,
    TIMEOUT_MS,
    250,
  ).catch((e) => {
    throw new Error(`${e.message}: GET /api/status says ${JSON.stringify(last)}`)
  })
  await sleep(1500)
  const second = await statusOf()
  result.backendFrames = [first.frames, second?.frames ?? null]
  result.backendRecordingMs = Date.now() - savedAt
  if (!second || second.state !== 'running' || !(second.frames > first.frames)) {
    throw new Error(`camera ${cam.name} stopped recording after the switch to GStreamer: ${JSON.stringify(second)}`)
  }
  await page.locator(tid('cancel-camera')).first().click().catch(() => {})
}

async function stepStop(page) {
  await ensureAdmin(page)
  const id = await firstCamera(page)
  await go(page, '/system')
  const card = page.locator(`${tid('system-camera')}[data-camera-id="${id}"]`).first()
  await card.waitFor({ state: 'visible' })
  const stop = card.locator(tid('system-stop')).first()
  await stop.waitFor({ state: 'visible' })
  made.stoppedAtMs = Date.now()
  await stop.click()
  const state = card.locator(tid('camera-state')).first()
  await until(async () => ((await state.textContent()) ?? '').trim().toLowerCase() === 'stopped', `camera ${id} does not read Stopped`)
  const history = card.locator(tid('state-history')).first()
  if (!(await history.evaluate((d) => d.open))) await history.locator('summary').first().click()
  const items = history.locator(tid('state-change'))
  const texts = await until(
    async () => {
      const t = await items.evaluateAll(spanTexts)
      return t.some((x) => /stopped by request/i.test(x)) ? t : null
    },
    `the state changes of camera ${id} do not list the stop`,
  )
  // Newest first, as the page lists them.
  result.stopHistory = texts.slice(0, 3)
  await shot(page, 'system')
  // Keep it recording for whatever comes next (not checked).
  try {
    const start = card.locator(tid('system-start')).first()
    await start.click({ timeout: 5000 })
    await until(async () => ((await state.textContent()) ?? '').trim().toLowerCase() !== 'stopped', 'still Stopped', 5000)
  } catch (e) {
    result.notes.push(`Start after the stop: ${firstLine(e)}`)
  }
}

async function stepLogs(page) {
  if (!CAM_PASSWORD) throw new Error('CAM_PASSWORD is not set and CAM_URL has no password')
  await ensureAdmin(page)
  const id = await firstCamera(page)
  await go(page, '/logs')
  const level = await page.locator(tid('log-level')).first().inputValue()
  if (level !== 'INFO') result.notes.push(`the logs page starts at level ${level}, not INFO`)
  const lines = page.locator(tid('log-line'))
  const camWords = [`camera=${id}`, made.cameraName].filter(Boolean)
  // This run's stop (when the stop step ran): the server's line for it, by its seq.
  const since = made.stoppedAtMs == null ? 0 : made.stoppedAtMs - 2000
  const wanted = await until(
    async () => {
      const r = await apiGet(page, '/api/logs?level=info')
      const l = Array.isArray(r.body)
        ? r.body.findLast((x) => x.camera === id && x.at_ms >= since && /stopped by request/i.test(x.message))
        : null
      return l ?? null
    },
    `GET /api/logs has no line of the stop of camera ${id}`,
  )
  const stopLine = await until(
    async () => {
      const all = await page.locator(`${tid('log-line')}[data-seq="${wanted.seq}"]`).evaluateAll(spanTexts)
      return all.find((t) => /stopped by request/i.test(t) && camWords.some((w) => t.includes(w))) ?? null
    },
    `the page shows no log line of the stop of camera ${id} (seq ${wanted.seq})`,
  )
  result.stopLogLine = stopLine
  const texts = await lines.allTextContents()
  result.logLines = texts.length
  const onPage = texts.filter((t) => t.includes(CAM_PASSWORD))
  const trace = await apiGet(page, '/api/logs?level=trace')
  if (trace.status !== 200 || !Array.isArray(trace.body)) throw new Error(`GET /api/logs?level=trace answered ${trace.status}`)
  result.traceLines = trace.body.length
  const inApi = trace.body.filter((l) => JSON.stringify(l).includes(CAM_PASSWORD))
  await shot(page, 'logs')
  try {
    await go(page, '/account')
    await page.locator(tid('account-who')).first().waitFor({ state: 'visible' })
    await shot(page, 'account')
  } catch (e) {
    result.notes.push(`account page: ${firstLine(e)}`)
  }
  if (onPage.length || inApi.length) {
    throw new Error(
      `CAM_PASSWORD shows in ${onPage.length} log line(s) on the page and ${inApi.length} of GET /api/logs?level=trace: ${(onPage[0] ?? JSON.stringify(inApi[0])).slice(0, 200)}`,
    )
  }
}

async function run() {
  if (!ADMIN_PASSWORD) throw new Error('RL_ADMIN_PASSWORD is not set')
  const unknown = STEPS.filter((s) => !ALL_STEPS.includes(s))
  if (unknown.length) throw new Error(`unknown STEPS: ${unknown.join(', ')} (known: ${ALL_STEPS.join(', ')})`)
  if (SCREENSHOT_DIR) mkdirSync(SCREENSHOT_DIR, { recursive: true })
  browser = await launchChromium()
  const context = await browser.newContext({ viewport: DESKTOP, timezoneId: 'UTC' })
  const page = await context.newPage()
  page.setDefaultTimeout(TIMEOUT_MS)
  const pageErrors = []
  page.on('pageerror', (e) => pageErrors.push(firstLine(e)))

  const steps = [
    ['setup', () => stepSetup(page)],
    ['add', () => stepAdd(page)],
    ['badauth', () => stepBadAuth(page)],
    ['zone', () => stepZone(page)],
    ['viewer', () => stepViewer(page)],
    ['backend', () => stepBackend(page)],
    ['stop', () => stepStop(page)],
    ['logs', () => stepLogs(page)],
  ]
  // Later steps need a signed-in page even when `setup` is not run.
  if (!STEPS.includes('setup')) await login(page, ADMIN_USER, ADMIN_PASSWORD)
  for (const [name, fn] of steps) {
    if (!STEPS.includes(name)) continue
    const t = Date.now()
    try {
      await fn()
      result.steps[name] = 'pass'
    } catch (e) {
      result.steps[name] = `fail: ${firstLine(e)}`
    }
    result.stepMs[name] = Date.now() - t
    log(`${name}: ${result.steps[name]} (${result.stepMs[name]} ms)`)
  }
  if (pageErrors.length) result.pageErrors = pageErrors.slice(0, 5)
  const failed = Object.entries(result.steps).filter(([, v]) => v !== 'pass')
  if (failed.length) finish(false, { reason: failed.map(([k, v]) => `${k}: ${v}`).join('; ') })
  else finish(true)
}

try {
  await run()
} catch (e) {
  finish(false, { reason: firstLine(e) })
} finally {
  await closeBrowser()
  disarm()
}
process.exit(process.exitCode ?? 1)
