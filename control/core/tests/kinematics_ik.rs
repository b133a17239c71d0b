//! Property tests of the positioner kinematics on the reference URDF: FK agrees with `k`'s chain, and the closed-form IK
//! puts the tip on the target and the needle on the entry→target line for every reachable request.

use std::sync::OnceLock;

use acus_control::frames::{Point, RobotBase};
use acus_control::kinematics::{Joint, JointPositions, KinematicsError, NeedleRequest, PositionerModel};
use nalgebra::{Point3, Vector3};
use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, TestRng};

const URDF: &str = include_str!("../../../urdf/positioner.urdf");

/// Parsed once: proptest calls this for every case.
fn model() -> &'static PositionerModel {
    static MODEL: OnceLock<PositionerModel> = OnceLock::new();
    MODEL.get_or_init(|| PositionerModel::from_urdf_str(URDF).unwrap())
}

/// Angle (rad) between two directions.
fn angle(a: &Vector3<f64>, b: &Vector3<f64>) -> f64 {
    a.cross(b).norm().atan2(a.dot(b))
}

/// Checks the clinical contract of a solution: tip on the target (1 µm), RCM on the entry (1 µm), needle along the
/// entry→target line (1 µrad), all joints within their URDF limits.
fn assert_solves(model: &PositionerModel, req: &NeedleRequest, q: &JointPositions) {
    let s = model.forward(q);
    let tip_err = s.tip.distance(&req.target);
    let rcm_err = s.rcm.distance(&req.entry);
    let dir_err = angle(&s.direction, &(req.target.coords - req.entry.coords));
    assert!(tip_err < 1e-6, "tip {tip_err:e} m off target for {req:?} -> {q:?}");
    assert!(rcm_err < 1e-6, "rcm {rcm_err:e} m off entry for {req:?} -> {q:?}");
    assert!(
        dir_err < 1e-6,
        "needle {dir_err:e} rad off the line for {req:?} -> {q:?}"
    );
    for j in Joint::ALL {
        let l = model.limit(j);
        assert!(
            q.get(j) >= l.lower && q.get(j) <= l.upper,
            "{j} = {} outside {l:?}",
            q.get(j)
        );
    }
}

/// Joint vectors anywhere in the limits (inclusive), insertion long enough to define an axis.
fn joint_vectors() -> impl Strategy<Value = JointPositions> {
    let m = model();
    let range = move |j: Joint| {
        let l = m.limit(j);
        let lower = if j == Joint::Insertion {
            l.lower.max(0.0011)
        } else {
            l.lower
        };
        prop_oneof![8 => lower..=l.upper, 1 => Just(lower), 1 => Just(l.upper)]
    };
    (
        range(Joint::X),
        range(Joint::Y),
        range(Joint::Z),
        range(Joint::Yaw),
        range(Joint::Pitch),
        range(Joint::Insertion),
    )
        .prop_map(|(x, y, z, yaw, pitch, ins)| JointPositions::new(x, y, z, yaw, pitch, ins))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Acceptance 1 (joint-space sampling): 10 000 requests derived by FK from random joint vectors all solve exactly.
    #[test]
    fn ik_inverts_fk_on_sampled_joint_vectors(q in joint_vectors()) {
        let m = model();
        let s = m.forward(&q);
        let req = NeedleRequest { entry: s.rcm, target: s.tip };
        let solved = m.solve_needle(&req);
        prop_assert!(solved.is_ok(), "{req:?} from {q:?}: {solved:?}");
        assert_solves(m, &req, &solved.unwrap());
    }

    /// Nothing panics, whatever the numbers (NaN, infinities, huge, tiny); any `Ok` is a true solution.
    #[test]
    fn any_input_gives_a_solution_or_a_typed_error(
        e in prop::array::uniform3(prop::num::f64::ANY),
        t in prop::array::uniform3(prop::num::f64::ANY),
    ) {
        let m = model();
        let req = NeedleRequest { entry: Point::new(Point3::from(e)), target: Point::new(Point3::from(t)) };
        if let Ok(q) = m.solve_needle(&req) {
            assert_solves(m, &req, &q);
        }
    }
}

/// `forward` (closed form from the derived geometry) agrees with `k`'s own chain evaluation of the URDF.
#[test]
fn forward_matches_k_chain() {
    let m = model();
    let chain = k::Chain::<f64>::from(&urdf_rs::read_from_string(URDF).unwrap());
    let tip = chain.find_link("needle_tip").unwrap().clone();
    let arm = k::SerialChain::from_end(&tip);
    let rcm = chain.find_link("rcm").unwrap().clone();
    let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    for _ in 0..2000 {
        let mut q = JointPositions::default();
        for j in Joint::ALL {
            let l = m.limit(j);
            q.set(j, rng.random_range(l.lower..=l.upper));
        }
        arm.set_joint_positions(&q.0).unwrap();
        arm.update_transforms();
        let k_tip = tip.world_transform().unwrap();
        let k_rcm = rcm.world_transform().unwrap();
        let s = m.forward(&q);
        assert!((s.tip.coords - Point3::from(k_tip.translation.vector)).norm() < 1e-12);
        assert!((s.rcm.coords - Point3::from(k_rcm.translation.vector)).norm() < 1e-12);
        assert!(s.tip_orientation.angle_to(&k_tip.rotation) < 1e-12);
        assert!((s.direction.into_inner() - k_tip.rotation * Vector3::z()).norm() < 1e-12);
    }
}

