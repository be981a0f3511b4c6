/// <reference types="vite/client" />

import 'vue-router'

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable signed out. */
    public?: boolean
    /** The page's name in the title bar. */
    title?: string
  }
}

