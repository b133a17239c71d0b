//! Encoders of the replies [`super::reply`] parses: what the simulated tracker sends, and the tests' round trips.
//! Metres in, millimetres on the wire (the inverse of the parsers' SI boundary).

use super::crc16;
use super::reply::{HandleStatus, ToolPose, TrackingFrame, BX_START};

/// `<text><CRC>\r`: what the device sends for a text reply.
pub fn encode_text(text: &str) -> Vec<u8> {
    format!("{text}{:04X}\r", crc16(text.as_bytes())).into_bytes()
}

fn wire(t: &ToolPose) -> ([f64; 4], [f64; 3], f64) {
    match t.pose {
        Some(p) => {
            let q = p.rotation.quaternion();
            let v = p.translation.vector * 1e3;
            (
                [q.w, q.i, q.j, q.k],
                [v.x, v.y, v.z],
                t.rms_error_m.unwrap_or(0.0) * 1e3,
            )
        }
        None => ([1.0, 0.0, 0.0, 0.0], [0.0; 3], 0.0),
    }
}

/// The data of a `TX:0001` reply for `frame` (wrap it with [`encode_text`]). Tools with status valid but no pose are
/// sent as missing.
pub fn encode_tx(frame: &TrackingFrame) -> String {
    fn fixed(v: f64, digits: usize, scale: f64) -> String {
        let max = 10f64.powi(digits as i32) - 1.0;
        let n = (v / scale).round().clamp(-max, max);
        let sign = if n < 0.0 { '-' } else { '+' };
        format!("{sign}{:0digits$}", n.abs() as u64)
    }
    let mut s = format!("{:02X}", frame.tools.len().min(255));
    for t in frame.tools.iter().take(255) {
        s += &format!("{:02X}", t.handle);
        match (t.status, t.pose) {
            (HandleStatus::Disabled, _) => s += "DISABLED",
            (HandleStatus::Valid, Some(_)) => {
                let (q, p, e) = wire(t);
                q.iter().for_each(|&v| s += &fixed(v, 5, 1e-4));
                p.iter().for_each(|&v| s += &fixed(v, 6, 1e-2));
                s += &fixed(e, 5, 1e-4);
            }
            _ => s += "MISSING",
        }
        if t.status != HandleStatus::Disabled {
            s += &format!("{:08X}{:08X}", t.port_status, t.frame_number);
        }
        s.push('\n');
    }
    s + &format!("{:04X}", frame.system_status)
}

/// A whole binary `BX:0001` reply for `frame`. Tools with status valid but no pose are sent as missing.
pub fn encode_bx(frame: &TrackingFrame) -> Vec<u8> {
    let mut body = vec![frame.tools.len().min(255) as u8];
    for t in frame.tools.iter().take(255) {
        body.push(t.handle);
        let status = match (t.status, t.pose) {
            (HandleStatus::Disabled, _) => 0x04,
            (HandleStatus::Valid, Some(_)) => 0x01,
            _ => 0x02,
        };
        body.push(status);
        if status == 0x01 {
            let (q, p, e) = wire(t);
            for v in q.iter().chain(p.iter()).chain(std::iter::once(&e)) {
                body.extend_from_slice(&(*v as f32).to_le_bytes());
            }
        }
        if status != 0x04 {
            body.extend_from_slice(&t.port_status.to_le_bytes());
            body.extend_from_slice(&t.frame_number.to_le_bytes());
        }
    }
    body.extend_from_slice(&frame.system_status.to_le_bytes());
    let mut out = BX_START.to_le_bytes().to_vec();
    out.extend_from_slice(&(body.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
    let hcrc = crc16(&out);
    out.extend_from_slice(&hcrc.to_le_bytes());
    let bcrc = crc16(&body);
    out.extend_from_slice(&body);
    out.extend_from_slice(&bcrc.to_le_bytes());
    out
}
