//! The recorder as a ROS node: raw (serialized CDR) subscriptions to the configured topics, written to the record as they
//! arrive, stamped with the time of arrival. No message is deserialized.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use r2r::QosProfile;

use crate::error::RecordError;
use crate::writer::{now_ns, Recorder};

/// How long one `spin_once` waits for work: bounds the shutdown latency only (a message wakes it).
const SPIN_PERIOD: Duration = Duration::from_millis(10);
/// Messages the middleware keeps per topic until the recorder takes them: a burst (a scan's diagnostics, a joint state
/// flood while the disk stalls) is not dropped.
const QUEUE_DEPTH: usize = 1000;

type RawStream = Box<dyn Stream<Item = Vec<u8>> + Unpin + Send>;

/// One subscription being recorded.
struct Sub {
    topic: String,
    msg_type: String,
    stream: RawStream,
}

/// The running recorder node; dropping it stops the thread and leaves the graph (it does not finish the record: the
/// [`Recorder`] does that when it is finished or dropped).
pub struct RecorderNode {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RecorderNode {
    /// Subscribe to `topics` (`(topic, "pkg/msg/Type")`, e.g. [`crate::PROCEDURE_TOPICS`]) in a node named `name` and
    /// record into `recorder`. Channels are added first, so a missing schema fails here, not mid-procedure.
    pub fn start(
        ctx: &r2r::Context,
        name: &str,
        recorder: Arc<Recorder>,
        topics: &[(&str, &str)],
    ) -> Result<Self, RecordError> {
        let ros = |what: String| move |source| RecordError::Ros { what, source };
        let mut node = r2r::Node::create(ctx.clone(), name, "").map_err(ros(format!("create node {name}")))?;
        let mut subs = Vec::with_capacity(topics.len());
        for &(topic, msg_type) in topics {
            recorder.add_topic(topic, msg_type)?;
            let stream = node
                .subscribe_raw(topic, msg_type, QosProfile::default().keep_last(QUEUE_DEPTH))
                .map_err(ros(format!("subscribe to {topic} ({msg_type})")))?;
            subs.push(Sub {
                topic: topic.into(),
                msg_type: msg_type.into(),
                stream: Box::new(stream),
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ros-record".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    node.spin_once(SPIN_PERIOD);
                    drain(&mut subs, &recorder);
                }
            })
            .map_err(|e| RecordError::Thread("recorder node", e))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

/// Write what the last spin delivered. r2r hands each raw message over a bounded channel with `try_send` (a full
/// channel drops the message), so it is emptied after every spin, which takes at most one message per subscription.
fn drain(subs: &mut [Sub], recorder: &Recorder) {
    for sub in subs.iter_mut() {
        while let Some(Some(bytes)) = sub.stream.next().now_or_never() {
            if let Err(e) = recorder.write(&sub.topic, &sub.msg_type, &bytes, now_ns()) {
                tracing::error!("recording {}: {e}", sub.topic);
            }
        }
    }
}

impl Drop for RecorderNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
