//! Real files in temp dirs: a good series from the virtual scanner round-trips exactly, and each kind of bad series
//! gets its own error.

use std::path::{Path, PathBuf};

use acus_control::registration::CtVolume;
use acus_dicom::{read_ct_series, DicomError};
use acus_sim_scanner::{scan, write_series, ScanProtocol, Scene, SeriesInfo, Shape};
use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use nalgebra::Point3;

/// A small 40×32×6 series (0.7 mm pixels, 1.25 mm slices) with a bright sphere and a soft-tissue block.
fn good_series(dir: &Path) -> (CtVolume, Vec<PathBuf>) {
    let mut scene = Scene::new();
    scene.add(
        Shape::Ellipsoid {
            center: Point3::new(0.012, 0.010, 0.004),
            semi_axes: nalgebra::Vector3::new(0.01, 0.008, 0.02),
        },
        40.0,
    );
    scene.add(
        Shape::Sphere {
            center: Point3::new(0.014, 0.011, 0.003),
            radius: 0.002,
        },
        2500.0,
    );
    let mut protocol = ScanProtocol::covering(
        acus_control::frames::Point::xyz(0.0, 0.0, 0.0),
        acus_control::frames::Point::xyz(0.0273, 0.0217, 0.00625),
        0.7e-3,
        1.25e-3,
        1.25e-3,
    );
    protocol.noise_sigma_hu = 12.0;
    let volume = scan(&scene, &protocol).unwrap();
    assert_eq!(volume.dims(), [40, 32, 6]);
    let paths = write_series(&volume, dir, &SeriesInfo::new("test", 3)).unwrap();
    (volume, paths)
}

fn edit(path: &Path, element: DataElement<dicom_object::mem::InMemDicomObject>) {
    let mut obj = dicom_object::open_file(path).unwrap();
    obj.put(element);
    obj.write_to_file(path).unwrap();
}

fn ds(values: &[&str]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|s| s.to_string()).collect())
}

#[test]
fn good_series_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (written, paths) = good_series(dir.path());
    // A non-DICOM file beside the series is skipped, not an error.
    std::fs::write(dir.path().join("README.txt"), "not dicom").unwrap();
    let (read, report) = read_ct_series(dir.path()).unwrap();
    assert_eq!(report.slices, paths.len());
    assert_eq!(report.skipped, 1);
    assert_eq!(read.dims(), written.dims());
    assert_eq!(read.hu(), written.hu());
    let (a, b) = (read.geometry(), written.geometry());
    assert!(a.origin.distance(&b.origin) < 1e-9);
    assert!((a.spacing - b.spacing).norm() < 1e-12);
    assert!((a.slice_thickness - b.slice_thickness).abs() < 1e-12);
    assert!((a.normal.into_inner() - b.normal.into_inner()).norm() < 1e-12);
}

#[test]
fn slices_are_sorted_by_position_not_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (written, paths) = good_series(dir.path());
    // Rename so that name order is the reverse of position order.
    let n = paths.len();
    for (k, p) in paths.iter().enumerate() {
        std::fs::rename(p, dir.path().join(format!("x{:02}", n - k))).unwrap();
    }
    let (read, _) = read_ct_series(dir.path()).unwrap();
    assert_eq!(read.hu(), written.hu());
}

#[test]
fn empty_folder_has_no_images() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "nothing here").unwrap();
    let err = read_ct_series(dir.path()).unwrap_err();
    assert!(matches!(err, DicomError::NoImages { skipped: 1, .. }), "{err}");
}

#[test]
fn mixed_series_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = good_series(dir.path());
    edit(
        &paths[2],
        DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, PrimitiveValue::from("2.25.12345")),
    );
    let err = read_ct_series(dir.path()).unwrap_err();
    match &err {
        DicomError::MixedSeries { count_a, count_b, .. } => assert_eq!(count_a + count_b, paths.len()),
        other => panic!("expected MixedSeries, got {other}"),
    }
    assert!(err.to_string().contains("2.25.12345"), "{err}");
}

#[test]
fn mixed_orientation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = good_series(dir.path());
    // Rotate slice 3 by 5° about z.
    let (c, s) = (5f64.to_radians().cos(), 5f64.to_radians().sin());
    let iop = [
        format!("{c:.6}"),
        format!("{s:.6}"),
        "0".into(),
        format!("{:.6}", -s),
        format!("{c:.6}"),
        "0".into(),
    ];
    let refs: Vec<&str> = iop.iter().map(String::as_str).collect();
    edit(
        &paths[3],
        DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds(&refs)),
    );
    let err = read_ct_series(dir.path()).unwrap_err();
    match err {
        DicomError::MixedOrientation { angle_deg, .. } => assert!((angle_deg - 5.0).abs() < 0.01, "{angle_deg}"),
        other => panic!("expected MixedOrientation, got {other}"),
    }
}

