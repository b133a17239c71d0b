//! A walk over a Part 10 file's element headers, before dicom-rs parses it: dicom-rs reserves and zeroes each value's
//! declared length before reading it, so one corrupt length (up to 4 GiB) would cost that much memory and time for a
//! file of a few kilobytes. Every defined length must fit in the bytes that follow it.

use std::path::Path;

use crate::DicomError;

const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const ITEM_GROUP: u16 = 0xFFFE;
const UNDEFINED: u32 = 0xFFFF_FFFF;

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    ExplicitLe,
    ImplicitLe,
    ExplicitBe,
}

/// Checks `bytes` (a whole Part 10 file: preamble, "DICM", meta group, data set). Sequences and items are walked into;
/// the walk ends at Pixel Data in an encapsulated (compressed) syntax, and the data set of a deflated file is not
/// walked (dicom-rs inflates it; see the crate's notes). A truncated header ends the walk: the parser reports it.
pub(crate) fn check_lengths(bytes: &[u8], path: &Path) -> Result<(), DicomError> {
    let Some(body) = bytes.get(132..) else {
        return Ok(());
    };
    let mut pos = 0usize;
    let mut syntax: Option<Vec<u8>> = None;
    // Meta group: explicit VR little endian. dicom-rs reads elements of any tag until the bytes given by the group
    // length (0002,0000) are consumed, so the walk does the same; without a group length, while the group is 0002.
    let mut meta_end: Option<usize> = None;
    while let Some(h) = header(body, pos, Encoding::ExplicitLe) {
        match meta_end {
            Some(end) if pos >= end => break,
            None if h.tag.0 != 0x0002 => break,
            _ => {}
        }
        let end = value_end(body, &h, path)?;
        if pos == 0 && h.tag == (0x0002, 0x0000) && end - h.value == 4 {
            let v = &body[h.value..end];
            let group_length = u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize;
            meta_end = Some(end.saturating_add(group_length));
        }
        if h.tag == (0x0002, 0x0010) {
            syntax = Some(body[h.value..end].to_vec());
        }
        pos = end;
    }
    let ts = syntax
        .as_deref()
        .map(|s| String::from_utf8_lossy(s).trim_end_matches(['\0', ' ']).to_string());
    let encoding = match ts.as_deref() {
        Some("1.2.840.10008.1.2") => Encoding::ImplicitLe,
        Some("1.2.840.10008.1.2.2") => Encoding::ExplicitBe,
        Some("1.2.840.10008.1.2.1.99") => return Ok(()),
        _ => Encoding::ExplicitLe,
    };
    while let Some(h) = header(body, pos, encoding) {
        if h.length == UNDEFINED {
            // Explicit VR: only sequences, items, UN and pixel data (OB/OW) may have an undefined length; dicom-rs
            // would read any other (a UL, a string) as a 4 GiB value and reserve it.
            if let Some(vr) = h.vr.filter(|vr| !matches!(vr, b"SQ" | b"UN" | b"OB" | b"OW")) {
                return Err(DicomError::LengthBeyondEnd {
                    path: path.display().to_string(),
                    tag: format!("({:04X},{:04X}) {}", h.tag.0, h.tag.1, String::from_utf8_lossy(&vr)),
                    declared: u64::from(UNDEFINED),
                    remaining: (body.len() - h.value) as u64,
                });
            }
            // Implicit VR: dicom-rs takes the VR from the dictionary; a known tag that is not a sequence would be
            // read as a 4 GiB value too.
            if h.vr.is_none() && h.tag.0 != ITEM_GROUP && h.tag != PIXEL_DATA && !implicit_may_be_undefined(h.tag) {
                return Err(DicomError::LengthBeyondEnd {
                    path: path.display().to_string(),
                    tag: format!("({:04X},{:04X})", h.tag.0, h.tag.1),
                    declared: u64::from(UNDEFINED),
                    remaining: (body.len() - h.value) as u64,
                });
            }
            if h.tag == PIXEL_DATA {
                // Encapsulated pixel data: fragments, not elements; the syntax check refuses it.
                return Ok(());
            }
            // A sequence or an item of undefined length: walk into it.
            pos = h.value;
            continue;
        }
        if h.tag.0 == ITEM_GROUP || h.is_sequence {
            // Items and sequences of defined length: their contents are elements (or items); walk into them.
            value_end(body, &h, path)?;
            pos = h.value;
            continue;
        }
        pos = value_end(body, &h, path)?;
    }
    Ok(())
}

struct Header {
    tag: (u16, u16),
    length: u32,
    /// Offset of the value.
    value: usize,
    is_sequence: bool,
    /// The VR, in explicit VR syntaxes (not for items and delimiters).
    vr: Option<[u8; 2]>,
}

fn value_end(body: &[u8], h: &Header, path: &Path) -> Result<usize, DicomError> {
    let remaining = body.len() - h.value;
    let len = h.length as usize;
    if len > remaining {
        return Err(DicomError::LengthBeyondEnd {
            path: path.display().to_string(),
            tag: format!("({:04X},{:04X})", h.tag.0, h.tag.1),
            declared: u64::from(h.length),
            remaining: remaining as u64,
        });
    }
    Ok(h.value + len)
}

/// The element header at `pos`, or `None` if fewer bytes remain than a header needs.
fn header(body: &[u8], pos: usize, encoding: Encoding) -> Option<Header> {
    let b = body.get(pos..)?;
    let be = encoding == Encoding::ExplicitBe;
    let u16_at = |i: usize| -> Option<u16> {
        let x = [*b.get(i)?, *b.get(i + 1)?];
        Some(if be {
            u16::from_be_bytes(x)
        } else {
            u16::from_le_bytes(x)
        })
    };
    let u32_at = |i: usize| -> Option<u32> {
        let x = [*b.get(i)?, *b.get(i + 1)?, *b.get(i + 2)?, *b.get(i + 3)?];
        Some(if be {
            u32::from_be_bytes(x)
        } else {
            u32::from_le_bytes(x)
        })
    };
    let tag = (u16_at(0)?, u16_at(2)?);
    // Items and delimiters have no VR in any syntax.
    if tag.0 == ITEM_GROUP || encoding == Encoding::ImplicitLe {
        return Some(Header {
            tag,
            length: u32_at(4)?,
            value: pos + 8,
            // Implicit VR: a sequence is known only by its dictionary entry; an undefined length is walked into
            // anyway, and a defined-length sequence is skipped whole (its length was checked).
            is_sequence: false,
            vr: None,
        });
    }
    let vr = [*b.get(4)?, *b.get(5)?];
    // dicom-rs reads an unknown VR like UN (reserved bytes, 32-bit length), so only the known short VRs have 16 bits.
    let short = matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    );
    let long = !short;
    if long {
        Some(Header {
            tag,
            length: u32_at(8)?,
            value: pos + 12,
            is_sequence: &vr == b"SQ",
            vr: Some(vr),
        })
    } else {
        Some(Header {
            tag,
            length: u32::from(u16_at(6)?),
            value: pos + 8,
            is_sequence: false,
            vr: Some(vr),
        })
    }
}

/// In implicit VR, an undefined length is valid for a sequence and for a tag the dictionary does not know (read as UN).
fn implicit_may_be_undefined(tag: (u16, u16)) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    match dicom_dictionary_std::StandardDataDictionary.by_tag(dicom_core::Tag(tag.0, tag.1)) {
        None => true,
        Some(entry) => matches!(entry.vr(), VirtualVr::Exact(dicom_core::VR::SQ | dicom_core::VR::UN)),
    }
}
