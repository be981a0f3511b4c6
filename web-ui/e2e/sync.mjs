#!/usr/bin/env node
// Live audio/video sync as a viewer meets it (issue 22, docs/design/audio.md
// "Sync, measured"): a pusher with `--audio test` flashes its test pattern
// white on the same tick of running time as it clicks, and this script,
// in headless Chromium on the camera's live page, times when each flash is
// shown and when each click is played, and pairs them.
//
// - Flash onsets: `requestVideoFrameCallback` on the page's live <video>;
//   each presented frame is drawn small to a canvas and its mean luma read;
//   a dark frame followed by a bright one is an onset, placed at the frame's
//   `expectedDisplayTime` (performance.now() clock).
// - Click onsets: the same MediaStream's audio through Web Audio
//   (`createMediaStreamSource`) into an AudioWorklet that reports the exact
//   sample where silence turns into the tick; the sample's context time is
//   placed on the performance.now() clock by `getOutputTimestamp()`, so it
//   is when that sample leaves for the speaker.
//
// Each flash is paired with the nearest click within 500 ms; offset = click
// - flash (positive: the sound is late). The first SETTLE_MS of playback are
// ignored (the relay's GOP catch-up, which lip sync then re-aligns).
//
// Prints one JSON line and exits 0 ({"ok":true,"pairs":N,"offsetsMs":[...],
// "medianMs":M,"maxAbsMs":X, ...diagnostics}) or 1 ({"ok":false,"reason":
// "..."}). Never hangs: a hard timeout ends the run.
//
// Env: BASE_URL, RL_USERNAME, RL_PASSWORD, RL_CAMERA_ID, MIN_PAIRS (8),
//      PAIRS (12: stop once this many), SETTLE_MS (3000), TIMEOUT_MS (15000,
//      to the first frame and sound), MEASURE_MS (30000), CHROMIUM,
//      CHROMIUM_EXTRA_ARGS, HARD_TIMEOUT_MS (TIMEOUT_MS + SETTLE_MS +
//      MEASURE_MS + 60000).

import { closeBrowser, envInt, guardRun, launchChromium, sleep } from './harness.mjs'

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
const MIN_PAIRS = intEnv('MIN_PAIRS', 8)
const PAIRS = Math.max(MIN_PAIRS, intEnv('PAIRS', 12))
const SETTLE_MS = intEnv('SETTLE_MS', 3000)
const TIMEOUT_MS = intEnv('TIMEOUT_MS', 15_000)
const MEASURE_MS = intEnv('MEASURE_MS', 30_000)
const HARD_TIMEOUT_MS = intEnv('HARD_TIMEOUT_MS', TIMEOUT_MS + SETTLE_MS + MEASURE_MS + 60_000)
/** A click and a flash further apart than this are not the same tick. */
const PAIR_WINDOW_MS = 500

function finish(ok, fields) {
  if (done) return
  done = true
  const line = ok ? { ok: true, ...fields } : { ok: false, ...fields }
  process.stdout.write(`${JSON.stringify(line)}\n`)
  process.exitCode = ok ? 0 : 1
}

const disarm = guardRun(HARD_TIMEOUT_MS, (reason) => finish(false, { reason }))

// In every page, before the app runs: keep the page's peer connection, for
// its jitter-buffer figures.
function instrument() {
  const s = { pc: null }
  Object.defineProperty(window, '__sync', { value: s })
  const Orig = window.RTCPeerConnection
  window.RTCPeerConnection = class extends Orig {
    constructor(...args) {
      super(...args)
      s.pc = this
    }
  }
}

// The detector's audio half, run in the AudioWorkletGlobalScope. An onset is
// the first sample at or above `threshold` after at least `quietFrames`
// samples below it: the tick is 10 ms of 1 kHz once a second, and Opus
// leaves the gaps near silent.
const WORKLET = `
class Onset extends AudioWorkletProcessor {
  constructor(options) {
    super()
    const o = options.processorOptions
    this.threshold = o.threshold
    this.quietFrames = o.quietFrames
    this.quiet = 0
    this.peak = 0
    this.blocks = 0
  }
  process(inputs) {
    const input = inputs[0]
    if (input && input.length > 0) {
      this.blocks++
      const n = input[0].length
      for (let i = 0; i < n; i++) {
        let a = 0
        for (const ch of input) a = Math.max(a, Math.abs(ch[i]))
        if (a > this.peak) this.peak = a
        if (a >= this.threshold) {
          if (this.quiet >= this.quietFrames) this.port.postMessage({ frame: currentFrame + i, amp: a })
          this.quiet = 0
        } else {
          this.quiet++
        }
      }
      if (this.blocks % 375 === 0) this.port.postMessage({ peak: this.peak, blocks: this.blocks })
    }
    return true
  }
}
registerProcessor('onset', Onset)
`

/**
 * Runs in the page: starts both detectors on the focused tile's <video>.
 * Results accumulate in window.__sync (flashes, clicks, diagnostics).
 */
