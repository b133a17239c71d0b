//! The correction's fit of the rigid axis error against the needle's curvature, from the tips and shaft directions the
//! finder reports, for a straight needle tilted off the guide axis and for a bent one on it (guide along +z from the
//! origin, steps of 30 mm without a pivot between them).
//!
//! One check scan cannot tell a tilt from bending (tip and shaft direction fit a family of both; the priors split it);
//! two along the same axis can (a tilt moves the tip as `t·d`, bending as `κd²/2`).

use acus_control::frames::{Ct, Point};
use acus_control::needle::{plan_correction, AxisPrior, Correction, CorrectionInput, InsertionStep, ObservedShaft};
use nalgebra::{Unit, UnitQuaternion, Vector3};

const STEP: f64 = 0.03;
const SHAFT: f64 = 0.02;
const TIP_SIGMA: f64 = 0.1e-3;

/// The correction after `n` steps of `STEP` along +z; `path(s)` is the true needle point at arc length `s`.
fn correct(n: usize, path: &dyn Fn(f64) -> Vector3<f64>, target: Vector3<f64>, axis_prior: AxisPrior) -> Correction {
    let steps: Vec<InsertionStep> = (1..=n)
        .map(|i| {
            let d = STEP * i as f64;
            InsertionStep {
                holder: UnitQuaternion::identity(),
                length: STEP,
                observed_tip: Some(Point::<Ct>::new(path(d).into())),
                observed_shaft: Some(ObservedShaft {
                    direction: Unit::new_normalize(path(d) - path(d - SHAFT)),
                    length: SHAFT,
                    sigma: TIP_SIGMA / SHAFT,
                }),
            }
        })
        .collect();
    plan_correction(&CorrectionInput {
        entry: Point::xyz(0.0, 0.0, 0.0),
        target: Point::new(target.into()),
        steps: &steps,
        curvature_prior: 0.6,
        tip_sigma: TIP_SIGMA,
        axis_prior,
    })
    .unwrap()
}

/// A straight needle tilted by `tilt` (rad) off +z towards the azimuth `azimuth`.
fn tilted(tilt: f64, azimuth: f64) -> Vector3<f64> {
    Vector3::new(tilt.sin() * azimuth.cos(), tilt.sin() * azimuth.sin(), tilt.cos())
}

const NO_AXIS_ERROR: AxisPrior = AxisPrior {
    tilt: 1e-9,
    offset: 1e-12,
};

#[test]
fn a_rigid_tilt_is_removed_by_a_pivot_of_its_own_size() {
    for (tilt_deg, azimuth) in [(2.0_f64, 0.0_f64), (1.5, 2.0), (1.0, 4.0)] {
        let h = tilted(tilt_deg.to_radians(), azimuth);
        let path = |s: f64| h * s;
        // After two steps, the target straight ahead of the tip along the commanded axis: the pivot that reaches it (the
        // tip frame turns with the holder) undoes exactly the tilt.
        let target = path(2.0 * STEP) + Vector3::z() * 0.04;
        let c = correct(2, &path, target, AxisPrior::default());
        let c3 = correct(3, &path, path(3.0 * STEP) + Vector3::z() * 0.04, AxisPrior::default());
        println!(
            "{tilt_deg}°: 2 scans: pivot {:.2}°, κ {:.2} 1/m, tilt {:.2}°; 3 scans: pivot {:.2}°, κ {:.2} 1/m",
            c.pivot_angle.to_degrees(),
            c.curvature,
            c.axis_tilt.norm().to_degrees(),
            c3.pivot_angle.to_degrees(),
            c3.curvature
        );
        assert!(
            (c.pivot_angle.to_degrees() - tilt_deg).abs() < 0.6,
            "pivot {:.2}° for a {tilt_deg}° tilt",
            c.pivot_angle.to_degrees()
        );
        assert!(c.curvature < 0.3, "κ {:.2} 1/m for a straight needle", c.curvature);
        // A third scan settles it.
        assert!(
            (c3.pivot_angle.to_degrees() - tilt_deg).abs() < 0.3,
            "3 scans: pivot {:.2}°",
            c3.pivot_angle.to_degrees()
        );
        assert!(c3.curvature < 0.15, "3 scans: κ {:.2} 1/m", c3.curvature);
        // Without the axis model the same needle reads as bent.
        let old = correct(2, &path, target, NO_AXIS_ERROR);
        assert!(old.curvature > 0.5 * tilt_deg, "κ {:.2}", old.curvature);
    }
}

#[test]
fn one_scan_of_a_tilted_needle_gives_a_pivot_the_robot_can_make() {
    // The first check scan after 30 mm: the fit cannot yet separate tilt from bending, but the pivot stays near the
    // needed one, and far below the overshoot of a model that takes it all for bending.
    let t = 2.0_f64.to_radians();
    let h = tilted(t, 0.0);
    let path = |s: f64| h * s;
    let target = path(STEP) + Vector3::z() * 0.06;
    let c = correct(1, &path, target, AxisPrior::default());
    let old = correct(1, &path, target, NO_AXIS_ERROR);
    println!(
        "pivot {:.2}° (κ {:.2}), without the axis model {:.2}° (κ {:.2}), needed 2°",
        c.pivot_angle.to_degrees(),
        c.curvature,
        old.pivot_angle.to_degrees(),
        old.curvature
    );
    assert!((c.pivot_angle - t).abs() < 0.5 * (old.pivot_angle - t).abs());
    assert!(c.pivot_angle < 5.0_f64.to_radians());
    assert!(c.curvature < 1.0, "κ {:.2}", c.curvature);
}

#[test]
fn a_bent_needle_on_the_guide_axis_still_gives_its_curvature() {
    for (kappa, azimuth) in [(1.5_f64, 0.5_f64), (3.0, -2.0), (0.6, 1.0)] {
        let n = Vector3::new(azimuth.cos(), azimuth.sin(), 0.0);
        let path = |s: f64| Vector3::z() * ((kappa * s).sin() / kappa) + n * ((1.0 - (kappa * s).cos()) / kappa);
        let target = path(2.0 * STEP + 0.04);
        let c = correct(2, &path, target, AxisPrior::default());
        println!(
            "κ {kappa}: fitted κ {:.3} 1/m, tilt {:.3}°, offset {:.3} mm, pivot {:.3}°",
            c.curvature,
            c.axis_tilt.norm().to_degrees(),
            c.entry_offset.norm() * 1e3,
            c.pivot_angle.to_degrees()
        );
        assert!(
            (c.curvature - kappa).abs() < 0.15 * kappa,
            "κ {:.2} vs {kappa}",
            c.curvature
        );
        let k = c.curvature_holder;
        assert!(Vector3::new(k.x, k.y, 0.0).normalize().dot(&n) > 0.98);
        // What is left to the tilt (and to the pivot) is the prior's share, growing with κ.
        assert!(
            c.axis_tilt.norm() < (0.2 * kappa + 0.1).to_radians(),
            "tilt {:.2}°",
            c.axis_tilt.norm().to_degrees()
        );
        // The target lies on the needle's own arc: no pivot needed.
        assert!(
            c.pivot_angle < (0.25 * kappa + 0.1).to_radians(),
            "pivot {:.2}°",
            c.pivot_angle.to_degrees()
        );
    }
}
