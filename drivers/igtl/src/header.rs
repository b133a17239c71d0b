//! The 58-byte header, CRC-64 and the size limits checked before any body is allocated.
use thiserror::Error;

/// Bytes in every OpenIGTLink header (v1, v2 and v3 share it).
pub const HEADER_SIZE: usize = 58;

/// ECMA-182 polynomial, MSB first, init 0, no reflection, no final xor (as igtl_util.c and pyigtl compute it).
const POLY: u64 = 0x42F0_E1EB_A9EA_3693;

const fn crc_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u64) << 56;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & (1 << 63) != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}
static TABLE: [u64; 256] = crc_table();

/// CRC-64 of a message body, as carried in the header.
pub fn crc64(data: &[u8]) -> u64 {
    data.iter()
        .fold(0u64, |crc, &b| TABLE[(((crc >> 56) as u8) ^ b) as usize] ^ (crc << 8))
}

/// Why a frame was rejected. Each variant names the problem so that the log says which field was wrong.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum IgtlError {
    #[error("truncated {what}: needs {need} bytes, {have} present")]
    Truncated { what: &'static str, need: u64, have: u64 },
    #[error("bad CRC: header declares {declared:#018x}, body computes {computed:#018x}")]
    BadCrc { declared: u64, computed: u64 },
    #[error("{type_name} body of {declared} bytes exceeds the limit of {limit}")]
    BodyTooLarge {
        type_name: String,
        declared: u64,
        limit: u64,
    },
    #[error("metadata of {declared} bytes does not fit in the {available} bytes after the content start")]
    MetadataBeyondBody { declared: u64, available: u64 },
    #[error("extended header size {declared} invalid for a body of {body} bytes")]
    BadExtendedHeader { declared: u16, body: u64 },
    #[error("unsupported header version {0}")]
    UnsupportedVersion(u16),
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("malformed {type_name}: {problem}")]
    Malformed {
        type_name: &'static str,
        problem: &'static str,
    },
    #[error("text with encoding {encoding} is not valid")]
    BadText { encoding: u16 },
}

/// Upper bounds on declared body sizes, checked against the header before the body is read or allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// IMAGE bodies (a CT volume of 512×512×200 int16 is ~100 MiB; check scans are smaller).
    pub max_image_body: u64,
    /// Every other type (TRANSFORM is 48 bytes; POINT lists and metadata stay far below this).
    pub max_other_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_image_body: 64 << 20,
            max_other_body: 64 << 10,
        }
    }
}

impl Limits {
    /// The bound for a message type.
    pub fn for_type(&self, type_name: &str) -> u64 {
        if type_name == "IMAGE" {
            self.max_image_body
        } else {
            self.max_other_body
        }
    }
}

/// A decoded header. Strings are cut at the first NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub type_name: String,
    pub device_name: String,
    /// Seconds in the high 32 bits, fraction of a second in the low 32.
    pub timestamp: u64,
    pub body_size: u64,
    pub crc: u64,
}

pub(crate) fn fixed_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

pub(crate) fn put_fixed(out: &mut Vec<u8>, s: &str, len: usize) {
    let bytes = s.as_bytes();
    let n = bytes.len().min(len);
    out.extend_from_slice(&bytes[..n]);
    out.resize(out.len() + (len - n), 0);
}

impl Header {
    /// Decode the 58 header bytes. Versions 1–3 are accepted (v3 only adds metadata semantics to v2's layout).
    pub fn decode(b: &[u8; HEADER_SIZE]) -> Result<Header, IgtlError> {
        let version = u16::from_be_bytes([b[0], b[1]]);
        if !(1..=3).contains(&version) {
            return Err(IgtlError::UnsupportedVersion(version));
        }
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_be_bytes(a)
        };
        Ok(Header {
            version,
            type_name: fixed_str(&b[2..14]),
            device_name: fixed_str(&b[14..34]),
            timestamp: u64_at(34),
            body_size: u64_at(42),
            crc: u64_at(50),
        })
    }

    /// Check the declared body size against the limit for this type; call before reading the body.
    pub fn check_size(&self, limits: &Limits) -> Result<usize, IgtlError> {
        let limit = limits.for_type(&self.type_name);
        if self.body_size > limit {
            return Err(IgtlError::BodyTooLarge {
                type_name: self.type_name.clone(),
                declared: self.body_size,
                limit,
            });
        }
        usize::try_from(self.body_size).map_err(|_| IgtlError::BodyTooLarge {
            type_name: self.type_name.clone(),
            declared: self.body_size,
            limit,
        })
    }

    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = Vec::with_capacity(HEADER_SIZE);
        out.extend_from_slice(&self.version.to_be_bytes());
        put_fixed(&mut out, &self.type_name, 12);
        put_fixed(&mut out, &self.device_name, 20);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.body_size.to_be_bytes());
        out.extend_from_slice(&self.crc.to_be_bytes());
        let mut a = [0u8; HEADER_SIZE];
        a.copy_from_slice(&out);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_crc64_ecma182_check_value() {
        // CRC-64/ECMA-182 check value for "123456789" (init 0, no reflection, no xorout).
        assert_eq!(crc64(b"123456789"), 0x6C40_DF5F_0B49_7347);
    }

    #[test]
    fn huge_declared_sizes_are_rejected_before_allocation() {
        let mut h = Header::decode(&[0u8; HEADER_SIZE]).unwrap_err();
        assert_eq!(h, IgtlError::UnsupportedVersion(0));
        let mut raw = [0u8; HEADER_SIZE];
        raw[1] = 1;
        raw[2..7].copy_from_slice(b"IMAGE");
        raw[42..50].copy_from_slice(&u64::MAX.to_be_bytes());
        let header = Header::decode(&raw).unwrap();
        h = header.check_size(&Limits::default()).unwrap_err();
        assert!(matches!(h, IgtlError::BodyTooLarge { declared: u64::MAX, .. }));
    }
}

/// Message types of the OpenIGTLink standard (versions 1–3), data and query forms: a well-formed message of one of these
/// that we do not decode is skipped (Slicer sends POSITION, CAPABILITY, GET_* queries); any other type name is not
/// OpenIGTLink and closes the connection.
pub fn is_standard_type(type_name: &str) -> bool {
    const DATA: &[&str] = &[
        "TRANSFORM",
        "POSITION",
        "QTRANS",
        "IMAGE",
        "STATUS",
        "CAPABILITY",
        "POINT",
        "TRAJ",
        "STRING",
        "TDATA",
        "QTDATA",
        "SENSOR",
        "NDARRAY",
        "POLYDATA",
        "LBMETA",
        "COLORT",
        "IMGMETA",
        "BIND",
        "COMMAND",
        "VIDEO",
        "VIDEOMETA",
    ];
    let data = ["GET_", "STT_", "STP_", "RTS_"]
        .iter()
        .find_map(|prefix| type_name.strip_prefix(prefix))
        .unwrap_or(type_name);
    DATA.contains(&data)
}
