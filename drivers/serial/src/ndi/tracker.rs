//! The NDI tracker over a real serial line (tokio-serial): bring-up, the tracking stream, and a supervisor that
//! reconnects.
//!
//! Bring-up follows ndicapi's `ndiOpen` / `ndiCommand(NULL)` and scikit-surgerynditracker's port-handle sequence:
//! open at 9600 8N1 and discard stale input; serial break, wait for `RESET`; a pseudo-terminal has no break (the ioctl
//! succeeds and nothing reaches the other side), so when no `RESET` comes within [`NdiConfig::reset_timeout`] the
//! driver sends the `RESET:0` command instead and waits for `RESET` again; `COMM` to the working baud rate (then the
//! host port follows; a no-op on a pty, but the exchange runs); `INIT`; `PHSR:01` → `PHF` each (free stale handles),
//! `PHSR:02` → `PINIT` each, `PHSR:03` → `PENA:<h>D` each (dynamic tools), `PHSR:04` (the enabled handles);
//! `TSTART`. Then each [`NdiTracker::frame`] is one `BX:0001` (or `TX:0001`) exchange; [`NdiTracker::stop`] sends
//! `TSTOP`.
//!
//! Every exchange first discards unread input (as ndicapi does before each command: anything unread is left over
//! from a failed exchange), so one damaged reply costs one frame, and the stream resynchronises on the next command.
//! Each reply has a deadline for its first byte ([`NdiConfig::reply_timeout`], typed [`NdiError::Timeout`]) and a
//! gap limit between bytes ([`NdiConfig::byte_gap`], after which a started reply is [`NdiError::Truncated`]).

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep, timeout, Instant};
use tokio_serial::{ClearBuffer, SerialPort, SerialPortBuilderExt, SerialStream};

use super::format_command;
use super::reply::{
    parse_bx, parse_phsr, parse_text, parse_tx, split_reply, NdiError, Split, TextReply, TrackingFrame,
};

/// Which tracking command the stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// `BX:0001`, binary (compact, float precision): the default.
    Binary,
    /// `TX:0001`, text (0.01 mm, 10⁻⁴ quaternion resolution).
    Text,
}

/// How to reach and drive the tracker.
#[derive(Debug, Clone, PartialEq)]
pub struct NdiConfig {
    /// The tty (or a udev symlink; reopened by path).
    pub path: PathBuf,
    /// Working baud rate set with `COMM` after the reset (the device always starts at 9600).
    pub baud: u32,
    /// BX or TX.
    pub mode: PollMode,
    /// Time allowed for the first byte of a reply.
    pub reply_timeout: Duration,
    /// Longest silence inside a reply before it counts as truncated.
    pub byte_gap: Duration,
    /// How long the break is held.
    pub break_duration: Duration,
    /// How long to wait for `RESET` after the break before falling back to the `RESET:0` command.
    pub reset_timeout: Duration,
    /// Wait after `COMM` before talking at the new rate (the device switches after its reply).
    pub comm_settle: Duration,
    /// First wait before reconnecting.
    pub backoff_min: Duration,
    /// Longest wait between reconnects (doubling from `backoff_min`).
    pub backoff_max: Duration,
    /// Consecutive damaged replies tolerated before the link is rebuilt from the reset.
    pub max_bad_replies: u32,
}

impl NdiConfig {
    /// Defaults: 115200 baud, BX, 200 ms per reply, 20 ms byte gap, 250 ms break, 300 ms reset wait, backoff
    /// 100 ms .. 2 s, 10 bad replies.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            baud: 115_200,
            mode: PollMode::Binary,
            reply_timeout: Duration::from_millis(200),
            byte_gap: Duration::from_millis(20),
            break_duration: Duration::from_millis(250),
            reset_timeout: Duration::from_millis(300),
            comm_settle: Duration::from_millis(100),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            max_bad_replies: 10,
        }
    }

    /// Check the tunables once.
    pub fn validate(&self) -> Result<(), NdiConfigError> {
        comm_code(self.baud).ok_or(NdiConfigError::Baud(self.baud))?;
        if self.reply_timeout.is_zero() || self.byte_gap.is_zero() || self.reset_timeout.is_zero() {
            return Err(NdiConfigError::ZeroTimeout);
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return Err(NdiConfigError::Backoff);
        }
        Ok(())
    }
}

/// An [`NdiConfig`] that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NdiConfigError {
    /// Not a rate the combined API's `COMM` offers.
    #[error("baud rate {0} is not one COMM can set")]
    Baud(u32),
    /// A timeout of zero.
    #[error("NDI timeouts must be positive")]
    ZeroTimeout,
    /// `backoff_min` zero or above `backoff_max`.
    #[error("NDI backoff must satisfy 0 < min <= max")]
    Backoff,
}

