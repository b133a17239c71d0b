//! One owner for an r2r node: a thread that spins it until dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::NodeError;

/// Spins an [`r2r::Node`] on a dedicated thread, so subscriptions and services deliver to their streams while async tasks
/// serve them. Create every endpoint first: the node is moved in and nobody else touches it. Dropping the spinner stops the
/// thread within one spin period and drops the node (its endpoints leave the graph).
pub struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// A node with publishers only, kept alive without a thread.
    _kept: Option<r2r::Node>,
}

/// How long one `spin_once` waits for work: bounds the latency of shutdown, not of message delivery (which wakes it).
const SPIN_PERIOD: Duration = Duration::from_millis(10);

impl Spinner {
    /// Move `node` onto its own thread and spin it.
    pub fn start(mut node: r2r::Node) -> Result<Self, NodeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ros-spin".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    node.spin_once(SPIN_PERIOD);
                }
            })
            .map_err(NodeError::Thread)?;
        Ok(Self {
            stop,
            thread: Some(thread),
            _kept: None,
        })
    }

    /// Keep a node that only publishes: publishing needs no spinning, and spinning a node with nothing to wait on would
    /// not block (rcl returns "wait set is empty" at once) and burn a core.
    pub fn keep(node: r2r::Node) -> Self {
        Self {
            stop: Arc::new(AtomicBool::new(true)),
            thread: None,
            _kept: Some(node),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
