//! The CoE object dictionary of an emulated CiA 402 drive.
//!
//! Objects follow ETG1000.6 §5.6.7 (communication area 0x1000–0x1FFF) and IEC 61800-7-201
//! (CiA 402, 0x6000–0x67FF). Values are stored little-endian, as they travel on the wire.

use std::collections::BTreeMap;

use crate::drive::{DriveParams, SI_MICRODEGREE, SI_NANOMETRE};
use crate::sii::{Identity, DEVICE_NAME};

/// SDO abort codes (ETG1000.6 Table 41).
pub mod abort {
    /// Command specifier not valid or unknown.
    pub const BAD_COMMAND: u32 = 0x0504_0001;
    /// Attempt to write a read-only object.
    pub const READ_ONLY: u32 = 0x0601_0002;
    /// Object does not exist in the object dictionary.
    pub const NO_OBJECT: u32 = 0x0602_0000;
    /// Object cannot be mapped to the PDO.
    pub const NOT_MAPPABLE: u32 = 0x0604_0041;
    /// The number and length of the objects to be mapped would exceed PDO length.
    pub const PDO_TOO_LONG: u32 = 0x0604_0042;
    /// Data type does not match, length of service parameter does not match.
    pub const LENGTH_MISMATCH: u32 = 0x0607_0010;
    /// Subindex does not exist.
    pub const NO_SUBINDEX: u32 = 0x0609_0011;
    /// Value range of parameter exceeded.
    pub const VALUE_RANGE: u32 = 0x0609_0030;
    /// Data cannot be transferred or stored because of the present device state.
    pub const DEVICE_STATE: u32 = 0x0800_0022;
}

/// CiA 402 object indices used by the drive model and the master.
pub mod idx {
    /// Error code (CiA 402 0x603F).
    pub const ERROR_CODE: u16 = 0x603F;
    /// Controlword (0x6040).
    pub const CONTROLWORD: u16 = 0x6040;
    /// Statusword (0x6041).
    pub const STATUSWORD: u16 = 0x6041;
    /// Quick stop option code (0x605A).
    pub const QUICK_STOP_OPTION: u16 = 0x605A;
    /// Modes of operation (0x6060).
    pub const MODES: u16 = 0x6060;
    /// Modes of operation display (0x6061).
    pub const MODES_DISPLAY: u16 = 0x6061;
    /// Position actual value (0x6064).
    pub const POSITION_ACTUAL: u16 = 0x6064;
    /// Following error window (0x6065).
    pub const FOLLOWING_ERROR_WINDOW: u16 = 0x6065;
    /// Velocity actual value (0x606C).
    pub const VELOCITY_ACTUAL: u16 = 0x606C;
    /// Torque actual value (0x6077), per mille of rated torque.
    pub const TORQUE_ACTUAL: u16 = 0x6077;
    /// Target position (0x607A).
    pub const TARGET_POSITION: u16 = 0x607A;
    /// Home offset (0x607C).
    pub const HOME_OFFSET: u16 = 0x607C;
    /// Quick stop deceleration (0x6085), counts/s².
    pub const QUICK_STOP_DECELERATION: u16 = 0x6085;
    /// Position encoder resolution (0x608F): 1 encoder increments per 2 motor revolutions.
    pub const ENCODER_RESOLUTION: u16 = 0x608F;
    /// Gear ratio (0x6091): 1 motor revolutions per 2 shaft revolutions.
    pub const GEAR_RATIO: u16 = 0x6091;
    /// Feed constant (0x6092): 1 feed per 2 shaft revolutions.
    pub const FEED_CONSTANT: u16 = 0x6092;
    /// SI unit position (0x60A8): the unit of the feed.
    pub const SI_UNIT_POSITION: u16 = 0x60A8;
    /// Following error actual value (0x60F4).
    pub const FOLLOWING_ERROR_ACTUAL: u16 = 0x60F4;
}

/// Default RxPDO 0x1600 mapping at power-on: controlword, target position. A master that needs
/// more (modes of operation) must map it by SDO in PRE-OP, as with many real drives.
pub const RX_PDO_DEFAULT: &[u32] = &[0x6040_0010, 0x607A_0020];
/// Default TxPDO 0x1A00 mapping at power-on: statusword, position actual.
pub const TX_PDO_DEFAULT: &[u32] = &[0x6041_0010, 0x6064_0020];

