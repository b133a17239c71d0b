//! Pure parsers (and the matching encoders, for the simulator and the tests) of NDI combined-API replies. No IO, no
//! panics: every index is bounds-checked, so any byte string (they are fuzzed) yields a value or a typed [`NdiError`].
//!
//! Formats, as ndicapi (`ndicapi.cxx`) reads them:
//! * text replies: `<text><CRC16 as 4 hex>\r`; `OKAY`, `RESET`, `ERRORxx`, `WARNINGxx` or command data;
//! * `PHSR`: `<nn>` then `nn` × `<handle: 2 hex><status: 3 hex>` (`ndiPHSRHelper`);
//! * `TX:0001`: `<nn>`, then per handle `<hh>` + (`MISSING` | `DISABLED` | `UNOCCUPIED` | 51 characters: Q0 Qx Qy Qz
//!   as sign + 5 digits ×10⁻⁴, Tx Ty Tz as sign + 6 digits ×10⁻² mm, error as sign + 5 digits ×10⁻⁴ mm), port status
//!   8 hex, frame number 8 hex, LF; finally the system status, 4 hex (`ndiTXHelper`, `ndiGetTXTransform`);
//! * `BX:0001`, little endian: start sequence `0xA5C4`, reply length (bytes of the body), header CRC (over the first 4
//!   bytes), body: handle count (u8), per handle: handle (u8), handle status (1 valid, 2 missing, 4 disabled), when
//!   valid 8 × f32 (q0 qx qy qz, tx ty tz mm, RMS error mm), when not disabled port status (u32) and frame number (u32);
//!   system status (u16); then the body CRC (u16) (`ndiBXHelper`, `ndiSerialRead` which reads length + 8 bytes).
//!   ndicapi checks one CRC over header, header CRC and body together; with CRC-16/ARC that is the same check as a
//!   separate body CRC, because the register is back at zero after a block followed by its own little-endian CRC.
//!
//! SI at the boundary: millimetres become metres here, so nothing past this module sees a millimetre.

use std::fmt;
use std::io;
use std::time::Duration;

use nalgebra::{Isometry3, Quaternion, Translation3, UnitQuaternion};

use super::crc16;
pub use super::encode::{encode_bx, encode_text, encode_tx};

/// Start sequence of a binary reply (`C4 A5` on the wire).
pub const BX_START: u16 = 0xA5C4;
/// Start sequence, header CRC and reply length.
pub const BX_HEADER_LEN: usize = 6;
/// No reply of the commands used here is longer; a longer one is garbage ([`NdiError::TooLong`]).
pub const MAX_REPLY: usize = 4096;

/// Port status bits (BX/TX, `ndicapi.h`): tool in port, initialised, enabled, out of volume, partially out of volume.
pub const PORT_OCCUPIED: u32 = 0x01;
/// The port handle is initialised (PINIT done).
pub const PORT_INITIALIZED: u32 = 0x10;
/// The port handle is enabled for tracking (PENA done).
pub const PORT_ENABLED: u32 = 0x20;
/// The tool is out of the characterised measurement volume.
pub const PORT_OUT_OF_VOLUME: u32 = 0x40;
/// Some of the tool's markers are out of the characterised volume.
pub const PORT_PARTIALLY_IN_VOLUME: u32 = 0x80;

/// A device error number from `ERRORxx` (numbering of `ndicapi.h`, `NDI_INVALID` = 0x01 ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u8);

