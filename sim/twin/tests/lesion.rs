//! Finding the lesion again in a check scan: rendered lesions at random offsets from the previous estimate, with the
//! needle ending inside them, through the virtual scanner's partial volume and noise; and nothing found where there is
//! no lesion.

use acus_control::frames::Point;
use acus_control::lesion::{find_lesion, LesionError, LesionSearch};
use acus_sim_scanner::{scan, NeedlePath, ScanProtocol, Scene, Shape, NEEDLE_HU, SOFT_TISSUE_HU};
use nalgebra::{Point3, Vector3};
use rand::{RngExt, SeedableRng};

const RADIUS: f64 = 0.008;
const CONTRAST: f64 = 50.0;

fn check_scan(lesion: Option<Point3<f64>>, needle_tip: Point3<f64>, seed: u64) -> acus_control::registration::CtVolume {
    let mut scene = Scene::new();
    scene.add(
        Shape::Sphere {
            center: Point3::origin(),
            radius: 0.2,
        },
        SOFT_TISSUE_HU,
    );
    if let Some(c) = lesion {
        scene.add(
            Shape::Sphere {
                center: c,
                radius: RADIUS,
            },
            SOFT_TISSUE_HU + CONTRAST,
        );
    }
    let hub = needle_tip + Vector3::new(0.01, -0.06, 0.005);
    let points = vec![Point::new(hub), Point::new(needle_tip)];
    scene.add_needle_path(&NeedlePath {
        points,
        radius: 0.635e-3,
        hu: NEEDLE_HU,
    });
    let m = Vector3::repeat(0.025);
    let mut protocol = ScanProtocol::covering(
        Point::new(Point3::origin() - m),
        Point::new(Point3::origin() + m),
        0.7e-3,
        1e-3,
        1e-3,
    );
    protocol.noise_sigma_hu = 15.0;
    protocol.seed = seed;
    scan(&scene, &protocol).unwrap()
}

#[test]
fn lesion_found_within_a_third_of_a_millimetre_despite_the_needle_in_it() {
    let mut rng = rand_xorshift::XorShiftRng::seed_from_u64(7);
    let mut errors = Vec::new();
    for seed in 0..12 {
        // The lesion moved up to 4 mm from where it was last seen; the needle tip sits inside it.
        let shift = Vector3::from_fn(|_, _| rng.random::<f64>() * 2.0 - 1.0).normalize() * 0.004 * rng.random::<f64>();
        let centre = Point3::origin() + shift;
        let tip = centre + Vector3::new(0.0, 0.002, 0.0);
        let volume = check_scan(Some(centre), tip, seed);
        let found = find_lesion(&volume, &LesionSearch::new(Point::xyz(0.0, 0.0, 0.0), RADIUS, CONTRAST)).unwrap();
        errors.push((found.center.coords - centre).norm());
        assert!(
            (found.equivalent_radius - RADIUS).abs() < 1.0e-3,
            "radius {:.2} mm",
            found.equivalent_radius * 1e3
        );
    }
    let rms = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    let max = errors.iter().copied().fold(0.0, f64::max);
    println!(
        "lesion centre error over 12 scans: RMS {:.3} mm, max {:.3} mm",
        rms * 1e3,
        max * 1e3
    );
    assert!(max < 0.35e-3, "max {:.3} mm", max * 1e3);
}

#[test]
fn no_lesion_is_an_error_not_a_guess() {
    let volume = check_scan(None, Point3::new(0.0, 0.002, 0.0), 1);
    let err = find_lesion(&volume, &LesionSearch::new(Point::xyz(0.0, 0.0, 0.0), RADIUS, CONTRAST)).unwrap_err();
    assert!(matches!(err, LesionError::NotFound { .. }), "{err}");
}

#[test]
fn a_search_outside_the_scan_says_so() {
    let volume = check_scan(Some(Point3::origin()), Point3::new(0.0, 0.002, 0.0), 1);
    let err = find_lesion(&volume, &LesionSearch::new(Point::xyz(0.2, 0.0, 0.0), RADIUS, CONTRAST)).unwrap_err();
    assert!(matches!(err, LesionError::OutsideScan { .. }), "{err}");
}
