#!/usr/bin/env node
// A stand-in for the RealLive server, to try the UI and e2e/live.mjs without
// it: serves dist/, answers the JSON API the UI uses, and answers WHEP offers
// with a real WebRTC peer — a second headless Chromium page that sends an
// animated canvas. Loopback only (127.0.0.1).
//
//   node e2e/mock-server.mjs                 # serve on MOCK_PORT (8090) until stopped
//   node e2e/mock-server.mjs --run-e2e       # serve, run e2e/live.mjs against it, exit with its code
//
// Accounts: demo / demo. Cameras: 1 "Front door" (streams), 2 "<img src=x onerror=alert(1)>"
// (no publisher: 503). Login is limited to 5 failures a minute (then 429, Retry-After).
// POST /__mock/drop closes every peer connection (to watch the UI reconnect);
// GET /__mock/sessions lists the WHEP sessions not yet DELETEd.
// Chromium gathers no ICE candidate on `lo` alone, so the WebRTC part needs a
// private network: e2e/mock-run.sh makes one inside a new network namespace
// (a veth pair, 10.213.0.1/.2, no link outside) and sets MOCK_ICE_ADDR to the
// address the publisher may offer. Without MOCK_ICE_ADDR the publisher offers
// 127.0.0.1 only, which Chromium cannot use: the JSON API still works.

import { createServer } from 'node:http'
import { readFile, stat } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { extname, join, normalize, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { chromium } from 'playwright-core'

const here = fileURLToPath(new URL('.', import.meta.url))
const DIST = resolve(here, '..', 'dist')
const PORT = Number(process.env.MOCK_PORT || 8090)
const HOST = '127.0.0.1'
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium'
const ICE_ADDR = process.env.MOCK_ICE_ADDR || '127.0.0.1'

const USER = { id: 1, username: 'demo', email: 'demo@example.invalid', role: 'viewer', created_at: '2025-01-01T00:00:00Z' }
const CAMERAS = [
  { id: 1, owner_id: 1, name: 'Front door', resolution: '640x360', status: 'streaming', created_at: '2025-01-01T00:00:00Z', permission: 'view' },
  { id: 2, owner_id: 1, name: '<img src=x onerror=alert(1)>', resolution: null, status: 'offline', created_at: '2025-01-01T00:00:00Z', permission: 'view' },
]
const tokens = new Set()
const failures = []
const sessions = new Map() // id -> camera id
let nextSession = 1

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.ico': 'image/x-icon' }

function send(res, status, body, headers = {}) {
  const isJson = typeof body !== 'string' && body != null && !Buffer.isBuffer(body)
  res.writeHead(status, { 'Cache-Control': 'no-store', ...(isJson ? { 'Content-Type': 'application/json' } : {}), ...headers })
  res.end(isJson ? JSON.stringify(body) : body)
}
const fail = (res, status, code, message, headers) => send(res, status, { error: { code, message } }, headers)

function readBody(req) {
  return new Promise((ok, bad) => {
    const chunks = []
    let n = 0
    req.on('data', (c) => {
      n += c.length
      if (n > 256 * 1024) bad(new Error('body too large'))
      else chunks.push(c)
    })
    req.on('end', () => ok(Buffer.concat(chunks).toString('utf8')))
    req.on('error', bad)
  })
}

function authed(req) {
  const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
  return m != null && tokens.has(m[1])
}

// The publisher: one page, one RTCPeerConnection per WHEP session.
let publisherBrowser = null
let publisherPage = null
async function publisher() {
  if (publisherPage) return publisherPage
  publisherBrowser = await chromium.launch({
    executablePath: EXECUTABLE,
    timeout: 30_000,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-features=WebRtcHideLocalIpsWithMdns'],
  })
  publisherPage = await publisherBrowser.newPage()
  await publisherPage.goto(`http://${HOST}:${PORT}/__publisher`)
  await publisherPage.evaluate(() => {
    const canvas = document.createElement('canvas')
    canvas.width = 640
    canvas.height = 360
    document.body.append(canvas)
    const g = canvas.getContext('2d')
    let n = 0
    setInterval(() => {
      n++
      g.fillStyle = `hsl(${(n * 3) % 360} 60% 35%)`
      g.fillRect(0, 0, 640, 360)
      g.fillStyle = '#fff'
      g.font = '48px sans-serif'
      g.fillText(`mock camera ${n}`, 40, 200)
    }, 33)
    const stream = canvas.captureStream(30)
    const pcs = new Map()
    window.answer = async (id, offer, iceAddr) => {
      const pc = new RTCPeerConnection({ iceServers: [] })
      pcs.set(id, pc)
      await pc.setRemoteDescription({ type: 'offer', sdp: offer })
      for (const t of pc.getTransceivers()) {
        if (t.receiver.track.kind === 'video') {
          t.direction = 'sendonly'
          await t.sender.replaceTrack(stream.getVideoTracks()[0])
        }
      }
      await pc.setLocalDescription(await pc.createAnswer())
      if (pc.iceGatheringState !== 'complete') {
        await new Promise((ok) => {
          pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && ok())
          setTimeout(ok, 3000)
        })
      }
      // Only the one address we were allowed.
      return pc.localDescription.sdp
        .split('\r\n')
        .filter((l) => !l.startsWith('a=candidate:') || l.split(' ')[4] === iceAddr)
        .join('\r\n')
    }
    window.hangUpAll = () => {
      for (const pc of pcs.values()) pc.close()
      pcs.clear()
    }
    window.hangUp = (id) => {
      pcs.get(id)?.close()
      pcs.delete(id)
    }
  })
  return publisherPage
}

