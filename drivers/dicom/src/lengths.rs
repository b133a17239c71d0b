//! A walk over a Part 10 file's element headers, before dicom-rs parses it: dicom-rs reserves and zeroes each value's
//! declared length before reading it, so one corrupt length (up to 4 GiB) would cost that much memory and time for a
//! file of a few kilobytes. Every defined length must fit in the bytes that follow it, and a binary value (US, UL, FD,
//! ...) must be a whole number of values: dicom-rs consumes only the whole values, so a remainder shifts every header
//! after it and one of them, read from inside a value, can declare 4 GiB.

use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use crate::DicomError;

const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const ITEM_GROUP: u16 = 0xFFFE;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);
const UNDEFINED: u32 = 0xFFFF_FFFF;

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    ExplicitLe,
    ImplicitLe,
    ExplicitBe,
}

/// Checks `bytes` (a whole Part 10 file: preamble, "DICM", meta group, data set). Sequences, items and pixel data
/// fragments are walked as dicom-rs walks them; the data set of a deflated file is not walked (dicom-rs inflates it;
/// see the crate's notes). A truncated header ends the walk: the parser reports it.
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
    // Trimmed as dicom-rs trims it (any trailing whitespace or NUL): "1.2.840.10008.1.2\0\n" is implicit VR to it, and
    // a walk that took it for explicit VR would check headers that dicom-rs never reads.
    let ts = syntax.as_deref().map(|s| {
        String::from_utf8_lossy(s)
            .trim_end_matches(|c: char| c.is_whitespace() || c == '\0')
            .to_string()
    });
    let encoding = match ts.as_deref() {
        Some("1.2.840.10008.1.2") => Encoding::ImplicitLe,
        Some("1.2.840.10008.1.2.2") => Encoding::ExplicitBe,
        Some("1.2.840.10008.1.2.1.99") => return Ok(()),
        _ => Encoding::ExplicitLe,
    };
    walk_data_set(body, pos, encoding, path)
}

/// An open sequence or item, as dicom-rs's data set reader keeps it.
struct Open {
    item: bool,
    /// Inside encapsulated pixel data: items are fragments, not elements.
    pixel: bool,
    /// Where a defined length ends it.
    end: Option<usize>,
}

