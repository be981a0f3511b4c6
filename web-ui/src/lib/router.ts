// A tiny hash router: `#/login`, `#/` (the live grid), `#/camera/{id}`.
// Hash URLs need nothing from the server beyond serving `index.html` at `/`.

import { readonly, ref } from 'vue'

export type Route =
  | { name: 'login' }
  | { name: 'live' }
  | { name: 'camera'; id: number }

export function parseHash(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/'
  if (path === '/login') return { name: 'login' }
  const m = /^\/camera\/(\d{1,15})\/?$/.exec(path)
  if (m) return { name: 'camera', id: Number(m[1]) }
  return { name: 'live' }
}

export function hrefFor(route: Route): string {
  switch (route.name) {
    case 'login':
      return '#/login'
    case 'camera':
      return `#/camera/${route.id}`
    default:
      return '#/'
  }
}

const current = ref<Route>(parseHash(globalThis.location?.hash ?? ''))

if (typeof window !== 'undefined') {
  const sync = () => {
    current.value = parseHash(window.location.hash)
  }
  window.addEventListener('hashchange', sync)
  window.addEventListener('popstate', sync)
}

export const route = readonly(current)

/** Goes to `to`; `replace` keeps it out of the history (redirects). */
export function navigate(to: Route, replace = false): void {
  const href = hrefFor(to)
  if (replace) window.history.replaceState(window.history.state, '', href)
  else if (window.location.hash !== href) window.history.pushState(window.history.state, '', href)
  current.value = parseHash(href)
}