async function serveFile(res, path) {
  const rel = normalize(decodeURIComponent(path)).replace(/^(\.\.[/\\])+/, '')
  let file = join(DIST, rel === '/' ? 'index.html' : rel)
  if (!file.startsWith(DIST)) return fail(res, 404, 'not_found', 'no such file')
  try {
    if ((await stat(file)).isDirectory()) file = join(file, 'index.html')
    send(res, 200, await readFile(file), { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' })
  } catch {
    fail(res, 404, 'not_found', 'no such file (did you run npm run build?)')
  }
}

async function handle(req, res) {
  const url = new URL(req.url, `http://${HOST}`)
  const p = url.pathname
  let m
  if (p === '/__mock/drop' && req.method === 'POST') {
    // Simulates a server that lost every peer connection (sessions stay listed).
    await publisherPage?.evaluate(() => window.hangUpAll())
    return send(res, 204, '')
  }
  if (p === '/__mock/sessions') return send(res, 200, [...sessions.keys()])
  if (p === '/__publisher') return send(res, 200, '<!doctype html><title>publisher</title>', { 'Content-Type': 'text/html' })
  if (p === '/api/auth/login' && req.method === 'POST') {
    const now = Date.now()
    while (failures.length && failures[0] < now - 60_000) failures.shift()
    if (failures.length >= 5) {
      const wait = Math.ceil((failures[0] + 60_000 - now) / 1000)
      return fail(res, 429, 'rate_limited', 'too many attempts', { 'Retry-After': String(wait) })
    }
    let body = {}
    try {
      body = JSON.parse(await readBody(req))
    } catch {
      return fail(res, 400, 'invalid', 'bad JSON')
    }
    if (body.username !== 'demo' || body.password !== 'demo') {
      failures.push(now)
      return fail(res, 401, 'unauthenticated', 'invalid username or password')
    }
    const token = randomBytes(16).toString('hex')
    tokens.add(token)
    return send(res, 200, { token, expires_at: new Date(now + 3600_000).toISOString(), user: USER })
  }
  if (p.startsWith('/api/') || p.startsWith('/whep/')) {
    if (!authed(req)) return fail(res, 401, 'unauthenticated', 'missing or expired token')
  }
  if (p === '/api/auth/me' && req.method === 'GET') return send(res, 200, { user: USER })
  if (p === '/api/cameras' && req.method === 'GET') return send(res, 200, CAMERAS)
  if ((m = /^\/api\/cameras\/(\d+)\/stream$/.exec(p)) && req.method === 'GET') {
    const id = Number(m[1])
    if (!CAMERAS.some((c) => c.id === id)) return fail(res, 404, 'not_found', 'camera not found')
    return send(res, 200, { camera_id: id, signaling_url: '/ws', whep_url: `/whep/${id}`, ice_servers: [] })
  }
  if ((m = /^\/whep\/(\d+)$/.exec(p)) && req.method === 'POST') {
    const id = Number(m[1])
    const cam = CAMERAS.find((c) => c.id === id)
    if (!cam) return fail(res, 404, 'not_found', 'camera not found')
    if (!/^application\/sdp/.test(req.headers['content-type'] ?? '')) return fail(res, 415, 'unsupported', 'want application/sdp')
    if (cam.status === 'offline') return fail(res, 503, 'unavailable', 'camera has no publisher')
    const offer = await readBody(req)
    const sid = `${nextSession++}`
    const answer = await (await publisher()).evaluate(([s, o, a]) => window.answer(s, o, a), [sid, offer, ICE_ADDR])
    sessions.set(sid, id)
    return send(res, 201, answer, { 'Content-Type': 'application/sdp', Location: `/whep/${id}/sessions/${sid}` })
  }
  if ((m = /^\/whep\/(\d+)\/sessions\/(\w+)$/.exec(p)) && req.method === 'DELETE') {
    if (!sessions.delete(m[2])) return fail(res, 404, 'not_found', 'no such session')
    await publisherPage?.evaluate((s) => window.hangUp(s), m[2])
    return send(res, 204, '')
  }
  if (p.startsWith('/api/') || p.startsWith('/whep/')) return fail(res, 404, 'not_found', 'route')
  if (req.method === 'GET' || req.method === 'HEAD') return serveFile(res, p)
  return fail(res, 405, 'method_not_allowed', 'method not allowed')
}

const server = createServer((req, res) => {
  handle(req, res).catch((e) => {
    if (!res.headersSent) fail(res, 500, 'internal', String(e?.message ?? e))
    else res.destroy()
  })
})

async function shutdown(code) {
  server.close()
  await Promise.race([publisherBrowser?.close(), new Promise((r) => setTimeout(r, 3000))]).catch(() => {})
  process.exit(code)
}
process.on('SIGINT', () => shutdown(130))
process.on('SIGTERM', () => shutdown(143))

server.listen(PORT, HOST, async () => {
  const base = `http://${HOST}:${PORT}`
  if (!process.argv.includes('--run-e2e')) {
    console.error(`mock RealLive on ${base} (demo / demo)`)
    return
  }
  const child = spawn(process.execPath, [join(here, 'live.mjs')], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { RL_USERNAME: 'demo', RL_PASSWORD: 'demo', RL_CAMERA_NAME: 'Front door', ...process.env, BASE_URL: base },
  })
  child.on('exit', (code) => shutdown(code ?? 1))
})
