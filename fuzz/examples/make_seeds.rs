//! Writes the DICOM seeds: a small 40 × 32 × 6 CT series from the virtual scanner (a soft-tissue block and one bright
//! sphere): its first three slices into fuzz/series/ (the fixed slices of the `dicom_series` target), and seeds for
//! the `dicom_slice` and `dicom_series` corpora.
//! Run from fuzz/: `cargo run --example make_seeds`.

use std::path::Path;

use acus_sim_scanner::{scan, write_series, ScanProtocol, Scene, SeriesInfo, Shape};
use nalgebra::{Point3, Vector3};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut scene = Scene::new();
    scene.add(
        Shape::Ellipsoid {
            center: Point3::new(0.012, 0.010, 0.004),
            semi_axes: Vector3::new(0.01, 0.008, 0.02),
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
    let volume = scan(&scene, &protocol)?;
    let tmp = std::env::temp_dir().join(format!("acus-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let paths = write_series(&volume, &tmp, &SeriesInfo::new("fuzz seed", 3))?;
    // Name the slices in position order (the series reader sorts by position, not by name, either way).
    let mut sorted = Vec::new();
    for p in &paths {
        let h = acus_dicom::read_header(p)?.ok_or("seed slice is not an image")?;
        sorted.push((h.position[2], p.clone()));
    }
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    std::fs::create_dir_all(root.join("series"))?;
    // The dicom_series target's fixed slices: the first three.
    for (k, (_, p)) in sorted.iter().take(3).enumerate() {
        std::fs::copy(p, root.join("series").join(format!("slice_{k}.dcm")))?;
    }
    for k in [0, 3] {
        let bytes = std::fs::read(&sorted[k].1)?;
        std::fs::write(root.join("corpus/dicom_slice").join(format!("seed_slice_{k}.dcm")), &bytes)?;
    }
    // dicom_series inputs: the first byte picks the slice the rest replaces (high bit: added instead).
    let series_seed = |pick: u8, k: usize, name: &str| -> std::io::Result<()> {
        let mut input = vec![pick];
        input.extend_from_slice(&std::fs::read(&sorted[k].1)?);
        std::fs::write(root.join("corpus/dicom_series").join(name), input)
    };
    series_seed(0, 0, "seed_replace_0.bin")?;
    series_seed(0x80, 3, "extra_slice_3.bin")?;
    std::fs::remove_dir_all(&tmp)?;
    println!("wrote {} slices to {}", sorted.len(), root.join("series").display());
    Ok(())
}