impl ErrorCode {
    /// The meaning of the common codes (the NDI API guide's table, as ndicapi lists it).
    pub fn meaning(self) -> &'static str {
        match self.0 {
            0x01 => "invalid command",
            0x02 => "command too long",
            0x03 => "command too short",
            0x04 => "invalid CRC calculated for command",
            0x05 => "time-out on command execution",
            0x06 => "unable to set up new communication parameters",
            0x07 => "incorrect number of command parameters",
            0x08 => "invalid port handle selected",
            0x09 => "invalid tracking priority selected",
            0x0A => "invalid LED selected",
            0x0B => "invalid LED state selected",
            0x0C => "command is invalid while in the current mode",
            0x0D => "no tool assigned to the selected port handle",
            0x0E => "selected port handle not initialized",
            0x0F => "selected port handle not enabled",
            0x10 => "system not initialized",
            0x11 => "unable to stop tracking",
            0x12 => "unable to start tracking",
            0x13 => "unable to initialize tool-in-port",
            0x14 => "invalid position sensor or field generator characterization parameters",
            0x15 => "unable to initialize the measurement system",
            0x29 => "too many tools enabled",
            0x2B => "requested port handle has not been allocated",
            0x2C => "requested port handle has become unoccupied",
            0x2D => "all port handles have been allocated",
            _ => "unrecognised error code",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERROR{:02X} ({})", self.0, self.meaning())
    }
}

/// Everything that can go wrong with a reply or an exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NdiError {
    /// A CRC (text, BX header or BX body) does not match: line noise or a corrupted reply.
    #[error("NDI reply CRC mismatch")]
    BadCrc,
    /// The reply ended (or stopped arriving) before its announced or minimal length.
    #[error("NDI reply truncated: {got} of at least {expected} bytes")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes needed.
        expected: usize,
    },
    /// Binary reply expected, no `0xA5C4` start sequence.
    #[error("NDI binary reply without the A5C4 start sequence")]
    BadHeader,
    /// A well-formed (CRC-valid) reply that is not the kind the command expects.
    #[error("NDI reply not understood: {0:?}")]
    UnknownReply(String),
    /// CRC-valid but its fields do not parse.
    #[error("NDI reply malformed: {0}")]
    Malformed(&'static str),
    /// Longer than [`MAX_REPLY`] without an end.
    #[error("NDI reply longer than {MAX_REPLY} bytes")]
    TooLong,
    /// The device answered `ERRORxx`.
    #[error("NDI device error {0}")]
    Device(ErrorCode),
    /// No reply within the time allowed.
    #[error("no NDI reply within {0:?}")]
    Timeout(Duration),
    /// The port failed (open, read, write, configure).
    #[error("NDI port: {0:?}")]
    Io(io::ErrorKind),
    /// The port reported end of file (hung up).
    #[error("NDI port closed")]
    Closed,
}

impl NdiError {
    /// A damaged or unexpected reply on a live line: the next exchange flushes the input and resynchronises. Timeouts
    /// and port failures are not recoverable this way: the driver reconnects.
    pub fn is_reply_error(&self) -> bool {
        !matches!(self, NdiError::Timeout(_) | NdiError::Io(_) | NdiError::Closed)
    }
}

/// A text reply, its CRC checked and stripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextReply {
    /// `OKAY`.
    Okay,
    /// `RESET` (after a break or a `RESET` command).
    Reset,
    /// `ERRORxx`.
    Error(ErrorCode),
    /// `WARNINGxx`: the command ran, with a warning.
    Warning(u8),
    /// Command data (PHSR, TX, ...), ASCII.
    Data(String),
}

/// One port handle from `PHSR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortHandle {
    /// The handle.
    pub handle: u8,
    /// Its status (3 hex digits: occupied 0x01, initialised 0x10, enabled 0x20, ...).
    pub status: u16,
}

/// Handle status of a BX/TX reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleStatus {
    /// A transform follows.
    Valid,
    /// Tool not seen (no transform).
    Missing,
    /// Handle not enabled (no data).
    Disabled,
}

/// One tool of a tracking frame, SI units, in the tracker's frame (T_tracker_tool).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolPose {
    /// Port handle.
    pub handle: u8,
    /// Handle status as reported.
    pub status: HandleStatus,
    /// T_tracker_tool, metres; None unless the status is valid.
    pub pose: Option<Isometry3<f64>>,
    /// RMS fit error of the tool's markers, metres; None without a pose.
    pub rms_error_m: Option<f64>,
    /// The port status word (bits above).
    pub port_status: u32,
    /// This tool's frame number (0 when disabled).
    pub frame_number: u32,
    /// [`PORT_OUT_OF_VOLUME`] set.
    pub out_of_volume: bool,
    /// [`PORT_PARTIALLY_IN_VOLUME`] set.
    pub partially_out_of_volume: bool,
    /// Status missing (not seen, or out of volume).
    pub missing: bool,
}

