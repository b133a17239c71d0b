//! Unreachable requests and malformed URDFs give typed errors with numbers; nothing panics.

use acus_control::frames::{Point, RobotBase};
use acus_control::kinematics::{Bound, Joint, KinematicsError, LimitViolation, NeedleRequest, PositionerModel};

const URDF: &str = include_str!("../../../urdf/positioner.urdf");

fn model() -> PositionerModel {
    PositionerModel::from_urdf_str(URDF).unwrap()
}

/// The RCM at q = 0 is (0, 0.30, 0.16) m (documented in the URDF; checked in kinematics_ik.rs).
fn at(dx: f64, dy: f64, dz: f64) -> Point<RobotBase> {
    Point::xyz(dx, 0.30 + dy, 0.16 + dz)
}

fn limit_error(entry: Point<RobotBase>, target: Point<RobotBase>) -> (LimitViolation, String) {
    match model().solve_needle(&NeedleRequest { entry, target }) {
        Err(e @ KinematicsError::JointLimit(v)) => (v, e.to_string()),
        other => panic!("expected a joint-limit error, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn entry_beyond_stage_x_names_joint_limit_and_excess() {
    let (v, msg) = limit_error(at(0.12, 0.0, 0.05), at(0.12, 0.0, -0.05));
    assert_eq!((v.joint, v.bound), (Joint::X, Bound::Upper));
    assert!(
        close(v.required, 0.12) && close(v.limit, 0.1) && close(v.excess, 0.02),
        "{v:?}"
    );
    assert_eq!(v.entry_shift, None, "20 mm is not a small shift");
    assert_eq!(
        msg,
        "x_joint would need 120.00 mm, beyond its upper limit 100.00 mm by 20.00 mm"
    );
}

#[test]
fn small_stage_excess_suggests_an_entry_shift() {
    let (v, msg) = limit_error(at(0.0, -0.103, 0.05), at(0.0, -0.103, -0.05));
    assert_eq!((v.joint, v.bound), (Joint::Y, Bound::Lower));
    assert!(close(v.excess, 0.003) && close(v.entry_shift.unwrap(), 0.003), "{v:?}");
    assert!(
        msg.ends_with("by 3.00 mm; moving the entry about 3.0 mm would bring it into range"),
        "{msg}"
    );
}

#[test]
fn entry_below_stage_z_range() {
    let (v, msg) = limit_error(at(0.0, 0.0, -0.04), at(0.0, 0.0, -0.10));
    assert_eq!((v.joint, v.bound), (Joint::Z, Bound::Lower));
    assert!(close(v.required, -0.04) && close(v.excess, 0.04), "{v:?}");
    assert!(
        msg.contains("z_joint would need -40.00 mm, beyond its lower limit 0.00 mm by 40.00 mm"),
        "{msg}"
    );
}

#[test]
fn target_too_deep_for_insertion() {
    let (v, msg) = limit_error(at(0.0, 0.0, 0.1), at(0.0, 0.0, 0.1 - 0.2124));
    assert_eq!((v.joint, v.bound), (Joint::Insertion, Bound::Upper));
    assert!(close(v.required, 0.2124) && close(v.excess, 0.0124), "{v:?}");
    assert_eq!(
        v.entry_shift, None,
        "moving the entry does not shorten the path to a deep target"
    );
    assert_eq!(
        msg,
        "insertion_joint would need 212.40 mm, beyond its upper limit 200.00 mm by 12.40 mm"
    );
}

#[test]
fn needle_tilted_beyond_pitch_range() {
    // 50° from vertical in the y-z plane (pitch's own plane at yaw 0), 100 mm long.
    let (len, tilt) = (0.1, 50f64.to_radians());
    let (v, msg) = limit_error(at(0.0, 0.0, 0.05), at(0.0, len * tilt.sin(), 0.05 - len * tilt.cos()));
    assert_eq!((v.joint, v.bound), (Joint::Pitch, Bound::Upper));
    assert!(close(v.required, tilt) && close(v.excess, 5f64.to_radians()), "{v:?}");
    // The other branch is yaw ±180°, pitch -50°: out of range too.
    let (other_yaw, other_pitch) = v.other_branch.unwrap();
    assert!(
        close(other_yaw.abs(), std::f64::consts::PI) && close(other_pitch, -tilt),
        "{v:?}"
    );
    // Turning the axis 5° about the target moves the entry by 2·100 mm·sin(2.5°) ≈ 8.7 mm: small enough to suggest.
    assert!(
        (v.entry_shift.unwrap() - 2.0 * len * 2.5f64.to_radians().sin()).abs() < 1e-9,
        "{v:?}"
    );
    assert!(
        msg.starts_with("pitch_joint would need 50.00°, beyond its upper limit 45.00° by 5.00°; the other"),
        "{msg}"
    );
    assert!(
        msg.contains("pitch -50.00°) is out of range too; moving the entry about 8.7 mm"),
        "{msg}"
    );
}

#[test]
fn needle_azimuth_beyond_yaw_range() {
    // Tilt 30° towards azimuth 75° from +y (towards -x): yaw 75° or -105°, both beyond ±60°.
    let (len, tilt, az) = (0.15, 30f64.to_radians(), 75f64.to_radians());
    let d = [-az.sin() * tilt.sin(), az.cos() * tilt.sin(), -tilt.cos()];
    let (v, msg) = limit_error(at(0.0, 0.0, 0.1), at(len * d[0], len * d[1], 0.1 + len * d[2]));
    assert_eq!((v.joint, v.bound), (Joint::Yaw, Bound::Upper));
    assert!(close(v.required, az) && close(v.excess, 15f64.to_radians()), "{v:?}");
    let (other_yaw, other_pitch) = v.other_branch.unwrap();
    assert!(
        close(other_yaw, az - std::f64::consts::PI) && close(other_pitch, -tilt),
        "{v:?}"
    );
    // 2·150 mm·sin(7.5°)·sin(30°) ≈ 19.6 mm: too far to suggest.
    assert_eq!(v.entry_shift, None);
    assert!(
        msg.starts_with("yaw_joint would need 75.00°, beyond its upper limit 60.00° by 15.00°"),
        "{msg}"
    );
    assert!(msg.contains("(yaw -105.00°, pitch -30.00°)"), "{msg}");
}

#[test]
fn target_behind_the_entry() {
    let m = model();
    for (target, behind) in [
        (at(0.0, 0.01, 0.10), 0.05),
        (at(0.0, 0.03, 0.05), 0.0),
        (at(0.02, 0.0, 0.13), 0.08),
    ] {
        let err = m
            .solve_needle(&NeedleRequest {
                entry: at(0.0, 0.0, 0.05),
                target,
            })
            .unwrap_err();
        match err {
            KinematicsError::TargetBehindEntry { behind: b, max_tilt } => {
                assert!(close(b, behind), "{err}");
                assert!(close(max_tilt, 45f64.to_radians()));
            }
            other => panic!("expected TargetBehindEntry, got {other:?}"),
        }
    }
    let msg = m
        .solve_needle(&NeedleRequest {
            entry: at(0.0, 0.0, 0.05),
            target: at(0.0, 0.01, 0.10),
        })
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("target lies 50.0 mm behind the entry"), "{msg}");
    assert!(msg.contains("at most 45.0° from its home direction"), "{msg}");
}

#[test]
fn zero_and_tiny_axis() {
    let m = model();
    let e = at(0.0, 0.0, 0.05);
    for (target, len) in [(e, 0.0), (at(0.0, 0.0, 0.0496), 0.0004)] {
        match m.solve_needle(&NeedleRequest { entry: e, target }) {
            Err(KinematicsError::AxisTooShort(l)) => assert!((l - len).abs() < 1e-12),
            other => panic!("expected AxisTooShort, got {other:?}"),
        }
    }
    let msg = m
        .solve_needle(&NeedleRequest { entry: e, target: e })
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "entry and target are 0.0000 mm apart; the needle axis needs at least 1.0 mm"
    );
}

