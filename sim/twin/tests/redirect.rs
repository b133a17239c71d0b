//! A redirect in the twin: the needle withdrawn along its track, turned about the entry and inserted again cuts a new
//! track from the withdrawn tip, also when the twin only looks before and after (a scan on each side), provided it
//! passes through the shallowest pose the drives reported.

use acus_control::frames::Point;
use acus_control::kinematics::{Joint, JointPositions, NeedleRequest, PositionerModel};
use acus_sim_twin::patient::{Patient, PatientConfig};
use acus_sim_twin::withdrawal::Shallowest;
use nalgebra::Vector3;

const URDF: &str = include_str!("../../../urdf/positioner.urdf");

/// Joint positions with the needle on the line from the entry above the lesion to a point `off` from the lesion,
/// inserted to `insertion` (joint value, m).
fn pose(config: &PatientConfig, off: Vector3<f64>, insertion: f64) -> JointPositions {
    let model = PositionerModel::from_urdf_str(URDF).unwrap();
    let t_robot_ct = config.t_ct_robot.inverse();
    let entry = config.skin_above(&config.lesion);
    let target = Point::new(config.lesion.coords + off);
    let mut q = model
        .solve_needle(&NeedleRequest {
            entry: t_robot_ct.apply(&entry),
            target: t_robot_ct.apply(&target),
        })
        .unwrap();
    q.set(Joint::Insertion, insertion);
    q
}

fn tip(p: &Patient) -> Vector3<f64> {
    p.tip().unwrap().coords.coords
}

#[test]
fn a_withdrawal_between_two_looks_is_passed_through_and_the_new_track_starts_from_it() {
    let config = PatientConfig::reference();
    let straight = Vector3::zeros();
    let aside = Vector3::new(0.008, 0.0, 0.0);
    let (deep, shallow, again) = (0.06, 0.015, 0.05);
    let start = || {
        let mut p = Patient::ideal(config.clone(), URDF).unwrap();
        p.sync(&pose(&config, straight, 0.0)).unwrap();
        p.sync(&pose(&config, straight, deep)).unwrap();
        p
    };
    let withdrawn = pose(&config, straight, shallow);
    let redirected = pose(&config, aside, again);

    // Looked at each motion's end: withdraw, turn, insert.
    let mut stepwise = start();
    stepwise.sync(&withdrawn).unwrap();
    stepwise.sync(&pose(&config, aside, shallow)).unwrap();
    stepwise.sync(&redirected).unwrap();

    // Looked at only before and after, passing through the shallowest pose the drives reported on the way.
    let seen = Shallowest::default();
    for q in [
        pose(&config, straight, 0.04),
        withdrawn,
        pose(&config, aside, shallow),
        redirected,
    ] {
        seen.observe(q);
    }
    let mut through = start();
    through
        .sync_through(seen.take().as_ref(), &redirected, Vector3::zeros())
        .unwrap();
    assert!(seen.take().is_none(), "taken once");
    let d = (tip(&through) - tip(&stepwise)).norm();
    assert!(d < 1e-9, "the same tip either way: {d} m apart");

    // Without the withdrawal the twin would turn the needle at 60 mm and pull it back along the old track: the tip
    // would end millimetres from the redirected one.
    let mut blind = start();
    blind.sync(&redirected).unwrap();
    let missed = (tip(&blind) - tip(&stepwise)).norm();
    assert!(missed > 2e-3, "{missed} m");

    // The new track starts at the withdrawn tip: the redirected needle's path leaves the old one at 15 mm, and its tip
    // lies off the old line, towards the new aim.
    let needle = stepwise.needle().unwrap();
    let path = needle.path();
    let first = path.first().unwrap().coords.coords;
    let old_dir = (tip(&blind) - first).normalize();
    let lateral = |p: Vector3<f64>| ((p - first) - old_dir * (p - first).dot(&old_dir)).norm();
    let shallow_points = path.iter().filter(|p| (p.coords.coords - first).norm() < 0.014);
    assert!(shallow_points.map(|p| lateral(p.coords.coords)).fold(0.0, f64::max) < 0.2e-3);
    assert!(lateral(tip(&stepwise)) > 2e-3);
}
