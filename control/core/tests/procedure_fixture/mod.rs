//! Shared fixtures for the planning and procedure tests: the reference robot, a synthetic registration of its real
//! fiducial frame (spheres placed in a CT by a known pose, with small deterministic localisation noise), and a target.
#![allow(dead_code)]

use std::sync::OnceLock;

use acus_control::frames::{Ct, Point, RobotBase, Transform};
use acus_control::kinematics::PositionerModel;
use acus_control::planning::{InsertionPlan, Planner, PlanningParams};
use acus_control::registration::{
    register_points, FiducialModel, GatedRegistration, MatchParams, QualityGate, RegistrationError,
};
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

pub const URDF: &str = include_str!("../../../../urdf/positioner.urdf");

pub fn model() -> &'static PositionerModel {
    static M: OnceLock<PositionerModel> = OnceLock::new();
    M.get_or_init(|| PositionerModel::from_urdf_str(URDF).unwrap())
}

pub fn fiducials() -> &'static FiducialModel {
    static F: OnceLock<FiducialModel> = OnceLock::new();
    F.get_or_init(|| FiducialModel::from_urdf_str(URDF).unwrap())
}

/// The patient/table pose: where the robot base sits in the scanner (LPS).
pub fn t_ct_robot() -> Transform<Ct, RobotBase> {
    Transform::from_isometry(Isometry3::from_parts(
        Translation3::new(-0.05, 0.12, -0.40),
        UnitQuaternion::from_euler_angles(0.03, -0.02, 1.4),
    ))
}

/// Deterministic pseudo-noise in ±a per axis.
fn jitter(i: usize, a: f64) -> Vector3<f64> {
    let h = |k: usize| (((i * 7 + k * 13) % 17) as f64 / 16.0 - 0.5) * 2.0 * a;
    Vector3::new(h(0), h(1), h(2))
}

/// Sphere centres as the CT would show them, with ±`noise` m localisation error per axis.
pub fn detections(noise: f64) -> Vec<Point<Ct>> {
    let t = t_ct_robot();
    fiducials()
        .points()
        .iter()
        .enumerate()
        .map(|(i, p)| Point::new(t.apply(p).coords + jitter(i, noise)))
        .collect()
}

/// Entry and target in the robot base (a reachable, oblique 86 mm path) and in the CT.
pub fn entry_robot() -> Point<RobotBase> {
    Point::xyz(0.02, 0.30, 0.22)
}
pub fn target_robot() -> Point<RobotBase> {
    Point::xyz(0.03, 0.33, 0.14)
}
pub fn to_ct(p: Point<RobotBase>) -> Point<Ct> {
    t_ct_robot().apply(&p)
}

/// Registration through the real matcher and gate, with ±0.05 mm noise: passes.
pub fn gated() -> GatedRegistration {
    static G: OnceLock<GatedRegistration> = OnceLock::new();
    G.get_or_init(gated_uncached).clone()
}

fn gated_uncached() -> GatedRegistration {
    let reg = register_points(fiducials(), &detections(5e-5), &MatchParams::default()).unwrap();
    QualityGate::default().check(reg, &[to_ct(target_robot())]).unwrap()
}

/// Registration with ±0.9 mm noise: the gate refuses it (FRE over 0.5 mm).
pub fn refused() -> RegistrationError {
    let reg = register_points(fiducials(), &detections(9e-4), &MatchParams::default()).unwrap();
    RegistrationError::Refused(QualityGate::default().check(reg, &[to_ct(target_robot())]).unwrap_err())
}

pub fn planner(params: PlanningParams) -> Planner {
    Planner::new(model().clone(), params).unwrap()
}

pub fn plan() -> InsertionPlan {
    planner(PlanningParams::default())
        .plan(
            to_ct(entry_robot()),
            to_ct(target_robot()),
            &gated(),
            &QualityGate::default(),
        )
        .unwrap()
}

use acus_control::planning::{PlanningError, Replan};
use acus_control::procedure::{Action, Event, Procedure, ProcedureConfig};

/// A correction after step `after_step`: 1.5° off the planned direction, same depth, insertion held where it is.
pub fn replan(after_step: Option<usize>) -> Replan {
    let plan = plan();
    let current = after_step.map_or(0.0, |i| plan.steps()[i].insertion);
    let axis = nalgebra::Unit::new_normalize(plan.direction().cross(&Vector3::z()));
    let dir = UnitQuaternion::from_axis_angle(&axis, 1.5f64.to_radians()) * plan.direction().into_inner();
    planner(PlanningParams::default())
        .replan_from_direction(plan.entry(), dir, plan.depth(), current, plan.correction_limit())
        .unwrap()
}

/// The planner's refusal of a 63°-oblique target (beyond pitch ±45°).
pub fn unreachable() -> PlanningError {
    let entry = Point::xyz(0.0, 0.30, 0.22);
    planner(PlanningParams::default())
        .plan(
            to_ct(entry),
            to_ct(Point::xyz(0.0, 0.38, 0.18)),
            &gated(),
            &QualityGate::default(),
        )
        .unwrap_err()
}

/// A procedure with the e-stop released and the enable held.
pub fn armed() -> Procedure {
    let mut p = Procedure::new(ProcedureConfig::default());
    assert_eq!(p.handle(Event::EStop(false)).unwrap(), vec![]);
    assert_eq!(p.handle(Event::EnableChanged(true)).unwrap(), vec![]);
    p
}

/// Scan, register, plan, align: the events up to the first insertion request.
pub fn to_aligned() -> Vec<Event> {
    vec![
        Event::ScanAcquired,
        Event::Registered(gated()),
        Event::Planned(plan()),
        Event::AlignRequested,
        Event::Aligned,
    ]
}

/// Feeds events that must all be accepted, returning every action.
pub fn feed(p: &mut Procedure, events: Vec<Event>) -> Vec<Action> {
    events
        .into_iter()
        .flat_map(|e| p.handle(e.clone()).unwrap_or_else(|r| panic!("{e:?} rejected: {r}")))
        .collect()
}