async function startDetectors(worklet) {
  const s = window.__sync
  const video = document.querySelector('.tile.focused video') ?? document.querySelector('.tile video')
  if (!video) throw new Error('no live <video> on the page')
  const stream = video.srcObject
  if (!(stream instanceof MediaStream)) throw new Error('the <video> has no MediaStream')
  if (stream.getAudioTracks().length === 0) throw new Error('the live stream has no audio track')
  Object.assign(s, { flashes: [], clicks: [], frames: 0, skipped: 0, peak: 0, blocks: 0, lumaMin: 255, lumaMax: 0 })

  // Video: mean luma of each presented frame.
  const W = 64
  const H = 36
  const canvas = document.createElement('canvas')
  canvas.width = W
  canvas.height = H
  const g = canvas.getContext('2d', { willReadFrequently: true })
  let lastPresented = null
  let wasDark = false
  const onFrame = (now, md) => {
    if (s.stopped) return
    try {
      g.drawImage(video, 0, 0, W, H)
      const d = g.getImageData(0, 0, W, H).data
      let sum = 0
      for (let i = 0; i < d.length; i += 4) sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]
      const y = sum / (W * H)
      s.frames++
      s.lumaMin = Math.min(s.lumaMin, y)
      s.lumaMax = Math.max(s.lumaMax, y)
      // A frame the compositor never showed may have been the flash's first.
      const gap = lastPresented == null ? 1 : md.presentedFrames - lastPresented
      if (gap > 1) s.skipped += gap - 1
      lastPresented = md.presentedFrames
      if (y >= 200 && wasDark) {
        s.flashes.push({ t: md.expectedDisplayTime ?? now, now, y: Math.round(y), gap, rtp: md.rtpTimestamp ?? null })
      }
      if (y < 180) wasDark = true
      else if (y >= 200) wasDark = false
    } catch (e) {
      s.error = String(e?.message ?? e)
    }
    video.requestVideoFrameCallback(onFrame)
  }
  video.requestVideoFrameCallback(onFrame)

  // Audio: the same stream through Web Audio. The muted <video> already
  // plays it, which Chromium needs before a remote track feeds Web Audio.
  const ctx = new AudioContext({ latencyHint: 'interactive' })
  if (!ctx.audioWorklet) throw new Error(`no AudioWorklet (a secure context: ${window.isSecureContext})`)
  await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([worklet], { type: 'text/javascript' })))
  const node = new AudioWorkletNode(ctx, 'onset', {
    numberOfOutputs: 1,
    processorOptions: { threshold: 0.05, quietFrames: Math.round(ctx.sampleRate * 0.3) },
  })
  node.port.onmessage = (e) => {
    const m = e.data
    if (m.frame == null) {
      s.peak = m.peak
      s.blocks = m.blocks
      return
    }
    if (s.stopped) return
    const ts = ctx.getOutputTimestamp()
    const at = m.frame / ctx.sampleRate
    const t = ts.performanceTime > 0 ? ts.performanceTime + (at - ts.contextTime) * 1000 : null
    s.clicks.push({ t, amp: Math.round(m.amp * 1000) / 1000 })
  }
  const source = ctx.createMediaStreamSource(stream)
  // Nothing is heard: the worklet is pulled through a silent gain.
  const mute = ctx.createGain()
  mute.gain.value = 0
  source.connect(node).connect(mute).connect(ctx.destination)
  if (ctx.state !== 'running') await ctx.resume()
  s.ctx = ctx
  return {
    state: ctx.state,
    sampleRate: ctx.sampleRate,
    baseLatencyMs: Math.round((ctx.baseLatency ?? 0) * 1000),
    outputLatencyMs: Math.round((ctx.outputLatency ?? 0) * 1000),
  }
}

/** Runs in the page: what the detectors found so far. */
function readDetectors() {
  const s = window.__sync
  return {
    flashes: s.flashes,
    clicks: s.clicks,
    frames: s.frames,
    skipped: s.skipped,
    peak: s.peak,
    blocks: s.blocks,
    lumaMin: Math.round(s.lumaMin),
    lumaMax: Math.round(s.lumaMax),
    error: s.error ?? null,
    ctxState: s.ctx?.state ?? null,
    outputLatencyMs: Math.round((s.ctx?.outputLatency ?? 0) * 1000),
  }
}

/**
 * Runs in the page: each track's mean jitter-buffer delay so far (ms), and
 * WebRTC's own view of sync: the sender-clock (RTCP SR) time of the video
 * being shown less that of the audio being played (`estimatedPlayoutTimestamp`),
 * the median of a few samples; positive: the audio plays older content.
 */
