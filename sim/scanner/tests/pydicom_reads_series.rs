//! pydicom (an independent reader) loads the virtual scanner's series and agrees on geometry and HU.

use std::process::Command;

use acus_sim_scanner::{scan, write_series, ScanProtocol, Scene, SeriesInfo, Shape};
use nalgebra::{Point3, Vector3};

fn python() -> String {
    let venv = std::env::var("ACUS_VENV")
        .ok()
        .or_else(|| option_env!("ACUS_VENV").map(str::to_string))
        .expect("ACUS_VENV must point at the project venv (launch/setup.sh) holding pydicom and numpy");
    format!("{venv}/bin/python")
}

const SCRIPT: &str = r#"
import sys, glob, pydicom
from pydicom.uid import UID
files = sorted(glob.glob(sys.argv[1] + "/*.dcm"))
ds = sorted((pydicom.dcmread(f) for f in files), key=lambda d: int(d.InstanceNumber))
for d in ds:
    assert d.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1", d.file_meta.TransferSyntaxUID
    assert d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and d.Modality == "CT"
    for u in (d.SOPInstanceUID, d.SeriesInstanceUID, d.StudyInstanceUID, d.FrameOfReferenceUID):
        assert UID(u).is_valid, u
    assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
    hu = d.pixel_array.astype("float64") * float(d.RescaleSlope) + float(d.RescaleIntercept)
    vals = list(d.ImagePositionPatient) + list(d.ImageOrientationPatient) + list(d.PixelSpacing) + [d.SliceThickness]
    print(d.Rows, d.Columns, " ".join(repr(float(v)) for v in vals))
    print(" ".join(str(int(v)) for v in hu.ravel()))
print(len({d.SeriesInstanceUID for d in ds}), len({d.SOPInstanceUID for d in ds}))
"#;

#[test]
fn pydicom_agrees_on_geometry_and_hu() {
    let mut scene = Scene::new();
    scene.add(
        Shape::EllipticCylinder {
            center: Point3::new(0.01, 0.01, 0.0),
            semi_x: 0.008,
            semi_y: 0.006,
            half_length: 0.1,
        },
        40.0,
    );
    scene.add(
        Shape::Sphere {
            center: Point3::new(0.012, 0.009, 0.002),
            radius: 0.002,
        },
        2500.0,
    );
    let mut protocol = ScanProtocol::covering(
        acus_control::frames::Point::xyz(-0.002, 0.001, -0.003),
        acus_control::frames::Point::xyz(0.024, 0.019, 0.006),
        0.65e-3,
        1.5e-3,
        2.0e-3,
    );
    protocol.noise_sigma_hu = 20.0;
    let volume = scan(&scene, &protocol).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_series(&volume, dir.path(), &SeriesInfo::new("pydicom interop", 9)).unwrap();

    let out = Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(dir.path())
        .output()
        .expect("spawn python");
    assert!(
        out.status.success(),
        "pydicom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let [nx, ny, nz] = volume.dims();
    assert_eq!(lines.len(), 2 * nz + 1);
    assert_eq!(lines[2 * nz], format!("1 {nz}"), "one series, distinct SOP instances");
    let g = volume.geometry();
    for k in 0..nz {
        let head: Vec<f64> = lines[2 * k].split_whitespace().map(|v| v.parse().unwrap()).collect();
        assert_eq!((head[0] as usize, head[1] as usize), (ny, nx));
        let ipp = Vector3::new(head[2], head[3], head[4]) * 1e-3;
        assert!(
            (ipp - volume.voxel_center(0, 0, k).coords.coords).norm() < 1e-9,
            "slice {k} position"
        );
        let iop = Vector3::new(head[5], head[6], head[7]);
        let iop_col = Vector3::new(head[8], head[9], head[10]);
        assert!((iop - g.row_dir.into_inner()).norm() < 1e-9 && (iop_col - g.col_dir.into_inner()).norm() < 1e-9);
        assert!((head[11] * 1e-3 - g.spacing.y).abs() < 1e-12 && (head[12] * 1e-3 - g.spacing.x).abs() < 1e-12);
        assert!((head[13] * 1e-3 - g.slice_thickness).abs() < 1e-12);
        let hu: Vec<i16> = lines[2 * k + 1]
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(&hu[..], &volume.hu()[k * nx * ny..(k + 1) * nx * ny], "slice {k} HU");
    }
    // The phantom is in the image: a sphere voxel near 2500 HU, air at −1000.
    assert!(volume.hu().iter().any(|&v| v > 2000) && volume.hu().iter().any(|&v| v < -900));
}