/// The `COMM` baud digit (ndicapi.h `NDI_9600` .. `NDI_230400`).
fn comm_code(baud: u32) -> Option<char> {
    Some(match baud {
        9600 => '0',
        14_400 => '1',
        19_200 => '2',
        38_400 => '3',
        57_600 => '4',
        115_200 => '5',
        921_600 => '6',
        1_228_739 => '7',
        230_400 => 'A',
        _ => return None,
    })
}

fn io_err(e: impl Into<io::Error>) -> NdiError {
    NdiError::Io(e.into().kind())
}

/// A tracker brought up and tracking.
pub struct NdiTracker {
    port: SerialStream,
    config: NdiConfig,
    buf: Vec<u8>,
    handles: Vec<u8>,
}

impl NdiTracker {
    /// Open the port and run the whole bring-up (module docs); tracking when this returns.
    pub async fn connect(config: &NdiConfig) -> Result<Self, NdiError> {
        config
            .validate()
            .map_err(|_| NdiError::Io(io::ErrorKind::InvalidInput))?;
        let port = tokio_serial::new(config.path.to_string_lossy().as_ref(), 9600)
            .open_native_async()
            .map_err(io_err)?;
        port.clear(ClearBuffer::Input).map_err(io_err)?;
        let mut t = Self {
            port,
            config: config.clone(),
            buf: Vec::new(),
            handles: Vec::new(),
        };
        t.reset().await?;
        let code = comm_code(config.baud).unwrap_or('0');
        t.expect_okay("COMM", &format!("{code}0000")).await?;
        sleep(config.comm_settle).await;
        t.port.set_baud_rate(config.baud).map_err(io_err)?;
        t.expect_okay("INIT", "").await?;
        for h in t.phsr("01").await? {
            t.expect_okay("PHF", &format!("{h:02X}")).await?;
        }
        for h in t.phsr("02").await? {
            t.expect_okay("PINIT", &format!("{h:02X}")).await?;
        }
        for h in t.phsr("03").await? {
            t.expect_okay("PENA", &format!("{h:02X}D")).await?;
        }
        t.handles = t.phsr("04").await?;
        t.expect_okay("TSTART", "").await?;
        Ok(t)
    }

    /// The enabled port handles (from `PHSR:04`).
    pub fn handles(&self) -> &[u8] {
        &self.handles
    }

    /// One tracking exchange (`BX:0001` or `TX:0001`).
    pub async fn frame(&mut self) -> Result<TrackingFrame, NdiError> {
        match self.config.mode {
            PollMode::Binary => {
                let raw = self.exchange("BX", "0001").await?;
                if raw.first() == Some(&0xC4) {
                    return parse_bx(&raw);
                }
                // A text reply to BX: an ERRORxx (or damage that lost the start sequence).
                match parse_text(&raw) {
                    Ok(TextReply::Error(e)) => Err(NdiError::Device(e)),
                    Ok(other) => Err(NdiError::UnknownReply(format!("{other:?}"))),
                    Err(NdiError::BadCrc | NdiError::Malformed(_)) => Err(NdiError::BadHeader),
                    Err(e) => Err(e),
                }
            }
            PollMode::Text => match self.text_command("TX", "0001").await? {
                TextReply::Data(d) => parse_tx(&d),
                other => Err(NdiError::UnknownReply(format!("{other:?}"))),
            },
        }
    }

    /// Stop tracking (`TSTOP`) and close the port.
    pub async fn stop(mut self) -> Result<(), NdiError> {
        self.expect_okay("TSTOP", "").await
    }

    /// Send any text command and return its reply (`ERRORxx` as [`NdiError::Device`]).
    pub async fn text_command(&mut self, name: &str, params: &str) -> Result<TextReply, NdiError> {
        let raw = self.exchange(name, params).await?;
        match parse_text(&raw)? {
            TextReply::Error(e) => Err(NdiError::Device(e)),
            r => Ok(r),
        }
    }

    async fn expect_okay(&mut self, name: &str, params: &str) -> Result<(), NdiError> {
        match self.text_command(name, params).await? {
            TextReply::Okay | TextReply::Warning(_) => Ok(()),
            other => Err(NdiError::UnknownReply(format!("{name}: {other:?}"))),
        }
    }

    async fn phsr(&mut self, which: &str) -> Result<Vec<u8>, NdiError> {
        match self.text_command("PHSR", which).await? {
            TextReply::Data(d) => Ok(parse_phsr(&d)?.into_iter().map(|h| h.handle).collect()),
            other => Err(NdiError::UnknownReply(format!("PHSR: {other:?}"))),
        }
    }