/// Follows the data set the way dicom-rs 0.10's `DataSetReader` does (same states, same order of checks), so every
/// value it will reserve is seen with the length and VR it will use. Where dicom-rs would fail (a bad item tag, an
/// inconsistent sequence end, a truncated header) the walk ends with `Ok`: that error comes without an allocation.
/// A walk that guessed element boundaries instead (skipping a defined-length sequence whole in implicit VR, or all 122
/// bytes of a UL dicom-rs consumes 120 of; such values are refused here) would check headers dicom-rs never reads and
/// miss the ones it does. Tied to dicom-rs 0.10.1's reader: re-check this walk when dicom-rs is upgraded.
fn walk_data_set(body: &[u8], mut pos: usize, encoding: Encoding, path: &Path) -> Result<(), DicomError> {
    let mut open: Vec<Open> = Vec::new();
    let mut in_sequence = false;
    let mut check_end = false;
    let mut pixel_header = false;
    let mut offset_table_next = false;
    loop {
        if check_end {
            if let Some(&Open {
                item, end: Some(end), ..
            }) = open.last()
            {
                if pos == end {
                    open.pop();
                    in_sequence = item;
                    continue;
                }
                if pos > end {
                    return Ok(());
                }
            }
            check_end = false;
        }
        if in_sequence {
            let Some(h) = item_header(body, pos, encoding) else {
                return Ok(());
            };
            pos = h.value;
            match h.tag {
                ITEM => {
                    let Some(pixel) = open.last().map(|o| o.pixel) else {
                        return Ok(());
                    };
                    in_sequence = false;
                    let end = defined_end(body, &h, path)?;
                    open.push(Open { item: true, pixel, end });
                    check_end = h.length == 0;
                }
                ITEM_END if h.length == 0 => {
                    open.pop();
                    in_sequence = true;
                    check_end = true;
                }
                SEQUENCE_END => {
                    open.pop();
                    in_sequence = false;
                    check_end = true;
                }
                _ => return Ok(()),
            }
            continue;
        }
        if let Some(&Open {
            item: true,
            pixel: true,
            end,
            ..
        }) = open.last()
        {
            // A fragment of encapsulated pixel data; the first is the offset table, read as whole u32s.
            let Some(end) = end else {
                return Ok(());
            };
            let len = end - pos;
            check_end = true;
            if offset_table_next {
                offset_table_next = false;
                pos += len / 4 * 4;
            } else {
                pos = end;
            }
            continue;
        }
        if pixel_header {
            pixel_header = false;
            open.push(Open {
                item: false,
                pixel: true,
                end: None,
            });
            let Some(h) = item_header(body, pos, encoding) else {
                return Ok(());
            };
            pos = h.value;
            match h.tag {
                ITEM => {
                    in_sequence = false;
                    let end = defined_end(body, &h, path)?;
                    open.push(Open {
                        item: true,
                        pixel: true,
                        end,
                    });
                    if h.length == 0 {
                        check_end = true;
                    } else {
                        offset_table_next = true;
                    }
                }
                SEQUENCE_END => {
                    open.pop();
                    in_sequence = false;
                }
                _ => return Ok(()),
            }
            continue;
        }
        let Some(h) = header(body, pos, encoding) else {
            return Ok(());
        };
        let vr = parsed_vr(&h);
        if vr == VR::SQ {
            in_sequence = true;
            let end = defined_end(body, &h, path)?;
            open.push(Open {
                item: false,
                pixel: false,
                end,
            });
            check_end = h.length == 0;
            pos = h.value;
            continue;
        }
        if h.tag == ITEM_END {
            // An item delimiter outside any sequence is ignored; its length is not skipped.
            if open.pop().is_some() {
                in_sequence = true;
                check_end = true;
            }
            pos = h.value;
            continue;
        }
        if h.tag == PIXEL_DATA && h.length == UNDEFINED {
            pixel_header = true;
            pos = h.value;
            continue;
        }
        if h.length == UNDEFINED {
            // Explicit VR: only sequences, items, UN and pixel data (OB/OW) may have an undefined length.
            if let Some(vr) = h.vr.filter(|vr| !matches!(vr, b"SQ" | b"UN" | b"OB" | b"OW")) {
                return Err(undefined(body, &h, &String::from_utf8_lossy(&vr), path));
            }
            // Implicit VR: dicom-rs takes the VR from the dictionary; a known tag that is not a sequence has no
            // business with an undefined length.
            if h.vr.is_none() && h.tag.0 != ITEM_GROUP && !implicit_may_be_undefined(h.tag) {
                return Err(undefined(body, &h, vr.to_string(), path));
            }
            // dicom-rs reads any other element of undefined length as a sequence.
            in_sequence = true;
            open.push(Open {
                item: false,
                pixel: false,
                end: None,
            });
            pos = h.value;
            continue;
        }
        let end = value_end(body, &h, path)?;
        let unit = value_unit(vr, h.tag);
        if !(h.length as usize).is_multiple_of(unit) {
            return Err(DicomError::LengthNotMultiple {
                path: path.display().to_string(),
                tag: format!("({:04X},{:04X}) {vr}", h.tag.0, h.tag.1),
                declared: u64::from(h.length),
                unit: unit as u64,
            });
        }
        pos = end;
        check_end = true;
    }
}

fn undefined(body: &[u8], h: &Header, vr: &str, path: &Path) -> DicomError {
    DicomError::LengthBeyondEnd {
        path: path.display().to_string(),
        tag: format!("({:04X},{:04X}) {vr}", h.tag.0, h.tag.1),
        declared: u64::from(UNDEFINED),
        remaining: (body.len() - h.value) as u64,
    }
}

/// The end of a sequence or item of defined length (which must fit in the file), `None` for an undefined length.
fn defined_end(body: &[u8], h: &Header, path: &Path) -> Result<Option<usize>, DicomError> {
    if h.length == UNDEFINED {
        Ok(None)
    } else {
        value_end(body, h, path).map(Some)
    }
}

/// The VR dicom-rs decodes the element with: the header's in explicit VR (unknown bytes, and items, read as UN); in
/// implicit VR, OW for pixel and overlay data, else the dictionary's (relaxed: US for US-or-SS, OW for OB-or-OW),
/// else UN.
fn parsed_vr(h: &Header) -> VR {
    match h.vr {
        Some(bytes) => VR::from_binary(bytes).unwrap_or(VR::UN),
        None if h.tag.0 == ITEM_GROUP && h.explicit => VR::UN,
        None if h.tag == PIXEL_DATA || (h.tag.0 >> 8 == 0x60 && h.tag.1 == 0x3000) => VR::OW,
        None => dictionary_vr(h.tag).map(|vr| vr.relaxed()).unwrap_or(VR::UN),
    }
}

fn dictionary_vr(tag: (u16, u16)) -> Option<VirtualVr> {
    StandardDataDictionary.by_tag(Tag(tag.0, tag.1)).map(|entry| entry.vr())
}

