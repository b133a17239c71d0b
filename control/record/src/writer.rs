//! The MCAP writer: messages go into small lz4 chunks; a flusher thread closes the open chunk every [`FLUSH_PERIOD`], so a
//! process killed at any moment (SIGKILL, no destructor) leaves every message older than that in complete chunks that
//! streaming readers decode; only the open chunk and the summary/footer are lost.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcap::records::MessageHeader;
use mcap::{Compression, WriteOptions};

use crate::bag::{self, TopicCount};
use crate::error::RecordError;
use crate::schema::AmentIndex;

/// How often the open chunk is closed and written out: at most this (plus one scheduling delay) is lost to a kill -9.
pub const FLUSH_PERIOD: Duration = Duration::from_millis(500);
/// A chunk is also closed when it grows past this (bounds memory and the loss of a very busy second).
pub const CHUNK_SIZE: u64 = 64 * 1024;

/// A channel once added: what a write needs without any lookup beyond the topic.
struct Channel {
    id: u16,
    msg_type: String,
    sequence: u32,
    /// The last message written (reused buffer: no allocation once it has grown to the topic's size).
    last: Vec<u8>,
}

struct Inner {
    writer: Option<mcap::Writer<BufWriter<File>>>,
    channels: HashMap<String, Channel>,
    /// Messages since the last chunk was closed.
    dirty: bool,
    first_ns: Option<u64>,
    last_ns: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// A procedure record being written. Share it (`Arc`) between the ROS recorder node and code that writes its own
/// messages; [`Recorder::finish`] (or drop) writes the summary, the footer and the rosbag2 `metadata.yaml`.
pub struct Recorder {
    shared: Arc<Shared>,
    path: PathBuf,
    schemas: AmentIndex,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

/// Wall-clock time now, ns since the UNIX epoch (MCAP `log_time`).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Recorder {
    /// Create the MCAP file at `path` (its folder should hold nothing else of rosbag2's: `metadata.yaml` is written
    /// beside it on finish, making the folder a rosbag2 bag). Schemas come from `AMENT_PREFIX_PATH`.
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        Self::with_schemas(path, AmentIndex::from_env()?)
    }