/// One BX/TX reply.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingFrame {
    /// The newest frame number among the tools (0 without tools).
    pub frame_number: u32,
    /// Per tool, in reply order.
    pub tools: Vec<ToolPose>,
    /// The system status word.
    pub system_status: u16,
}

/// Where the first reply in a receive buffer ends ([`split_reply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Not complete yet; `need` is the total length when known (binary header seen).
    Incomplete {
        /// Total reply length when the binary header announced it.
        need: Option<usize>,
    },
    /// The first `n` bytes are one reply (text: including the CR); hand them to the parser.
    Complete(usize),
}

/// Find the end of the first reply: a binary reply (starting `C4 A5`) ends after length + 8 bytes, or right after its
/// header when the header CRC is wrong (so the parser reports [`NdiError::BadCrc`] at once, not after a timeout);
/// anything else ends at the first CR, or at [`MAX_REPLY`] bytes.
pub fn split_reply(buf: &[u8]) -> Split {
    if buf.first() == Some(&0xC4) && buf.get(1).is_none_or(|&b| b == 0xA5) {
        let Some(header) = buf.get(..BX_HEADER_LEN) else {
            return Split::Incomplete { need: None };
        };
        if crc16(&header[..4]) != le16(&header[4..]) {
            return Split::Complete(BX_HEADER_LEN);
        }
        let need = BX_HEADER_LEN + usize::from(le16(&header[2..4])) + 2;
        return if buf.len() >= need {
            Split::Complete(need)
        } else {
            Split::Incomplete { need: Some(need) }
        };
    }
    match buf.iter().position(|&b| b == b'\r') {
        Some(i) => Split::Complete(i + 1),
        None if buf.len() >= MAX_REPLY => Split::Complete(buf.len()),
        None => Split::Incomplete { need: None },
    }
}

fn le16(b: &[u8]) -> u16 {
    match b {
        [lo, hi, ..] => u16::from_le_bytes([*lo, *hi]),
        _ => 0,
    }
}

/// Parse a text reply (with or without its trailing CR): check and strip the CRC, classify.
pub fn parse_text(raw: &[u8]) -> Result<TextReply, NdiError> {
    if raw.len() > MAX_REPLY {
        return Err(NdiError::TooLong);
    }
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let Some(n) = raw.len().checked_sub(4) else {
        return Err(NdiError::Truncated {
            got: raw.len(),
            expected: 4,
        });
    };
    let (text, crc) = raw.split_at(n);
    let crc = std::str::from_utf8(crc)
        .ok()
        .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|s| u16::from_str_radix(s, 16).ok())
        .ok_or(NdiError::Malformed("no CRC at the end of the reply"))?;
    if crc16(text) != crc {
        return Err(NdiError::BadCrc);
    }
    let text = std::str::from_utf8(text)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or(NdiError::Malformed("text reply is not ASCII"))?;
    Ok(match text {
        "OKAY" => TextReply::Okay,
        "RESET" => TextReply::Reset,
        _ => {
            if let Some(code) = text.strip_prefix("ERROR") {
                TextReply::Error(ErrorCode(hex_exact(code, 2)? as u8))
            } else if let Some(code) = text.strip_prefix("WARNING") {
                TextReply::Warning(hex_exact(code, 2)? as u8)
            } else {
                TextReply::Data(text.to_owned())
            }
        }
    })
}

/// Exactly `n` hex digits.
fn hex_exact(s: &str, n: usize) -> Result<u32, NdiError> {
    if s.len() != n || n > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NdiError::Malformed("expected hex digits"));
    }
    u32::from_str_radix(s, 16).map_err(|_| NdiError::Malformed("expected hex digits"))
}

/// A cursor over ASCII reply data.
struct Text<'a> {
    s: &'a str,
}

