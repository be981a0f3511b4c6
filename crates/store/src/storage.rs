//! The `Storage` trait: what the puller and the NVR record through.

use std::fmt::Debug;

use async_trait::async_trait;
use reallive_core::EncodedFrame;
use reallive_core::time::UtcNs;

use crate::{Recording, RecordingSession, Store, StoreError, TimeRange};

/// Somewhere recordings live. Dyn-compatible: hold an `Arc<dyn Storage>`.
#[async_trait]
pub trait Storage: Send + Sync + Debug {
    /// Starts recording `camera`; files rotate on their own.
    async fn start_recording(&self, camera: &str) -> Result<Box<dyn RecordingWriter>, StoreError>;

    /// Recordings of `camera` overlapping `range`, oldest first, with their fragments.
    async fn recordings(
        &self,
        camera: &str,
        range: TimeRange,
    ) -> Result<Vec<Recording>, StoreError>;

    /// Protects a range from retention; returns the lock's id.
    async fn lock(&self, camera: &str, range: TimeRange, reason: &str) -> Result<i64, StoreError>;

    /// Removes a lock.
    async fn unlock(&self, lock_id: i64) -> Result<(), StoreError>;

    /// Deletes a complete recording; returns the bytes freed.
    async fn delete(&self, recording_id: i64) -> Result<u64, StoreError>;
}

/// One camera being recorded.
#[async_trait]
pub trait RecordingWriter: Send + Debug {
    /// Records a frame that arrived at `now_utc_ns`.
    async fn write_at(&mut self, frame: EncodedFrame, now_utc_ns: i64) -> Result<(), StoreError>;

    /// Records a frame that arrived now.
    async fn write(&mut self, frame: EncodedFrame) -> Result<(), StoreError> {
        self.write_at(frame, UtcNs::now().0).await
    }

    /// Records an audio packet beside the video, timed on the video's
    /// clock: it goes into the file with the video it plays with
    /// ([`Segmenter::push_audio`](crate::segmenter::Segmenter::push_audio)).
    /// Never fails; a writer without audio ignores it.
    fn write_audio(&mut self, frame: reallive_core::AudioFrame) {
        drop(frame);
    }

    /// Closes the open file cleanly.
    async fn finish(self: Box<Self>) -> Result<(), StoreError>;
}

#[async_trait]
impl Storage for Store {
    async fn start_recording(&self, camera: &str) -> Result<Box<dyn RecordingWriter>, StoreError> {
        Ok(Box::new(self.session(camera)?))
    }

    async fn recordings(
        &self,
        camera: &str,
        range: TimeRange,
    ) -> Result<Vec<Recording>, StoreError> {
        Store::recordings(self, camera, range).await
    }

    async fn lock(&self, camera: &str, range: TimeRange, reason: &str) -> Result<i64, StoreError> {
        Store::lock(self, camera, range, reason).await
    }

    async fn unlock(&self, lock_id: i64) -> Result<(), StoreError> {
        Store::unlock(self, lock_id).await
    }

    async fn delete(&self, recording_id: i64) -> Result<u64, StoreError> {
        Store::delete(self, recording_id).await
    }
}

#[async_trait]
impl RecordingWriter for RecordingSession {
    async fn write_at(&mut self, frame: EncodedFrame, now_utc_ns: i64) -> Result<(), StoreError> {
        RecordingSession::write_at(self, frame, now_utc_ns).await
    }

    fn write_audio(&mut self, frame: reallive_core::AudioFrame) {
        RecordingSession::write_audio(self, frame);
    }

    async fn finish(self: Box<Self>) -> Result<(), StoreError> {
        RecordingSession::finish(*self).await.map(|_| ())
    }
}

#[cfg(feature = "test-util")]
pub use memory::MemoryStorage;

