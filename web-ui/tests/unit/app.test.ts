import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createMemoryHistory } from 'vue-router'
import App from '../../src/App.vue'
import { createAppRouter } from '../../src/lib/router'
import { json, mockFetch } from './fakes'

const user = { id: 1, username: 'night', email: 'n@x', role: 'viewer', created_at: '2025-01-01T00:00:00Z' }

afterEach(() => {
  localStorage.clear()
  vi.unstubAllGlobals()
})

describe('app', () => {
  it('signs in and returns to where the user was going, with the top bar', async () => {
    const { fetch } = mockFetch((c) => {
      if (c.url === '/api/auth/login') return json(200, { token: 'tok-7', expires_at: '2030-01-01T00:00:00Z', user })
      if (c.url === '/api/exports') return json(200, [])
      if (c.url === '/api/cameras') return json(200, [])
      if (c.url === '/api/auth/me') return json(200, { user })
      return json(404, { error: { code: 'not_found', message: 'no' } })
    })
    vi.stubGlobal('fetch', fetch)
    const router = createAppRouter(createMemoryHistory())
    await router.push('/exports')
    await router.isReady()
    expect(router.currentRoute.value.fullPath).toBe('/login?next=/exports')
    const w = mount(App, { global: { plugins: [router] }, attachTo: document.body })
    await flushPromises()
    expect(w.find('[data-testid="nav-live"]').exists()).toBe(false)
    await w.get('#login-username').setValue('night')
    await w.get('#login-password').setValue('pw')
    await w.get('form').trigger('submit')
    // The Exports page is a lazily loaded chunk.
    for (let i = 0; i < 100 && router.currentRoute.value.path !== '/exports'; i++) await new Promise((r) => setTimeout(r, 20))
    await flushPromises()
    expect(router.currentRoute.value.fullPath).toBe('/exports')
    expect(w.get('[data-testid="nav-exports"]').attributes('aria-current')).toBe('page')
    expect(w.get('[data-testid="nav-review"]').attributes('href')).toBe('/review')
    expect(w.get('[data-testid="nav-live"]').attributes('href')).toBe('/')
    expect(w.find('.username').text()).toBe('night')
    w.unmount()
  })
})