impl<'a> Text<'a> {
    fn take(&mut self, n: usize) -> Result<&'a str, NdiError> {
        let head = self.s.get(..n).ok_or(NdiError::Malformed("text reply too short"))?;
        self.s = self.s.get(n..).unwrap_or("");
        Ok(head)
    }
    fn hex(&mut self, n: usize) -> Result<u32, NdiError> {
        hex_exact(self.take(n)?, n)
    }
    /// Sign and `digits` decimal digits, times `scale`.
    fn fixed(&mut self, digits: usize, scale: f64) -> Result<f64, NdiError> {
        let field = self.take(digits + 1)?;
        if !field.is_ascii() {
            return Err(NdiError::Malformed("fixed-point field not ASCII"));
        }
        let (sign, num) = field.split_at(1);
        let sign = match sign {
            "+" => 1.0,
            "-" => -1.0,
            _ => return Err(NdiError::Malformed("fixed-point field without sign")),
        };
        if !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NdiError::Malformed("fixed-point field not decimal"));
        }
        let v: u32 = num
            .parse()
            .map_err(|_| NdiError::Malformed("fixed-point field not decimal"))?;
        Ok(sign * f64::from(v) * scale)
    }
}

/// Parse the data of a `PHSR` reply (after [`parse_text`]).
pub fn parse_phsr(data: &str) -> Result<Vec<PortHandle>, NdiError> {
    let mut t = Text { s: data };
    let n = t.hex(2)? as usize;
    if data.len() != 2 + 5 * n {
        return Err(NdiError::Malformed("PHSR length does not match its handle count"));
    }
    (0..n)
        .map(|_| {
            Ok(PortHandle {
                handle: t.hex(2)? as u8,
                status: t.hex(3)? as u16,
            })
        })
        .collect()
}

/// A pose from the wire: quaternion (q0 = w first) and translation in mm. Rejects non-finite values and quaternions
/// far from unit length (a CRC-valid but meaningless reply), normalises the rest.
fn pose_from_wire(q: [f64; 4], t_mm: [f64; 3]) -> Result<Isometry3<f64>, NdiError> {
    let quat = Quaternion::new(q[0], q[1], q[2], q[3]);
    let norm = quat.norm();
    if !norm.is_finite() || !(0.5..=1.5).contains(&norm) {
        return Err(NdiError::Malformed("quaternion is not a rotation"));
    }
    if !t_mm.iter().all(|v| v.is_finite()) {
        return Err(NdiError::Malformed("translation not finite"));
    }
    let t = Translation3::new(t_mm[0] * 1e-3, t_mm[1] * 1e-3, t_mm[2] * 1e-3);
    Ok(Isometry3::from_parts(t, UnitQuaternion::from_quaternion(quat)))
}

fn tool(
    handle: u8,
    status: HandleStatus,
    pose: Option<(Isometry3<f64>, f64)>,
    port_status: u32,
    frame_number: u32,
) -> Result<ToolPose, NdiError> {
    let rms = pose.map(|(_, e)| e * 1e-3);
    if rms.is_some_and(|e| !e.is_finite()) {
        return Err(NdiError::Malformed("RMS error not finite"));
    }
    Ok(ToolPose {
        handle,
        status,
        pose: pose.map(|(p, _)| p),
        rms_error_m: rms,
        port_status,
        frame_number,
        out_of_volume: port_status & PORT_OUT_OF_VOLUME != 0,
        partially_out_of_volume: port_status & PORT_PARTIALLY_IN_VOLUME != 0,
        missing: status == HandleStatus::Missing,
    })
}

fn frame(tools: Vec<ToolPose>, system_status: u16) -> TrackingFrame {
    TrackingFrame {
        frame_number: tools.iter().map(|t| t.frame_number).max().unwrap_or(0),
        tools,
        system_status,
    }
}

