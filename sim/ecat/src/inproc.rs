//! In-process wiring: the emulator answers the frames an ethercrab `MainDevice` sends, through
//! ethercrab's public `PduTx`/`PduRx` (the same API its own replay tests use). No socket, no root.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use ethercrab::{PduRx, PduTx};

use crate::network::Network;
use crate::Error;

/// How long the link keeps polling for the master's next frame before it parks.
const LINK_SPIN: Duration = Duration::from_micros(100);

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A running in-process link: a thread moving frames between ethercrab and the emulated line.
pub struct InProcessLink {
    network: Arc<Mutex<Network>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    tid: Arc<AtomicI32>,
}

impl InProcessLink {
    /// Start serving `network` to the ethercrab TX/RX halves, on the network's [`crate::Clock`] (set it before).
    pub fn spawn(network: Network, mut tx: PduTx<'static>, mut rx: PduRx<'static>) -> Result<Self, Error> {
        let network = Arc::new(Mutex::new(network));
        let stop = Arc::new(AtomicBool::new(false));
        let (net, stop2) = (Arc::clone(&network), Arc::clone(&stop));
        let tid = Arc::new(AtomicI32::new(0));
        let tid2 = Arc::clone(&tid);
        let thread = thread::Builder::new()
            .name("ecat-sim-link".into())
            .spawn(move || {
                // SAFETY: gettid has no preconditions.
                tid2.store(unsafe { libc::gettid() }, Ordering::Release);
                let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
                let mut buf = vec![0u8; 1600];
                let mut last_frame = Instant::now();
                while !stop2.load(Ordering::Relaxed) && !tx.should_exit() {
                    tx.replace_waker(&waker);
                    while let Some(frame) = tx.next_sendable_frame() {
                        last_frame = Instant::now();
                        let mut len = 0;
                        let sent = frame.send_blocking(|bytes| {
                            len = bytes.len().min(buf.len());
                            buf[..len].copy_from_slice(&bytes[..len]);
                            Ok(bytes.len())
                        });
                        if sent.is_err() {
                            continue;
                        }
                        let answered = match net.lock() {
                            Ok(mut n) => n.process_frame(&mut buf[..len]),
                            Err(_) => false,
                        };
                        if answered {
                            // A frame that cannot be matched (e.g. timed out) is simply dropped.
                            let _ = rx.receive_frame(&buf[..len]);
                        }
                    }
                    // The drives' own clock runs while no frames come ([`crate::Clock::Wall`]; nothing in lockstep).
                    if let Ok(mut n) = net.lock() {
                        n.advance();
                    }
                    // A master cycling flat out (a simulated clock) sends again within microseconds: poll for a
                    // while before parking, as a NIC's busy-polling driver would.
                    if last_frame.elapsed() < LINK_SPIN {
                        thread::yield_now();
                    } else {
                        thread::park_timeout(Duration::from_millis(1));
                    }
                }
            })
            .map_err(Error::Io)?;
        Ok(Self {
            network,
            stop,
            thread: Some(thread),
            tid,
        })
    }

    /// Run the link thread (the emulated hardware) under SCHED_FIFO at `priority`, where permitted: an ESC does not
    /// wait for a scheduler, and a wall-clock test ([`crate::Clock::Wall`]) on loaded cores needs its emulator to keep
    /// time. Returns whether it took effect.
    pub fn set_realtime(&self, priority: i32) -> bool {
        let mut tid = self.tid.load(Ordering::Acquire);
        while tid == 0 {
            thread::yield_now(); // the thread records its id first thing
            tid = self.tid.load(Ordering::Acquire);
        }
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: plain libc call on a thread id of this process with a valid parameter.
        unsafe { libc::sched_setscheduler(tid, libc::SCHED_FIFO, &param) == 0 }
    }

    /// Lock the emulated line (inject faults, read drive state). Hold it briefly: frames wait.
    pub fn network(&self) -> MutexGuard<'_, Network> {
        match self.network.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl Drop for InProcessLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
