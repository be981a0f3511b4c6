import { createApp } from 'vue'
import App from './App.vue'
import { installTestHook } from './lib/testHook'
import { activePlayers } from './lib/player'
import { createAppRouter } from './lib/router'
import './style.css'

installTestHook()

// End every WHEP session when the page goes away (the DELETEs use keepalive).
window.addEventListener('pagehide', () => {
  for (const p of [...activePlayers]) p.stop()
})
// Back from the back/forward cache with every session ended: start afresh.
window.addEventListener('pageshow', (ev) => {
  if (ev.persisted) window.location.reload()
})

const router = createAppRouter()
createApp(App).use(router).mount('#app')
