//! The detector on hand-built volumes: a sampled sphere is found at its centre, a needle-like line and a large bone
//! block are rejected by size and shape, the seeded path agrees with the full scan, and bad seeds are refused.

use acus_control::frames::Point;
use acus_control::registration::{
    detect_spheres, detect_spheres_seeded, BrightVoxels, CtVolume, DetectionParams, DetectionWorkspace,
    RegistrationError, Rejection, VolumeGeometry,
};
use nalgebra::Vector3;

const N: usize = 48;
const H: f64 = 0.5e-3; // isotropic 0.5 mm voxels

/// Air with: a Ø 4 mm sphere (partial volume by 8³ supersampling) at a sub-voxel centre, a 0.6 mm line of "metal"
/// along x, and a 9 × 9 × 9 mm bone block.
fn volume(center_mm: Vector3<f64>) -> CtVolume {
    let geometry = VolumeGeometry::axial(Point::xyz(0.0, 0.0, 0.0), Vector3::repeat(H), H);
    let mut hu = vec![-1000i16; N * N * N];
    let s = 8;
    for k in 0..N {
        for j in 0..N {
            for i in 0..N {
                let centre = Vector3::new(i as f64, j as f64, k as f64) * H * 1e3;
                let d = (centre - center_mm).norm() - 2.0;
                let mut inside = if d < 0.0 { s * s * s } else { 0 };
                // Supersample only voxels the surface may cross (half-diagonal 0.433 mm).
                for a in (0..s * s * s).filter(|_| d.abs() <= 0.45) {
                    if a == 0 {
                        inside = 0;
                    }
                    let o = Vector3::new((a % s) as f64, ((a / s) % s) as f64, (a / (s * s)) as f64);
                    let p = (Vector3::new(i as f64, j as f64, k as f64) + (o + Vector3::repeat(0.5)) / s as f64
                        - Vector3::repeat(0.5))
                        * H
                        * 1e3;
                    if (p - center_mm).norm() <= 2.0 {
                        inside += 1;
                    }
                }
                let frac = inside as f64 / (s * s * s) as f64;
                let mut v = -1000.0 + frac * 3500.0;
                if j == 40 && k == 40 && (3..45).contains(&i) {
                    v = 3000.0; // needle
                }
                if (2..20).contains(&i) && (2..20).contains(&j) && (30..46).contains(&k) {
                    v = 1100.0; // bone
                }
                hu[(k * N + j) * N + i] = v.round() as i16;
            }
        }
    }
    CtVolume::new([N, N, N], hu, geometry).unwrap()
}

#[test]
fn finds_the_sphere_and_rejects_needle_and_bone() {
    let c = Vector3::new(12.13, 11.71, 9.37);
    let vol = volume(c);
    let params = DetectionParams::for_radius(0.002);
    let mut ws = DetectionWorkspace::new();
    let found = detect_spheres(&vol, &params, &mut ws).unwrap();
    assert_eq!(found.spheres.len(), 1, "{:?}", found.rejected);
    let err = (found.spheres[0].center.coords.coords * 1e3 - c).norm();
    assert!(err < 0.02, "sphere centre off by {err:.4} mm");
    assert_eq!(
        found
            .rejected
            .iter()
            .filter(|r| matches!(r, Rejection::TooLarge { .. }))
            .count(),
        2
    );

    let bright = BrightVoxels::scan(&vol, params.threshold_hu);
    let seeded = detect_spheres_seeded(&vol, &params, &bright, &mut ws).unwrap();
    assert_eq!(seeded.spheres, found.spheres);
}

#[test]
fn seeds_made_at_a_higher_threshold_are_refused() {
    let vol = volume(Vector3::new(12.0, 12.0, 12.0));
    let params = DetectionParams::for_radius(0.002);
    let bright = BrightVoxels::scan(&vol, 1000);
    let err = detect_spheres_seeded(&vol, &params, &bright, &mut DetectionWorkspace::new()).unwrap_err();
    assert!(matches!(err, RegistrationError::InvalidParameter(_)), "{err}");
    let out_of_range = BrightVoxels {
        threshold_hu: 0,
        indices: vec![(N * N * N) as u32],
    };
    assert!(detect_spheres_seeded(&vol, &params, &out_of_range, &mut DetectionWorkspace::new()).is_err());
}
