// A player's sound: what its button shows and whether its `<video>` is muted.
// Each player has its own, so unmuting one leaves the others silent.

import { computed, ref, watch, type Ref } from 'vue'
import { chooseSound, chosenSound, playOrMute, shouldMute, type AudioPresence } from '../lib/sound'

export interface UseSound {
  /** Set by the player as it learns what the stream carries. */
  presence: Ref<AudioPresence>
  /** The user wants sound from this player. */
  on: Ref<boolean>
  /** What the `<video>` is set to. */
  muted: Readonly<Ref<boolean>>
  /** Flips `on` (the button's click). */
  toggle: () => void
  /** Plays the video, muted if the browser refuses sound. */
  play: () => void
}

/**
 * `key` names the player kind and camera ("live:3"): the choice is kept per
 * key for the page's life. `video` is kept muted unless there is sound and
 * the user asked for it.
 */
export function useSound(key: () => string, video: Ref<HTMLVideoElement | null>): UseSound {
  const presence = ref<AudioPresence>('unknown')
  const on = ref(chosenSound(key()))
  const muted = computed(() => shouldMute(presence.value, on.value))

  // Another camera (a recorded player's prop changed): its own choice, and
  // nothing known about its sound yet.
  watch(key, (k) => {
    on.value = chosenSound(k)
    presence.value = 'unknown'
  })
  watch(
    [muted, video],
    ([m, v]) => {
      if (v && v.muted !== m) v.muted = m
    },
    { immediate: true, flush: 'sync' },
  )

  function mutedByBrowser(): void {
    on.value = false
    chooseSound(key(), false)
  }

  function toggle(): void {
    on.value = !on.value
    chooseSound(key(), on.value)
  }

  function play(): void {
    const v = video.value
    if (v) playOrMute(v, mutedByBrowser)
  }

  return { presence, on, muted, toggle, play }
}