#[test]
fn missing_slice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = good_series(dir.path());
    std::fs::remove_file(&paths[2]).unwrap();
    let err = read_ct_series(dir.path()).unwrap_err();
    match err {
        DicomError::MissingSlices {
            missing,
            from_mm,
            to_mm,
            spacing_mm,
        } => {
            assert_eq!(missing, 1);
            assert!((spacing_mm - 1.25).abs() < 1e-6 && (to_mm - from_mm - 2.5).abs() < 1e-6);
        }
        other => panic!("expected MissingSlices, got {other}"),
    }
}

#[test]
fn duplicated_slice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = good_series(dir.path());
    let copy = dir.path().join("copy.dcm");
    std::fs::copy(&paths[1], &copy).unwrap();
    edit(
        &copy,
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from("2.25.999")),
    );
    let err = read_ct_series(dir.path()).unwrap_err();
    assert!(matches!(err, DicomError::DuplicateSlice { .. }), "{err}");
}

#[test]
fn non_uniform_spacing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (volume, paths) = good_series(dir.path());
    let z = volume.voxel_center(0, 0, 3).coords * 1e3;
    let moved = [
        format!("{:.6}", z.x),
        format!("{:.6}", z.y),
        format!("{:.6}", z.z + 0.4),
    ];
    let refs: Vec<&str> = moved.iter().map(String::as_str).collect();
    edit(
        &paths[3],
        DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&refs)),
    );
    let err = read_ct_series(dir.path()).unwrap_err();
    match err {
        DicomError::NonUniformSpacing { gap_mm, spacing_mm, .. } => {
            assert!((spacing_mm - 1.25).abs() < 1e-6);
            assert!((gap_mm - 1.65).abs() < 1e-6 || (gap_mm - 0.85).abs() < 1e-6, "{gap_mm}");
        }
        other => panic!("expected NonUniformSpacing, got {other}"),
    }
}

#[test]
fn compressed_transfer_syntax_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = good_series(dir.path());
    let obj = dicom_object::open_file(&paths[0]).unwrap().into_inner();
    let mut obj = obj;
    let fragments = PixelFragmentSequence::new(Vec::<u32>::new(), vec![vec![0xFFu8, 0x4F, 0xFF, 0x51]]);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, fragments));
    let file = obj
        .with_meta(dicom_object::FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.4.90"))
        .unwrap();
    file.write_to_file(&paths[0]).unwrap();
    let err = read_ct_series(dir.path()).unwrap_err();
    match &err {
        DicomError::UnsupportedTransferSyntax { uid, name, .. } => {
            assert_eq!(uid, "1.2.840.10008.1.2.4.90");
            assert!(name.contains("JPEG 2000"), "{name}");
        }
        other => panic!("expected UnsupportedTransferSyntax, got {other}"),
    }
}

#[test]
fn non_ct_modality_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = good_series(dir.path());
    edit(
        &paths[4],
        DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("MR")),
    );
    let err = read_ct_series(dir.path()).unwrap_err();
    assert!(
        matches!(&err, DicomError::NotCt { modality, .. } if modality == "MR"),
        "{err}"
    );
}

/// Puts `element` into every slice.
fn edit_all(paths: &[PathBuf], element: DataElement<dicom_object::mem::InMemDicomObject>) {
    for p in paths {
        edit(p, element.clone());
    }
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

#[test]
fn zero_rows_or_columns_are_refused_naming_the_file() {
    for (tag, attr) in [(tags::ROWS, "Rows"), (tags::COLUMNS, "Columns")] {
        let dir = tempfile::tempdir().unwrap();
        let (_, paths) = good_series(dir.path());
        // Every slice agrees, so only the header check stands between this series and a zero-sized allocation.
        edit_all(&paths, DataElement::new(tag, VR::US, PrimitiveValue::from(0u16)));
        let err = read_ct_series(dir.path()).unwrap_err();
        match &err {
            DicomError::InvalidAttribute { path, attribute, .. } => {
                assert_eq!(*attribute, attr);
                assert!(names(&paths).contains(path), "{path}");
            }
            other => panic!("expected InvalidAttribute {attr}, got {other}"),
        }
        assert!(err.to_string().contains(attr), "{err}");
    }
}

#[test]
fn header_claiming_more_pixels_than_the_file_holds_is_refused_before_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = good_series(dir.path());
    // 30000 × 30000 × 6 slices: 10.8 GB the files do not hold.
    edit_all(
        &paths,
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(30000u16)),
    );
    edit_all(
        &paths,
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(30000u16)),
    );
    let err = read_ct_series(dir.path()).unwrap_err();
    match &err {
        DicomError::PixelDataTooShort {
            path,
            rows,
            columns,
            needed_bytes,
            file_bytes,
        } => {
            assert_eq!((*rows, *columns), (30000, 30000));
            assert_eq!(*needed_bytes, 30000 * 30000 * 2);
            assert!(*file_bytes < 10_000, "{file_bytes}");
            assert!(names(&paths).contains(path), "{path}");
        }
        other => panic!("expected PixelDataTooShort, got {other}"),
    }
    // The same from bytes.
    let files: Vec<(PathBuf, Vec<u8>)> = paths.iter().map(|p| (p.clone(), std::fs::read(p).unwrap())).collect();
    let refs: Vec<(PathBuf, &[u8])> = files.iter().map(|(p, b)| (p.clone(), b.as_slice())).collect();
    let err = acus_dicom::read_ct_buffers(&refs, "memory", None, Vec::new()).unwrap_err();
    assert!(matches!(err, DicomError::PixelDataTooShort { .. }), "{err}");
}

