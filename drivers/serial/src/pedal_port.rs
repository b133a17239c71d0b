//! The enable pedal over a real serial line: an async reader on tokio-serial that turns the byte stream into a level
//! the safety cycle can be refreshed with.
//!
//! Fail-safe by construction: [`PedalLevel::held`] is true only right after a valid, checksummed, in-sequence `H`
//! frame (see [`crate::pedal`]). Everything else (an `R` frame, a bad line, a repeated or skipped sequence number,
//! silence past [`PedalConfig::deadline`], a port that closes, errors or cannot be opened) is reported as released at
//! once, not at the next frame. Between events the current level is repeated every [`PedalConfig::heartbeat`], so a
//! consumer with a deadline of its own (`SafetyInput::refresh` in the EtherCAT cycle) never goes stale while the pedal
//! is held and still sees silence when this task itself stops.
//!
//! A lost port is reopened with exponential backoff; every (re)open discards the input the tty buffered while nobody
//! was reading, so old frames can never be mistaken for a live pedal.

use std::convert::Infallible;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::time::{sleep_until, Instant};
use tokio_serial::{ClearBuffer, SerialPort, SerialPortBuilderExt, SerialStream};

use crate::pedal::{LineBuffer, PedalError, PedalFrame, SeqFollow, SeqVerdict};

/// How the reader finds and watches the pedal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PedalConfig {
    /// The tty, e.g. `/dev/ttyUSB0` or a udev symlink (reopened by path, so a re-enumerated adapter is found again).
    pub path: PathBuf,
    /// Line speed, baud. A pty ignores it; a real UART must match the pedal.
    pub baud: u32,
    /// No in-sequence frame for this long counts as released ([`PedalState::Silent`]). A few frame periods: the pedal
    /// sends at 50 Hz, so 100 ms tolerates one lost frame and still stops within a tenth of a second.
    pub deadline: Duration,
    /// The callback is called at least this often even when nothing changes. Keep it under half the consumer's
    /// deadline with some margin: timers overshoot by about a millisecond, so 40 ms serves a 100 ms deadline.
    pub heartbeat: Duration,
    /// First wait before reopening a lost port.
    pub backoff_min: Duration,
    /// Longest wait between reopen attempts (the wait doubles from `backoff_min` up to this).
    pub backoff_max: Duration,
}

impl PedalConfig {
    /// Defaults for the 50 Hz pedal: 115200 baud, 100 ms deadline, 40 ms heartbeat, backoff 50 ms .. 1 s.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            baud: 115_200,
            deadline: Duration::from_millis(100),
            heartbeat: Duration::from_millis(40),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
        }
    }

    /// Check the tunables once, before the reader starts.
    pub fn validate(&self) -> Result<(), PedalConfigError> {
        if self.baud == 0 {
            return Err(PedalConfigError::Baud);
        }
        if self.deadline.is_zero() || self.heartbeat.is_zero() {
            return Err(PedalConfigError::ZeroPeriod);
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return Err(PedalConfigError::Backoff);
        }
        Ok(())
    }
}

/// A [`PedalConfig`] that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PedalConfigError {
    /// Baud rate zero.
    #[error("pedal baud rate must be positive")]
    Baud,
    /// Deadline or heartbeat zero.
    #[error("pedal deadline and heartbeat must be positive")]
    ZeroPeriod,
    /// `backoff_min` zero or above `backoff_max`.
    #[error("pedal backoff must satisfy 0 < min <= max")]
    Backoff,
}

/// Why the port is not delivering frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortFault {
    /// Opening (or configuring / flushing) the port failed, e.g. `NotFound` for a path that does not exist.
    Open(io::ErrorKind),
    /// A read failed, e.g. `Other` (EIO) when a USB adapter is pulled or a pty's other side closes.
    Read(io::ErrorKind),
    /// The port reported end of file (hung up).
    Closed,
}