/// The geometry the model derives is the one the URDF documents (RCM at (0, 0.30, 0.16) m at q = 0, needle straight down,
/// positive pitch tilting the tip towards +y). The direct-sampling oracle below relies on it.
#[test]
fn derived_geometry_is_the_documented_one() {
    let m = model();
    assert!(m.rcm_home().distance(&Point::xyz(0.0, 0.30, 0.16)) < 1e-12);
    let s = m.forward(&JointPositions::new(0.0, 0.0, 0.0, 0.0, 0.3, 0.1));
    assert!((s.direction.into_inner() - Vector3::new(0.0, 0.3f64.sin(), -0.3f64.cos())).norm() < 1e-12);
    assert!((m.limit(Joint::Yaw).upper - 60f64.to_radians()).abs() < 1e-12);
    assert!((m.limit(Joint::Pitch).lower + 45f64.to_radians()).abs() < 1e-12);
    assert_eq!((m.limit(Joint::Z).lower, m.limit(Joint::Z).upper), (0.0, 0.15));
    assert_eq!(m.limit(Joint::Insertion).upper, 0.2);
}

/// Independent reachability oracle for the reference robot, written from its documented geometry rather than the solver:
/// the RCM box, the needle's tilt from vertical (≤ pitch limit) and the azimuth of the tilt plane (|tan| ≤ tan yaw limit,
/// either side), the depth. Returns the smallest margin (m or rad; > 0 inside, < 0 outside).
fn reachability_margin(entry: &Point3<f64>, target: &Point3<f64>) -> f64 {
    let rcm_home = Point3::new(0.0, 0.30, 0.16);
    let s = entry - rcm_home;
    let (yaw_max, pitch_max) = (60f64.to_radians(), 45f64.to_radians());
    let w = target - entry;
    let len = w.norm();
    let d = w / len;
    let tilt = (d.x.hypot(d.y)).atan2(-d.z);
    let mut margin = [
        0.1 - s.x.abs(),
        0.1 - s.y.abs(),
        s.z,
        0.15 - s.z,
        0.2 - len,
        len - 0.001,
        pitch_max - tilt,
    ]
    .into_iter()
    .fold(f64::INFINITY, f64::min);
    if tilt > 1e-3 {
        // Azimuth of the tilt plane, folded to [0, 90°]: the angle yaw must turn (mod 180°).
        let azimuth = d.x.abs().atan2(d.y.abs());
        margin = margin.min(yaw_max - azimuth);
    }
    margin
}

/// Acceptance 1 (direct sampling): entry/target pairs drawn in space; the 10 000 the oracle calls reachable (by ≥ 1 µm or
/// 1 µrad) all solve exactly, and those it calls unreachable (by the same margin) all fail with a typed error.
#[test]
fn ik_solves_every_directly_sampled_reachable_request() {
    let m = model();
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let (mut reachable, mut unreachable) = (0, 0);
    while reachable < 10_000 {
        let entry = Point3::new(
            rng.random_range(-0.12..0.12),
            rng.random_range(0.18..0.42),
            rng.random_range(0.14..0.33),
        );
        let target = entry
            + Vector3::new(
                rng.random_range(-0.2..0.2),
                rng.random_range(-0.2..0.2),
                rng.random_range(-0.22..0.02),
            );
        let req = NeedleRequest {
            entry: Point::<RobotBase>::new(entry),
            target: Point::new(target),
        };
        let margin = reachability_margin(&entry, &target);
        let result = m.solve_needle(&req);
        if margin > 1e-6 {
            reachable += 1;
            let q = result.unwrap_or_else(|e| panic!("reachable (margin {margin:e}) {req:?} failed: {e}"));
            assert_solves(m, &req, &q);
        } else if margin < -1e-6 {
            unreachable += 1;
            assert!(
                matches!(
                    result,
                    Err(KinematicsError::JointLimit(_)
                        | KinematicsError::TargetBehindEntry { .. }
                        | KinematicsError::AxisTooShort(_))
                ),
                "unreachable (margin {margin:e}) {req:?} gave {result:?}"
            );
        }
    }
    assert!(
        unreachable > 10_000,
        "sampling should also exercise the failures ({unreachable})"
    );
}

/// Near the singularity (needle along the yaw axis) yaw is nearly free; the solver still meets the contract.
#[test]
fn ik_handles_the_vertical_singularity() {
    let m = model();
    for pitch in [0.0, 1e-15, 1e-12, 1e-9, -1e-9, 1e-6] {
        for yaw in [-1.04, -0.5, 0.0, 0.7, 1.0471975511965976] {
            let s = m.forward(&JointPositions::new(0.01, -0.02, 0.05, yaw, pitch, 0.12));
            let req = NeedleRequest {
                entry: s.rcm,
                target: s.tip,
            };
            let q = m
                .solve_needle(&req)
                .unwrap_or_else(|e| panic!("yaw {yaw}, pitch {pitch}: {e}"));
            assert_solves(m, &req, &q);
        }
    }
}
