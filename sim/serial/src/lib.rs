//! Simulated serial devices behind real pseudo-terminals, so the drivers in `acus-serial` are tested on a real tty
//! (line discipline, hang-up, buffering, open/flush) rather than on an in-memory stream.
//!
//! [`SimPedal`] is the enable pedal: it owns the master side of a pty (raw, non-blocking) and sends a frame of
//! exactly [`acus_serial::pedal`]'s protocol every period, with an increasing sequence number. The driver opens the
//! slave through a symlink ([`SimPedal::path`]) that [`SimPedal::unplug`] removes (and hangs up the pty, as pulling a
//! USB adapter does) and [`SimPedal::replug`] points at a fresh pty, like udev re-creating `/dev/serial/by-id/...`.

/// A simulated NDI combined-API tracker (Aurora / Polaris) on a pty.
pub mod ndi;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use acus_serial::pedal::{encode, PedalFrame};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// Name of the symlink the driver opens, inside the directory given to [`SimPedal::start`].
pub const LINK_NAME: &str = "pedal";

/// Frame period of the real pedal (50 Hz).
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(20);

/// A failure of the simulator's own set-up (creating the pty, the symlink).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A system call failed.
    #[error("simulated pedal: {0}")]
    Io(#[from] io::Error),
    /// The pty is unplugged or closed: there is nothing to write to.
    #[error("simulated pedal is unplugged")]
    Unplugged,
}

/// One open pty: the master the sim writes, and its own slave fd, kept open so the line stays configured raw and the
/// tty keeps buffering while no driver has it open (the driver must flush that stale input on open).
struct Pty {
    master: File,
    _slave: OwnedFd,
    slave_path: PathBuf,
}

impl Pty {
    fn open() -> Result<Self, SimError> {
        let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
        let mut t = tcgetattr(&pair.slave).map_err(io::Error::from)?;
        cfmakeraw(&mut t);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &t).map_err(io::Error::from)?;
        // Non-blocking master: with nobody reading, a full tty buffer drops frames (as a UART would) instead of
        // stalling the sim.
        let flags = fcntl(&pair.master, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&pair.master, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        let slave_path = nix::unistd::ttyname(&pair.slave).map_err(io::Error::from)?;
        Ok(Self {
            master: File::from(pair.master),
            _slave: pair.slave,
            slave_path,
        })
    }
}

/// What the sending thread and the test's handle share.
struct State {
    pty: Option<Pty>,
    held: bool,
    sending: bool,
    corrupt: bool,
    seq: u32,
    sent: u64,
    last: Option<SentFrame>,
    stop: bool,
}

/// The last frame the sim wrote to the pty, with when: benches time a reaction from the moment the line carried the
/// change (the first `R`, the last `H` before silence), not from the call that asked for it up to a period earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentFrame {
    /// Its sequence number.
    pub seq: u32,
    /// Its level (`H` = true).
    pub held: bool,
    /// Just before its bytes were handed to the pty (a reader cannot have seen them earlier).
    pub at: Instant,
    /// When the first frame of the current run of this level was handed to the pty (the first `R` after an `H`).
    pub level_since: Instant,
}

