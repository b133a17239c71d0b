//! Registration on point sets: matching robust to a missing sphere and spurious blobs, the reflection-free fit, FRE, and
//! the quality gate's refusals. Plus the real robot URDF's frame model.

use acus_control::frames::{Ct, Point, RobotBase, Transform};
use acus_control::registration::{
    register_points, FiducialModel, MatchParams, QualityGate, Refusal, RegistrationError,
};
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

const CENTRES_MM: [(f64, f64, f64); 8] = [
    (0.0, 0.0, 0.0),
    (70.0, 0.0, 8.0),
    (0.0, 55.0, 15.0),
    (85.0, 60.0, 0.0),
    (25.0, 95.0, 30.0),
    (-35.0, 35.0, 40.0),
    (55.0, -30.0, 22.0),
    (105.0, 25.0, 45.0),
];

fn urdf() -> String {
    let mut s = String::from(
        r#"<robot name="t"><link name="robot_base"/><link name="fiducial_frame"/>
        <joint name="fiducial_frame_joint" type="fixed"><parent link="robot_base"/><child link="fiducial_frame"/>
        <origin xyz="-0.25 0.05 0.01" rpy="0 0 0.3"/></joint>"#,
    );
    for (i, (x, y, z)) in CENTRES_MM.iter().enumerate() {
        s += &format!(
            r#"<link name="fiducial_{i}"><visual><geometry><sphere radius="0.002"/></geometry></visual></link>
            <joint name="fiducial_{i}_joint" type="fixed"><parent link="fiducial_frame"/><child link="fiducial_{i}"/>
            <origin xyz="{} {} {}"/></joint>"#,
            x / 1e3,
            y / 1e3,
            z / 1e3
        );
    }
    s + "</robot>"
}

fn pose() -> Transform<Ct, RobotBase> {
    Transform::from_isometry(Isometry3::from_parts(
        Translation3::new(0.12, -0.08, 0.31),
        UnitQuaternion::from_euler_angles(0.4, -1.1, 2.2),
    ))
}

/// Deterministic pseudo-noise in ±a per axis.
fn jitter(i: usize, a: f64) -> Vector3<f64> {
    let h = |k: usize| (((i * 7 + k * 13) % 17) as f64 / 16.0 - 0.5) * 2.0 * a;
    Vector3::new(h(0), h(1), h(2))
}

#[test]
fn matches_with_one_missing_and_two_spurious_blobs() {
    let model = FiducialModel::from_urdf_str(&urdf()).unwrap();
    let t = pose();
    // Shuffle order, drop fiducial 5, add noise of ±0.1 mm, and two spurious blobs (a bone and a contrast spot).
    let mut det: Vec<Point<Ct>> = [3usize, 0, 7, 2, 6, 1, 4]
        .iter()
        .map(|&i| Point::new(t.apply(&model.points()[i]).coords + jitter(i, 1e-4)))
        .collect();
    det.insert(
        2,
        Point::new(t.apply(&model.points()[5]).coords + Vector3::new(0.03, 0.0, 0.01)),
    );
    det.push(Point::xyz(0.2, 0.1, 0.3));
    let reg = register_points(&model, &det, &MatchParams::default()).unwrap();
    assert_eq!(reg.missing(), &[5]);
    assert_eq!(reg.fits().len(), 7);
    assert_eq!(reg.unmatched_candidates(), 2);
    for f in reg.fits() {
        // Each fit pairs the detection made from that model sphere.
        let truth = t.apply(&model.points()[f.model_index]);
        assert!(f.detected.distance(&truth) < 2e-4, "fiducial {}", f.model_index);
    }
    let t_rc = reg.t_robot_ct();
    let target_robot = Point::<RobotBase>::xyz(0.0, 0.0, 0.1);
    let err = t_rc.apply(&t.apply(&target_robot)).distance(&target_robot);
    assert!(err < 1e-3, "target error {err}");
    assert!(reg.fre_rms() > 0.0 && reg.fre_rms() < 2e-4);
    // Passes the default gate at a target in the workspace.
    let gated = QualityGate::default().check(reg, &[t.apply(&target_robot)]).unwrap();
    assert!(gated.worst_predicted_tre() > 0.0 && gated.fle() >= 0.2e-3);
}

