// What every end-to-end script shares: Debian's Chromium launched the same
// way, closed without hanging, and a run that always ends (a hard timeout,
// SIGINT and SIGTERM) with the script's own failure line.
//
// Env: CHROMIUM (/usr/bin/chromium), CHROMIUM_EXTRA_ARGS (space-separated
//      flags added to the fixed ones, e.g. --allow-loopback-in-peer-connection).

import { chromium } from 'playwright-core'

let browser = null

/** Starts headless Chromium: the one browser of this script's run. */
export async function launchChromium() {
  const extra = (process.env.CHROMIUM_EXTRA_ARGS ?? '').split(/\s+/).filter(Boolean)
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30_000,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      ...extra,
    ],
  })
  return browser
}

/** Closes the browser, but gives up after `ms` (its process dies with ours). */
export async function closeBrowser(ms = 5000) {
  const b = browser
  browser = null
  if (!b) return
  let t
  await Promise.race([b.close().catch(() => {}), new Promise((r) => (t = setTimeout(r, ms)))])
  clearTimeout(t)
}

/**
 * Ends the run after `hardTimeoutMs`, or on SIGINT or SIGTERM: `fail(reason)`
 * prints the script's failure line, the browser is closed, and the process
 * exits 1. Returns the function that disarms the timeout once the run is over.
 */
export function guardRun(hardTimeoutMs, fail) {
  const end = async (reason) => {
    fail(reason)
    await closeBrowser(3000)
    process.exit(1)
  }
  const timer = setTimeout(() => end(`hard timeout after ${hardTimeoutMs} ms`), hardTimeoutMs)
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => end(`interrupted by ${sig}`))
  return () => clearTimeout(timer)
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * The integer in environment variable `name`, or `dflt` when it is unset or
 * empty. Throws when it is not a number, or is below `min` (0 unless given),
 * naming the variable and what it held.
 */
export function envInt(name, dflt, min = 0) {
  const raw = process.env[name]
  if (raw == null || raw === '') return dflt
  const n = Number(raw)
  if (!Number.isFinite(n) || n < min) {
    const what = min === 0 ? 'a non-negative number' : 'a number'
    throw new Error(`${name} must be ${what}, got ${JSON.stringify(raw)}`)
  }
  return Math.floor(n)
}
