import { describe, expect, it } from 'vitest'
import { createMemoryHistory } from 'vue-router'
import { ApiClient, TOKEN_KEY } from '../../src/lib/api'
import { createAppRouter, legacyHashTarget, parseCameraList, safeNext } from '../../src/lib/router'
import { apiError, mockFetch } from './fakes'

function memoryStorage(initial: Record<string, string> = {}) {
  const m = new Map(Object.entries(initial))
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
  }
}

function setup(token: string | null) {
  const { fetch } = mockFetch(() => apiError(401, 'unauthenticated', 'token expired'))
  const client = new ApiClient({ fetch, storage: memoryStorage(token ? { [TOKEN_KEY]: token } : {}) })
  const router = createAppRouter(createMemoryHistory(), client)
  return { client, router }
}

describe('routes', () => {
  it('sends the signed-out to the login page, remembering where they were going', async () => {
    const { router } = setup(null)
    await router.push('/review?x=1')
    expect(router.currentRoute.value.name).toBe('login')
    expect(router.currentRoute.value.query.next).toBe('/review?x=1')
    await router.push('/')
    expect(router.currentRoute.value.fullPath).toBe('/login')
  })

  it('sends the signed-in away from the login page, to next', async () => {
    const { router } = setup('tok')
    await router.push('/login?next=%2Fcameras%2F3%2Ftimeline')
    expect(router.currentRoute.value.fullPath).toBe('/cameras/3/timeline')
    await router.push('/login?next=https://evil.example/')
    expect(router.currentRoute.value.fullPath).toBe('/')
  })

  it('a 401 drops the token and goes to the login page with next', async () => {
    const { client, router } = setup('tok')
    await router.push('/exports')
    await expect(client.me()).rejects.toMatchObject({ status: 401 })
    await new Promise((r) => setTimeout(r, 0))
    expect(client.token).toBeNull()
    expect(router.currentRoute.value.name).toBe('login')
    expect(router.currentRoute.value.query.next).toBe('/exports')
  })

  it('passes camera ids to the pages', async () => {
    const { router } = setup('tok')
    await router.push('/timeline?cameras=3,1,x,3')
    const r = router.currentRoute.value
    expect(r.name).toBe('timeline')
    const props = r.matched[0]!.props.default as (r: unknown) => unknown
    expect(props(r)).toEqual({ cameraIds: [3, 1], single: false })
    await router.push('/cameras/7/timeline')
    expect(router.currentRoute.value.name).toBe('camera-timeline')
    await router.push('/cameras/7')
    expect(router.currentRoute.value.name).toBe('camera')
    await router.push('/nowhere')
    expect(router.currentRoute.value.fullPath).toBe('/')
  })

  it('redirects the old hash links', async () => {
    const { router } = setup('tok')
    await router.push('/#/camera/4')
    expect(router.currentRoute.value.fullPath).toBe('/cameras/4')
    await router.push('/camera/5')
    expect(router.currentRoute.value.fullPath).toBe('/cameras/5')
    expect(legacyHashTarget('#/login')).toBe('/login')
    expect(legacyHashTarget('#/')).toBe('/')
    expect(legacyHashTarget('')).toBeNull()
    expect(legacyHashTarget('#section')).toBeNull()
  })
})

describe('helpers', () => {
  it('keeps next on this site', () => {
    expect(safeNext('/review')).toBe('/review')
    expect(safeNext('//evil.example')).toBe('/')
    expect(safeNext('/\\evil.example')).toBe('/')
    expect(safeNext('https://evil.example')).toBe('/')
    expect(safeNext('/login?next=/x')).toBe('/')
    expect(safeNext(undefined)).toBe('/')
  })
  it('reads a camera list', () => {
    expect(parseCameraList('1,2,3')).toEqual([1, 2, 3])
    expect(parseCameraList(['4', '5'])).toEqual([4, 5])
    expect(parseCameraList('1, 1,-2,abc,1e3')).toEqual([1])
    expect(parseCameraList(undefined)).toEqual([])
    expect(parseCameraList('1,2,3,4,5,6,7,8,9,10')).toHaveLength(9)
  })
})