    /// As [`Recorder::create`], with the `.msg` files taken from `schemas`.
    pub fn with_schemas(path: &Path, schemas: AmentIndex) -> Result<Self, RecordError> {
        let file = File::create(path).map_err(|source| RecordError::Io {
            what: "cannot create",
            path: path.to_owned(),
            source,
        })?;
        let options = WriteOptions::new()
            .profile("ros2")
            .library(concat!("acus-record ", env!("CARGO_PKG_VERSION")))
            .compression(Some(Compression::Lz4))
            .chunk_size(Some(CHUNK_SIZE));
        let writer = mcap::Writer::with_options(BufWriter::new(file), options)?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                writer: Some(writer),
                channels: HashMap::new(),
                dirty: false,
                first_ns: None,
                last_ns: 0,
            }),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("mcap-flush".into())
                .spawn(move || flush_loop(&shared))
                .map_err(|e| RecordError::Thread("MCAP flusher", e))?
        };
        Ok(Self {
            shared,
            path: path.to_owned(),
            schemas,
            flusher: Mutex::new(Some(flusher)),
        })
    }

    /// The MCAP file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Add the channel for `topic` (schema of `msg_type`, `pkg/msg/Type`) unless it exists: done ahead of the first
    /// message so that the schema's file reads happen before recording starts.
    pub fn add_topic(&self, topic: &str, msg_type: &str) -> Result<(), RecordError> {
        let mut inner = self.lock()?;
        self.channel(&mut inner, topic, msg_type).map(|_| ())
    }

    /// Record one message: `cdr` is the serialized message with its 4-byte encapsulation header (as r2r's raw
    /// subscriptions and `to_serialized_bytes` give it), `time_ns` its log time (ns since the UNIX epoch, [`now_ns`]).
    /// The bytes are copied into the open chunk; nothing else is allocated once the topic has its channel.
    pub fn write(&self, topic: &str, msg_type: &str, cdr: &[u8], time_ns: u64) -> Result<(), RecordError> {
        let mut inner = self.lock()?;
        let channel = self.channel(&mut inner, topic, msg_type)?;
        let (id, sequence) = (channel.id, channel.sequence);
        channel.sequence += 1;
        inner.first_ns = Some(inner.first_ns.map_or(time_ns, |t| t.min(time_ns)));
        inner.last_ns = inner.last_ns.max(time_ns);
        inner.dirty = true;
        let header = MessageHeader {
            channel_id: id,
            sequence,
            log_time: time_ns,
            publish_time: time_ns,
        };
        inner
            .writer
            .as_mut()
            .ok_or(RecordError::Finished)?
            .write_to_known_channel(&header, cdr)?;
        if let Some(c) = inner.channels.get_mut(topic) {
            c.last.clear();
            c.last.extend_from_slice(cdr);
        }
        Ok(())
    }

    /// The last message recorded on `topic` (CDR, as written): lets the writer of the record wait until a message it
    /// published has arrived, not merely some message.
    pub fn last_message(&self, topic: &str) -> Result<Option<Vec<u8>>, RecordError> {
        let inner = self.lock()?;
        Ok(inner
            .channels
            .get(topic)
            .filter(|c| c.sequence > 0)
            .map(|c| c.last.clone()))
    }

    /// Close the open chunk and write it out now (the flusher does this every [`FLUSH_PERIOD`]).
    pub fn flush(&self) -> Result<(), RecordError> {
        let mut inner = self.lock()?;
        flush(&mut inner)
    }

    /// Messages per topic so far.
    pub fn counts(&self) -> Result<BTreeMap<String, u64>, RecordError> {
        let inner = self.lock()?;
        Ok(inner
            .channels
            .iter()
            .map(|(t, c)| (t.clone(), u64::from(c.sequence)))
            .collect())
    }

    /// Write the summary and footer, then `metadata.yaml` beside the file (rosbag2 bag: what `rosbags` opens). Later
    /// writes fail with [`RecordError::Finished`]. Idempotent.
    pub fn finish(&self) -> Result<(), RecordError> {
        self.stop_flusher();
        let mut inner = self.lock()?;
        let Some(mut writer) = inner.writer.take() else {
            return Ok(());
        };
        writer.finish()?;
        drop(writer);
        let topics: Vec<TopicCount> = inner
            .channels
            .iter()
            .map(|(topic, c)| TopicCount {
                topic: topic.clone(),
                msg_type: c.msg_type.clone(),
                count: u64::from(c.sequence),
            })
            .collect();
        let start = inner.first_ns.unwrap_or(0);
        bag::write_metadata(&self.path, &topics, start, inner.last_ns.saturating_sub(start))
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, RecordError> {
        self.shared.inner.lock().map_err(|_| RecordError::Poisoned)
    }

    /// The channel of `topic`, added (with its schema) if it is new.
    fn channel<'a>(&self, inner: &'a mut Inner, topic: &str, msg_type: &str) -> Result<&'a mut Channel, RecordError> {
        if !inner.channels.contains_key(topic) {
            let text = self.schemas.schema(msg_type)?;
            let writer = inner.writer.as_mut().ok_or(RecordError::Finished)?;
            let schema = writer.add_schema(msg_type, "ros2msg", text.as_bytes())?;
            let id = writer.add_channel(schema, topic, "cdr", &BTreeMap::new())?;
            inner.channels.insert(
                topic.into(),
                Channel {
                    id,
                    msg_type: msg_type.into(),
                    sequence: 0,
                    last: Vec::new(),
                },
            );
        }
        let c = inner.channels.get_mut(topic).ok_or_else(|| RecordError::Finished)?;
        if c.msg_type != msg_type {
            return Err(RecordError::TypeChanged {
                topic: topic.into(),
                recorded: c.msg_type.clone(),
                written: msg_type.into(),
            });
        }
        Ok(c)
    }

    fn stop_flusher(&self) {
        if let Ok(mut stop) = self.shared.stop.lock() {
            *stop = true;
        }
        self.shared.wake.notify_all();
        let thread = self.flusher.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::error!("finishing the record {}: {e}", self.path.display());
        }
    }
}

fn flush(inner: &mut Inner) -> Result<(), RecordError> {
    if !inner.dirty {
        return Ok(());
    }
    if let Some(writer) = inner.writer.as_mut() {
        writer.flush()?;
    }
    inner.dirty = false;
    Ok(())
}

/// Close the open chunk every [`FLUSH_PERIOD`] until stopped.
fn flush_loop(shared: &Shared) {
    let Ok(mut stop) = shared.stop.lock() else {
        return;
    };
    while !*stop {
        stop = match shared.wake.wait_timeout(stop, FLUSH_PERIOD) {
            Ok((guard, _)) => guard,
            Err(_) => return,
        };
        let result = match shared.inner.lock() {
            Ok(mut inner) => flush(&mut inner),
            Err(_) => return,
        };
        if let Err(e) = result {
            tracing::error!("flushing the record: {e}");
        }
    }
}
