//! CiA 402 (IEC 61800-7-201) on the master side: the PDO layout we map by SDO, statusword
//! decoding (Table 30) and controlword commands (Table 28).

/// RxPDO 0x1600 entries we write at PRE-OP: controlword, target position, modes of operation.
pub const RX_MAPPING: [u32; 3] = [0x6040_0010, 0x607A_0020, 0x6060_0008];
/// TxPDO 0x1A00 entries: statusword, position actual, velocity actual, torque actual, error code,
/// modes of operation display.
pub const TX_MAPPING: [u32; 6] = [
    0x6041_0010,
    0x6064_0020,
    0x606C_0020,
    0x6077_0010,
    0x603F_0010,
    0x6061_0008,
];
/// Output (RxPDO) bytes per drive.
pub const RX_LEN: usize = 7;
/// Input (TxPDO) bytes per drive.
pub const TX_LEN: usize = 15;
/// Cyclic synchronous position mode (0x6060 value).
pub const MODE_CSP: i8 = 8;

/// Quick stop option code the bring-up writes to 0x605A: brake on the quick-stop ramp (0x6085) and stay in Quick stop
/// active, powered and holding, so a released enable can resume with Enable operation (transition 16) and no reset.
pub const QUICK_STOP_OPTION_HOLD: i16 = 6;

/// Objects the bring-up compares with the drive configuration before OP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveObject {
    /// 0x1018:01 vendor id.
    VendorId,
    /// 0x1018:02 product code.
    ProductCode,
    /// 0x608F position encoder resolution: encoder increments (:01) per motor revolutions (:02).
    EncoderResolution,
    /// 0x6091 gear ratio: motor revolutions (:01) per shaft revolutions (:02).
    GearRatio,
    /// 0x6092 feed constant: feed (:01) per shaft revolutions (:02), in the unit of 0x60A8; compared in SI.
    FeedConstant,
    /// 0x60A8 SI unit position: the unit of the feed (a length for a prismatic joint, an angle for a revolute one).
    PositionUnit,
}

impl std::fmt::Display for DriveObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::VendorId => "0x1018:01 vendor id",
            Self::ProductCode => "0x1018:02 product code",
            Self::EncoderResolution => "0x608F encoder resolution (counts per motor revolution)",
            Self::GearRatio => "0x6091 gear ratio (motor per shaft revolutions)",
            Self::FeedConstant => "0x6092 feed constant (SI per shaft revolution)",
            Self::PositionUnit => "0x60A8 position unit",
        })
    }
}

/// A value read from, or expected of, a [`DriveObject`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ObjectValue {
    /// An identity number (shown in hex).
    Id(u32),
    /// A ratio or an SI quantity.
    Number(f64),
    /// A length unit (m) or an angle unit (rad), from 0x60A8.
    Kind(UnitKind),
}

impl std::fmt::Display for ObjectValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(v) => write!(f, "{v:#010x}"),
            Self::Number(v) => write!(f, "{v}"),
            Self::Kind(UnitKind::Length) => f.write_str("a length"),
            Self::Kind(UnitKind::Angle) => f.write_str("an angle"),
            Self::Kind(UnitKind::Unknown(code)) => write!(f, "unknown unit {code:#010x}"),
        }
    }
}

/// What a 0x60A8 code measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// Metres (unit index 0x01).
    Length,
    /// Radians (0x10) or degrees (0x41).
    Angle,
    /// Anything else (the raw code).
    Unknown(u32),
}

/// Decode an SI unit code (0x60A8; CiA 402 §6.2 after CiA 303-2: byte 3 the power-of-ten prefix as i8, byte 2 the
/// unit index) into what it measures and the SI value of one unit (1 µm → 1e-6 m, 1 µ° → 1.745e-8 rad).
pub fn decode_si_unit(code: u32) -> (UnitKind, f64) {
    let prefix = f64::from((code >> 24) as u8 as i8);
    let scale = 10f64.powf(prefix);
    match (code >> 16) & 0xFF {
        0x01 => (UnitKind::Length, scale),
        0x10 => (UnitKind::Angle, scale),
        0x41 => (UnitKind::Angle, scale * std::f64::consts::PI / 180.0),
        _ => (UnitKind::Unknown(code), f64::NAN),
    }
}

/// Controlword commands (IEC 61800-7-201 Table 28).
pub mod cw {
    /// Disable voltage: → Switch on disabled.
    pub const DISABLE_VOLTAGE: u16 = 0x0000;
    /// Quick stop: Operation enabled → Quick stop active; others → Switch on disabled.
    pub const QUICK_STOP: u16 = 0x0002;
    /// Shutdown: → Ready to switch on.
    pub const SHUTDOWN: u16 = 0x0006;
    /// Switch on: → Switched on.
    pub const SWITCH_ON: u16 = 0x0007;
    /// Enable operation: → Operation enabled.
    pub const ENABLE_OPERATION: u16 = 0x000F;
    /// Fault reset (bit 7; acts on its rising edge).
    pub const FAULT_RESET: u16 = 0x0080;
}

