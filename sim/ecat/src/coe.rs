//! CoE mailbox server: SDO upload and download, expedited and normal (ETG1000.6 §5.6.2).
//!
//! Mailbox header (ETG1000.4 Table 29): `length u16, address u16, channel/priority u8,
//! type (bits 0–3) | counter (bits 4–6) u8`. CoE header (ETG1000.6 Table 29): `number (9 bits),
//! service (bits 12–15)`: 2 = SDO request, 3 = SDO response.

use crate::od::{abort, ObjectDictionary};

const MBX_HEADER: usize = 6;
const MBX_TYPE_COE: u8 = 0x03;
const COE_SDO_RESPONSE: u16 = 3 << 12;

/// Answer one mailbox request; returns the response mailbox (header included), or `None` for a
/// request that is not CoE (ignored, as a device without that protocol would).
pub fn handle(od: &mut ObjectDictionary, req: &[u8], preop: bool) -> Option<Vec<u8>> {
    if req.len() < MBX_HEADER + 2 + 8 {
        return None;
    }
    let counter = (req[5] >> 4) & 0x07;
    if req[5] & 0x0F != MBX_TYPE_COE {
        return None;
    }
    let len = usize::from(u16::from_le_bytes([req[0], req[1]]));
    let coe = u16::from_le_bytes([req[6], req[7]]);
    if coe >> 12 != 2 {
        return None;
    }
    let sdo = &req[8..];
    let cmd = sdo[0];
    let index = u16::from_le_bytes([sdo[1], sdo[2]]);
    let sub = sdo[3];
    let body = match cmd >> 5 {
        // Initiate download request (ccs = 1).
        1 => {
            let expedited = cmd & 0x02 != 0;
            let size_indicated = cmd & 0x01 != 0;
            let result = if cmd & 0x10 != 0 {
                Err(abort::BAD_COMMAND) // complete access not advertised
            } else if expedited {
                let n = if size_indicated {
                    4 - usize::from((cmd >> 2) & 0x03)
                } else {
                    4
                };
                od.download(index, sub, &sdo[4..4 + n], preop)
            } else {
                let size = u32::from_le_bytes([sdo[4], sdo[5], sdo[6], sdo[7]]) as usize;
                let avail = len.saturating_sub(10);
                if size > avail || 8 + size > sdo.len() {
                    Err(abort::LENGTH_MISMATCH)
                } else {
                    od.download(index, sub, &sdo[8..8 + size], preop)
                }
            };
            match result {
                Ok(()) => {
                    let mut b = vec![0x60];
                    b.extend_from_slice(&index.to_le_bytes());
                    b.push(sub);
                    b.extend_from_slice(&[0; 4]);
                    b
                }
                Err(code) => abort_body(index, sub, code),
            }
        }
        // Initiate upload request (ccs = 2).
        2 => match od.read(index, sub) {
            Ok(data) if cmd & 0x10 == 0 => {
                let mut b = Vec::with_capacity(8 + data.len());
                if data.len() <= 4 {
                    // Expedited: e = 1, s = 1, n = unused bytes.
                    b.push(0x43 | (((4 - data.len()) as u8) << 2));
                    b.extend_from_slice(&index.to_le_bytes());
                    b.push(sub);
                    let mut d = [0u8; 4];
                    d[..data.len()].copy_from_slice(data);
                    b.extend_from_slice(&d);
                } else {
                    b.push(0x41);
                    b.extend_from_slice(&index.to_le_bytes());
                    b.push(sub);
                    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
                    b.extend_from_slice(data);
                }
                b
            }
            Ok(_) => abort_body(index, sub, abort::BAD_COMMAND),
            Err(code) => abort_body(index, sub, code),
        },
        _ => abort_body(index, sub, abort::BAD_COMMAND),
    };
    let mut out = Vec::with_capacity(MBX_HEADER + 2 + body.len());
    out.extend_from_slice(&((2 + body.len()) as u16).to_le_bytes());
    out.extend_from_slice(&[0, 0, 0]);
    out.push(MBX_TYPE_COE | (counter << 4));
    out.extend_from_slice(&COE_SDO_RESPONSE.to_le_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

fn abort_body(index: u16, sub: u8, code: u32) -> Vec<u8> {
    let mut b = vec![0x80];
    b.extend_from_slice(&index.to_le_bytes());
    b.push(sub);
    b.extend_from_slice(&code.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sii::Identity;

    fn request(cmd: u8, index: u16, sub: u8, data: [u8; 4]) -> Vec<u8> {
        let mut r = vec![10, 0, 0, 0, 0, MBX_TYPE_COE | (3 << 4), 0x00, 0x20, cmd];
        r.extend_from_slice(&index.to_le_bytes());
        r.push(sub);
        r.extend_from_slice(&data);
        r.resize(128, 0);
        r
    }

    #[test]
    fn expedited_upload_and_download_and_abort() {
        let mut od = ObjectDictionary::cia402_drive(&Identity {
            vendor_id: 0xACE,
            product_code: 2,
            revision: 3,
            serial: 4,
        });
        let r = handle(&mut od, &request(0x40, 0x1018, 1, [0; 4]), true).unwrap();
        assert_eq!(r[5], MBX_TYPE_COE | (3 << 4));
        assert_eq!(r[8], 0x43);
        assert_eq!(u32::from_le_bytes(r[12..16].try_into().unwrap()), 0xACE);
        // Download u16 into 0x1C12:1 (n = 2 unused bytes).
        let r = handle(&mut od, &request(0x2B, 0x1C12, 1, [0x01, 0x16, 0, 0]), true).unwrap();
        assert_eq!(r[8], 0x60);
        let r = handle(&mut od, &request(0x2F, 0x6041, 0, [1, 0, 0, 0]), true).unwrap();
        assert_eq!(r[8], 0x80);
        assert_eq!(u32::from_le_bytes(r[12..16].try_into().unwrap()), abort::READ_ONLY);
        // Normal (non-expedited) download: size 4 in the header, data after it.
        let mut r = request(0x21, 0x607A, 0, [4, 0, 0, 0]);
        r[0] = 14; // mailbox length: 10 + 4 data bytes
        r[16..20].copy_from_slice(&(-1234i32).to_le_bytes());
        let resp = handle(&mut od, &r, true).unwrap();
        assert_eq!(resp[8], 0x60);
        assert_eq!(od.i32(crate::od::idx::TARGET_POSITION), -1234);
        // Normal upload of the device name.
        let r = handle(&mut od, &request(0x40, 0x1008, 0, [0; 4]), true).unwrap();
        assert_eq!(r[8], 0x41);
        let n = u32::from_le_bytes(r[12..16].try_into().unwrap()) as usize;
        assert_eq!(&r[16..16 + n], crate::sii::DEVICE_NAME.as_bytes());
    }
}
