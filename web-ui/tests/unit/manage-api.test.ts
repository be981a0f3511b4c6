import { describe, expect, it } from 'vitest'
import { ApiClient, TOKEN_KEY } from '../../src/lib/api'
import { appendLines, levelPasses, ManageApi, type LogLine } from '../../src/api/manage'
import { apiError, json, mockFetch } from './fakes'

function memoryStorage(token: string | null) {
  const m = new Map<string, string>(token ? [[TOKEN_KEY, token]] : [])
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
  }
}

const line = (seq: number): LogLine => ({ seq, at_ms: seq, level: 'INFO', target: 't', camera: null, message: `m${seq}` })

describe('log lines', () => {
  it('appends only newer lines, in order, keeping the newest max', () => {
    const have = [line(1), line(2)]
    expect(appendLines(have, [line(4), line(2), line(3)]).map((l) => l.seq)).toEqual([1, 2, 3, 4])
    expect(have).toHaveLength(2)
    const many = Array.from({ length: 2100 }, (_, i) => line(i + 1))
    const kept = appendLines([], many)
    expect(kept).toHaveLength(2000)
    expect(kept[0]!.seq).toBe(101)
    expect(appendLines([line(1)], [line(2), line(3)], 2).map((l) => l.seq)).toEqual([2, 3])
  })

  it('orders levels by severity', () => {
    expect(levelPasses('ERROR', 'INFO')).toBe(true)
    expect(levelPasses('DEBUG', 'INFO')).toBe(false)
    expect(levelPasses('TRACE', 'TRACE')).toBe(true)
  })
})

describe('management calls', () => {
  it('build the routes of the contract', async () => {
    const { fetch, calls } = mockFetch(() => json(200, []))
    const m = new ManageApi(new ApiClient({ fetch, storage: memoryStorage('tok') }))
    await m.logs({ level: 'WARN', camera: 3, since: 17 })
    await m.logs()
    await m.setGrant(4, 9, 'view')
    await m.removeGrant(4, 9)
    await m.worker(4)
    await m.logoutAll()
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual([
      'GET /api/logs?level=warn&camera=3&since=17',
      'GET /api/logs',
      'POST /api/cameras/4/grants',
      'DELETE /api/cameras/4/grants/9',
      'GET /api/workers/4',
      'POST /api/auth/logout-all',
    ])
    expect(m.logStreamUrl({ level: 'ERROR', camera: 2 })).toBe('/api/logs/stream?level=error&camera=2&token=tok')
  })

  it('a refused password change keeps the session', async () => {
    const { fetch } = mockFetch(() => apiError(401, 'unauthenticated', 'wrong password'))
    const client = new ApiClient({ fetch, storage: memoryStorage('tok') })
    let told = 0
    client.onUnauthorized(() => told++)
    await expect(new ManageApi(client).changePassword({ current_password: 'x', new_password: 'y'.repeat(10) })).rejects.toMatchObject({
      status: 401,
      message: 'wrong password',
    })
    expect(client.token).toBe('tok')
    expect(told).toBe(0)
  })

  it('a network failure is an ApiError with status 0', async () => {
    const { fetch } = mockFetch(() => {
      throw new TypeError('failed')
    })
    const m = new ManageApi(new ApiClient({ fetch, storage: memoryStorage('tok') }))
    await expect(m.changePassword({ current_password: 'x', new_password: 'y' })).rejects.toMatchObject({ status: 0, code: 'network' })
  })
})