/// Bytes per value for the binary VRs: dicom-rs 0.10 reads `length / unit` whole values and consumes only those
/// bytes while counting `length`, so any remainder leaves it reading the next header from inside this value. A tag the
/// dictionary gives as US-or-SS is re-typed SS once Pixel Representation says signed, whatever its header says.
fn value_unit(vr: VR, tag: (u16, u16)) -> usize {
    let unit = match vr {
        VR::SS | VR::US | VR::OW => 2,
        VR::AT | VR::FL | VR::OF | VR::UL | VR::OL | VR::SL => 4,
        VR::FD | VR::OD | VR::UV | VR::OV | VR::SV => 8,
        _ => 1,
    };
    if unit < 2 && dictionary_vr(tag) == Some(VirtualVr::Xs) {
        2
    } else {
        unit
    }
}

struct Header {
    tag: (u16, u16),
    length: u32,
    /// Offset of the value.
    value: usize,
    /// Read by an explicit VR decoder (items and delimiters included).
    explicit: bool,
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
            explicit: encoding != Encoding::ImplicitLe,
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
            explicit: true,
            vr: Some(vr),
        })
    } else {
        Some(Header {
            tag,
            length: u32::from(u16_at(6)?),
            value: pos + 8,
            explicit: true,
            vr: Some(vr),
        })
    }
}

/// The header of an item or delimiter: tag and a 32-bit length, without VR in every syntax (dicom-rs reads it so
/// wherever it expects an item, whatever the tag turns out to be).
fn item_header(body: &[u8], pos: usize, encoding: Encoding) -> Option<Header> {
    let b = body.get(pos..pos.checked_add(8)?)?;
    let (tag, length) = if encoding == Encoding::ExplicitBe {
        (
            (u16::from_be_bytes([b[0], b[1]]), u16::from_be_bytes([b[2], b[3]])),
            u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        )
    } else {
        (
            (u16::from_le_bytes([b[0], b[1]]), u16::from_le_bytes([b[2], b[3]])),
            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        )
    };
    Some(Header {
        tag,
        length,
        value: pos + 8,
        explicit: encoding != Encoding::ImplicitLe,
        vr: None,
    })
}

