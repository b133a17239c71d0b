//! In-process wiring: the emulator answers the frames an ethercrab `MainDevice` sends, through
//! ethercrab's public `PduTx`/`PduRx` (the same API its own replay tests use). No socket, no root.

use std::sync::atomic::{AtomicBool, Ordering};
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
}

impl InProcessLink {
    /// Start serving `network` to the ethercrab TX/RX halves.
    pub fn spawn(network: Network, mut tx: PduTx<'static>, mut rx: PduRx<'static>) -> Result<Self, Error> {
        let network = Arc::new(Mutex::new(network));
        let stop = Arc::new(AtomicBool::new(false));
        let (net, stop2) = (Arc::clone(&network), Arc::clone(&stop));
        let thread = thread::Builder::new()
            .name("ecat-sim-link".into())
            .spawn(move || {
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
        })
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