/// Largest PDO a mapping object may describe, in bytes (the process-data SM budget of this emulator).
pub const MAX_PDO_BYTES: usize = 32;

/// One sub-entry of the dictionary.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Value bytes, little-endian.
    pub data: Vec<u8>,
    /// Writable by SDO download.
    pub writable: bool,
    /// Allowed in a PDO mapping.
    pub mappable: bool,
}

/// The object dictionary: `(index, subindex) → entry`.
#[derive(Debug, Clone, Default)]
pub struct ObjectDictionary {
    entries: BTreeMap<(u16, u8), Entry>,
}

impl ObjectDictionary {
    fn put(&mut self, index: u16, sub: u8, data: Vec<u8>, writable: bool, mappable: bool) {
        self.entries.insert(
            (index, sub),
            Entry {
                data,
                writable,
                mappable,
            },
        );
    }

    /// The dictionary of a CSP servo drive with the given identity and following-error window.
    pub fn cia402_drive(id: &Identity) -> Self {
        let mut od = Self::default();
        od.put(0x1000, 0, 0x0002_0192u32.to_le_bytes().to_vec(), false, false); // servo, profile 402
        od.put(0x1001, 0, vec![0], false, false);
        od.put(0x1008, 0, DEVICE_NAME.as_bytes().to_vec(), false, false);
        od.put(0x1009, 0, b"1.0".to_vec(), false, false);
        od.put(0x100A, 0, b"acus-sim".to_vec(), false, false);
        od.put(0x1018, 0, vec![4], false, false);
        for (s, v) in [
            (1, id.vendor_id),
            (2, id.product_code),
            (3, id.revision),
            (4, id.serial),
        ] {
            od.put(0x1018, s, v.to_le_bytes().to_vec(), false, false);
        }
        // Sync manager communication types (ETG1000.6 Table 67): mbx out, mbx in, outputs, inputs.
        od.put(0x1C00, 0, vec![4], false, false);
        for (s, t) in [(1u8, 1u8), (2, 2), (3, 3), (4, 4)] {
            od.put(0x1C00, s, vec![t], false, false);
        }
        // PDO mapping objects: 0x1600..0x1603 (Rx), 0x1A00..0x1A03 (Tx), 8 entries each.
        for (base, default) in [(0x1600u16, RX_PDO_DEFAULT), (0x1A00u16, TX_PDO_DEFAULT)] {
            for n in 0..4u16 {
                let defaults: &[u32] = if n == 0 { default } else { &[] };
                od.put(base + n, 0, vec![defaults.len() as u8], true, false);
                for s in 1..=8u8 {
                    let v = defaults.get(usize::from(s) - 1).copied().unwrap_or(0);
                    od.put(base + n, s, v.to_le_bytes().to_vec(), true, false);
                }
            }
        }
        // PDO assignment (ETG1000.6 Table 73): SM2 ← 0x1600, SM3 ← 0x1A00.
        for (index, pdo) in [(0x1C12u16, 0x1600u16), (0x1C13, 0x1A00)] {
            od.put(index, 0, vec![1], true, false);
            for s in 1..=4u8 {
                let v = if s == 1 { pdo } else { 0 };
                od.put(index, s, v.to_le_bytes().to_vec(), true, false);
            }
        }
        // SM output/input sync parameters (ETG1020 §21): sync type 2 = DC SYNC0, cycle 1 ms.
        for index in [0x1C32u16, 0x1C33] {
            od.put(index, 0, vec![32], false, false);
            od.put(index, 1, 2u16.to_le_bytes().to_vec(), true, false);
            od.put(index, 2, 1_000_000u32.to_le_bytes().to_vec(), true, false);
            od.put(index, 4, 0x0004u16.to_le_bytes().to_vec(), false, false); // DC supported
        }
        od.put(idx::ERROR_CODE, 0, vec![0, 0], false, true);
        od.put(idx::CONTROLWORD, 0, vec![0, 0], true, true);
        od.put(idx::STATUSWORD, 0, vec![0, 0], false, true);
        od.put(idx::QUICK_STOP_OPTION, 0, 2i16.to_le_bytes().to_vec(), true, false);
        od.put(idx::MODES, 0, vec![0], true, true);
        od.put(idx::MODES_DISPLAY, 0, vec![0], false, true);
        od.put(idx::POSITION_ACTUAL, 0, vec![0; 4], false, true);
        od.put(
            idx::FOLLOWING_ERROR_WINDOW,
            0,
            10_000u32.to_le_bytes().to_vec(),
            true,
            false,
        );
        od.put(0x6066, 0, 10u16.to_le_bytes().to_vec(), true, false);
        od.put(idx::VELOCITY_ACTUAL, 0, vec![0; 4], false, true);
        od.put(idx::TORQUE_ACTUAL, 0, vec![0; 2], false, true);
        od.put(idx::TARGET_POSITION, 0, vec![0; 4], true, true);
        od.put(idx::HOME_OFFSET, 0, vec![0; 4], true, false);
        od.put(idx::FOLLOWING_ERROR_ACTUAL, 0, vec![0; 4], false, true);
        od.put(0x6502, 0, 0x0000_0080u32.to_le_bytes().to_vec(), false, false); // CSP supported
        od
    }

