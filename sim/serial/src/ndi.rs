//! A simulated NDI tracker (Aurora / Polaris combined API) behind a real pty, for `acus_serial::ndi`'s tracker.
//!
//! It answers the commands of the driver's bring-up (`RESET`, `COMM`, `INIT`, `PHSR`, `PHF`, `PINIT`, `PENA`,
//! `TSTART`, `TSTOP`) and the tracking requests `BX:0001` / `TX:0001`, every reply with its CRC, commands with a
//! wrong CRC get `ERROR04`, unknown ones `ERROR01` (as the real device). A pty carries no break, so only the
//! `RESET` command resets it (see the driver's fallback).
//!
//! Tracking: `N` tools on handles `0A, 0B, ...`; their true poses come from the caller's closure of time (seconds
//! since start, at the frame's time), plus Gaussian noise of the stated sigma, per axis, from a seeded xorshift
//! generator. The camera runs at [`SimNdiConfig::frame_rate_hz`]: a `BX` is answered with the newest frame, and a
//! request faster than the camera waits for the next one, so frame numbers never repeat. A tool whose true position
//! leaves the configured box is reported missing with the out-of-volume bit; within `partial_margin_m` of the box
//! faces it is valid with the partially-out-of-volume bit.
//!
//! Faults: [`SimNdi::send_garbage`], [`SimNdi::corrupt_crc`], [`SimNdi::truncate_replies`], [`SimNdi::go_silent`]
//! (still reading, never answering) / [`SimNdi::resume`], [`SimNdi::close`] (hang up the pty) / [`SimNdi::reopen`]
//! (a fresh pty behind the same symlink, device state as after power-up).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use acus_serial::ndi::crc16;
use acus_serial::ndi::reply::{
    encode_bx, encode_text, encode_tx, HandleStatus, ToolPose, TrackingFrame, PORT_ENABLED, PORT_INITIALIZED,
    PORT_OCCUPIED, PORT_OUT_OF_VOLUME, PORT_PARTIALLY_IN_VOLUME,
};
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

use crate::SimError;

/// Name of the symlink the driver opens, inside the directory given to [`SimNdi::start`].
pub const NDI_LINK_NAME: &str = "ndi";

/// The true poses of the tools at time `t` (seconds): T_tracker_tool in metres, None for a tool not in view.
pub type PoseFn = dyn Fn(f64) -> Vec<Option<Isometry3<f64>>> + Send + Sync;

/// How the simulated tracker behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SimNdiConfig {
    /// Number of tools (port handles `0x0A ..`).
    pub tools: usize,
    /// Camera frame rate (a Polaris Vega runs at 60 Hz).
    pub frame_rate_hz: f64,
    /// Position noise, standard deviation per axis, metres (0.25 mm, a Polaris-class RMS).
    pub sigma_position_m: f64,
    /// Rotation noise, standard deviation per axis of a small rotation vector, radians.
    pub sigma_rotation_rad: f64,
    /// Measurement volume, tracker frame, metres: lower corner.
    pub volume_min: Vector3<f64>,
    /// Upper corner.
    pub volume_max: Vector3<f64>,
    /// Inside the box but this close to a face: partially out of volume.
    pub partial_margin_m: f64,
    /// Noise seed (same seed, same noise).
    pub seed: u64,
}

impl SimNdiConfig {
    /// `tools` tools at 60 Hz, 0.25 mm / 0.5 mrad noise, a 1 m × 1 m × 1.5 m box in front of the camera (z < 0).
    pub fn new(tools: usize) -> Self {
        Self {
            tools,
            frame_rate_hz: 60.0,
            sigma_position_m: 0.25e-3,
            sigma_rotation_rad: 0.5e-3,
            volume_min: Vector3::new(-0.5, -0.5, -2.4),
            volume_max: Vector3::new(0.5, 0.5, -0.9),
            partial_margin_m: 0.02,
            seed: 0x5EED_0F4D,
        }
    }
}

/// xorshift64* with Box–Muller: small, seeded, plenty for measurement noise.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    fn vec3(&mut self, sigma: f64) -> Vector3<f64> {
        Vector3::new(self.gauss(), self.gauss(), self.gauss()) * sigma
    }
}

/// One open pty (as the pedal's): the master the sim reads and writes, and its own slave fd, kept open so the line
/// stays raw and buffers while no driver has it open.
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

#[derive(Debug, Clone, Copy, Default)]
struct Port {
    initialized: bool,
    enabled: bool,
}

/// Which tracking reply a deferred request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poll {
    Bx,
    Tx,
}

