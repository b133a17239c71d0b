//! Shared by the check-scan tests: rendering a needle in tissue with the virtual scanner.
#![allow(dead_code)]

use acus_control::frames::{Ct, Point};
use acus_control::registration::CtVolume;
use acus_sim_needle::NeedleInTissue;
use acus_sim_scanner::{scan, NeedlePath, ScanProtocol, Scene, Shape, NEEDLE_HU, SOFT_TISSUE_HU};
use nalgebra::{Point3, Vector3};

/// 18 G needle radius.
pub const NEEDLE_RADIUS: f64 = 0.635e-3;

/// A check scan around the distal part of the needle: `back` metres of the tip path behind the tip and `ahead` metres
/// beyond it along the heading, plus `margin` all round; 0.7 mm pixels, slices `thickness` apart and thick, the grid
/// shifted by `phase` (fractions of a voxel).
pub struct CheckScan {
    pub back: f64,
    pub ahead: f64,
    pub margin: f64,
    pub thickness: f64,
    pub phase: Vector3<f64>,
    pub seed: u64,
}

impl CheckScan {
    pub fn new(thickness: f64, seed: u64) -> Self {
        Self {
            back: 0.045,
            ahead: 0.015,
            margin: 0.01,
            thickness,
            phase: Vector3::zeros(),
            seed,
        }
    }

    /// The protocol for this needle's current tip.
    pub fn protocol(&self, needle: &NeedleInTissue) -> ScanProtocol {
        let tip = needle.tip().coords;
        let path = needle.path();
        let mut lo = tip + needle.heading().into_inner() * self.ahead;
        let mut hi = lo;
        for p in path.iter().rev() {
            if (p.coords - tip).norm() > self.back {
                break;
            }
            lo = lo.inf(&p.coords);
            hi = hi.sup(&p.coords);
        }
        lo = lo.inf(&tip);
        hi = hi.sup(&tip);
        let m = Vector3::repeat(self.margin);
        let spacing = Vector3::new(0.7e-3, 0.7e-3, self.thickness);
        let lo = lo - m - self.phase.component_mul(&spacing);
        let mut protocol = ScanProtocol::covering(
            Point::new(lo),
            Point::new(hi + m),
            0.7e-3,
            self.thickness,
            self.thickness,
        );
        protocol.seed = self.seed;
        protocol
    }
}

/// Soft tissue everywhere in the field of view, an optional lesion, extra elements, then the needle on top.
pub fn scene(needle: &NeedleInTissue, lesion: Option<(Point<Ct>, f64)>, extra: &[(Shape, f64)]) -> Scene {
    let mut scene = Scene::new();
    let c = needle.guide().entry.coords;
    scene.add(Shape::Sphere { center: c, radius: 0.4 }, SOFT_TISSUE_HU);
    if let Some((centre, radius)) = lesion {
        scene.add(
            Shape::Sphere {
                center: centre.coords,
                radius,
            },
            70.0,
        );
    }
    for (shape, hu) in extra {
        scene.add(shape.clone(), *hu);
    }
    scene.add_needle_path(&NeedlePath {
        points: needle.shaft_polyline(0.03, 4e-3),
        radius: NEEDLE_RADIUS,
        hu: NEEDLE_HU,
    });
    scene
}

/// Renders the check scan.
pub fn check_scan(needle: &NeedleInTissue, scene: &Scene, how: &CheckScan) -> CtVolume {
    scan(scene, &how.protocol(needle)).unwrap()
}

/// RMS and max of a list of errors.
pub fn rms_max(errors: &[f64]) -> (f64, f64) {
    let rms = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    (rms, errors.iter().copied().fold(0.0, f64::max))
}

pub fn mm(p: &Point3<f64>) -> String {
    format!("({:.1}, {:.1}, {:.1}) mm", p.x * 1e3, p.y * 1e3, p.z * 1e3)
}
