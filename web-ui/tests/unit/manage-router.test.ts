import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createMemoryHistory } from 'vue-router'
import App from '../../src/App.vue'
import { ApiClient, TOKEN_KEY, type User } from '../../src/lib/api'
import { createAppRouter, routeNotice } from '../../src/lib/router'
import { json, mockFetch } from './fakes'

function person(role: User['role']): User {
  return { id: 1, username: `a-${role}`, email: 'a@x', role, created_at: '2025-01-01T00:00:00Z' }
}

function memoryStorage(token: string) {
  const m = new Map([[TOKEN_KEY, token]])
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
  }
}

function setup(role: User['role']) {
  const m = mockFetch((c) => (c.url === '/api/auth/me' ? json(200, { user: person(role) }) : json(200, [])))
  const client = new ApiClient({ fetch: m.fetch, storage: memoryStorage('tok') })
  return { router: createAppRouter(createMemoryHistory(), client), calls: m.calls }
}

afterEach(() => {
  routeNotice.value = ''
  localStorage.clear()
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('admin routes', () => {
  it('send a non-admin to the live page with a message', async () => {
    for (const role of ['viewer', 'operator'] as const) {
      const { router } = setup(role)
      for (const path of ['/users', '/system', '/logs']) {
        await router.push(path)
        expect(router.currentRoute.value.fullPath).toBe('/')
        expect(routeNotice.value).toMatch(/^Only an admin can open (Users|System|Logs)\./)
      }
      // The next page clears it.
      await router.push('/review')
      expect(routeNotice.value).toBe('')
    }
  })

  it('let an admin in, asking the role once per token', async () => {
    const { router, calls } = setup('admin')
    for (const path of ['/users', '/system', '/logs']) {
      await router.push(path)
      expect(router.currentRoute.value.fullPath).toBe(path)
    }
    expect(routeNotice.value).toBe('')
    expect(calls.filter((c) => c.url === '/api/auth/me')).toHaveLength(1)
  })

  it('let everyone open their account', async () => {
    const { router } = setup('viewer')
    await router.push('/account')
    expect(router.currentRoute.value.name).toBe('account')
  })
})

describe('top bar by role', () => {
  async function mountApp(role: User['role']) {
    localStorage.setItem(TOKEN_KEY, 'tok')
    const { fetch } = mockFetch((c) => (c.url === '/api/auth/me' ? json(200, { user: person(role) }) : json(200, [])))
    vi.stubGlobal('fetch', fetch)
    const router = createAppRouter(createMemoryHistory())
    await router.push('/review')
    await router.isReady()
    const w = mount(App, { global: { plugins: [router] }, attachTo: document.body })
    await flushPromises()
    return { w, router }
  }

  it('shows the admin pages to admins only, the account to all', async () => {
    const viewer = await mountApp('viewer')
    expect(viewer.w.find('[data-testid="nav-users"]').exists()).toBe(false)
    expect(viewer.w.find('[data-testid="nav-system"]').exists()).toBe(false)
    expect(viewer.w.find('[data-testid="nav-logs"]').exists()).toBe(false)
    expect(viewer.w.get('[data-testid="nav-account"]').attributes('href')).toBe('/account')
    await viewer.router.push('/logs')
    await flushPromises()
    expect(viewer.w.get('[data-testid="route-notice"]').text()).toContain('Only an admin can open Logs')
    viewer.w.unmount()

    const adm = await mountApp('admin')
    expect(adm.w.get('[data-testid="nav-users"]').attributes('href')).toBe('/users')
    expect(adm.w.get('[data-testid="nav-system"]').attributes('href')).toBe('/system')
    expect(adm.w.get('[data-testid="nav-logs"]').attributes('href')).toBe('/logs')
    expect(adm.w.get('[data-testid="nav-account"]').text()).toBe('a-admin')
    adm.w.unmount()
  })
})
