//! The simulated CT-guided biopsy, pure (no ROS): the robot's own kinematics (URDF) aligns the guide on entry→target,
//! the needle–tissue model inserts in 4 steps, the virtual scanner takes a check scan after each, acus finds the tip and
//! re-aims the guide about the entry. Final tip-to-target error over 20 seeds, against the same insertions without
//! correction.

mod common;

use acus_control::frames::{Ct, Point, RobotBase, Transform};
use acus_control::kinematics::{NeedleRequest, PositionerModel};
use acus_control::needle::{
    find_needle, plan_correction, AxisPrior, CorrectionInput, InsertionStep, NeedleSearch, ObservedShaft,
};
use acus_sim_needle::{GuidePose, NeedleInTissue, TissueModel};
use acus_sim_scanner::{scan, NeedlePath, Scene, Shape, NEEDLE_HU, SOFT_TISSUE_HU};
use common::{CheckScan, NEEDLE_RADIUS};
use nalgebra::{Isometry3, Matrix3, Rotation3, Translation3, Unit, UnitQuaternion, Vector3};
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

const STEPS: usize = 4;
/// 1σ per axis of re-marking the (moved) lesion centre on each check scan.
const TARGET_SIGMA: f64 = 0.25e-3;

struct Robot {
    model: PositionerModel,
    t_ct_robot: Transform<Ct, RobotBase>,
}

impl Robot {
    fn new() -> Self {
        let model = PositionerModel::from_urdf_str(include_str!("../../../urdf/positioner.urdf")).unwrap();
        // Robot base on the table: robot x along the patient (CT +z), robot y across (CT −x), robot up = anterior (CT −y).
        let r = Rotation3::from_matrix_unchecked(Matrix3::from_columns(&[
            Vector3::new(0.0, 0.0, 1.0),
            Vector3::new(-1.0, 0.0, 0.0),
            Vector3::new(0.0, -1.0, 0.0),
        ]));
        let iso = Isometry3::from_parts(
            Translation3::new(0.31, 0.25, -0.02),
            UnitQuaternion::from_rotation_matrix(&r),
        );
        Self {
            model,
            t_ct_robot: Transform::from_isometry(iso),
        }
    }

    /// The guide pose (CT) after aligning the RCM on `entry` with the needle along `direction` (CT): IK, then FK.
    fn align(&self, entry: &Point<Ct>, direction: &Unit<Vector3<f64>>) -> GuidePose {
        let t_robot_ct = self.t_ct_robot.inverse();
        let entry_r = t_robot_ct.apply(entry);
        let aim = Point::<RobotBase>::new(entry_r.coords + t_robot_ct.apply_vector(direction) * 0.1);
        let q = self
            .model
            .solve_needle(&NeedleRequest {
                entry: entry_r,
                target: aim,
            })
            .unwrap();
        let state = self.model.forward(&q);
        let holder = self.t_ct_robot.isometry().rotation * state.tip_orientation;
        let guide = GuidePose {
            entry: self.t_ct_robot.apply(&state.rcm),
            holder,
        };
        assert!((guide.direction().into_inner() - direction.into_inner()).norm() < 1e-9);
        guide
    }
}

struct Case {
    entry: Point<Ct>,
    target: Point<Ct>,
    model: TissueModel,
}

fn case(robot: &Robot, seed: u64) -> Case {
    let mut rng = rand_xorshift::XorShiftRng::seed_from_u64(seed);
    let entry_r = Point::<RobotBase>::xyz(
        0.06 * (rng.random::<f64>() - 0.5),
        0.30 + 0.06 * (rng.random::<f64>() - 0.5),
        0.20 + 0.02 * rng.random::<f64>(),
    );
    // Needle within 25° of straight down, 80–120 mm deep.
    let tilt = 25f64.to_radians() * rng.random::<f64>().sqrt();
    // Yaw ±60°: the tilt leans towards ±y (robot), within 50° of it.
    let side = if rng.random::<f64>() < 0.5 { 90f64 } else { -90f64 };
    let azimuth = (side + 100.0 * (rng.random::<f64>() - 0.5)).to_radians();
    let down = Vector3::new(tilt.sin() * azimuth.cos(), tilt.sin() * azimuth.sin(), -tilt.cos());
    let depth = 0.08 + 0.04 * rng.random::<f64>();
    let target_r = Point::<RobotBase>::new(entry_r.coords + down * depth);
    let model = TissueModel {
        seed,
        bevel_angle: std::f64::consts::TAU * rng.random::<f64>(),
        ..TissueModel::default()
    };
    Case {
        entry: robot.t_ct_robot.apply(&entry_r),
        target: robot.t_ct_robot.apply(&target_r),
        model,
    }
}

/// Tissue whose surface passes through the entry (so the shaft behind it is in air), the lesion, the needle.
fn scene(needle: &NeedleInTissue, surface_normal: &Unit<Vector3<f64>>) -> Scene {
    let mut scene = Scene::new();
    let centre = needle.guide().entry.coords + surface_normal.into_inner() * 0.4;
    scene.add(
        Shape::Sphere {
            center: centre,
            radius: 0.4,
        },
        SOFT_TISSUE_HU,
    );
    scene.add(
        Shape::Sphere {
            center: needle.target().coords,
            radius: 0.008,
        },
        70.0,
    );
    scene.add_needle_path(&NeedlePath {
        points: needle.shaft_polyline(0.03, 4e-3),
        radius: NEEDLE_RADIUS,
        hu: NEEDLE_HU,
    });
    scene
}

