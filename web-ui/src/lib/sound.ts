// Sound for the players: whether a stream carries audio, what the mute
// button shows, and the per-camera choice for this tab.
//
// Every player starts muted: browsers only autoplay silent video. A click on
// a player's button unmutes that player alone; the browser then allows sound
// because the click was a user gesture.

/** Whether a player's media carries sound: not known yet, none, or some. */
export type AudioPresence = 'unknown' | 'none' | 'present'

/** What a player's sound button shows. */
export interface SoundButtonView {
  /** Rendered at all. */
  shown: boolean
  /** Shown, but there is nothing to unmute. */
  disabled: boolean
  /** The button's text and accessible name. */
  label: 'Unmute' | 'Mute' | 'No sound'
}

/**
 * The button for a player whose media has `presence` and whose user wants
 * sound (`on`). `explainSilence`: show a disabled "No sound" when the stream
 * has none (a full-size player), instead of nothing (a grid tile).
 */
export function soundButton(presence: AudioPresence, on: boolean, explainSilence = false): SoundButtonView {
  if (presence === 'present') return { shown: true, disabled: false, label: on ? 'Mute' : 'Unmute' }
  if (presence === 'none' && explainSilence) return { shown: true, disabled: true, label: 'No sound' }
  return { shown: false, disabled: true, label: 'No sound' }
}

/** The element is muted unless its user asked for sound and there is some. */
export function shouldMute(presence: AudioPresence, on: boolean): boolean {
  return !(on && presence === 'present')
}

// The choice per player kind and camera ("live:3", "recording:3"), for as long
// as the page lives. Not stored: after a reload the browser would refuse to
// autoplay sound anyway.
const choices = new Map<string, boolean>()

/** Whether sound was chosen for `key` earlier in this page's life. */
export function chosenSound(key: string): boolean {
  return choices.get(key) ?? false
}

export function chooseSound(key: string, on: boolean): void {
  if (on) choices.set(key, true)
  else choices.delete(key)
}

/** Forgets every choice (tests). */
export function forgetSoundChoices(): void {
  choices.clear()
}

/** hls.js `BUFFER_CODECS` data: which tracks the stream's init segment holds. */
export interface CodecTracks {
  audio?: { codec?: string } | null
  video?: { codec?: string } | null
  audiovideo?: { codec?: string } | null
}

/** Whether the tracks hls.js is about to buffer include sound. */
export function tracksHaveAudio(tracks: CodecTracks): boolean {
  if (tracks.audio) return true
  // One muxed SourceBuffer: its codec string lists both, "avc1.64001f,mp4a.40.2".
  return /\b(mp4a|opus|ac-3|ec-3|flac|mp3)\b/i.test(tracks.audiovideo?.codec ?? '')
}

type MediaWithAudioHints = HTMLMediaElement & {
  audioTracks?: { length: number }
  mozHasAudio?: boolean
  webkitAudioDecodedByteCount?: number
}

/**
 * Whether the browser's own player (Safari's HLS) found sound in what it
 * plays, or `null` while it cannot tell. Each engine says so its own way.
 */
export function elementHasAudio(el: HTMLMediaElement): boolean | null {
  if (el.readyState < 1) return null // HAVE_METADATA: nothing parsed yet
  const m = el as MediaWithAudioHints
  if (m.audioTracks && typeof m.audioTracks.length === 'number') return m.audioTracks.length > 0
  if (typeof m.mozHasAudio === 'boolean') return m.mozHasAudio
  // Chromium counts decoded audio bytes: 0 may just mean "not yet".
  if (typeof m.webkitAudioDecodedByteCount === 'number' && m.webkitAudioDecodedByteCount > 0) return true
  return null
}

/**
 * Plays `el`. Should the browser refuse to play it with sound (no user
 * gesture on this page yet), plays it muted and calls `onMutedByBrowser`, so
 * the button shows the truth.
 */
export function playOrMute(el: HTMLMediaElement, onMutedByBrowser: () => void): void {
  let p: Promise<void> | undefined
  try {
    p = el.play()
  } catch {
    return
  }
  void p?.catch((e: unknown) => {
    if (el.muted || (e as { name?: string } | null)?.name !== 'NotAllowedError') return
    el.muted = true
    onMutedByBrowser()
    el.play().catch(() => {
      // Muted autoplay is allowed; a refusal leaves the last frame.
    })
  })
}
