//! One CT slice file: the header (read first, for sorting and checks) and the pixels (decoded straight into their
//! place in the volume).

use std::path::{Path, PathBuf};

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::DicomError;

/// Transfer syntaxes whose pixel data is native (uncompressed) and which dicom-object parses.
const NATIVE_SYNTAXES: [&str; 4] = [
    "1.2.840.10008.1.2",      // Implicit VR Little Endian
    "1.2.840.10008.1.2.1",    // Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99", // Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",    // Explicit VR Big Endian (retired)
];

/// Deflated Explicit VR Little Endian: the one native syntax whose pixel data may take fewer bytes than it decodes to.
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
/// Deflate expands its input at most 1032-fold (RFC 1951: a 258-byte match in at most 2 bits), so a deflated file of
/// n bytes cannot hold more than 1032·n bytes of pixel data; a header claiming more is refused before allocating.
const DEFLATE_MAX_RATIO: u64 = 1032;
/// Patient coordinates beyond a kilometre (mm) are corrupt, and bounding them keeps every difference finite.
const MAX_POSITION_MM: f64 = 1e6;
/// Direction cosines must be unit and orthogonal to this tolerance.
const ORTHONORMAL_TOLERANCE: f64 = 1e-3;

/// The attributes of one slice that place it in the volume and turn its stored values into HU.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceHeader {
    /// Source file.
    pub path: PathBuf,
    /// Series Instance UID.
    pub series_uid: String,
    /// Study Instance UID, if present (a check scan belongs to the planning scan's study).
    pub study_uid: Option<String>,
    /// Frame of Reference UID, if present: scans of one frame of reference share patient coordinates.
    pub frame_of_reference_uid: Option<String>,
    /// ImagePositionPatient, mm (LPS).
    pub position: [f64; 3],
    /// ImageOrientationPatient: row direction then column direction.
    pub orientation: [f64; 6],
    /// PixelSpacing as DICOM lists it: [between rows, between columns], mm.
    pub pixel_spacing: [f64; 2],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub columns: usize,
    /// SliceThickness, mm, if present.
    pub thickness: Option<f64>,
    /// SpacingBetweenSlices, mm, if present.
    pub spacing_between: Option<f64>,
    /// RescaleSlope (1 if absent).
    pub slope: f64,
    /// RescaleIntercept (0 if absent).
    pub intercept: f64,
    /// BitsStored (≤ 16; 16 allocated).
    pub bits_stored: u32,
    /// PixelRepresentation 1: two's complement.
    pub signed: bool,
}

impl SliceHeader {
    /// Stored value → HU, rounded and clipped to i16.
    #[inline]
    fn hu(&self, v: u16) -> i16 {
        let shift = 16 - self.bits_stored;
        let stored = if self.signed {
            i32::from(((v << shift) as i16) >> shift)
        } else {
            i32::from((v << shift) >> shift)
        };
        (f64::from(stored) * self.slope + self.intercept)
            .round()
            .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
    }

    /// Reads the file again in full and writes its HU (column index fastest) into `out` (rows × columns values).
    pub fn decode_into(&self, out: &mut [i16]) -> Result<(), DicomError> {
        let bytes = read_file(&self.path)?;
        self.decode_from_bytes(&bytes, out)
    }

    /// As [`SliceHeader::decode_into`], from the file's bytes (the same bytes the header was read from).
    pub fn decode_from_bytes(&self, bytes: &[u8], out: &mut [i16]) -> Result<(), DicomError> {
        let obj = open_bytes(bytes, &self.path, None)?.ok_or_else(|| DicomError::Parse {
            path: p(&self.path),
            message: "no DICM magic after the 128-byte preamble".into(),
        })?;
        self.decode_object(obj, out)
    }

