//! The SubDevice Information Interface (SII) EEPROM image of an emulated drive.
//!
//! Layout from ETG2010 (SII specification): words 0x00–0x3F hold the fixed header (Table 2),
//! categories start at word 0x40, each `type: u16, length_words: u16, data` (Table 3).

use crate::od::{RX_PDO_DEFAULT, TX_PDO_DEFAULT};

/// Identity written into the SII header (ETG2010 Table 2, words 0x08–0x0F) and into CoE 0x1018.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Vendor ID (ETG-assigned; 0x0000_0ACE is not assigned to anyone we know of: emulator only).
    pub vendor_id: u32,
    /// Product code.
    pub product_code: u32,
    /// Revision number.
    pub revision: u32,
    /// Serial number (distinct per emulated drive).
    pub serial: u32,
}

/// Physical start address and size of the mailbox and process-data sync managers.
pub mod layout {
    /// SM0: MainDevice → SubDevice mailbox.
    pub const MBX_OUT_ADDR: u16 = 0x1000;
    /// SM1: SubDevice → MainDevice mailbox.
    pub const MBX_IN_ADDR: u16 = 0x1080;
    /// Mailbox size in bytes (both directions).
    pub const MBX_LEN: u16 = 128;
    /// SM2: outputs (RxPDO).
    pub const PD_OUT_ADDR: u16 = 0x1100;
    /// SM3: inputs (TxPDO).
    pub const PD_IN_ADDR: u16 = 0x1180;
}

/// Device name reported in the SII strings category and CoE 0x1008.
pub const DEVICE_NAME: &str = "ACUS-SIM-CSP";

/// SII category types (ETG2010 Table 3).
mod cat {
    pub const STRINGS: u16 = 10;
    pub const GENERAL: u16 = 30;
    pub const FMMU: u16 = 40;
    pub const SYNC_MANAGER: u16 = 41;
    pub const TXPDO: u16 = 50;
    pub const RXPDO: u16 = 51;
    pub const END: u16 = 0xFFFF;
}

/// CRC-8 over the first 14 header bytes (ETG2010 §2.3: polynomial x^8+x^2+x+1, initial 0xFF).
fn header_crc(bytes: &[u8]) -> u8 {
    let mut crc: u8 = 0xFF;
    for b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 { (crc << 1) ^ 0x07 } else { crc << 1 };
        }
    }
    crc
}

fn push_u16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn push_category(image: &mut Vec<u8>, kind: u16, mut data: Vec<u8>) {
    if data.len() % 2 == 1 {
        data.push(0);
    }
    push_u16(image, kind);
    push_u16(image, (data.len() / 2) as u16);
    image.extend_from_slice(&data);
}

/// PDO category body (ETG2010 Table 14): one PDO with its entries.
fn pdo_category(pdo_index: u16, sm: u8, entries: &[u32], name_idx: u8) -> Vec<u8> {
    let mut d = Vec::new();
    push_u16(&mut d, pdo_index);
    d.push(entries.len() as u8);
    d.push(sm);
    d.push(0); // DC sync
    d.push(name_idx);
    push_u16(&mut d, 0); // flags
    for &e in entries {
        push_u16(&mut d, (e >> 16) as u16);
        d.push((e >> 8) as u8);
        d.push(0); // name index
        let bits = (e & 0xFF) as u8;
        // ETG1000.6 Table 64 data types: UNSIGNED16 0x06, INTEGER32 0x04, INTEGER8 0x02, INTEGER16 0x03.
        d.push(match bits {
            8 => 0x02,
            16 => 0x06,
            _ => 0x04,
        });
        d.push(bits);
        push_u16(&mut d, 0);
    }
    d
}