    /// The objects that describe the drive's scaling, from its parameters: encoder resolution 0x608F, gear ratio 0x6091,
    /// feed constant 0x6092 and its unit 0x60A8 (read-only: fixed at commissioning, the master verifies them), and the
    /// power-on quick-stop deceleration 0x6085 (writable, counts/s²).
    pub fn put_drive_units(&mut self, p: &DriveParams) {
        for (index, a, b) in [
            (idx::ENCODER_RESOLUTION, p.encoder_counts_per_rev, 1),
            (idx::GEAR_RATIO, p.gear_motor_revolutions, p.gear_shaft_revolutions),
            (idx::FEED_CONSTANT, p.feed, p.feed_shaft_revolutions),
        ] {
            self.put(index, 0, vec![2], false, false);
            self.put(index, 1, a.to_le_bytes().to_vec(), false, false);
            self.put(index, 2, b.to_le_bytes().to_vec(), false, false);
        }
        let unit = if p.rotary { SI_MICRODEGREE } else { SI_NANOMETRE };
        self.put(idx::SI_UNIT_POSITION, 0, unit.to_le_bytes().to_vec(), false, false);
        let qs = (p.max_acceleration * p.counts_per_unit())
            .round()
            .clamp(1.0, f64::from(u32::MAX)) as u32;
        self.put(idx::QUICK_STOP_DECELERATION, 0, qs.to_le_bytes().to_vec(), true, false);
    }

    /// Read an entry's bytes, or the SDO abort code explaining why not.
    pub fn read(&self, index: u16, sub: u8) -> Result<&[u8], u32> {
        match self.entries.get(&(index, sub)) {
            Some(e) => Ok(&e.data),
            None if self.entries.range((index, 0)..=(index, 255)).next().is_some() => Err(abort::NO_SUBINDEX),
            None => Err(abort::NO_OBJECT),
        }
    }

    /// SDO download: access, length and PDO-mapping rules; `preop` gates the mapping objects.
    pub fn download(&mut self, index: u16, sub: u8, value: &[u8], preop: bool) -> Result<(), u32> {
        let entry = self.entries.get(&(index, sub)).ok_or_else(|| {
            if self.entries.range((index, 0)..=(index, 255)).next().is_some() {
                abort::NO_SUBINDEX
            } else {
                abort::NO_OBJECT
            }
        })?;
        if !entry.writable {
            return Err(abort::READ_ONLY);
        }
        // Expedited downloads may carry fewer bytes than the object (size indicator); pad with 0.
        if value.len() > entry.data.len() {
            return Err(abort::LENGTH_MISMATCH);
        }
        let mut data = entry.data.clone();
        data.fill(0);
        data[..value.len()].copy_from_slice(value);
        let is_map = (0x1600..=0x1603).contains(&index) || (0x1A00..=0x1A03).contains(&index);
        let is_assign = index == 0x1C12 || index == 0x1C13;
        if (is_map || is_assign) && !preop {
            return Err(abort::DEVICE_STATE);
        }
        if is_map && sub > 0 {
            let m = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let (obj, osub, bits) = ((m >> 16) as u16, (m >> 8) as u8, (m & 0xFF) as usize);
            let target = self.entries.get(&(obj, osub)).ok_or(abort::NOT_MAPPABLE)?;
            if !target.mappable || target.data.len() * 8 != bits {
                return Err(abort::NOT_MAPPABLE);
            }
        }
        if is_map && sub == 0 {
            let n = data[0];
            if n > 8 {
                return Err(abort::VALUE_RANGE);
            }
            let mut bytes = 0usize;
            for s in 1..=n {
                let m = self.u32(index, s);
                if m == 0 {
                    return Err(abort::VALUE_RANGE);
                }
                bytes += (m & 0xFF) as usize / 8;
            }
            if bytes > MAX_PDO_BYTES {
                return Err(abort::PDO_TOO_LONG);
            }
        }
        if is_assign && sub > 0 {
            let pdo = u16::from_le_bytes([data[0], data[1]]);
            let base = if index == 0x1C12 { 0x1600 } else { 0x1A00 };
            if pdo != 0 && !(base..=base + 3).contains(&pdo) {
                return Err(abort::VALUE_RANGE);
            }
        }
        if is_assign && sub == 0 && data[0] > 4 {
            return Err(abort::VALUE_RANGE);
        }
        if let Some(e) = self.entries.get_mut(&(index, sub)) {
            e.data = data;
        }
        Ok(())
    }