#[cfg(feature = "test-util")]
mod memory {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, PoisonError};

    use async_trait::async_trait;
    use bytes::Bytes;
    use reallive_core::EncodedFrame;

    use super::{RecordingWriter, Storage};
    use crate::fragment::FragmentEntry;
    use crate::model::{RecordingState, ticks_to_ns, validate_camera};
    use crate::segmenter::{Output, Segmenter, SegmenterConfig};
    use crate::{Recording, StoreError, TimeRange};

    #[derive(Debug, Default)]
    struct State {
        recordings: Vec<Recording>,
        files: HashMap<i64, Vec<u8>>,
        locks: HashMap<i64, (String, TimeRange)>,
        next_id: i64,
    }

    /// A `Storage` that keeps files and index in memory, with the same
    /// segmenting rules as the real store. For other crates' tests.
    #[derive(Debug, Clone, Default)]
    pub struct MemoryStorage {
        state: Arc<Mutex<State>>,
        cfg: SegmenterConfig,
    }

    impl MemoryStorage {
        /// An empty store segmenting with `cfg`.
        pub fn new(cfg: SegmenterConfig) -> Self {
            MemoryStorage {
                state: Arc::default(),
                cfg,
            }
        }

        /// The bytes of a recording's file.
        pub fn file(&self, recording_id: i64) -> Option<Bytes> {
            let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.files
                .get(&recording_id)
                .map(|v| Bytes::copy_from_slice(v))
        }
    }

    #[derive(Debug)]
    struct MemoryWriter {
        storage: MemoryStorage,
        camera: String,
        seg: Segmenter,
        current: Option<i64>,
    }

    impl MemoryWriter {
        fn apply(&mut self, out: Output) -> Result<(), StoreError> {
            let mut st = self
                .storage
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match out {
                Output::StartFile {
                    start_utc_ns,
                    init,
                    params,
                } => {
                    let info = params.stream_info()?;
                    st.next_id += 1;
                    let id = st.next_id;
                    st.recordings.push(Recording {
                        id,
                        camera: self.camera.clone(),
                        path: format!("{}/{id}.mp4", self.camera),
                        start_utc_ns,
                        end_utc_ns: start_utc_ns,
                        bytes: init.len() as u64,
                        init_bytes: init.len() as u64,
                        codec: info.codec,
                        codecs: crate::mp4::codecs(&init),
                        width: info.width,
                        height: info.height,
                        state: RecordingState::Writing,
                        first_seq: 0,
                        fragments: Vec::new(),
                    });
                    st.files.insert(id, init.to_vec());
                    self.current = Some(id);
                }
                Output::Fragment(frag) => {
                    let id = self
                        .current
                        .ok_or_else(|| StoreError::Corrupt("fragment without a file".into()))?;
                    let file = st.files.entry(id).or_default();
                    let offset = file.len() as u64;
                    file.extend_from_slice(&frag.data);
                    if let Some(r) = st.recordings.iter_mut().find(|r| r.id == id) {
                        r.fragments.push(FragmentEntry {
                            decode_time_90k: frag.decode_time_90k,
                            duration_90k: frag.duration_90k as u32,
                            offset,
                            size: frag.data.len() as u32,
                            frames: frag.frames,
                            keyframe: frag.keyframe,
                        });
                        r.bytes = offset + frag.data.len() as u64;
                        let d: i64 = r.fragments.iter().map(|f| i64::from(f.duration_90k)).sum();
                        r.end_utc_ns = r.start_utc_ns + ticks_to_ns(d);
                    }
                }
                Output::EndFile { end_utc_ns, .. } => {
                    if let Some(id) = self.current.take()
                        && let Some(r) = st.recordings.iter_mut().find(|r| r.id == id)
                    {
                        r.end_utc_ns = end_utc_ns;
                        r.state = RecordingState::Complete;
                    }
                }
                Output::Clamped { .. } => {}
            }
            Ok(())
        }
    }

    #[async_trait]
    impl RecordingWriter for MemoryWriter {
        async fn write_at(
            &mut self,
            frame: EncodedFrame,
            now_utc_ns: i64,
        ) -> Result<(), StoreError> {
            for out in self.seg.push(frame, now_utc_ns)? {
                self.apply(out)?;
            }
            Ok(())
        }

        fn write_audio(&mut self, frame: reallive_core::AudioFrame) {
            self.seg.push_audio(frame);
        }

        async fn finish(mut self: Box<Self>) -> Result<(), StoreError> {
            for out in self.seg.finish() {
                self.apply(out)?;
            }
            Ok(())
        }
    }

    #[async_trait]
    impl Storage for MemoryStorage {
        async fn start_recording(
            &self,
            camera: &str,
        ) -> Result<Box<dyn RecordingWriter>, StoreError> {
            validate_camera(camera)?;
            Ok(Box::new(MemoryWriter {
                storage: self.clone(),
                camera: camera.to_string(),
                seg: Segmenter::new(self.cfg),
                current: None,
            }))
        }

        async fn recordings(
            &self,
            camera: &str,
            range: TimeRange,
        ) -> Result<Vec<Recording>, StoreError> {
            let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(st
                .recordings
                .iter()
                .filter(|r| r.camera == camera && range.overlaps(r.start_utc_ns, r.end_utc_ns))
                .cloned()
                .collect())
        }

        async fn lock(
            &self,
            camera: &str,
            range: TimeRange,
            _reason: &str,
        ) -> Result<i64, StoreError> {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.next_id += 1;
            let id = st.next_id;
            st.locks.insert(id, (camera.to_string(), range));
            Ok(id)
        }

        async fn unlock(&self, lock_id: i64) -> Result<(), StoreError> {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.locks
                .remove(&lock_id)
                .map(|_| ())
                .ok_or_else(|| StoreError::NotFound(format!("lock {lock_id}")))
        }

        async fn delete(&self, recording_id: i64) -> Result<u64, StoreError> {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let pos = st
                .recordings
                .iter()
                .position(|r| r.id == recording_id)
                .ok_or_else(|| StoreError::NotFound(format!("recording {recording_id}")))?;
            if st.recordings[pos].state == RecordingState::Writing {
                return Err(StoreError::InvalidInput(format!(
                    "recording {recording_id} is still being written"
                )));
            }
            let r = st.recordings.remove(pos);
            st.files.remove(&recording_id);
            Ok(r.bytes)
        }
    }
}