struct State {
    pty: Option<Pty>,
    rx: Vec<u8>,
    ports: Vec<Port>,
    initialised: bool,
    tracking: bool,
    baud: u32,
    pending: Option<Poll>,
    last_frame: Option<u64>,
    silent: bool,
    corrupt: bool,
    truncate: bool,
    stop: bool,
    log: VecDeque<String>,
    frames: u64,
    rng: Rng,
}

const LOG_CAP: usize = 4096;

impl State {
    fn power_up(&mut self) {
        self.ports.iter_mut().for_each(|p| *p = Port::default());
        self.initialised = false;
        self.tracking = false;
        self.baud = 9600;
        self.pending = None;
    }

    /// Write a reply, damaged as the fault switches say; a full buffer drops it (nobody reading).
    fn send(&mut self, mut bytes: Vec<u8>, binary: bool) {
        if self.corrupt {
            let i = if binary {
                bytes.len().checked_sub(1)
            } else {
                bytes.len().checked_sub(2)
            };
            if let Some(b) = i.and_then(|i| bytes.get_mut(i)) {
                *b = if binary {
                    *b ^ 0x01
                } else if *b == b'0' {
                    b'1'
                } else {
                    b'0'
                };
            }
        }
        if self.truncate {
            bytes.truncate(bytes.len() / 2);
        }
        self.write(&bytes);
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(pty) = self.pty.as_mut() {
            if let Err(e) = pty.master.write_all(bytes) {
                tracing::debug!("simulated NDI: reply not sent: {e}");
            }
        }
    }

    fn text(&mut self, text: &str) {
        self.send(encode_text(text), false);
    }

    fn handle_index(&self, hex: &str) -> Option<usize> {
        let h = u8::from_str_radix(hex.get(..2)?, 16).ok()?;
        let i = usize::from(h.checked_sub(0x0A)?);
        (i < self.ports.len()).then_some(i)
    }

    fn phsr(&self, which: &str) -> String {
        let pick = |p: &Port| match which {
            "01" => false,
            "02" => !p.initialized,
            "03" => p.initialized && !p.enabled,
            "04" => p.enabled,
            _ => true,
        };
        let list: Vec<(usize, &Port)> = self.ports.iter().enumerate().filter(|(_, p)| pick(p)).collect();
        let mut s = format!("{:02X}", list.len());
        for (i, p) in list {
            let st = 0x001 | if p.initialized { 0x010 } else { 0 } | if p.enabled { 0x020 } else { 0 };
            s += &format!("{:02X}{st:03X}", 0x0A + i);
        }
        s
    }

    /// Answer one command line (CR stripped).
    fn command(&mut self, line: &[u8]) {
        let (name, params) = match split_command(line) {
            Ok(c) => c,
            Err(code) => {
                self.log(format!("<bad {code:02X}>"));
                if !self.silent {
                    self.text(&format!("ERROR{code:02X}"));
                }
                return;
            }
        };
        self.log(format!("{name}:{params}"));
        if self.silent {
            return;
        }
        match name.as_str() {
            "RESET" => {
                self.power_up();
                self.text("RESET");
            }
            "COMM" => {
                let baud = match params.get(..1) {
                    Some("0") => Some(9600),
                    Some("3") => Some(38_400),
                    Some("4") => Some(57_600),
                    Some("5") => Some(115_200),
                    Some("A") => Some(230_400),
                    _ => None,
                };
                match baud {
                    Some(b) if params.len() == 5 => {
                        self.baud = b;
                        self.text("OKAY");
                    }
                    _ => self.text("ERROR06"),
                }
            }
            "INIT" => {
                self.initialised = true;
                self.text("OKAY");
            }
            "PHSR" if self.initialised => {
                let s = self.phsr(&params);
                self.text(&s);
            }
            "PHF" => self.text("OKAY"),
            "PINIT" => match self.handle_index(&params) {
                Some(i) => {
                    if let Some(p) = self.ports.get_mut(i) {
                        p.initialized = true;
                    }
                    self.text("OKAY");
                }
                None => self.text("ERROR08"),
            },
            "PENA" => match (self.handle_index(&params), params.get(2..)) {
                (Some(i), Some("S" | "D" | "B")) => match self.ports.get_mut(i) {
                    Some(p) if p.initialized => {
                        p.enabled = true;
                        self.text("OKAY");
                    }
                    _ => self.text("ERROR0E"),
                },
                (Some(_), _) => self.text("ERROR09"),
                (None, _) => self.text("ERROR08"),
            },
            "TSTART" if self.initialised => {
                self.tracking = true;
                self.text("OKAY");
            }
            "TSTOP" => {
                self.tracking = false;
                self.text("OKAY");
            }
            "BX" | "TX" if self.tracking => {
                self.pending = Some(if name == "BX" { Poll::Bx } else { Poll::Tx });
            }
            "BX" | "TX" => self.text("ERROR0C"),
            "PHSR" | "TSTART" => self.text("ERROR10"),
            _ => self.text("ERROR01"),
        }
    }

