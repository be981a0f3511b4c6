// @vitest-environment node
// The committed API types must be what openapi-typescript makes of
// proto/openapi.yaml today: a change to the spec needs `npm run gen:api`.

import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import openapiTS, { COMMENT_HEADER, astToString } from 'openapi-typescript'

// Vitest runs from web-ui/.
const spec = pathToFileURL(resolve(process.cwd(), '../proto/openapi.yaml'))
const committed = resolve(process.cwd(), 'src/api/schema.d.ts')

describe('src/api/schema.d.ts', () => {
  it('matches proto/openapi.yaml (run npm run gen:api)', async () => {
    const fresh = COMMENT_HEADER + astToString(await openapiTS(spec))
    const current = readFileSync(committed, 'utf8')
    expect(current === fresh, 'src/api/schema.d.ts is stale: run npm run gen:api').toBe(true)
  }, 30_000)
})