/// Build the complete SII image (bytes, little-endian words).
pub fn build_image(id: &Identity) -> Vec<u8> {
    let mut image = vec![0u8; 0x80]; // words 0x00..0x3F
                                     // Word 0x04: configured station alias stays 0. Word 0x07: checksum over bytes 0..14.
    let crc = header_crc(&image[0..14]);
    image[14] = crc;
    let words: [(usize, u32); 4] = [
        (0x08, id.vendor_id),
        (0x0A, id.product_code),
        (0x0C, id.revision),
        (0x0E, id.serial),
    ];
    for (w, v) in words {
        image[w * 2..w * 2 + 4].copy_from_slice(&v.to_le_bytes());
    }
    // Standard mailbox (words 0x18..0x1C): receive offset/size, send offset/size, protocols (CoE = 0x0004).
    let mbx: [(usize, u16); 5] = [
        (0x18, layout::MBX_OUT_ADDR),
        (0x19, layout::MBX_LEN),
        (0x1A, layout::MBX_IN_ADDR),
        (0x1B, layout::MBX_LEN),
        (0x1C, 0x0004),
    ];
    for (w, v) in mbx {
        image[w * 2..w * 2 + 2].copy_from_slice(&v.to_le_bytes());
    }
    // Word 0x3E: EEPROM size in KiBit - 1 (2 KiB = 16 Kibit → 15); word 0x3F: version 1.
    image[0x7C..0x7E].copy_from_slice(&15u16.to_le_bytes());
    image[0x7E..0x80].copy_from_slice(&1u16.to_le_bytes());

    // Strings: 1 = device name, 2 = group, 3 = RxPDO name, 4 = TxPDO name.
    let strings = [DEVICE_NAME, "Drives", "RxPDO CSP", "TxPDO CSP"];
    let mut s = vec![strings.len() as u8];
    for st in strings {
        s.push(st.len() as u8);
        s.extend_from_slice(st.as_bytes());
    }
    push_category(&mut image, cat::STRINGS, s);

    // General (ETG2010 Table 4): group 2, image 0, order 1, name 1, CoE details: SDO (bit 0),
    // PDO assign (bit 2), PDO configuration (bit 3). No complete access, no SDO info.
    let mut g = vec![0u8; 32];
    g[0] = 2;
    g[2] = 1;
    g[3] = 1;
    g[5] = 0b0000_1101;
    g[14] = 2;
    g[16..18].copy_from_slice(&0x0011u16.to_le_bytes()); // ports 0 and 1: MII
    push_category(&mut image, cat::GENERAL, g);

    // FMMU usage (ETG2010 Table 9): 1 outputs, 2 inputs, 3 SM status; 0xFF unused (pad).
    push_category(&mut image, cat::FMMU, vec![0x01, 0x02, 0x03, 0xFF]);

    // Sync managers (ETG2010 Table 11): start, length, control, status, enable, type.
    let sms: [(u16, u16, u8, u8); 4] = [
        (layout::MBX_OUT_ADDR, layout::MBX_LEN, 0x26, 1),
        (layout::MBX_IN_ADDR, layout::MBX_LEN, 0x22, 2),
        (layout::PD_OUT_ADDR, 0, 0x64, 3),
        (layout::PD_IN_ADDR, 0, 0x20, 4),
    ];
    let mut smd = Vec::new();
    for (start, len, control, kind) in sms {
        push_u16(&mut smd, start);
        push_u16(&mut smd, len);
        smd.push(control);
        smd.push(0);
        smd.push(1);
        smd.push(kind);
    }
    push_category(&mut image, cat::SYNC_MANAGER, smd);

    push_category(&mut image, cat::TXPDO, pdo_category(0x1A00, 3, TX_PDO_DEFAULT, 4));
    push_category(&mut image, cat::RXPDO, pdo_category(0x1600, 2, RX_PDO_DEFAULT, 3));
    push_u16(&mut image, cat::END);
    push_u16(&mut image, 0);
    image.resize(2048, 0xFF);
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_carries_identity_and_valid_crc() {
        let id = Identity {
            vendor_id: 0xACE,
            product_code: 0x402,
            revision: 3,
            serial: 77,
        };
        let img = build_image(&id);
        assert_eq!(u32::from_le_bytes(img[0x10..0x14].try_into().unwrap()), 0xACE);
        assert_eq!(u32::from_le_bytes(img[0x1C..0x20].try_into().unwrap()), 77);
        assert_eq!(img[14], header_crc(&img[0..14]));
        // First category is strings with the device name as string 1.
        assert_eq!(u16::from_le_bytes([img[0x80], img[0x81]]), cat::STRINGS);
        assert_eq!(&img[0x86..0x86 + DEVICE_NAME.len()], DEVICE_NAME.as_bytes());
    }
}