/// Why the pedal has the level it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PedalState {
    /// The last frame was a valid, in-sequence `H`: the only state in which the pedal counts as held.
    Held,
    /// The last frame was a valid, in-sequence `R`.
    Released,
    /// No in-sequence frame within the deadline (also the state before the first frame).
    Silent,
    /// The port is gone or could not be opened; the reader is backing off before reopening.
    Unplugged(PortFault),
    /// The last line was rejected (bad checksum, malformed, too long).
    Garbage(PedalError),
    /// A valid frame out of sequence: the first after (re)open (`expected` None), a repeat or a gap. It re-synchronises
    /// the sequence; the next frame can count again.
    OutOfSequence {
        /// The frame's sequence number.
        seq: u32,
        /// The number that would have been in sequence, None when there was nothing to follow.
        expected: Option<u32>,
    },
}

/// What the callback receives: the level to refresh the safety source with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PedalLevel {
    /// True only in [`PedalState::Held`].
    pub held: bool,
    /// The reason.
    pub why: PedalState,
}

impl From<PedalState> for PedalLevel {
    fn from(why: PedalState) -> Self {
        Self {
            held: matches!(why, PedalState::Held),
            why,
        }
    }
}

/// Read the pedal forever, calling `on_level` on every event and at least every [`PedalConfig::heartbeat`].
///
/// `on_level` runs inline on the reader task: keep it short and non-blocking (an atomic store such as
/// `SafetyInput::refresh`). The first call, held = false with [`PedalState::Silent`], happens before the port is
/// opened. Returns only when the configuration is invalid; stop the reader by dropping or aborting its future/task
/// (the consumer's own deadline then sees the silence).
pub async fn run_pedal<F>(config: PedalConfig, on_level: F) -> Result<Infallible, PedalConfigError>
where
    F: FnMut(PedalLevel) + Send,
{
    config.validate()?;
    let mut out = Emitter::new(on_level, config.heartbeat);
    let mut backoff = config.backoff_min;
    loop {
        match open(&config) {
            Err(kind) => {
                tracing::debug!(path = %config.path.display(), ?kind, "pedal port open failed");
                out.set(PedalState::Unplugged(PortFault::Open(kind)));
            }
            Ok(port) => {
                tracing::info!(path = %config.path.display(), "pedal port open");
                let (fault, alive) = read_port(&config, port, &mut out).await;
                tracing::warn!(path = %config.path.display(), ?fault, "pedal port lost");
                out.set(PedalState::Unplugged(fault));
                if alive {
                    backoff = config.backoff_min;
                }
            }
        }
        out.idle_until(Instant::now() + backoff).await;
        // Reset only after the port delivered a frame, so a port that opens and dies at once still backs off.
        backoff = backoff.saturating_mul(2).min(config.backoff_max);
    }
}

/// Open the port (8N1, no flow control, raw: tokio-serial's defaults) and discard whatever input the tty buffered
/// while nobody was reading. Failing to discard is an open failure: stale frames must not look like a live pedal.
fn open(config: &PedalConfig) -> Result<SerialStream, io::ErrorKind> {
    let port = tokio_serial::new(config.path.to_string_lossy().as_ref(), config.baud)
        .open_native_async()
        .map_err(|e| io::Error::from(e).kind())?;
    port.clear(ClearBuffer::Input).map_err(|e| io::Error::from(e).kind())?;
    Ok(port)
}

/// Read frames until the port fails. Returns the fault and whether any in-sequence frame arrived.
async fn read_port<F: FnMut(PedalLevel)>(
    config: &PedalConfig,
    mut port: SerialStream,
    out: &mut Emitter<F>,
) -> (PortFault, bool) {
    let mut lines = LineBuffer::new();
    let mut seq = SeqFollow::default();
    let mut alive = false;
    // Silence is measured from the last live frame, or from the open when none came yet.
    let mut silent_at = Instant::now() + config.deadline;
    let mut silent_reported = false;
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            // Reading is cancel-safe: a branch that wins drops this read without losing bytes.
            r = port.read(&mut buf) => {
                let n = match r {
                    Ok(0) => return (PortFault::Closed, alive),
                    Ok(n) => n,
                    Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => continue,
                    Err(e) => return (PortFault::Read(e.kind()), alive),
                };
                for &b in buf.get(..n).unwrap_or(&[]) {
                    let Some(line) = lines.push(b) else { continue };
                    let state = classify(line, &mut seq);
                    if matches!(state, PedalState::Held | PedalState::Released)
                        || matches!(state, PedalState::OutOfSequence { expected: None, .. })
                    {
                        // A frame that follows or starts a sequence proves a live sender; repeats and gaps do not.
                        silent_at = Instant::now() + config.deadline;
                        silent_reported = false;
                        alive = true;
                    }
                    out.set(state);
                }
            }
            _ = sleep_until(silent_at), if !silent_reported => {
                silent_reported = true;
                out.set(PedalState::Silent);
            }
            _ = sleep_until(out.next_beat) => out.beat(),
        }
    }
}