    fn log(&mut self, s: String) {
        if self.log.len() >= LOG_CAP {
            self.log.pop_front();
        }
        self.log.push_back(s);
    }
}

/// `NAME:params<CRC>` (CRC checked) or `NAME params` (no CRC); Err(device error number).
fn split_command(line: &[u8]) -> Result<(String, String), u8> {
    let s = std::str::from_utf8(line).map_err(|_| 0x01u8)?;
    if let Some(i) = s.find(':') {
        let n = s.len().checked_sub(4).filter(|&n| n > i).ok_or(0x04u8)?;
        let crc = s.get(n..).and_then(|c| u16::from_str_radix(c, 16).ok()).ok_or(0x04u8)?;
        if crc16(s.get(..n).unwrap_or("").as_bytes()) != crc {
            return Err(0x04);
        }
        Ok((s[..i].to_owned(), s.get(i + 1..n).unwrap_or("").to_owned()))
    } else if let Some((a, b)) = s.split_once(' ') {
        Ok((a.to_owned(), b.to_owned()))
    } else if s.is_empty() {
        Err(0x03)
    } else {
        Ok((s.to_owned(), String::new()))
    }
}

struct Shared {
    state: Mutex<State>,
    poses: Box<PoseFn>,
    config: SimNdiConfig,
    start: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The frame index of the camera now.
    fn frame_now(&self) -> u64 {
        (self.start.elapsed().as_secs_f64() * self.config.frame_rate_hz) as u64
    }

    /// Build the frame with index `idx` (true poses at its time, plus noise).
    fn frame(&self, s: &mut State, idx: u64) -> TrackingFrame {
        let c = &self.config;
        let truth = (self.poses)(idx as f64 / c.frame_rate_hz);
        let mut tools = Vec::with_capacity(s.ports.len());
        for (i, port) in s.ports.clone().iter().enumerate() {
            let handle = 0x0A + i as u8;
            let mut t = ToolPose {
                handle,
                status: HandleStatus::Disabled,
                pose: None,
                rms_error_m: None,
                port_status: 0,
                frame_number: 0,
                out_of_volume: false,
                partially_out_of_volume: false,
                missing: false,
            };
            if port.enabled {
                t.frame_number = idx as u32;
                t.port_status = PORT_OCCUPIED | PORT_INITIALIZED | PORT_ENABLED;
                t.status = HandleStatus::Missing;
                t.missing = true;
                if let Some(p) = truth.get(i).copied().flatten() {
                    let v = p.translation.vector;
                    let inside = (0..3).all(|k| v[k] >= c.volume_min[k] && v[k] <= c.volume_max[k]);
                    let deep = (0..3).all(|k| {
                        v[k] >= c.volume_min[k] + c.partial_margin_m && v[k] <= c.volume_max[k] - c.partial_margin_m
                    });
                    if !inside {
                        t.port_status |= PORT_OUT_OF_VOLUME;
                        t.out_of_volume = true;
                    } else {
                        let dt = s.rng.vec3(c.sigma_position_m);
                        let dr = UnitQuaternion::from_scaled_axis(s.rng.vec3(c.sigma_rotation_rad));
                        t.pose = Some(Isometry3::from_parts(Translation3::from(v + dt), p.rotation * dr));
                        t.rms_error_m = Some(c.sigma_position_m);
                        t.status = HandleStatus::Valid;
                        t.missing = false;
                        if !deep {
                            t.port_status |= PORT_PARTIALLY_IN_VOLUME;
                            t.partially_out_of_volume = true;
                        }
                    }
                }
            }
            tools.push(t);
        }
        TrackingFrame {
            frame_number: idx as u32,
            tools,
            system_status: 0,
        }
    }
}

