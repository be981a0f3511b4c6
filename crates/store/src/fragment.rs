//! The fragment table of one recording: what the index stores per fragment,
//! packed 28 bytes each into one BLOB.

use crate::StoreError;

/// One `moof` + `mdat` of a recording file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentEntry {
    /// Decode time of its first frame from the start of the file (`tfdt`).
    pub decode_time_90k: u64,
    /// Its duration (sum of sample durations).
    pub duration_90k: u32,
    /// Byte offset of its `moof` in the file.
    pub offset: u64,
    /// Bytes of `moof` + `mdat`.
    pub size: u32,
    /// Number of frames.
    pub frames: u32,
    /// Whether it starts on a keyframe.
    pub keyframe: bool,
}

/// Bytes per packed entry.
pub const PACKED_LEN: usize = 28;

impl FragmentEntry {
    /// The byte just past this fragment.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.size)
    }

    fn pack_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.decode_time_90k.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.duration_90k.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        let flags = (self.frames & 0x7fff_ffff) | if self.keyframe { 1 << 31 } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
    }
}

/// Packs a fragment table for the index.
pub fn pack(entries: &[FragmentEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * PACKED_LEN);
    for e in entries {
        e.pack_into(&mut out);
    }
    out
}

/// Unpacks a fragment table from the index.
pub fn unpack(blob: &[u8]) -> Result<Vec<FragmentEntry>, StoreError> {
    if !blob.len().is_multiple_of(PACKED_LEN) {
        return Err(StoreError::Corrupt(format!(
            "fragment table of {} bytes is not a multiple of {PACKED_LEN}",
            blob.len()
        )));
    }
    Ok(blob
        .chunks_exact(PACKED_LEN)
        .map(|c| {
            let u64_at = |i: usize| u64::from_le_bytes(c[i..i + 8].try_into().unwrap_or([0; 8]));
            let u32_at = |i: usize| u32::from_le_bytes(c[i..i + 4].try_into().unwrap_or([0; 4]));
            let flags = u32_at(24);
            FragmentEntry {
                decode_time_90k: u64_at(0),
                offset: u64_at(8),
                duration_90k: u32_at(16),
                size: u32_at(20),
                frames: flags & 0x7fff_ffff,
                keyframe: flags >> 31 == 1,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let entries = vec![
            FragmentEntry {
                decode_time_90k: 0,
                duration_90k: 90_000,
                offset: 712,
                size: 500_000,
                frames: 30,
                keyframe: true,
            },
            FragmentEntry {
                decode_time_90k: u64::MAX - 1,
                duration_90k: u32::MAX,
                offset: 5_000_000_000,
                size: u32::MAX,
                frames: 0x7fff_ffff,
                keyframe: false,
            },
        ];
        let blob = pack(&entries);
        assert_eq!(blob.len(), 2 * PACKED_LEN);
        assert_eq!(unpack(&blob).unwrap(), entries);
        assert!(unpack(&blob[1..]).is_err());
    }
}