    /// Break, wait for `RESET`; without one, the `RESET:0` command (a pty cannot carry a break).
    async fn reset(&mut self) -> Result<(), NdiError> {
        self.port.set_break().map_err(io_err)?;
        sleep(self.config.break_duration).await;
        self.port.clear_break().map_err(io_err)?;
        match self.read_reply(self.config.reset_timeout).await {
            Ok(raw) if parse_text(&raw) == Ok(TextReply::Reset) => return Ok(()),
            Ok(raw) => tracing::debug!(reply = ?String::from_utf8_lossy(&raw), "NDI: unexpected reply to break"),
            Err(NdiError::Timeout(_)) => tracing::debug!("NDI: no RESET after break, sending RESET:0"),
            Err(e) => return Err(e),
        }
        match self.text_command("RESET", "0").await? {
            TextReply::Reset => Ok(()),
            other => Err(NdiError::UnknownReply(format!("RESET: {other:?}"))),
        }
    }

    /// Discard unread input, send one command, read one reply.
    async fn exchange(&mut self, name: &str, params: &str) -> Result<Vec<u8>, NdiError> {
        self.buf.clear();
        self.port.clear(ClearBuffer::Input).map_err(io_err)?;
        let cmd = format_command(name, params);
        match timeout(self.config.reply_timeout, self.port.write_all(cmd.as_bytes())).await {
            Err(_) => return Err(NdiError::Timeout(self.config.reply_timeout)),
            Ok(r) => r.map_err(io_err)?,
        }
        self.read_reply(self.config.reply_timeout).await
    }

    /// Read until [`split_reply`] finds a whole reply; the first byte within `first`, the rest without a gap longer
    /// than [`NdiConfig::byte_gap`].
    async fn read_reply(&mut self, first: Duration) -> Result<Vec<u8>, NdiError> {
        let mut deadline = Instant::now() + first;
        let mut chunk = [0u8; 256];
        loop {
            match split_reply(&self.buf) {
                Split::Complete(n) => {
                    let rest = self.buf.split_off(n.min(self.buf.len()));
                    return Ok(std::mem::replace(&mut self.buf, rest));
                }
                Split::Incomplete { need } => {
                    let r = tokio::time::timeout_at(deadline, self.port.read(&mut chunk)).await;
                    let n = match r {
                        Err(_) if self.buf.is_empty() => return Err(NdiError::Timeout(first)),
                        Err(_) => {
                            let got = self.buf.len();
                            return Err(NdiError::Truncated {
                                got,
                                expected: need.unwrap_or(got + 1),
                            });
                        }
                        Ok(Ok(0)) => return Err(NdiError::Closed),
                        Ok(Ok(n)) => n,
                        Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Ok(Err(e)) => return Err(NdiError::Io(e.kind())),
                    };
                    self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                    deadline = Instant::now() + self.config.byte_gap;
                }
            }
        }
    }
}

/// What [`run_tracker`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum NdiEvent {
    /// Brought up and tracking these handles.
    Connected {
        /// Enabled port handles.
        handles: Vec<u8>,
    },
    /// A tracking frame.
    Frame(TrackingFrame),
    /// A damaged or unexpected reply; the stream goes on (and resynchronises on the next command).
    Fault(NdiError),
    /// The link is down (bring-up failed, timeout, port lost, too many bad replies); reconnecting after the backoff.
    Disconnected(NdiError),
}

/// Track until `stop` completes: bring up, stream frames, reconnect with exponential backoff when the link is lost.
/// On stop, a live tracker gets `TSTOP`. `on_event` runs inline: keep it short.
pub async fn run_tracker<F>(
    config: NdiConfig,
    stop: impl Future<Output = ()>,
    mut on_event: F,
) -> Result<(), NdiConfigError>
where
    F: FnMut(NdiEvent) + Send,
{
    config.validate()?;
    tokio::pin!(stop);
    let mut backoff = config.backoff_min;
    loop {
        let connected = tokio::select! {
            _ = &mut stop => return Ok(()),
            r = NdiTracker::connect(&config) => r,
        };
        match connected {
            Err(e) => on_event(NdiEvent::Disconnected(e)),
            Ok(mut t) => {
                on_event(NdiEvent::Connected {
                    handles: t.handles().to_vec(),
                });
                let mut bad = 0u32;
                let lost = loop {
                    let r = tokio::select! {
                        _ = &mut stop => {
                            if let Err(e) = t.stop().await {
                                tracing::debug!("NDI: TSTOP failed: {e}");
                            }
                            return Ok(());
                        }
                        r = t.frame() => r,
                    };
                    match r {
                        Ok(f) => {
                            bad = 0;
                            backoff = config.backoff_min;
                            on_event(NdiEvent::Frame(f));
                        }
                        Err(e) if e.is_reply_error() && bad + 1 < config.max_bad_replies => {
                            bad += 1;
                            tracing::debug!("NDI: bad reply: {e}");
                            on_event(NdiEvent::Fault(e));
                        }
                        Err(e) => break e,
                    }
                };
                tracing::warn!("NDI link lost: {lost}");
                on_event(NdiEvent::Disconnected(lost));
            }
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = sleep(backoff) => {}
        }
        // Reset only after a frame arrived, so a device that connects and fails at once still backs off.
        backoff = backoff.saturating_mul(2).min(config.backoff_max);
    }
}