#[test]
fn non_finite_inputs() {
    let m = model();
    let good = at(0.0, 0.0, 0.05);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for axis in 0..3 {
            let mut p = good;
            p.coords[axis] = bad;
            let e = m.solve_needle(&NeedleRequest { entry: p, target: good }).unwrap_err();
            assert_eq!(e, KinematicsError::NonFinite("entry"));
            let e = m.solve_needle(&NeedleRequest { entry: good, target: p }).unwrap_err();
            assert_eq!(e, KinematicsError::NonFinite("target"));
            assert_eq!(e.to_string(), "target has a non-finite coordinate (NaN or infinity)");
        }
    }
}

/// A URDF edited into a shape the closed form cannot serve is rejected at load, with the numbers.
#[test]
fn malformed_urdfs_are_rejected_at_load() {
    let edit = |from: &str, to: &str| {
        assert_eq!(URDF.matches(from).count(), 1, "test edit `{from}` must match once");
        PositionerModel::from_urdf_str(&URDF.replace(from, to)).unwrap_err()
    };
    let pitch_origin = "<origin xyz=\"0 0 -0.12\" rpy=\"0 0 0\"/>\n    <axis xyz=\"1 0 0\"/>";
    // Pitch axis moved 5 mm sideways: it no longer meets the yaw axis.
    match edit(
        pitch_origin,
        "<origin xyz=\"0 0.005 -0.12\" rpy=\"0 0 0\"/>\n    <axis xyz=\"1 0 0\"/>",
    ) {
        KinematicsError::AxesDoNotIntersect(gap) => assert!((gap - 0.005).abs() < 1e-12),
        e => panic!("{e:?}"),
    }
    // Pitch axis vertical: parallel to yaw.
    let e = edit(
        pitch_origin,
        "<origin xyz=\"0 0 -0.12\" rpy=\"0 0 0\"/>\n    <axis xyz=\"0 0 1\"/>",
    );
    assert!(matches!(e, KinematicsError::AxesParallel(_)), "{e:?}");
    // The needle guide offset 3 mm from the RCM.
    let e = edit(
        "<parent link=\"rcm\"/>\n    <child link=\"needle_tip\"/>\n    <origin xyz=\"0 0 0\"",
        "<parent link=\"rcm\"/>\n    <child link=\"needle_tip\"/>\n    <origin xyz=\"0.003 0 0\"",
    );
    match e {
        KinematicsError::NeedleAxisMissesRcm(d) => assert!((d - 0.003).abs() < 1e-12),
        e => panic!("{e:?}"),
    }
    // The rcm link 10 mm up the needle axis from the true RCM.
    let e = edit(
        "<origin xyz=\"0 0 0\" rpy=\"3.141592653589793 0 0\"/>",
        "<origin xyz=\"0 0 0.01\" rpy=\"3.141592653589793 0 0\"/>",
    );
    match e {
        KinematicsError::RcmLinkOffset(d) => assert!((d - 0.01).abs() < 1e-12),
        e => panic!("{e:?}"),
    }
    assert_eq!(
        e.to_string(),
        "URDF link `rcm` is 10.0000 mm from the yaw/pitch axis intersection; it must sit on it (within 1 µm)"
    );
    // Renamed, retyped, reversed limits, zero axis, not XML.
    assert_eq!(
        edit("name=\"yaw_joint\"", "name=\"yaw\""),
        KinematicsError::MissingJoint("yaw_joint")
    );
    let e = edit(
        "<joint name=\"yaw_joint\" type=\"revolute\">",
        "<joint name=\"yaw_joint\" type=\"continuous\">",
    );
    assert_eq!(e.to_string(), "URDF joint `yaw_joint` is continuous, expected revolute");
    let e = edit(
        "<limit lower=\"0.0\" upper=\"0.200\"",
        "<limit lower=\"0.2\" upper=\"0.0\"",
    );
    assert!(
        matches!(
            e,
            KinematicsError::BadLimits {
                joint: Joint::Insertion,
                ..
            }
        ),
        "{e:?}"
    );
    let e = edit(
        "<origin xyz=\"0 0 0.03\" rpy=\"0 0 0\"/>\n    <axis xyz=\"0 1 0\"/>",
        "<origin xyz=\"0 0 0.03\" rpy=\"0 0 0\"/>\n    <axis xyz=\"0 0 0\"/>",
    );
    assert!(matches!(e, KinematicsError::BadAxis { joint: Joint::Y, .. }), "{e:?}");
    assert!(matches!(
        PositionerModel::from_urdf_str("<robot"),
        Err(KinematicsError::UrdfParse(_))
    ));
    // Yaw and pitch swapped in the chain.
    let swapped = URDF
        .replace("name=\"yaw_joint\"", "name=\"TMP\"")
        .replace("name=\"pitch_joint\"", "name=\"yaw_joint\"")
        .replace("name=\"TMP\"", "name=\"pitch_joint\"");
    match PositionerModel::from_urdf_str(&swapped).unwrap_err() {
        KinematicsError::WrongChain(found) => {
            assert_eq!(
                found,
                "x_joint, y_joint, z_joint, pitch_joint, yaw_joint, insertion_joint"
            )
        }
        e => panic!("{e:?}"),
    }
}
