// The app's routes (vue-router, history mode: the server answers every one of
// these paths with index.html).
//
//   /login?next=            sign in, then back to `next`
//   /                       the live grid
//   /cameras/:id            one camera live
//   /cameras/:id/timeline   one camera's recordings
//   /timeline?cameras=1,2   several cameras' recordings side by side
//   /review                 events of every camera the user may play back
//   /exports                export jobs
//   /users                  users and grants (admin)
//   /account                the signed-in user's password and sessions
//   /system                 recorders, storage, the process (admin)
//   /logs                   the server's log (admin)
//   /cameras                the NVR's cameras: add, edit, start/stop, delete; pusher keys (admin)
//   /cameras/:id/motion     one camera's motion zones and settings, with a live meter (admin)
//   /setup                  first start: add a camera, then see it live (admin)
//
// Admin pages send anyone else to `/`, with a message (`routeNotice`).
//
// Old hash links (`#/camera/3`, `#/login`, `#/`) are redirected.

import { ref } from 'vue'
import {
  createRouter,
  createWebHistory,
  type RouteLocationNormalized,
  type RouteLocationRaw,
  type Router,
  type RouterHistory,
} from 'vue-router'
import { api as defaultApi, type ApiClient, type Role } from './api'
import LivePage from '../components/LivePage.vue'
import LoginPage from '../components/LoginPage.vue'

const idProp = (r: RouteLocationNormalized) => ({ cameraIds: [Number(r.params.id)], single: true })

/** `?cameras=1,2,3` as ids, deduplicated, at most 9. */
export function parseCameraList(value: unknown): number[] {
  const s = Array.isArray(value) ? value.join(',') : typeof value === 'string' ? value : ''
  const out: number[] = []
  for (const part of s.split(',')) {
    if (!/^\d{1,15}$/.test(part.trim())) continue
    const n = Number(part.trim())
    if (!out.includes(n)) out.push(n)
  }
  return out.slice(0, 9)
}

/** A `next` that stays on this site: a path, not `//evil.example` nor a URL. */
export function safeNext(next: unknown): string {
  const s = typeof next === 'string' ? next : ''
  if (!s.startsWith('/') || s.startsWith('//') || s.startsWith('/\\') || s.startsWith('/login')) return '/'
  return s
}

/** Where an old hash URL (`#/camera/3`) now lives; `null` for other hashes. */
export function legacyHashTarget(hash: string): string | null {
  const h = hash.replace(/^#/, '')
  if (h === '/' || h === '') return hash ? '/' : null
  if (h === '/login') return '/login'
  const m = /^\/camera\/(\d{1,15})\/?$/.exec(h)
  if (m) return `/cameras/${m[1]}`
  return null
}

/** A message for the page the router sent the user to (an admin page refused); '' when none. */
export const routeNotice = ref('')

/**
 * The signed-in user's role, asked once per token. `null` when it cannot be
 * known (server down): the page then asks the server, which refuses on its own.
 */
function roleCache(client: ApiClient): () => Promise<Role | null> {
  let cached: { token: string; role: Promise<Role | null> } | null = null
  return () => {
    const token = client.token
    if (!token) return Promise.resolve(null)
    if (cached?.token !== token) {
      const role = client.me().then(
        (u) => u.role,
        () => {
          cached = null
          return null
        },
      )
      cached = { token, role }
    }
    return cached.role
  }
}

/** Builds the router; tests pass a memory history and their own client. */
export function createAppRouter(history: RouterHistory = createWebHistory(), client: ApiClient = defaultApi): Router {
  const roleOf = roleCache(client)
  let notice = ''
  const router = createRouter({
    history,
    routes: [
      { path: '/login', name: 'login', component: LoginPage, meta: { public: true, title: 'Sign in' } },
      { path: '/', name: 'live', component: LivePage, props: { focusedId: null }, meta: { title: 'Live' } },
      {
        path: '/cameras/:id(\\d+)',
        name: 'camera',
        component: LivePage,
        props: (r) => ({ focusedId: Number(r.params.id) }),
        meta: { title: 'Live' },
      },
      {
        path: '/cameras/:id(\\d+)/timeline',
        name: 'camera-timeline',
        component: () => import('../components/TimelinePage.vue'),
        props: idProp,
        meta: { title: 'Recordings' },
      },
      {
        path: '/timeline',
        name: 'timeline',
        component: () => import('../components/TimelinePage.vue'),
        props: (r) => ({ cameraIds: parseCameraList(r.query.cameras), single: false }),
        meta: { title: 'Recordings' },
      },
      { path: '/review', name: 'review', component: () => import('../components/ReviewPage.vue'), meta: { title: 'Review' } },
      { path: '/exports', name: 'exports', component: () => import('../components/ExportsPage.vue'), meta: { title: 'Exports' } },
      { path: '/users', name: 'users', component: () => import('../components/UsersPage.vue'), meta: { title: 'Users', admin: true } },
      { path: '/account', name: 'account', component: () => import('../components/AccountPage.vue'), meta: { title: 'Account' } },
      { path: '/system', name: 'system', component: () => import('../components/SystemPage.vue'), meta: { title: 'System', admin: true } },
      { path: '/logs', name: 'logs', component: () => import('../components/LogsPage.vue'), meta: { title: 'Logs', admin: true } },
      { path: '/cameras', name: 'cameras', component: () => import('../components/CamerasPage.vue'), meta: { title: 'Cameras', admin: true } },
      {
        path: '/cameras/:id(\\d+)/motion',
        name: 'motion',
        component: () => import('../components/MotionPage.vue'),
        props: (r) => ({ cameraId: Number(r.params.id) }),
        meta: { title: 'Motion', admin: true },
      },
      { path: '/setup', name: 'setup', component: () => import('../components/SetupPage.vue'), meta: { title: 'Setup', admin: true } },
      { path: '/camera/:id(\\d+)', redirect: (to) => `/cameras/${String(to.params.id)}` },
      { path: '/:rest(.*)*', redirect: '/' },
    ],
  })

  router.beforeEach(async (to): Promise<RouteLocationRaw | true> => {
    const legacy = legacyHashTarget(to.hash)
    if (legacy) return { path: legacy, replace: true }
    const signedIn = client.token != null
    if (!signedIn && !to.meta.public) {
      return { name: 'login', query: to.fullPath === '/' ? {} : { next: to.fullPath }, replace: true }
    }
    if (signedIn && to.name === 'login') return { path: safeNext(to.query.next), replace: true }
    if (to.meta.admin) {
      const role = await roleOf()
      if (role != null && role !== 'admin') {
        const title = typeof to.meta.title === 'string' ? to.meta.title : 'that page'
        notice = `Only an admin can open ${title}. You were sent to the live page.`
        return { path: '/', replace: true }
      }
    }
    return true
  })

  router.afterEach((to, _from, failure) => {
    // A refused admin page redirects to `/`; when already there, that
    // navigation "fails" as a duplicate, and the notice is still due.
    if (!failure || notice) {
      routeNotice.value = notice
      notice = ''
    }
    if (typeof document !== 'undefined') {
      const t = typeof to.meta.title === 'string' ? to.meta.title : ''
      document.title = t ? `${t} · RealLive` : 'RealLive'
    }
  })

  // A 401 anywhere: the client has dropped the token; sign in again and come back.
  client.onUnauthorized(() => {
    const here = router.currentRoute.value
    if (here.name === 'login') return
    const next = here.fullPath
    void router.replace({ name: 'login', query: next && next !== '/' ? { next } : {} })
  })

  return router
}