impl State {
    /// Write bytes to the master; a full buffer (nobody reading) drops them.
    fn write(&mut self, bytes: &[u8]) -> Result<(), SimError> {
        let pty = self.pty.as_mut().ok_or(SimError::Unplugged)?;
        match pty.master.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tracing::debug!("simulated pedal: tty buffer full, bytes dropped");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Send the next frame (sequence numbers advance per frame sent, as the pedal's firmware counts).
    fn send_frame(&mut self) {
        if !self.sending || self.pty.is_none() {
            return;
        }
        self.seq = self.seq.wrapping_add(1);
        let mut line = encode(PedalFrame {
            seq: self.seq,
            held: self.held,
        })
        .into_bytes();
        if self.corrupt {
            // Flip the low bit of the last checksum digit: still well-formed hex, but the wrong checksum.
            if let Some(d) = line.len().checked_sub(3).and_then(|i| line.get_mut(i)) {
                let flipped = char::from(*d).to_digit(16).and_then(|v| char::from_digit(v ^ 1, 16));
                if let Some(c) = flipped {
                    *d = c.to_ascii_uppercase() as u8;
                }
            }
        }
        let at = Instant::now();
        match self.write(&line) {
            Ok(()) => {
                let level_since = match self.last {
                    Some(f) if f.held == self.held => f.level_since,
                    _ => at,
                };
                self.last = Some(SentFrame {
                    seq: self.seq,
                    held: self.held,
                    at,
                    level_since,
                });
                self.sent += 1;
            }
            Err(e) => tracing::debug!("simulated pedal: frame not sent: {e}"),
        }
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// A simulated enable pedal on a pty. Dropping it stops the sender, hangs up the pty and removes the symlink.
pub struct SimPedal {
    shared: Arc<Shared>,
    link: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl SimPedal {
    /// Start a released pedal sending every [`DEFAULT_PERIOD`], reachable at `dir/`[`LINK_NAME`].
    pub fn start(dir: &Path) -> Result<Self, SimError> {
        Self::start_with_period(dir, DEFAULT_PERIOD)
    }

    /// As [`SimPedal::start`] with another frame period.
    pub fn start_with_period(dir: &Path, period: Duration) -> Result<Self, SimError> {
        let pty = Pty::open()?;
        let link = dir.join(LINK_NAME);
        point_link(&link, &pty.slave_path)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pty: Some(pty),
                held: false,
                sending: true,
                corrupt: false,
                seq: 0,
                sent: 0,
                last: None,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sim-pedal".into())
            .spawn(move || sender(&worker, period))?;
        Ok(Self {
            shared,
            link,
            thread: Some(thread),
        })
    }

    /// The path the driver opens (a symlink to the current pty slave).
    pub fn path(&self) -> &Path {
        &self.link
    }

    /// The pty slave the symlink points at now, None while unplugged.
    pub fn slave_path(&self) -> Option<PathBuf> {
        self.lock().pty.as_ref().map(|p| p.slave_path.clone())
    }

    /// Hold the pedal down; frames say `H` from the next one on (and sending resumes after [`SimPedal::go_silent`]).
    pub fn press(&self) {
        self.set(|s| {
            s.held = true;
            s.sending = true;
        });
    }

    /// Let the pedal go; frames say `R` (sending resumes after [`SimPedal::go_silent`]).
    pub fn release(&self) {
        self.set(|s| {
            s.held = false;
            s.sending = true;
        });
    }

    /// Stop sending frames with the port still open (a hung pedal firmware or a broken TX wire).
    pub fn go_silent(&self) {
        self.set(|s| s.sending = false);
    }

    /// Send well-formed frames with a wrong checksum from now on (true) or correct ones again (false).
    pub fn corrupt_checksums(&self, on: bool) {
        self.set(|s| s.corrupt = on);
    }

    /// Write raw bytes now, between two frames (never inside one).
    pub fn send_garbage(&self, bytes: &[u8]) -> Result<(), SimError> {
        self.lock().write(bytes)
    }

    /// Pull the plug: the symlink disappears and the pty hangs up (an open driver reads EOF or EIO).
    pub fn unplug(&self) -> Result<(), SimError> {
        self.close();
        match std::fs::remove_file(&self.link) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Hang up the pty but leave the symlink pointing at its (now gone) slave: a port that closed under the driver.
    pub fn close(&self) {
        let pty = self.lock().pty.take();
        drop(pty);
    }

    /// Plug back in: a new pty, the symlink atomically re-pointed at it, frames resume with the next sequence number.
    pub fn replug(&self) -> Result<(), SimError> {
        let pty = Pty::open()?;
        point_link(&self.link, &pty.slave_path)?;
        let mut s = self.lock();
        s.pty = Some(pty);
        s.sending = true;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames_sent(&self) -> u64 {
        self.lock().sent
    }

    /// The last frame written (None before the first).
    pub fn last_frame(&self) -> Option<SentFrame> {
        self.lock().last
    }

    /// Sequence number of the last frame sent.
    pub fn seq(&self) -> u32 {
        self.lock().seq
    }

    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
    }

    /// The state, also after a panic in another holder (the sim's state stays consistent field by field).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for SimPedal {
    fn drop(&mut self) {
        {
            let mut s = self.lock();
            s.stop = true;
            s.pty = None;
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.link);
    }
}

/// Point `link` at `target`, replacing any old link in one rename (a reader never sees a missing link mid-replug).
fn point_link(link: &Path, target: &Path) -> Result<(), SimError> {
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)?;
    Ok(())
}

/// The sending thread: one frame per period on an absolute schedule (no drift), until the handle is dropped.
fn sender(shared: &Shared, period: Duration) {
    let mut next = Instant::now();
    let mut s = shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    while !s.stop {
        let now = Instant::now();
        if now >= next {
            s.send_frame();
            next += period;
            if next < now {
                next = now + period;
            }
            continue;
        }
        s = match shared.wake.wait_timeout(s, next - now) {
            Ok((g, _)) => g,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}