#[test]
fn bad_spacing_values_are_refused_by_name() {
    let cases: [(dicom_core::Tag, &[&str], &str); 4] = [
        (tags::PIXEL_SPACING, &["0", "0.7"], "PixelSpacing"),
        (tags::PIXEL_SPACING, &["NaN", "0.7"], "PixelSpacing"),
        (tags::SLICE_THICKNESS, &["-1.25"], "SliceThickness"),
        (tags::SPACING_BETWEEN_SLICES, &["inf"], "SpacingBetweenSlices"),
    ];
    for (tag, value, attr) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (_, paths) = good_series(dir.path());
        edit_all(&paths, DataElement::new(tag, VR::DS, ds(value)));
        let err = read_ct_series(dir.path()).unwrap_err();
        match &err {
            DicomError::InvalidAttribute { attribute, path, .. } => {
                assert_eq!(*attribute, attr, "{err}");
                assert!(names(&paths).contains(path), "{path}");
            }
            other => panic!("{attr} {value:?}: expected InvalidAttribute, got {other}"),
        }
    }
}

#[test]
fn non_orthonormal_orientation_of_any_slice_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = good_series(dir.path());
    // Slice 3's column cosine is 0.57° off orthogonal to its row cosine: refused by its own header check, naming it.
    edit(
        &paths[3],
        DataElement::new(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            ds(&["1", "0", "0", "0.01", "1", "0"]),
        ),
    );
    let err = read_ct_series(dir.path()).unwrap_err();
    match &err {
        DicomError::InvalidAttribute { attribute, path, .. } => {
            assert_eq!(*attribute, "ImageOrientationPatient");
            assert_eq!(*path, paths[3].display().to_string());
        }
        other => panic!("expected InvalidAttribute ImageOrientationPatient, got {other}"),
    }
}

#[test]
fn absurd_position_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = good_series(dir.path());
    edit(
        &paths[1],
        DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&["0", "0", "1e300"])),
    );
    let err = read_ct_series(dir.path()).unwrap_err();
    assert!(
        matches!(&err, DicomError::InvalidAttribute { attribute: "ImagePositionPatient", path, .. } if *path == paths[1].display().to_string()),
        "{err}"
    );
}

#[test]
fn bytes_entry_points_read_what_the_folder_reader_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (written, paths) = good_series(dir.path());
    let files: Vec<(PathBuf, Vec<u8>)> = paths.iter().map(|p| (p.clone(), std::fs::read(p).unwrap())).collect();
    let mut refs: Vec<(PathBuf, &[u8])> = files.iter().map(|(p, b)| (p.clone(), b.as_slice())).collect();
    refs.push((PathBuf::from("notes.txt"), b"not dicom".as_slice()));
    let (read, report) = acus_dicom::read_ct_buffers(&refs, "memory", None, Vec::new()).unwrap();
    assert_eq!(read.hu(), written.hu());
    assert_eq!((report.slices, report.skipped), (paths.len(), 1));
    // One slice on its own: the same HU as its plane of the volume (slices are written in position order).
    let (header, hu) = acus_dicom::decode_slice(&files[2].1, &files[2].0).unwrap().unwrap();
    let plane = header.rows * header.columns;
    assert_eq!(hu.as_slice(), &written.hu()[2 * plane..3 * plane]);
    assert!(acus_dicom::decode_slice(b"short", std::path::Path::new("x"))
        .unwrap()
        .is_none());
}
