//! acus imports pydicom's own CT_small.dcm (from the pydicom wheel) and agrees with pydicom on geometry and HU.

use std::process::Command;

fn python() -> String {
    let venv = std::env::var("ACUS_VENV")
        .ok()
        .or_else(|| option_env!("ACUS_VENV").map(str::to_string))
        .expect("ACUS_VENV must point at the project venv (launch/setup.sh) holding pydicom and numpy");
    format!("{venv}/bin/python")
}

const SCRIPT: &str = r#"
import sys, pydicom
from pydicom.data import get_testdata_file
path = get_testdata_file("CT_small.dcm")
d = pydicom.dcmread(path)
hu = d.pixel_array.astype("float64") * float(d.RescaleSlope) + float(d.RescaleIntercept)
print(path)
print(" ".join(repr(float(v)) for v in list(d.ImagePositionPatient) + list(d.ImageOrientationPatient) + list(d.PixelSpacing) + [d.SliceThickness]))
print(d.Rows, d.Columns)
print(" ".join(str(int(v)) for v in hu.ravel()))
"#;

#[test]
fn imports_pydicom_ct_small_with_pydicoms_geometry_and_values() {
    let out = Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .output()
        .expect("spawn python");
    assert!(
        out.status.success(),
        "pydicom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let path = lines.next().unwrap();
    let g: Vec<f64> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let rc: Vec<usize> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let hu: Vec<i16> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(path, dir.path().join("CT_small.dcm")).unwrap();
    let (vol, report) = acus_dicom::read_ct_series(dir.path()).unwrap();
    assert_eq!(report.slices, 1);
    assert_eq!(vol.dims(), [rc[1], rc[0], 1]);
    let geo = vol.geometry();
    for a in 0..3 {
        assert!((geo.origin.coords[a] * 1e3 - g[a]).abs() < 1e-9, "IPP[{a}]");
        assert!((geo.row_dir[a] - g[3 + a]).abs() < 1e-9, "row cosine {a}");
        assert!((geo.col_dir[a] - g[6 + a]).abs() < 1e-9, "column cosine {a}");
    }
    // PixelSpacing = [row spacing, column spacing]: column spacing is the step along a row (i).
    assert!((geo.spacing.x * 1e3 - g[10]).abs() < 1e-9 && (geo.spacing.y * 1e3 - g[9]).abs() < 1e-9);
    assert!((geo.slice_thickness * 1e3 - g[11]).abs() < 1e-9);
    assert_eq!(
        vol.hu(),
        &hu[..],
        "HU differ from pydicom's pixel_array·slope + intercept"
    );
    // Voxel (i, j) = (5, 7) lies 5 column steps along the row and 7 row steps down the column.
    let p = vol.voxel_center(5, 7, 0).coords * 1e3;
    assert!((p.x - (g[0] + 5.0 * g[10])).abs() < 1e-9 && (p.y - (g[1] + 7.0 * g[9])).abs() < 1e-9);
}
