// A read-only hook for end-to-end tests: `window.__reallive.stats()` lists each
// live player with the frames its video decoder has produced so far.

import { activePlayers, type PlayerState } from './player'

export interface CameraStats {
  cameraId: number
  state: PlayerState
  framesDecoded: number
}

export async function collectStats(): Promise<CameraStats[]> {
  const players = [...activePlayers]
  return Promise.all(
    players.map(async (p) => ({
      cameraId: p.cameraId,
      state: p.state,
      framesDecoded: await p.framesDecoded(),
    })),
  )
}

declare global {
  interface Window {
    readonly __reallive?: { readonly stats: () => Promise<CameraStats[]> }
  }
}

export function installTestHook(target: Window = window): void {
  if (Object.prototype.hasOwnProperty.call(target, '__reallive')) return
  Object.defineProperty(target, '__reallive', {
    value: Object.freeze({ stats: collectStats }),
    writable: false,
    configurable: false,
    enumerable: false,
  })
}
