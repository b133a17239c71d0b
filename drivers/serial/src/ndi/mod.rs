//! NDI combined-API framing (Aurora / Polaris): CRC16 and command formatting here, the pure reply parsers and
//! encoders in [`reply`], the async tracker on tokio-serial in [`tracker`].
//!
//! Formats follow the NDI combined API as implemented by the open-source ndicapi library (Atamai / PLUS toolkit,
//! `ndicapi.cxx`: `ndiBXHelper`, `ndiTXHelper`, `ndiPHSRHelper`, `ndiSerialRead`, `ndiErrorString`; `ndicapi.h`
//! for the status bits and error numbers), which scikit-surgerynditracker also drives.

pub mod encode;
pub mod reply;
pub mod tracker;

pub use reply::{
    parse_bx, parse_phsr, parse_text, parse_tx, split_reply, ErrorCode, HandleStatus, NdiError, PortHandle, Split,
    TextReply, ToolPose, TrackingFrame,
};
pub use tracker::{run_tracker, NdiConfig, NdiConfigError, NdiEvent, NdiTracker, PollMode};

/// CRC-16/ARC (poly 0x8005 reflected, init 0), as the combined API appends to commands and replies.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |mut crc, &b| {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
        }
        crc
    })
}

/// `NAME:params<CRC>\r`, the CRC over `NAME:params`.
pub fn format_command(name: &str, params: &str) -> String {
    let body = format!("{name}:{params}");
    format!("{body}{:04X}\r", crc16(body.as_bytes()))
}

/// Split a text reply (without its CR) into its text and check the trailing CRC; `None` when absent or wrong.
pub fn check_reply(reply: &[u8]) -> Option<&[u8]> {
    let n = reply.len().checked_sub(4)?;
    let (text, crc) = reply.split_at(n);
    let crc = u16::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    (crc16(text) == crc).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_published_values() {
        assert_eq!(crc16(b"123456789"), 0xBB3D);
        assert_eq!(check_reply(b"RESETBE6F"), Some(&b"RESET"[..]));
        assert_eq!(format_command("INIT", ""), "INIT:E3A5\r");
        assert_eq!(check_reply(b"RESETBE6E"), None);
    }
}