async function webrtcSync() {
  const pc = window.__sync?.pc
  if (!pc) return null
  const out = { jitterBufferMs: {}, playoutVideoMinusAudioMs: null }
  const diffs = []
  for (let i = 0; i < 9; i++) {
    const at = {}
    for (const r of (await pc.getStats()).values()) {
      if (r.type !== 'inbound-rtp') continue
      if (r.jitterBufferEmittedCount > 0) {
        out.jitterBufferMs[r.kind] = Math.round((r.jitterBufferDelay / r.jitterBufferEmittedCount) * 1000)
      }
      if (r.estimatedPlayoutTimestamp) at[r.kind] = r.estimatedPlayoutTimestamp
    }
    if (at.audio && at.video) diffs.push(at.video - at.audio)
    await new Promise((r) => setTimeout(r, 110))
  }
  diffs.sort((a, b) => a - b)
  if (diffs.length) out.playoutVideoMinusAudioMs = Math.round(diffs[diffs.length >> 1])
  return out
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/**
 * Each flash with the nearest click within PAIR_WINDOW_MS: click - flash.
 * A flash right after frames the compositor skipped is left out: its first
 * bright frame may be one that was never shown.
 */
function pair(flashes, clicks) {
  const offsets = []
  for (const f of flashes) {
    if (f.gap > 1) continue
    let best = null
    for (const c of clicks) {
      if (c.t == null) continue
      const d = c.t - f.t
      if (Math.abs(d) <= PAIR_WINDOW_MS && (best == null || Math.abs(d) < Math.abs(best))) best = d
    }
    if (best != null) offsets.push(Math.round(best * 10) / 10)
  }
  return offsets
}

async function run() {
  if (!USERNAME) throw new Error('RL_USERNAME is not set')
  if (!CAMERA_ID) throw new Error('RL_CAMERA_ID is not set')
  // AudioWorklet exists only in a secure context, and the test's server is
  // plain http on a private address.
  const origin = new URL(BASE_URL).origin
  process.env.CHROMIUM_EXTRA_ARGS = `${process.env.CHROMIUM_EXTRA_ARGS ?? ''} --unsafely-treat-insecure-origin-as-secure=${origin}`
  const browser = await launchChromium()
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  await context.addInitScript(instrument)
  const page = await context.newPage()
  page.setDefaultTimeout(TIMEOUT_MS)

  await page.goto(`${BASE_URL}/login`, { waitUntil: 'domcontentloaded', timeout: TIMEOUT_MS })
  await page.locator('#login-username').fill(USERNAME)
  await page.locator('#login-password').fill(PASSWORD)
  await page.locator('.login-card button[type=submit]').click()
  await page.locator('section.live').waitFor({ state: 'visible', timeout: TIMEOUT_MS })
  await page.goto(`${BASE_URL}/cameras/${CAMERA_ID}`, { waitUntil: 'domcontentloaded', timeout: TIMEOUT_MS })

  // Playing: the focused tile's <video> has a stream with sound and frames.
  const deadline = Date.now() + TIMEOUT_MS
  let playing = false
  while (!playing && Date.now() < deadline) {
    playing = await page
      .evaluate(() => {
        const v = document.querySelector('.tile.focused video') ?? document.querySelector('.tile video')
        const s = v?.srcObject
        return !!(s && s.getAudioTracks?.().length && v.readyState >= 2 && v.videoWidth > 0)
      })
      .catch(() => false)
    if (!playing) await sleep(100)
  }
  if (!playing) throw new Error(`the camera did not play video with an audio track within ${TIMEOUT_MS} ms`)
  await sleep(SETTLE_MS)

  const audio = await page.evaluate(startDetectors, WORKLET)
  const end = Date.now() + MEASURE_MS
  let seen = null
  let offsets = []
  while (Date.now() < end) {
    await sleep(500)
    seen = await page.evaluate(readDetectors)
    offsets = pair(seen.flashes, seen.clicks)
    if (offsets.length >= PAIRS) break
  }
  await page.evaluate(() => (window.__sync.stopped = true)).catch(() => {})
  const webrtc = await page.evaluate(webrtcSync).catch(() => null)
  const diag = {
    flashes: seen?.flashes.length ?? 0,
    flashesAfterSkip: seen?.flashes.filter((f) => f.gap > 1).length ?? 0,
    clicks: seen?.clicks.length ?? 0,
    frames: seen?.frames ?? 0,
    skippedFrames: seen?.skipped ?? 0,
    luma: [seen?.lumaMin ?? null, seen?.lumaMax ?? null],
    audioPeak: seen ? Math.round(seen.peak * 1000) / 1000 : null,
    audio: { ...audio, state: seen?.ctxState ?? audio.state, outputLatencyMs: seen?.outputLatencyMs ?? 0 },
    webrtc,
    ...(seen?.error ? { pageError: seen.error } : {}),
  }
  if (offsets.length < MIN_PAIRS) {
    finish(false, { reason: `only ${offsets.length} flash/click pairs within ${MEASURE_MS} ms (need ${MIN_PAIRS})`, ...diag })
    return
  }
  finish(true, {
    pairs: offsets.length,
    offsetsMs: offsets,
    medianMs: median(offsets),
    maxAbsMs: Math.max(...offsets.map(Math.abs)),
    ...diag,
  })
}

run()
  .catch((e) => finish(false, { reason: String(e?.message ?? e).split('\n')[0] }))
  .finally(async () => {
    disarm()
    await closeBrowser()
  })