/// Drive power state decoded from the statusword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriveState {
    /// Not ready to switch on (or no valid input yet: statusword 0).
    #[default]
    NotReadyToSwitchOn,
    /// Switch on disabled.
    SwitchOnDisabled,
    /// Ready to switch on.
    ReadyToSwitchOn,
    /// Switched on.
    SwitchedOn,
    /// Operation enabled.
    OperationEnabled,
    /// Quick stop active.
    QuickStopActive,
    /// Fault reaction active.
    FaultReactionActive,
    /// Fault.
    Fault,
}

impl DriveState {
    /// Decode with the masks of IEC 61800-7-201 Table 30.
    pub fn from_statusword(sw: u16) -> Self {
        if sw & 0x004F == 0x0000 {
            Self::NotReadyToSwitchOn
        } else if sw & 0x004F == 0x0040 {
            Self::SwitchOnDisabled
        } else if sw & 0x006F == 0x0021 {
            Self::ReadyToSwitchOn
        } else if sw & 0x006F == 0x0023 {
            Self::SwitchedOn
        } else if sw & 0x006F == 0x0027 {
            Self::OperationEnabled
        } else if sw & 0x006F == 0x0007 {
            Self::QuickStopActive
        } else if sw & 0x004F == 0x000F {
            Self::FaultReactionActive
        } else if sw & 0x004F == 0x0008 {
            Self::Fault
        } else {
            Self::NotReadyToSwitchOn
        }
    }

    /// The drive is faulted or reacting to a fault.
    pub fn is_fault(self) -> bool {
        matches!(self, Self::Fault | Self::FaultReactionActive)
    }
}

/// Inputs of one drive (TxPDO), raw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriveInputs {
    /// 0x6041.
    pub statusword: u16,
    /// 0x6064, counts.
    pub position: i32,
    /// 0x606C, counts/s.
    pub velocity: i32,
    /// 0x6077, ‰ of rated torque.
    pub torque: i16,
    /// 0x603F.
    pub error_code: u16,
    /// 0x6061.
    pub mode_display: i8,
}

/// Outputs of one drive (RxPDO), raw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriveOutputs {
    /// 0x6040.
    pub controlword: u16,
    /// 0x607A, counts.
    pub target: i32,
    /// 0x6060.
    pub mode: i8,
}

impl DriveInputs {
    /// Decode from the TxPDO bytes (layout of [`TX_MAPPING`]); short input yields `None`.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < TX_LEN {
            return None;
        }
        Some(Self {
            statusword: u16::from_le_bytes([b[0], b[1]]),
            position: i32::from_le_bytes([b[2], b[3], b[4], b[5]]),
            velocity: i32::from_le_bytes([b[6], b[7], b[8], b[9]]),
            torque: i16::from_le_bytes([b[10], b[11]]),
            error_code: u16::from_le_bytes([b[12], b[13]]),
            mode_display: b[14] as i8,
        })
    }
}

impl DriveOutputs {
    /// Encode into the RxPDO bytes (layout of [`RX_MAPPING`]); returns false if `b` is too short.
    pub fn encode(&self, b: &mut [u8]) -> bool {
        if b.len() < RX_LEN {
            return false;
        }
        b[0..2].copy_from_slice(&self.controlword.to_le_bytes());
        b[2..6].copy_from_slice(&self.target.to_le_bytes());
        b[6] = self.mode as u8;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statusword_patterns() {
        assert_eq!(DriveState::from_statusword(0x0627), DriveState::OperationEnabled);
        assert_eq!(DriveState::from_statusword(0x0250), DriveState::SwitchOnDisabled);
        assert_eq!(DriveState::from_statusword(0x0231), DriveState::ReadyToSwitchOn);
        assert_eq!(DriveState::from_statusword(0x0233), DriveState::SwitchedOn);
        assert_eq!(DriveState::from_statusword(0x0207), DriveState::QuickStopActive);
        assert_eq!(DriveState::from_statusword(0x0218), DriveState::Fault);
        assert_eq!(DriveState::from_statusword(0x021F), DriveState::FaultReactionActive);
        assert_eq!(DriveState::from_statusword(0), DriveState::NotReadyToSwitchOn);
    }

    #[test]
    fn si_unit_codes() {
        let (k, s) = decode_si_unit(0xF701_0000);
        assert_eq!(k, UnitKind::Length);
        assert!((s - 1e-9).abs() < 1e-21);
        let (k, s) = decode_si_unit(0xFA41_0000);
        assert_eq!(k, UnitKind::Angle);
        assert!((s - 1e-6 * std::f64::consts::PI / 180.0).abs() < 1e-18);
        assert!(matches!(decode_si_unit(0x0005_0000).0, UnitKind::Unknown(_)));
    }

    #[test]
    fn pdo_roundtrip_layout() {
        let mut b = [0u8; RX_LEN];
        assert!(DriveOutputs {
            controlword: 0x0F,
            target: -5,
            mode: 8
        }
        .encode(&mut b));
        assert_eq!(b, [0x0F, 0, 0xFB, 0xFF, 0xFF, 0xFF, 8]);
        let raw = [0x27, 0x06, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0x11, 0x86, 8];
        let i = DriveInputs::decode(&raw).unwrap();
        assert_eq!(
            (
                i.statusword,
                i.position,
                i.velocity,
                i.torque,
                i.error_code,
                i.mode_display
            ),
            (0x0627, 1, 2, 3, 0x8611, 8)
        );
    }
}
