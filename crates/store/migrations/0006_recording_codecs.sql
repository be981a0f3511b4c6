-- Each file's tracks as an HLS `CODECS` value (RFC 6381), read from its
-- init segment: the video's, then the audio's when it has one
-- (docs/design/audio.md, "Recording"). NULL for files indexed before:
-- those have no audio.
ALTER TABLE recordings ADD COLUMN codecs TEXT;