/// In implicit VR, an undefined length is valid for a sequence and for a tag the dictionary does not know (read as UN).
fn implicit_may_be_undefined(tag: (u16, u16)) -> bool {
    match dictionary_vr(tag) {
        None => true,
        Some(vr) => matches!(vr, VirtualVr::Exact(VR::SQ | VR::UN)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMPLICIT: &str = "1.2.840.10008.1.2";
    const EXPLICIT: &str = "1.2.840.10008.1.2.1";

    /// A Part 10 file: preamble, magic, a meta group naming `ts`, then `data_set`.
    fn file(ts: &str, data_set: &[u8]) -> Vec<u8> {
        let mut uid = ts.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let mut meta = vec![0x02, 0x00, 0x10, 0x00, b'U', b'I'];
        meta.extend((uid.len() as u16).to_le_bytes());
        meta.extend(uid);
        let mut f = vec![0; 128];
        f.extend(b"DICM");
        f.extend([0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
        f.extend((meta.len() as u32).to_le_bytes());
        f.extend(meta);
        f.extend(data_set);
        f
    }

    /// An implicit VR element (or item: group FFFE).
    fn implicit(tag: (u16, u16), length: u32, value: &[u8]) -> Vec<u8> {
        let mut e = tag.0.to_le_bytes().to_vec();
        e.extend(tag.1.to_le_bytes());
        e.extend(length.to_le_bytes());
        e.extend(value);
        e
    }

    /// An explicit VR little endian element with a 16-bit length.
    fn explicit_short(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut e = tag.0.to_le_bytes().to_vec();
        e.extend(tag.1.to_le_bytes());
        e.extend(vr);
        e.extend((value.len() as u16).to_le_bytes());
        e.extend(value);
        e
    }

    fn check(bytes: &[u8]) -> Result<(), DicomError> {
        check_lengths(bytes, Path::new("t.dcm"))
    }

    #[test]
    fn a_huge_length_inside_an_implicit_vr_sequence_of_defined_length_is_refused() {
        // dicom-rs walks into (0008,1140) because the dictionary says SQ, and would reserve 4 GiB for the Rows inside;
        // a walk that skipped the sequence whole (its 18 bytes fit) never saw that header.
        let rows = implicit((0x0028, 0x0010), 0xFFFF_FF00, &[0, 0]);
        let item = implicit(ITEM, rows.len() as u32, &rows);
        let mut ds = implicit((0x0008, 0x1140), item.len() as u32, &item);
        ds.extend([0; 16]);
        match check(&file(IMPLICIT, &ds)) {
            Err(DicomError::LengthBeyondEnd { tag, declared, .. }) => {
                assert_eq!((tag.as_str(), declared), ("(0028,0010)", 0xFFFF_FF00));
            }
            other => panic!("expected LengthBeyondEnd, got {other:?}"),
        }
    }

    #[test]
    fn a_binary_value_that_is_not_whole_values_is_refused_with_the_vr_it_is_read_with() {
        // Implicit VR: the dictionary types Rows US, so 3 bytes are one value and a byte dicom-rs would not consume.
        let ds = implicit((0x0028, 0x0010), 3, &[1, 0, 0, 0]);
        match check(&file(IMPLICIT, &ds)) {
            Err(DicomError::LengthNotMultiple {
                tag, declared, unit, ..
            }) => {
                assert_eq!((tag.as_str(), declared, unit), ("(0028,0010) US", 3, 2));
            }
            other => panic!("expected LengthNotMultiple, got {other:?}"),
        }
        // Explicit VR: the header's VR counts (FD: 8-byte values).
        let ds = explicit_short((0x0018, 0x9087), b"FD", &[0; 12]);
        match check(&file(EXPLICIT, &ds)) {
            Err(DicomError::LengthNotMultiple {
                tag, declared, unit, ..
            }) => {
                assert_eq!((tag.as_str(), declared, unit), ("(0018,9087) FD", 12, 8));
            }
            other => panic!("expected LengthNotMultiple, got {other:?}"),
        }
        // A US-or-SS tag is re-typed SS after a signed Pixel Representation, whatever its header says: even only.
        let ds = explicit_short((0x0028, 0x0106), b"CS", &[0; 3]);
        assert!(matches!(
            check(&file(EXPLICIT, &ds)),
            Err(DicomError::LengthNotMultiple { unit: 2, .. })
        ));
        // Whole values, strings of odd length, and empty values pass.
        let mut ds = explicit_short((0x0018, 0x9087), b"FD", &[0; 16]);
        ds.extend(explicit_short((0x0010, 0x0010), b"PN", b"Doe"));
        ds.extend(explicit_short((0x0028, 0x0010), b"US", &[]));
        check(&file(EXPLICIT, &ds)).unwrap();
    }

    #[test]
    fn an_element_that_follows_a_remainder_is_never_reached() {
        // The fuzzer's finding, reduced: a 6-byte UL is read as one value plus 2 bytes dicom-rs leaves behind, so its
        // next header starts inside this one's value. The walk stops at the remainder, before that phantom header.
        let ds = implicit((0x0000, 0x0000), 6, &[0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            check(&file(IMPLICIT, &ds)),
            Err(DicomError::LengthNotMultiple {
                declared: 6,
                unit: 4,
                ..
            })
        ));
    }

    #[test]
    fn the_transfer_syntax_uid_is_trimmed_as_dicom_rs_trims_it() {
        // Found by the fuzzer: UID bytes "1.2.840.10008.1.2\0\n\0". Implicit VR, this data set is Rows declaring
        // 0x07000000 bytes; read as explicit VR it is an empty UN, and dicom-rs (which reads it implicit) reserved 112 MiB.
        let ds = [0x28, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00];
        match check(&file("1.2.840.10008.1.2\0\n", &ds)) {
            Err(DicomError::LengthBeyondEnd { tag, declared, .. }) => {
                assert_eq!((tag.as_str(), declared), ("(0028,0010)", 0x0700_0000));
            }
            other => panic!("expected LengthBeyondEnd, got {other:?}"),
        }
    }

    #[test]
    fn a_pixel_data_fragment_longer_than_the_file_is_refused() {
        // Undefined-length Pixel Data in a native syntax: dicom-rs reads fragments, reserving each item's length.
        let mut ds = implicit(PIXEL_DATA, UNDEFINED, &[]);
        ds.extend(implicit(ITEM, 0, &[]));
        ds.extend(implicit(ITEM, 0x8000_0000, &[0; 8]));
        match check(&file(IMPLICIT, &ds)) {
            Err(DicomError::LengthBeyondEnd { tag, declared, .. }) => {
                assert_eq!((tag.as_str(), declared), ("(FFFE,E000)", 0x8000_0000));
            }
            other => panic!("expected LengthBeyondEnd, got {other:?}"),
        }
        // Fragments that fit, closed by a sequence delimiter, then an ordinary element.
        let mut ds = implicit(PIXEL_DATA, UNDEFINED, &[]);
        ds.extend(implicit(ITEM, 4, &[0; 4]));
        ds.extend(implicit(ITEM, 6, &[0; 6]));
        ds.extend(implicit(SEQUENCE_END, 0, &[]));
        ds.extend(implicit((0xFFFC, 0xFFFC), 2, &[0; 2]));
        check(&file(IMPLICIT, &ds)).unwrap();
    }
}