#[test]
fn mirrored_frame_does_not_match() {
    let model = FiducialModel::from_urdf_str(&urdf()).unwrap();
    // A mirror image has the same inter-point distances; the rigid fit must not accept it.
    let det: Vec<Point<Ct>> = model
        .points()
        .iter()
        .map(|p| Point::xyz(-p.coords.x, p.coords.y, p.coords.z))
        .collect();
    match register_points(&model, &det, &MatchParams::default()) {
        Err(RegistrationError::NoMatch { best, .. }) => assert!(best < 8),
        Ok(reg) => assert!(
            reg.fits().len() < 8,
            "a reflection was matched as {} fiducials",
            reg.fits().len()
        ),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn gate_refuses_too_few_fiducials() {
    let model = FiducialModel::from_urdf_str(&urdf()).unwrap();
    let t = pose();
    let det: Vec<Point<Ct>> = [0usize, 1, 2, 3, 4]
        .iter()
        .map(|&i| t.apply(&model.points()[i]))
        .collect();
    let reg = register_points(&model, &det, &MatchParams::default()).unwrap();
    let err = QualityGate::default().check(reg, &[]).unwrap_err();
    assert_eq!(
        err,
        Refusal::TooFewFiducials {
            found: 5,
            min: 6,
            missing: vec![5, 6, 7]
        }
    );
    assert!(err.to_string().contains("5 fiducials matched, at least 6"), "{err}");
}

#[test]
fn gate_refuses_high_fre_and_a_displaced_sphere() {
    let model = FiducialModel::from_urdf_str(&urdf()).unwrap();
    let t = pose();
    // ±0.9 mm noise on every sphere: FRE well above 0.5 mm.
    let noisy: Vec<Point<Ct>> = (0..8)
        .map(|i| Point::new(t.apply(&model.points()[i]).coords + jitter(i, 0.9e-3)))
        .collect();
    let reg = register_points(&model, &noisy, &MatchParams::default()).unwrap();
    let fre_mm = reg.fre_rms() * 1e3;
    match QualityGate::default().check(reg, &[]) {
        Err(Refusal::FreTooHigh { fre_mm: f, max_mm }) => {
            assert!((f - fre_mm).abs() < 1e-12 && f > max_mm && (max_mm - 0.5).abs() < 1e-12)
        }
        other => panic!("expected FreTooHigh, got {other:?}"),
    }
    // One sphere displaced by 1.8 mm: RMS stays under 0.5 mm but its own residual exceeds 1 mm.
    let mut one: Vec<Point<Ct>> = (0..8).map(|i| t.apply(&model.points()[i])).collect();
    one[4] = Point::new(one[4].coords + Vector3::new(0.0, 0.0018, 0.0));
    let reg = register_points(&model, &one, &MatchParams::default()).unwrap();
    assert!(reg.fre_rms() < 0.7e-3);
    let gate = QualityGate {
        max_fre_rms: 0.8e-3,
        ..QualityGate::default()
    };
    assert!(matches!(
        gate.check(reg, &[]),
        Err(Refusal::FiducialResidualTooHigh { index: 4, .. })
    ));
}

#[test]
fn gate_refuses_a_far_target() {
    let model = FiducialModel::from_urdf_str(&urdf()).unwrap();
    let t = pose();
    let det: Vec<Point<Ct>> = (0..8).map(|i| t.apply(&model.points()[i])).collect();
    let reg = register_points(&model, &det, &MatchParams::default()).unwrap();
    let near = t.apply(&Point::xyz(-0.2, 0.1, 0.05));
    let far = t.apply(&Point::xyz(-0.2, 0.1, 5.0));
    let tre_near = reg.predicted_tre(&near, 0.2e-3);
    let tre_far = reg.predicted_tre(&far, 0.2e-3);
    assert!(tre_far > 10.0 * tre_near);
    let err = QualityGate::default().check(reg, &[near, far]).unwrap_err();
    match err {
        Refusal::PredictedTreTooHigh { tre_mm, max_mm, .. } => {
            assert!((tre_mm - tre_far * 1e3).abs() < 1e-9 && max_mm == 1.0);
        }
        other => panic!("expected PredictedTreTooHigh, got {other:?}"),
    }
}

#[test]
fn robot_urdf_gives_the_eight_sphere_frame() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../urdf/positioner.urdf")).unwrap();
    let model = FiducialModel::from_urdf_str(&text).unwrap();
    assert_eq!(model.len(), 8);
    assert!((model.radius() - 0.002).abs() < 1e-12);
    // Centres in fiducial_frame are as specified (the base offset is whatever the URDF says).
    let local: Vec<_> = model
        .points()
        .iter()
        .map(|p| model.t_base_frame().inverse().apply(p))
        .collect();
    for (p, (x, y, z)) in local.iter().zip(CENTRES_MM) {
        assert!(
            (p.coords - nalgebra::Point3::new(x, y, z) * 1e-3).norm() < 1e-9,
            "{p:?}"
        );
    }
}

fn perfect_registration() -> acus_control::registration::Registration {
    let model = FiducialModel::from_urdf_str(&urdf()).unwrap();
    let t = pose();
    let det: Vec<Point<Ct>> = (0..8).map(|i| t.apply(&model.points()[i])).collect();
    register_points(&model, &det, &MatchParams::default()).unwrap()
}

#[test]
fn gate_construction_refuses_unusable_limits_by_name() {
    use acus_control::registration::GateError;
    let d = QualityGate::default();
    assert!(QualityGate::new(
        6,
        d.max_fre_rms,
        d.max_fiducial_residual,
        d.max_predicted_tre,
        d.nominal_fle
    )
    .is_ok());
    for bad in [f64::NAN, f64::INFINITY, -0.5e-3, 0.0] {
        let limits = [
            ("max_fre_rms", [bad, 1e-3, 1e-3, 0.2e-3]),
            ("max_fiducial_residual", [0.5e-3, bad, 1e-3, 0.2e-3]),
            ("max_predicted_tre", [0.5e-3, 1e-3, bad, 0.2e-3]),
            ("nominal_fle", [0.5e-3, 1e-3, 1e-3, bad]),
        ];
        for (field, [a, b, c, e]) in limits {
            match QualityGate::new(6, a, b, c, e) {
                Err(GateError::BadLimit { name, .. }) => assert_eq!(name, field),
                other => panic!("{field} = {bad}: expected BadLimit, got {other:?}"),
            }
        }
    }
    assert_eq!(
        QualityGate::new(2, 0.5e-3, 1e-3, 1e-3, 0.2e-3),
        Err(GateError::TooFewFiducials(2))
    );
}

#[test]
fn nan_limit_gate_refuses_even_a_perfect_registration() {
    use acus_control::registration::GateError;
    // Without the fail-closed check, `fre > NaN` is false and this perfect registration would pass.
    assert!(QualityGate::default().check(perfect_registration(), &[]).is_ok());
    for field in ["max_fre_rms", "max_fiducial_residual", "max_predicted_tre"] {
        let mut gate = QualityGate::default();
        match field {
            "max_fre_rms" => gate.max_fre_rms = f64::NAN,
            "max_fiducial_residual" => gate.max_fiducial_residual = f64::NAN,
            _ => gate.max_predicted_tre = f64::NAN,
        }
        match gate.check(perfect_registration(), &[]) {
            Err(Refusal::InvalidGate(GateError::BadLimit { name, value_mm })) => {
                assert_eq!(name, field);
                assert!(value_mm.is_nan());
            }
            other => panic!("{field} NaN: expected InvalidGate, got {other:?}"),
        }
    }
}

#[test]
fn nan_predicted_tre_fails_the_gate() {
    let nan_target = Point::<Ct>::xyz(f64::NAN, 0.0, 0.0);
    match QualityGate::default().check(perfect_registration(), &[nan_target]) {
        Err(Refusal::PredictedTreTooHigh { tre_mm, .. }) => assert!(tre_mm.is_nan()),
        other => panic!("expected PredictedTreTooHigh, got {other:?}"),
    }
}

/// What the procedure does with the detections another process sent: the same registration from any order of the
/// centres, gated; a corrupt (non-finite) centre refuses the set instead of slipping past the matcher's comparisons.
#[test]
fn detections_heard_from_another_process_are_registered_and_gated_and_a_nan_one_is_refused() {
    let model = FiducialModel::from_urdf_str(&urdf()).unwrap();
    let t = pose();
    let mut det: Vec<Point<Ct>> = (0..8).map(|i| t.apply(&model.points()[i])).collect();
    det.reverse();
    let target = t.apply(&Point::xyz(-0.2, 0.1, 0.05));
    let gated = acus_control::registration::register_and_gate(
        &model,
        &det,
        &MatchParams::default(),
        &QualityGate::default(),
        &[target],
    )
    .unwrap();
    for (i, p) in model.points().iter().enumerate() {
        let mapped = gated.t_robot_ct().apply(&t.apply(p));
        assert!(
            mapped.distance(p) < 1e-9,
            "fiducial {i} maps {:.2e} m off",
            mapped.distance(p)
        );
    }
    det[3] = Point::xyz(f64::NAN, 0.0, 0.0);
    match acus_control::registration::register_and_gate(
        &model,
        &det,
        &MatchParams::default(),
        &QualityGate::default(),
        &[target],
    ) {
        Err(RegistrationError::InvalidParameter(why)) => assert!(why.contains("detection 3"), "{why}"),
        other => panic!("expected a refusal naming detection 3, got {other:?}"),
    }
}