/// A simulated NDI tracker on a pty. Dropping it stops the device, hangs up the pty and removes the symlink.
pub struct SimNdi {
    shared: Arc<Shared>,
    link: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl SimNdi {
    /// Start the device, reachable at `dir/`[`NDI_LINK_NAME`], with the tools' true poses from `poses`.
    pub fn start(
        dir: &Path,
        config: SimNdiConfig,
        poses: impl Fn(f64) -> Vec<Option<Isometry3<f64>>> + Send + Sync + 'static,
    ) -> Result<Self, SimError> {
        let pty = Pty::open()?;
        let link = dir.join(NDI_LINK_NAME);
        point_link(&link, &pty.slave_path)?;
        let mut state = State {
            pty: Some(pty),
            rx: Vec::new(),
            ports: vec![Port::default(); config.tools],
            initialised: false,
            tracking: false,
            baud: 9600,
            pending: None,
            last_frame: None,
            silent: false,
            corrupt: false,
            truncate: false,
            stop: false,
            log: VecDeque::new(),
            frames: 0,
            rng: Rng(config.seed | 1),
        };
        state.power_up();
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            poses: Box::new(poses),
            config,
            start: Instant::now(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sim-ndi".into())
            .spawn(move || device(&worker))?;
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

    /// Write raw bytes now (between replies, never inside one).
    pub fn send_garbage(&self, bytes: &[u8]) -> Result<(), SimError> {
        let mut s = self.shared.lock();
        let pty = s.pty.as_mut().ok_or(SimError::Unplugged)?;
        match pty.master.write_all(bytes) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Damage the CRC of every reply from now on (true) or not (false).
    pub fn corrupt_crc(&self, on: bool) {
        self.shared.lock().corrupt = on;
    }

    /// Send only the first half of every reply (true) or whole replies (false).
    pub fn truncate_replies(&self, on: bool) {
        self.shared.lock().truncate = on;
    }

    /// Stop answering (commands are still read, and logged): a hung device.
    pub fn go_silent(&self) {
        self.shared.lock().silent = true;
    }

    /// Answer again after [`SimNdi::go_silent`].
    pub fn resume(&self) {
        self.shared.lock().silent = false;
    }

    /// Hang up the pty under the driver (it reads EOF or EIO). The symlink is re-pointed at a path that does not
    /// exist, as a by-id link of a pulled adapter leads nowhere: a dangling link to the old `/dev/pts/N` could reach
    /// another pty that reused the number.
    pub fn close(&self) -> Result<(), SimError> {
        let pty = self.shared.lock().pty.take();
        drop(pty);
        point_link(&self.link, &self.link.with_extension("closed"))
    }

    /// A fresh pty behind the same symlink, the device as after power-up.
    pub fn reopen(&self) -> Result<(), SimError> {
        let pty = Pty::open()?;
        point_link(&self.link, &pty.slave_path)?;
        let mut s = self.shared.lock();
        s.pty = Some(pty);
        s.rx.clear();
        s.power_up();
        Ok(())
    }

    /// The commands received so far (`NAME:params`, CRC stripped; `<bad xx>` for a rejected line), oldest first.
    pub fn commands(&self) -> Vec<String> {
        self.shared.lock().log.iter().cloned().collect()
    }

    /// Tracking replies sent.
    pub fn frames_sent(&self) -> u64 {
        self.shared.lock().frames
    }

    /// The baud rate the last `COMM` selected (9600 after a reset).
    pub fn baud(&self) -> u32 {
        self.shared.lock().baud
    }

    /// Whether the device is tracking (between `TSTART` and `TSTOP` / reset).
    pub fn tracking(&self) -> bool {
        self.shared.lock().tracking
    }
}

impl Drop for SimNdi {
    fn drop(&mut self) {
        {
            let mut s = self.shared.lock();
            s.stop = true;
            s.pty = None;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.link);
    }
}

/// Point `link` at `target` in one rename (as the pedal's: no missing link mid-reopen).
fn point_link(link: &Path, target: &Path) -> Result<(), SimError> {
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)?;
    Ok(())
}

/// The device thread: read commands, answer them, release deferred tracking replies on the camera's clock. It polls
/// the non-blocking master every millisecond (a real device's command latency is of that order).
fn device(shared: &Shared) {
    let mut chunk = [0u8; 512];
    loop {
        {
            let mut s = shared.lock();
            if s.stop {
                return;
            }
            // Drain what the driver wrote; WouldBlock (nothing more), EOF or EIO end the drain.
            while let Some(Ok(n @ 1..)) = s.pty.as_mut().map(|p| p.master.read(&mut chunk)) {
                s.rx.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
            }
            while let Some(i) = s.rx.iter().position(|&b| b == b'\r') {
                let line: Vec<u8> = s.rx.drain(..=i).take(i).collect();
                s.command(&line);
            }
            if s.rx.len() > 4096 {
                s.rx.clear();
            }
            if let Some(poll) = s.pending {
                let now = shared.frame_now();
                if s.last_frame.is_none_or(|last| now > last) {
                    s.pending = None;
                    s.last_frame = Some(now);
                    let frame = shared.frame(&mut s, now);
                    s.frames += 1;
                    match poll {
                        Poll::Bx => s.send(encode_bx(&frame), true),
                        Poll::Tx => {
                            let text = encode_tx(&frame);
                            s.text(&text);
                        }
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