/// Parse the data of a `TX:0001` reply (after [`parse_text`]). `UNOCCUPIED` handles are skipped, as ndicapi does.
pub fn parse_tx(data: &str) -> Result<TrackingFrame, NdiError> {
    let mut t = Text { s: data };
    let n = t.hex(2)?;
    let mut tools = Vec::new();
    for _ in 0..n {
        let handle = t.hex(2)? as u8;
        if t.s.starts_with("UNOCCUPIED") {
            t.take(10)?;
        } else if t.s.starts_with("DISABLED") {
            t.take(8)?;
            tools.push(tool(handle, HandleStatus::Disabled, None, 0, 0)?);
        } else {
            let (status, pose) = if t.s.starts_with("MISSING") {
                t.take(7)?;
                (HandleStatus::Missing, None)
            } else {
                let mut q = [0.0; 4];
                for v in &mut q {
                    *v = t.fixed(5, 1e-4)?;
                }
                let mut p = [0.0; 3];
                for v in &mut p {
                    *v = t.fixed(6, 1e-2)?;
                }
                let err = t.fixed(5, 1e-4)?;
                (HandleStatus::Valid, Some((pose_from_wire(q, p)?, err)))
            };
            let port = t.hex(8)?;
            let fnum = t.hex(8)?;
            tools.push(tool(handle, status, pose, port, fnum)?);
        }
        if t.take(1)? != "\n" {
            return Err(NdiError::Malformed("TX handle record not ended by LF"));
        }
    }
    let system = t.hex(4)? as u16;
    if !t.s.is_empty() {
        return Err(NdiError::Malformed("trailing data after TX system status"));
    }
    Ok(frame(tools, system))
}

/// A cursor over binary reply data.
struct Bin<'a> {
    b: &'a [u8],
}

impl<'a> Bin<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], NdiError> {
        let head = self
            .b
            .get(..N)
            .ok_or(NdiError::Malformed("BX body shorter than its contents"))?;
        self.b = self.b.get(N..).unwrap_or(&[]);
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, NdiError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, NdiError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn f32(&mut self) -> Result<f64, NdiError> {
        Ok(f64::from(f32::from_le_bytes(self.take()?)))
    }
}

/// Parse a whole binary `BX:0001` reply (start sequence to body CRC).
pub fn parse_bx(raw: &[u8]) -> Result<TrackingFrame, NdiError> {
    if raw.len() > MAX_REPLY {
        return Err(NdiError::TooLong);
    }
    let header = raw.get(..BX_HEADER_LEN).ok_or(NdiError::Truncated {
        got: raw.len(),
        expected: BX_HEADER_LEN,
    })?;
    if le16(header) != BX_START {
        return Err(NdiError::BadHeader);
    }
    if crc16(&header[..4]) != le16(&header[4..]) {
        return Err(NdiError::BadCrc);
    }
    let len = usize::from(le16(&header[2..4]));
    let total = BX_HEADER_LEN + len + 2;
    if raw.len() < total {
        return Err(NdiError::Truncated {
            got: raw.len(),
            expected: total,
        });
    }
    if raw.len() > total {
        return Err(NdiError::Malformed("bytes after the BX body CRC"));
    }
    let body = raw.get(BX_HEADER_LEN..BX_HEADER_LEN + len).unwrap_or(&[]);
    let crc = raw.get(BX_HEADER_LEN + len..).map(le16).unwrap_or(0);
    if crc16(body) != crc {
        return Err(NdiError::BadCrc);
    }
    let mut b = Bin { b: body };
    let n = b.u8()?;
    let mut tools = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let handle = b.u8()?;
        let status = match b.u8()? {
            0x01 => HandleStatus::Valid,
            0x02 => HandleStatus::Missing,
            0x04 => HandleStatus::Disabled,
            _ => return Err(NdiError::Malformed("unknown BX handle status")),
        };
        if status == HandleStatus::Disabled {
            tools.push(tool(handle, status, None, 0, 0)?);
            continue;
        }
        let pose = if status == HandleStatus::Valid {
            let q = [b.f32()?, b.f32()?, b.f32()?, b.f32()?];
            let t = [b.f32()?, b.f32()?, b.f32()?];
            let err = b.f32()?;
            Some((pose_from_wire(q, t)?, err))
        } else {
            None
        };
        let port = b.u32()?;
        let fnum = b.u32()?;
        tools.push(tool(handle, status, pose, port, fnum)?);
    }
    let system = u16::from_le_bytes(b.take()?);
    if !b.b.is_empty() {
        return Err(NdiError::Malformed("bytes after the BX system status"));
    }
    Ok(frame(tools, system))
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