    fn decode_object(&self, mut obj: DefaultDicomObject, out: &mut [i16]) -> Result<(), DicomError> {
        let path = self.path.as_path();
        let n = self.rows * self.columns;
        let pixel = obj
            .take_element(tags::PIXEL_DATA)
            .map_err(|_| DicomError::MissingAttribute {
                path: p(path),
                attribute: "PixelData",
            })?;
        let value = pixel.into_value();
        let fast = self.signed && self.bits_stored == 16 && self.slope == 1.0 && self.intercept.fract() == 0.0;
        let icpt = self.intercept as i32;
        let clip = |h: i32| h.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        match (&value, out.len() == n) {
            (Value::Primitive(PrimitiveValue::U16(v)), true) if v.len() >= n => {
                if fast {
                    // The common case (int16, slope 1): one tight loop the compiler vectorises.
                    out.iter_mut()
                        .zip(&v[..n])
                        .for_each(|(o, &x)| *o = clip(i32::from(x as i16) + icpt));
                } else {
                    out.iter_mut().zip(&v[..n]).for_each(|(o, &x)| *o = self.hu(x));
                }
            }
            (Value::Primitive(PrimitiveValue::I16(v)), true) if v.len() >= n => {
                out.iter_mut().zip(&v[..n]).for_each(|(o, &x)| *o = self.hu(x as u16));
            }
            (Value::Primitive(PrimitiveValue::U8(b)), true) if b.len() >= 2 * n => {
                out.iter_mut()
                    .zip(b[..2 * n].chunks_exact(2))
                    .for_each(|(o, c)| *o = self.hu(u16::from_le_bytes([c[0], c[1]])));
            }
            _ => {
                return Err(DicomError::UnsupportedPixelFormat {
                    path: p(path),
                    detail: format!(
                        "pixel data holds {} values, {}×{} = {n} expected",
                        value
                            .primitive()
                            .map(|v| v.multiplicity().to_string())
                            .unwrap_or_else(|| "no native".into()),
                        self.rows,
                        self.columns
                    ),
                })
            }
        }
        Ok(())
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn floats(
    obj: &DefaultDicomObject,
    path: &Path,
    tag: Tag,
    name: &'static str,
    n: usize,
) -> Result<Vec<f64>, DicomError> {
    let elem = obj
        .element_opt(tag)
        .ok()
        .flatten()
        .ok_or_else(|| DicomError::MissingAttribute {
            path: p(path),
            attribute: name,
        })?;
    let v = elem.to_multi_float64().map_err(|e| DicomError::InvalidAttribute {
        path: p(path),
        attribute: name,
        value: e.to_string(),
    })?;
    if v.len() != n || v.iter().any(|x| !x.is_finite()) {
        return Err(DicomError::InvalidAttribute {
            path: p(path),
            attribute: name,
            value: format!("{v:?} ({n} values expected)"),
        });
    }
    Ok(v)
}

fn opt_float(obj: &DefaultDicomObject, path: &Path, tag: Tag, name: &'static str) -> Result<Option<f64>, DicomError> {
    match obj.element_opt(tag).ok().flatten() {
        None => Ok(None),
        Some(e)
            if e.to_str()
                .map(|t| t.trim_matches(['\0', ' ']).is_empty())
                .unwrap_or(false) =>
        {
            Ok(None)
        }
        Some(e) => e.to_float64().map(Some).map_err(|err| DicomError::InvalidAttribute {
            path: p(path),
            attribute: name,
            value: err.to_string(),
        }),
    }
}

fn uint(obj: &DefaultDicomObject, path: &Path, tag: Tag, name: &'static str) -> Result<u32, DicomError> {
    let elem = obj
        .element_opt(tag)
        .ok()
        .flatten()
        .ok_or_else(|| DicomError::MissingAttribute {
            path: p(path),
            attribute: name,
        })?;
    elem.to_int::<u32>().map_err(|e| DicomError::InvalidAttribute {
        path: p(path),
        attribute: name,
        value: e.to_string(),
    })
}

fn text(obj: &DefaultDicomObject, path: &Path, tag: Tag, name: &'static str) -> Result<String, DicomError> {
    let elem = obj
        .element_opt(tag)
        .ok()
        .flatten()
        .ok_or_else(|| DicomError::MissingAttribute {
            path: p(path),
            attribute: name,
        })?;
    let s = elem.to_str().map_err(|e| DicomError::InvalidAttribute {
        path: p(path),
        attribute: name,
        value: e.to_string(),
    })?;
    Ok(s.trim_end_matches(['\0', ' ']).trim().to_string())
}

/// An optional text attribute: absent or empty is `None`.
fn opt_text(obj: &DefaultDicomObject, path: &Path, tag: Tag, name: &'static str) -> Result<Option<String>, DicomError> {
    if obj.element_opt(tag).ok().flatten().is_none() {
        return Ok(None);
    }
    text(obj, path, tag, name).map(|s| Some(s).filter(|s| !s.is_empty()))
}

/// Reads one file's header (parsing stops at the pixel data). `Ok(None)` for a DICOM object that is not an image
/// (no Rows: a report, a DICOMDIR). Every value the import allocates from is checked here, before any allocation.
pub fn read_header(path: &Path) -> Result<Option<SliceHeader>, DicomError> {
    let bytes = read_file(path)?;
    if !has_dicom_magic(&bytes) {
        return Err(DicomError::Parse {
            path: p(path),
            message: "no DICM magic after the 128-byte preamble".into(),
        });
    }
    read_header_from_bytes(&bytes, path)
}

/// The whole file: the element lengths are checked against it before dicom-rs parses it (see `lengths`).
fn read_file(path: &Path) -> Result<Vec<u8>, DicomError> {
    std::fs::read(path).map_err(|source| DicomError::Io { path: p(path), source })
}

/// As [`read_header`], from a file's bytes (`label` names it in errors and becomes [`SliceHeader::path`]). `Ok(None)`
/// also for bytes without the DICOM Part 10 magic ("DICM" after the 128-byte preamble), as the folder reader skips them.
pub fn read_header_from_bytes(bytes: &[u8], label: &Path) -> Result<Option<SliceHeader>, DicomError> {
    match open_bytes(bytes, label, Some(tags::PIXEL_DATA))? {
        Some(obj) => header_from_object(&obj, label, bytes.len() as u64),
        None => Ok(None),
    }
}

/// Reads one slice from a file's bytes: its header and its HU (column index fastest). `Ok(None)` for bytes that are
/// not a DICOM image. The entry point the fuzzer drives; the folder reader goes through the same two steps.
pub fn decode_slice(bytes: &[u8], label: &Path) -> Result<Option<(SliceHeader, Vec<i16>)>, DicomError> {
    let Some(header) = read_header_from_bytes(bytes, label)? else {
        return Ok(None);
    };
    // Bounded: the header check tied rows × columns to the bytes given.
    let mut hu = vec![0; header.rows * header.columns];
    header.decode_from_bytes(bytes, &mut hu)?;
    Ok(Some((header, hu)))
}

/// True if `bytes` carry the DICOM Part 10 magic ("DICM" after the 128-byte preamble).
pub(crate) fn has_dicom_magic(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM".as_slice())
}

/// Parses a Part 10 file held in memory (`until`: stop before this tag). `Ok(None)` without the magic.
fn open_bytes(bytes: &[u8], label: &Path, until: Option<Tag>) -> Result<Option<DefaultDicomObject>, DicomError> {
    if !has_dicom_magic(bytes) {
        return Ok(None);
    }
    crate::lengths::check_lengths(bytes, label)?;
    let mut options = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    if let Some(tag) = until {
        options = options.read_until(tag);
    }
    options
        .from_reader(&bytes[128..])
        .map(Some)
        .map_err(|e| DicomError::Parse {
            path: p(label),
            message: e.to_string(),
        })
}

/// The header checks, on a parsed object; `file_bytes` is the size of the whole file.
fn header_from_object(
    obj: &DefaultDicomObject,
    path: &Path,
    file_bytes: u64,
) -> Result<Option<SliceHeader>, DicomError> {
    if obj.element_opt(tags::ROWS).ok().flatten().is_none() {
        return Ok(None);
    }
    let ts = obj.meta().transfer_syntax().to_string();
    if !NATIVE_SYNTAXES.contains(&ts.as_str()) {
        let name = TransferSyntaxRegistry
            .get(&ts)
            .map(|t| t.name().to_string())
            .unwrap_or_else(|| "unknown".into());
        return Err(DicomError::UnsupportedTransferSyntax {
            path: p(path),
            uid: ts,
            name,
        });
    }
    let modality = text(obj, path, tags::MODALITY, "Modality")?;
    if modality != "CT" {
        return Err(DicomError::NotCt {
            path: p(path),
            modality,
        });
    }
    let frames = match obj.element_opt(tags::NUMBER_OF_FRAMES).ok().flatten() {
        Some(e) => e.to_int::<u32>().map_err(|err| DicomError::InvalidAttribute {
            path: p(path),
            attribute: "NumberOfFrames",
            value: err.to_string(),
        })?,
        None => 1,
    };
    let samples = uint(obj, path, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?;
    let bits_allocated = uint(obj, path, tags::BITS_ALLOCATED, "BitsAllocated")?;
    let bits_stored = uint(obj, path, tags::BITS_STORED, "BitsStored")?;
    let signed = uint(obj, path, tags::PIXEL_REPRESENTATION, "PixelRepresentation")? == 1;
    if frames != 1 || samples != 1 || bits_allocated != 16 || !(1..=16).contains(&bits_stored) {
        return Err(DicomError::UnsupportedPixelFormat {
            path: p(path),
            detail: format!(
                "{frames} frames, {samples} samples/pixel, {bits_allocated} bits allocated, {bits_stored} stored \
                 (need 1 frame, 1 sample, 16 bits)"
            ),
        });
    }
    let rows = uint(obj, path, tags::ROWS, "Rows")? as usize;
    let columns = uint(obj, path, tags::COLUMNS, "Columns")? as usize;
    for (attribute, v) in [("Rows", rows), ("Columns", columns)] {
        if v == 0 {
            return Err(DicomError::InvalidAttribute {
                path: p(path),
                attribute,
                value: "0 (an image needs at least one pixel)".into(),
            });
        }
    }
    // The pixel data must fit in the file (deflated: in what the file can inflate to), so a header cannot make the
    // import allocate more than the input justifies.
    let needed_bytes = (rows as u64).saturating_mul(columns as u64).saturating_mul(2);
    let capacity = if ts == DEFLATED {
        file_bytes.saturating_mul(DEFLATE_MAX_RATIO)
    } else {
        file_bytes
    };
    if needed_bytes > capacity {
        return Err(DicomError::PixelDataTooShort {
            path: p(path),
            rows,
            columns,
            needed_bytes,
            file_bytes,
        });
    }
    let pos = floats(obj, path, tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient", 3)?;
    let ori = floats(obj, path, tags::IMAGE_ORIENTATION_PATIENT, "ImageOrientationPatient", 6)?;
    if pos.iter().any(|x| x.abs() > MAX_POSITION_MM) {
        return Err(DicomError::InvalidAttribute {
            path: p(path),
            attribute: "ImagePositionPatient",
            value: format!("{pos:?} mm (beyond ±{MAX_POSITION_MM} mm)"),
        });
    }
    let row = [ori[0], ori[1], ori[2]];
    let col = [ori[3], ori[4], ori[5]];
    let dot = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    if (dot(row, row).sqrt() - 1.0).abs() > ORTHONORMAL_TOLERANCE
        || (dot(col, col).sqrt() - 1.0).abs() > ORTHONORMAL_TOLERANCE
        || dot(row, col).abs() > ORTHONORMAL_TOLERANCE
    {
        return Err(DicomError::InvalidAttribute {
            path: p(path),
            attribute: "ImageOrientationPatient",
            value: format!("{ori:?} (cosines must be unit and orthogonal)"),
        });
    }
    let spacing = floats(obj, path, tags::PIXEL_SPACING, "PixelSpacing", 2)?;
    if spacing.iter().any(|s| *s <= 0.0) {
        return Err(DicomError::InvalidAttribute {
            path: p(path),
            attribute: "PixelSpacing",
            value: format!("{spacing:?}"),
        });
    }
    let slope = opt_float(obj, path, tags::RESCALE_SLOPE, "RescaleSlope")?.unwrap_or(1.0);
    let intercept = opt_float(obj, path, tags::RESCALE_INTERCEPT, "RescaleIntercept")?.unwrap_or(0.0);
    if slope == 0.0 || !slope.is_finite() {
        return Err(DicomError::InvalidAttribute {
            path: p(path),
            attribute: "RescaleSlope",
            value: format!("{slope} (must be finite and non-zero)"),
        });
    }
    if !intercept.is_finite() {
        return Err(DicomError::InvalidAttribute {
            path: p(path),
            attribute: "RescaleIntercept",
            value: format!("{intercept} (must be finite)"),
        });
    }
    let series_uid = text(obj, path, tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?;
    let study_uid = opt_text(obj, path, tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?;
    let frame_of_reference_uid = opt_text(obj, path, tags::FRAME_OF_REFERENCE_UID, "FrameOfReferenceUID")?;
    let thickness = opt_float(obj, path, tags::SLICE_THICKNESS, "SliceThickness")?;
    let spacing_between = opt_float(obj, path, tags::SPACING_BETWEEN_SLICES, "SpacingBetweenSlices")?;
    for (attribute, v) in [("SliceThickness", thickness), ("SpacingBetweenSlices", spacing_between)] {
        if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(DicomError::InvalidAttribute {
                path: p(path),
                attribute,
                value: format!("{v} mm (must be finite and > 0)"),
            });
        }
    }

    Ok(Some(SliceHeader {
        path: path.to_path_buf(),
        series_uid,
        study_uid,
        frame_of_reference_uid,
        position: [pos[0], pos[1], pos[2]],
        orientation: [ori[0], ori[1], ori[2], ori[3], ori[4], ori[5]],
        pixel_spacing: [spacing[0], spacing[1]],
        rows,
        columns,
        thickness,
        spacing_between,
        slope,
        intercept,
        bits_stored,
        signed,
    }))
}
