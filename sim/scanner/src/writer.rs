//! Writing a `CtVolume` as a DICOM CT series: one CT Image Storage file per slice, explicit VR little endian,
//! signed 16-bit pixels with rescale intercept −1024 (slope 1), as clinical scanners export.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use acus_control::registration::CtVolume;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use nalgebra::Vector3;
use rayon::prelude::*;

use crate::ScannerError;

/// Stored value = HU − intercept.
const RESCALE_INTERCEPT: f64 = -1024.0;

/// Identity of the series written.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesInfo {
    /// Patient name (DICOM PN).
    pub patient_name: String,
    /// Patient ID.
    pub patient_id: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// Frame of Reference UID.
    pub frame_of_reference_uid: String,
    /// Series number.
    pub series_number: u32,
    /// Series description.
    pub description: String,
    /// Root of the per-slice SOP Instance UIDs (`<root>.<slice+1>`).
    pub instance_uid_root: String,
}

impl SeriesInfo {
    /// Fresh UIDs (2.25 + a 128-bit number from the clock, the process id and `salt`), for a phantom patient.
    pub fn new(description: &str, salt: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut state = (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ salt.rotate_left(17);
        let mut uid = || {
            let hi = splitmix(&mut state);
            let lo = splitmix(&mut state);
            format!("2.25.{}", (u128::from(hi) << 64) | u128::from(lo))
        };
        Self {
            patient_name: "Phantom^Acus".into(),
            patient_id: "ACUS-PHANTOM".into(),
            study_uid: uid(),
            series_uid: uid(),
            frame_of_reference_uid: uid(),
            series_number: 1,
            description: description.into(),
            instance_uid_root: uid(),
        }
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Decimal string (DICOM DS, ≤ 16 characters) of a value in mm.
fn ds(v: f64) -> String {
    let mut s = format!("{v:.6}");
    while s.len() > 16 || (s.contains('.') && (s.ends_with('0') || s.ends_with('.'))) {
        if s.ends_with('.') {
            s.pop();
            break;
        }
        s.pop();
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

fn strs(values: &[String]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().cloned().collect())
}

/// Writes the volume as `dir/slice_0001.dcm` … and returns the paths (slice order).
pub fn write_series(volume: &CtVolume, dir: &Path, info: &SeriesInfo) -> Result<Vec<PathBuf>, ScannerError> {
    std::fs::create_dir_all(dir).map_err(|source| ScannerError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let [nx, ny, nz] = volume.dims();
    let (Ok(columns), Ok(rows)) = (u16::try_from(nx), u16::try_from(ny)) else {
        return Err(ScannerError::InvalidProtocol(format!(
            "{nx}×{ny} pixels exceed DICOM's 65535 rows/columns"
        )));
    };
    let g = volume.geometry();
    let iop: Vec<String> = g.row_dir.iter().chain(g.col_dir.iter()).map(|c| ds(*c)).collect();
    let spacing = vec![ds(g.spacing.y * 1e3), ds(g.spacing.x * 1e3)];
    (0..nz)
        .into_par_iter()
        .map(|k| {
            let path = dir.join(format!("slice_{:04}.dcm", k + 1));
            let ipp = g.index_to_point(&Vector3::new(0.0, 0.0, k as f64)).coords * 1e3;
            let slice = &volume.hu()[k * nx * ny..(k + 1) * nx * ny];
            let mut bytes = Vec::with_capacity(slice.len() * 2);
            for &v in slice {
                let stored = (f64::from(v) - RESCALE_INTERCEPT).round().clamp(-32768.0, 32767.0) as i16;
                bytes.extend_from_slice(&stored.to_le_bytes());
            }
            let sop_uid = format!("{}.{}", info.instance_uid_root, k + 1);
            let el = |tag, vr, value: PrimitiveValue| DataElement::new(tag, vr, value);
            let s = |v: &str| PrimitiveValue::from(v);
            let obj = InMemDicomObject::from_element_iter([
                el(tags::SPECIFIC_CHARACTER_SET, VR::CS, s("ISO_IR 100")),
                el(
                    tags::IMAGE_TYPE,
                    VR::CS,
                    strs(&["ORIGINAL".into(), "PRIMARY".into(), "AXIAL".into()]),
                ),
                el(tags::SOP_CLASS_UID, VR::UI, s(uids::CT_IMAGE_STORAGE)),
                el(tags::SOP_INSTANCE_UID, VR::UI, s(&sop_uid)),
                el(tags::STUDY_DATE, VR::DA, s("20260101")),
                el(tags::STUDY_TIME, VR::TM, s("120000")),
                el(tags::ACCESSION_NUMBER, VR::SH, s("")),
                el(tags::MODALITY, VR::CS, s("CT")),
                el(tags::MANUFACTURER, VR::LO, s("acus virtual scanner")),
                el(tags::REFERRING_PHYSICIAN_NAME, VR::PN, s("")),
                el(tags::SERIES_DESCRIPTION, VR::LO, s(&info.description)),
                el(tags::PATIENT_NAME, VR::PN, s(&info.patient_name)),
                el(tags::PATIENT_ID, VR::LO, s(&info.patient_id)),
                el(tags::PATIENT_BIRTH_DATE, VR::DA, s("")),
                el(tags::PATIENT_SEX, VR::CS, s("O")),
                el(tags::SLICE_THICKNESS, VR::DS, s(&ds(g.slice_thickness * 1e3))),
                el(tags::KVP, VR::DS, s("120")),
                el(tags::SPACING_BETWEEN_SLICES, VR::DS, s(&ds(g.spacing.z * 1e3))),
                el(tags::PATIENT_POSITION, VR::CS, s("HFS")),
                el(tags::STUDY_INSTANCE_UID, VR::UI, s(&info.study_uid)),
                el(tags::SERIES_INSTANCE_UID, VR::UI, s(&info.series_uid)),
                el(tags::STUDY_ID, VR::SH, s("1")),
                el(tags::SERIES_NUMBER, VR::IS, s(&info.series_number.to_string())),
                el(tags::ACQUISITION_NUMBER, VR::IS, s("1")),
                el(tags::INSTANCE_NUMBER, VR::IS, s(&(k + 1).to_string())),
                el(
                    tags::IMAGE_POSITION_PATIENT,
                    VR::DS,
                    strs(&[ds(ipp.x), ds(ipp.y), ds(ipp.z)]),
                ),
                el(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, strs(&iop)),
                el(tags::FRAME_OF_REFERENCE_UID, VR::UI, s(&info.frame_of_reference_uid)),
                el(tags::POSITION_REFERENCE_INDICATOR, VR::LO, s("")),
                el(
                    tags::SLICE_LOCATION,
                    VR::DS,
                    s(&ds(ipp.coords.dot(&g.normal.into_inner()))),
                ),
                el(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
                el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2")),
                el(tags::ROWS, VR::US, PrimitiveValue::from(rows)),
                el(tags::COLUMNS, VR::US, PrimitiveValue::from(columns)),
                el(tags::PIXEL_SPACING, VR::DS, strs(&spacing)),
                el(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
                el(tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16)),
                el(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16)),
                el(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(1u16)),
                el(tags::WINDOW_CENTER, VR::DS, s("40")),
                el(tags::WINDOW_WIDTH, VR::DS, s("400")),
                el(tags::RESCALE_INTERCEPT, VR::DS, s(&ds(RESCALE_INTERCEPT))),
                el(tags::RESCALE_SLOPE, VR::DS, s("1")),
                el(tags::RESCALE_TYPE, VR::LO, s("HU")),
                el(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U8(bytes.into())),
            ]);
            let err = |message: String| ScannerError::Dicom {
                path: path.display().to_string(),
                message,
            };
            let file = obj
                .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
                .map_err(|e| err(e.to_string()))?;
            file.write_to_file(&path).map_err(|e| err(e.to_string()))?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ds;

    #[test]
    fn decimal_strings_fit_ds() {
        assert_eq!(ds(1.0), "1");
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(-1024.0), "-1024");
        assert_eq!(ds(0.7), "0.7");
        assert_eq!(ds(-123.4567891), "-123.456789");
        assert!(ds(-123456789.123456).len() <= 16);
    }
}