/// The state one completed line leads to.
fn classify(line: Result<PedalFrame, PedalError>, seq: &mut SeqFollow) -> PedalState {
    let frame = match line {
        Ok(f) => f,
        Err(e) => return PedalState::Garbage(e),
    };
    match seq.check(frame.seq) {
        SeqVerdict::Next if frame.held => PedalState::Held,
        SeqVerdict::Next => PedalState::Released,
        SeqVerdict::First => PedalState::OutOfSequence {
            seq: frame.seq,
            expected: None,
        },
        SeqVerdict::Repeat => PedalState::OutOfSequence {
            seq: frame.seq,
            expected: Some(frame.seq.wrapping_add(1)),
        },
        SeqVerdict::Gap { expected } => PedalState::OutOfSequence {
            seq: frame.seq,
            expected: Some(expected),
        },
    }
}

/// Calls the callback on every change of state and repeats the current level when nothing happened for a heartbeat.
struct Emitter<F> {
    on_level: F,
    heartbeat: Duration,
    state: PedalState,
    next_beat: Instant,
}

impl<F: FnMut(PedalLevel)> Emitter<F> {
    fn new(on_level: F, heartbeat: Duration) -> Self {
        let mut e = Self {
            on_level,
            heartbeat,
            state: PedalState::Silent,
            next_beat: Instant::now(),
        };
        e.beat();
        e
    }

    /// Report a new state now (every frame is reported, so the heartbeat only fills gaps).
    fn set(&mut self, state: PedalState) {
        self.state = state;
        self.beat();
    }

    /// Repeat the current state.
    fn beat(&mut self) {
        (self.on_level)(PedalLevel::from(self.state.clone()));
        self.next_beat = Instant::now() + self.heartbeat;
    }

    /// Wait (backing off) while keeping the heartbeat going.
    async fn idle_until(&mut self, until: Instant) {
        while self.next_beat < until {
            sleep_until(self.next_beat).await;
            self.beat();
        }
        sleep_until(until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pedal::encode;

    fn line(seq: u32, held: bool) -> Result<PedalFrame, PedalError> {
        crate::pedal::parse_line(encode(PedalFrame { seq, held }).trim_end().as_bytes())
    }

    #[test]
    fn only_in_sequence_h_is_held() {
        let mut s = SeqFollow::default();
        let held = |st: PedalState| PedalLevel::from(st).held;
        assert!(
            !held(classify(line(7, true), &mut s)),
            "first frame after open only syncs"
        );
        assert!(held(classify(line(8, true), &mut s)));
        assert!(!held(classify(line(8, true), &mut s)), "repeat");
        assert!(held(classify(line(9, true), &mut s)));
        assert!(!held(classify(line(11, true), &mut s)), "gap");
        assert!(!held(classify(line(12, false), &mut s)));
        assert!(!held(classify(Err(PedalError::Malformed), &mut s)));
        assert!(held(classify(line(13, true), &mut s)));
    }

    #[test]
    fn config_is_validated() {
        let mut c = PedalConfig::new("/dev/null");
        assert_eq!(c.validate(), Ok(()));
        c.backoff_min = Duration::from_secs(2);
        assert_eq!(c.validate(), Err(PedalConfigError::Backoff));
        c.backoff_min = Duration::from_millis(10);
        c.deadline = Duration::ZERO;
        assert_eq!(c.validate(), Err(PedalConfigError::ZeroPeriod));
    }
}