struct Outcome {
    error: f64,
    measured_error: f64,
}

fn biopsy(robot: &Robot, c: &Case, seed: u64) -> Outcome {
    let mut rng = rand_xorshift::XorShiftRng::seed_from_u64(seed ^ 0xB10B);
    let plan = Unit::new_normalize(c.target.coords - c.entry.coords);
    let mut guide = robot.align(&c.entry, &plan);
    let mut needle = NeedleInTissue::new(c.model.clone(), guide, c.target).unwrap();
    let mut steps: Vec<InsertionStep> = Vec::new();
    let mut length = c.entry.distance(&c.target) / STEPS as f64;
    let mut expected_tip = Point::<Ct>::new(c.entry.coords + plan.into_inner() * length);
    let mut measured_error = f64::NAN;
    for k in 1..=STEPS {
        needle.advance(length).unwrap();
        let volume = scan(
            &scene(&needle, &plan),
            &CheckScan::new(1e-3, seed * 16 + k as u64).protocol(&needle),
        )
        .unwrap();
        let axis = Unit::new_normalize(expected_tip.coords - c.entry.coords);
        let obs = find_needle(&volume, &NeedleSearch::new(c.entry, axis)).unwrap();
        if std::env::var("NEEDLE_DEBUG").is_ok() {
            println!(
                "  step {k}: tip error in scan {:.3} mm, tip to target {:.2} mm, σ {:.3} mm, ratio {:.2}",
                obs.tip.distance(&needle.tip()) * 1e3,
                needle.tip().distance(&needle.target()) * 1e3,
                obs.tip_sigma * 1e3,
                obs.cross_section_ratio
            );
        }
        steps.push(InsertionStep {
            holder: guide.holder,
            length,
            observed_tip: Some(obs.tip),
            // As the controller does (control/nodes/src/procedure/check.rs).
            observed_shaft: Some(ObservedShaft {
                direction: obs.direction,
                length: obs.shaft_length,
                sigma: 0.2e-3 / obs.shaft_length,
            }),
        });
        let noise = Vector3::from_fn(|_, _| rng.sample::<f64, _>(StandardNormal)) * TARGET_SIGMA;
        let target_seen = Point::<Ct>::new(needle.target().coords + noise);
        if k == STEPS {
            measured_error = obs.tip.distance(&target_seen);
            break;
        }
        let correction = plan_correction(&CorrectionInput {
            entry: c.entry,
            target: target_seen,
            steps: &steps,
            curvature_prior: TissueModel::default().curvature,
            tip_sigma: 0.2e-3,
            axis_prior: AxisPrior::default(),
        })
        .unwrap();
        length = correction.remaining_depth / (STEPS - k) as f64;
        expected_tip = correction.tip_after(length);
        guide = robot.align(&c.entry, &correction.guide_direction);
        needle.set_guide(guide).unwrap();
    }
    Outcome {
        error: needle.tip().distance(&needle.target()),
        measured_error,
    }
}

fn uncorrected(c: &Case) -> f64 {
    let plan = Unit::new_normalize(c.target.coords - c.entry.coords);
    let mut needle = NeedleInTissue::new(c.model.clone(), GuidePose::along(c.entry, plan), c.target).unwrap();
    for _ in 0..STEPS {
        needle.advance(c.entry.distance(&c.target) / STEPS as f64).unwrap();
    }
    needle.tip().distance(&needle.target())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

#[test]
fn closed_loop_reaches_the_target_within_1_5_mm_and_open_loop_does_not() {
    let robot = Robot::new();
    let (mut with, mut without, mut measured) = (Vec::new(), Vec::new(), Vec::new());
    for seed in 1..=20u64 {
        let c = case(&robot, seed);
        let outcome = biopsy(&robot, &c, seed);
        let open = uncorrected(&c);
        println!(
            "seed {seed:2}: depth {:.0} mm, κ {:.2} 1/m: corrected {:.2} mm (scan says {:.2} mm), uncorrected {:.2} mm",
            c.entry.distance(&c.target) * 1e3,
            NeedleInTissue::new(c.model.clone(), GuidePose::along(c.entry, Vector3::z_axis()), c.target)
                .unwrap()
                .curvature(),
            outcome.error * 1e3,
            outcome.measured_error * 1e3,
            open * 1e3
        );
        with.push(outcome.error);
        measured.push(outcome.measured_error);
        without.push(open);
    }
    let (m_with, max_with) = (median(&with), with.iter().copied().fold(0.0, f64::max));
    let (m_without, max_without) = (median(&without), without.iter().copied().fold(0.0, f64::max));
    println!(
        "corrected: median {:.2} mm, max {:.2} mm; uncorrected: median {:.2} mm, max {:.2} mm; scan-measured final error median {:.2} mm",
        m_with * 1e3,
        max_with * 1e3,
        m_without * 1e3,
        max_without * 1e3,
        median(&measured) * 1e3
    );
    assert!(max_with <= 1.5e-3, "worst corrected error {:.2} mm", max_with * 1e3);
    assert!(
        m_without > 2.5 * m_with && m_without > 2e-3,
        "uncorrected median {:.2} mm",
        m_without * 1e3
    );
}