    /// Device-side write (the drive updating its own values); ignores access rights.
    pub fn set(&mut self, index: u16, value: &[u8]) {
        if let Some(e) = self.entries.get_mut(&(index, 0)) {
            let n = e.data.len().min(value.len());
            e.data[..n].copy_from_slice(&value[..n]);
        }
    }

    /// Entry as u32 (0 when absent).
    pub fn u32(&self, index: u16, sub: u8) -> u32 {
        let mut b = [0u8; 4];
        if let Some(e) = self.entries.get(&(index, sub)) {
            let n = e.data.len().min(4);
            b[..n].copy_from_slice(&e.data[..n]);
        }
        u32::from_le_bytes(b)
    }

    /// Entry as i32, sign-extended from its stored width.
    pub fn i32(&self, index: u16) -> i32 {
        match self.entries.get(&(index, 0)).map(|e| e.data.as_slice()) {
            Some([a]) => i32::from(*a as i8),
            Some([a, b]) => i32::from(i16::from_le_bytes([*a, *b])),
            Some([a, b, c, d]) => i32::from_le_bytes([*a, *b, *c, *d]),
            _ => 0,
        }
    }

    /// The mapping entries of the PDOs assigned to an SM (`0x1C12` or `0x1C13`), in order.
    pub fn assigned_mapping(&self, assign_index: u16) -> Vec<u32> {
        let mut out = Vec::new();
        for s in 1..=self.u32(assign_index, 0) as u8 {
            let pdo = self.u32(assign_index, s) as u16;
            for e in 1..=self.u32(pdo, 0) as u8 {
                out.push(self.u32(pdo, e));
            }
        }
        out
    }

    /// Byte length of the process data an SM carries under the current assignment and mapping.
    pub fn assigned_len(&self, assign_index: u16) -> usize {
        self.assigned_mapping(assign_index)
            .iter()
            .map(|m| (m & 0xFF) as usize / 8)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn od() -> ObjectDictionary {
        ObjectDictionary::cia402_drive(&Identity {
            vendor_id: 1,
            product_code: 2,
            revision: 3,
            serial: 4,
        })
    }

    #[test]
    fn default_mapping_lengths() {
        let od = od();
        assert_eq!(od.assigned_len(0x1C12), 6);
        assert_eq!(od.assigned_len(0x1C13), 6);
    }

    #[test]
    fn mapping_rules_enforced() {
        let mut od = od();
        assert_eq!(od.download(0x1600, 1, &0x6041_0010u32.to_le_bytes(), true), Ok(()));
        // Not mappable (1C12) and wrong bit length both rejected.
        assert_eq!(
            od.download(0x1600, 2, &0x1C12_0008u32.to_le_bytes(), true),
            Err(abort::NOT_MAPPABLE)
        );
        assert_eq!(
            od.download(0x1600, 2, &0x607A_0010u32.to_le_bytes(), true),
            Err(abort::NOT_MAPPABLE)
        );
        // Only in PRE-OP.
        assert_eq!(od.download(0x1600, 0, &[1], false), Err(abort::DEVICE_STATE));
        assert_eq!(od.download(0x6041, 0, &[0, 0], true), Err(abort::READ_ONLY));
        assert_eq!(od.download(0x7777, 0, &[0], true), Err(abort::NO_OBJECT));
        assert_eq!(od.read(0x1018, 9), Err(abort::NO_SUBINDEX));
    }
}
