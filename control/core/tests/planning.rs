//! The planner on the reference robot with a registration through the real matcher and gate: alignment and step goals,
//! the depth limit with its margin, every refusal with its numbers, and re-planning about the entry.

mod procedure_fixture;

use acus_control::frames::{Point, RobotBase};
use acus_control::kinematics::{Joint, KinematicsError};
use acus_control::planning::{InsertionPlan, PlanningError, PlanningParams};
use acus_control::registration::QualityGate;
use nalgebra::Vector3;
use procedure_fixture::*;
use proptest::prelude::*;

fn plan_robot(
    params: PlanningParams,
    entry: Point<RobotBase>,
    target: Point<RobotBase>,
) -> Result<InsertionPlan, PlanningError> {
    planner(params).plan(to_ct(entry), to_ct(target), &gated(), &QualityGate::default())
}

/// Straight down from a reachable entry, `depth` metres.
fn vertical(depth: f64) -> (Point<RobotBase>, Point<RobotBase>) {
    (Point::xyz(0.0, 0.30, 0.25), Point::xyz(0.0, 0.30, 0.25 - depth))
}

fn no_margin() -> PlanningParams {
    PlanningParams {
        insertion_margin: 0.0,
        ..PlanningParams::default()
    }
}

#[test]
fn plan_aligns_on_the_entry_and_steps_reach_the_target() {
    let plan = plan();
    let m = model();
    let err = plan.entry().distance(&entry_robot());
    assert!(
        err < 2e-4,
        "registration maps the entry back within its noise: {err:e} m"
    );
    let align = m.forward(&plan.align_goal());
    assert!(align.rcm.distance(&plan.entry()) < 1e-9);
    assert!(
        align.direction.dot(&plan.direction()) > 1.0 - 1e-12,
        "needle on the line before inserting"
    );
    // Retracted: the insertion joint at its lower limit puts the tip on the guide tip, i.e. on the entry.
    assert_eq!(plan.align_goal().insertion(), m.limit(Joint::Insertion).lower);
    assert!(align.tip.distance(&plan.entry()) < 1e-9);
    let last = plan.steps().last().unwrap();
    assert!(m.forward(&last.goal).tip.distance(&plan.target()) < 1e-9);
    assert_eq!(last.goal, plan.target_goal());
    // Only the insertion joint changes between steps.
    for s in plan.steps() {
        for j in [Joint::X, Joint::Y, Joint::Z, Joint::Yaw, Joint::Pitch] {
            assert_eq!(s.goal.get(j), plan.align_goal().get(j));
        }
        assert!(
            m.forward(&s.goal).rcm.distance(&plan.entry()) < 1e-9,
            "RCM stays on the entry"
        );
    }
    // 86.0 mm in ≤ 30 mm steps: 30, 30, 26.0.
    let lengths: Vec<f64> = plan.steps().iter().map(|s| s.length).collect();
    println!(
        "depth {:.3} mm, steps (mm) {:?}",
        plan.depth() * 1e3,
        lengths.iter().map(|l| l * 1e3).collect::<Vec<_>>()
    );
    assert_eq!(lengths.len(), 3);
    assert_eq!(lengths[0], 0.030);
    assert!((lengths[1] - 0.030).abs() < 1e-15);
    assert!(lengths[2] < 0.030 && lengths[2] > 0.0);
    assert!(plan.predicted_tre() > 0.0 && plan.predicted_tre() <= QualityGate::default().max_predicted_tre);
}

#[test]
fn a_target_one_micrometre_beyond_the_insertion_limit_is_refused_with_the_number() {
    let (entry, _) = vertical(0.0);
    let limit = model().limit(Joint::Insertion).upper;
    let (_, at_limit) = vertical(limit);
    let plan = plan_robot(no_margin(), entry, at_limit).unwrap();
    assert!(plan.steps().iter().all(|s| s.insertion <= limit));
    let (_, beyond) = vertical(limit + 1e-6);
    let err = plan_robot(no_margin(), entry, beyond).unwrap_err();
    assert!(matches!(err, PlanningError::TooDeep { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "target 200.001 mm deep exceeds the usable insertion depth 200.000 mm (insertion limit 200.000 mm minus 0.000 mm \
         safety margin) by 0.001 mm"
    );
}

#[test]
fn the_safety_margin_shortens_the_usable_range() {
    let (entry, target) = vertical(0.196);
    let err = plan_robot(PlanningParams::default(), entry, target).unwrap_err();
    assert_eq!(
        err.to_string(),
        "target 196.000 mm deep exceeds the usable insertion depth 195.000 mm (insertion limit 200.000 mm minus 5.000 mm \
         safety margin) by 1.000 mm"
    );
    let (_, ok) = vertical(0.195);
    let plan = plan_robot(PlanningParams::default(), entry, ok).unwrap();
    assert_eq!(plan.steps().len(), 7, "195 mm = 6 × 30 mm + 15 mm");
    assert!((plan.steps()[6].length - 0.015).abs() < 1e-12);
}

#[test]
fn unreachable_targets_pass_the_kinematics_numbers_through() {
    // 63° from vertical: beyond pitch ±45° on both yaw/pitch branches.
    let entry = Point::xyz(0.0, 0.30, 0.22);
    let err = plan_robot(PlanningParams::default(), entry, Point::xyz(0.0, 0.38, 0.18)).unwrap_err();
    match &err {
        PlanningError::Unreachable(KinematicsError::JointLimit(v)) => {
            assert!(v.joint == Joint::Pitch || v.joint == Joint::Yaw, "{v:?}");
            assert!(v.excess > 0.0);
        }
        other => panic!("expected a joint limit, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.starts_with("target unreachable: ") && msg.contains('°') && msg.contains("limit 45.00°"),
        "{msg}"
    );
    // An entry outside the X stage's ±100 mm.
    let err = plan_robot(
        PlanningParams::default(),
        Point::xyz(0.15, 0.30, 0.22),
        Point::xyz(0.15, 0.30, 0.12),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("x_joint would need 150.00 mm, beyond its upper limit 100.00 mm by 50.00 mm"),
        "{err}"
    );
}

#[test]
fn too_short_and_predicted_tre_refusals_carry_numbers() {
    let (entry, target) = vertical(0.003);
    let err = plan_robot(PlanningParams::default(), entry, target).unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry and target are 3.000 mm apart; at least 5.000 mm are required"
    );

    let strict = QualityGate {
        max_predicted_tre: 1e-5,
        ..QualityGate::default()
    };
    let err = planner(PlanningParams::default())
        .plan(to_ct(entry_robot()), to_ct(target_robot()), &gated(), &strict)
        .unwrap_err();
    let PlanningError::PredictedTreTooHigh { tre_mm, max_mm } = err else {
        panic!("{err:?}")
    };
    assert!(tre_mm > 0.01 && max_mm == 0.01);
    assert!(err.to_string().contains("exceeds the gate's limit 0.010 mm"), "{err}");

    let err = planner(PlanningParams::default())
        .plan(
            Point::xyz(f64::NAN, 0.0, 0.0),
            to_ct(target_robot()),
            &gated(),
            &QualityGate::default(),
        )
        .unwrap_err();
    assert_eq!(err, PlanningError::NonFinite("entry"));
}

#[test]
fn bad_parameters_are_refused() {
    let bad = PlanningParams {
        stop_short: 0.040,
        ..PlanningParams::default()
    };
    let err = acus_control::planning::Planner::new(model().clone(), bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "planning parameter stop_short = 40.000 mm is out of range: must be ≥ 0 and ≤ max_step"
    );
    let bad = PlanningParams {
        insertion_margin: 0.2,
        ..PlanningParams::default()
    };
    assert!(acus_control::planning::Planner::new(model().clone(), bad).is_err());
    let bad = PlanningParams {
        max_step: 0.0,
        ..PlanningParams::default()
    };
    assert!(acus_control::planning::Planner::new(model().clone(), bad).is_err());
}

#[test]
fn stop_short_adds_a_final_approach_after_the_check() {
    let params = PlanningParams {
        stop_short: 0.005,
        min_depth: 0.010,
        ..PlanningParams::default()
    };
    let plan = plan_robot(params, entry_robot(), target_robot()).unwrap();
    let steps = plan.steps();
    let last = steps.last().unwrap();
    assert!(last.final_approach && (last.length - 0.005).abs() < 1e-12);
    let before = &steps[steps.len() - 2];
    assert!(!before.final_approach && (plan.depth() - before.tip_depth - 0.005).abs() < 1e-12);
    let sum: f64 = steps.iter().map(|s| s.length).sum();
    assert!((sum - plan.depth()).abs() < 1e-12);
}

#[test]
fn replan_pivots_about_the_entry_at_the_current_depth() {
    let p = planner(PlanningParams::default());
    let plan = plan();
    let current = plan.steps()[0].insertion;
    // 2° off the planned direction, 1 mm deeper.
    let axis = plan.direction().cross(&Vector3::z()).normalize();
    let dir = nalgebra::UnitQuaternion::from_axis_angle(&nalgebra::Unit::new_normalize(axis), 2f64.to_radians())
        * plan.direction().into_inner();
    let re = p
        .replan_from_direction(
            plan.entry(),
            dir * 3.0,
            plan.depth() + 0.001,
            current,
            plan.correction_limit(),
        )
        .unwrap();
    let s = model().forward(&re.reorient_goal());
    assert!(s.rcm.distance(&plan.entry()) < 1e-9, "RCM held on the entry");
    assert!(
        s.direction.dot(&dir) > 1.0 - 1e-12,
        "needle along the corrected direction"
    );
    assert_eq!(re.reorient_goal().insertion(), current, "insertion held while turning");
    let sum: f64 = re.steps().iter().map(|s| s.length).sum();
    assert!((sum - (plan.depth() + 0.001 - current)).abs() < 1e-12);
    assert!(
        model()
            .forward(&re.steps().last().unwrap().goal)
            .tip
            .distance(&re.target())
            < 1e-9
    );
    assert_eq!(re.retracted_goal().insertion(), 0.0);

    let err = p
        .replan_from_direction(plan.entry(), dir, 0.02, current, plan.correction_limit())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "needle is already 30.000 mm deep, beyond the re-planned depth 20.000 mm; retract first"
    );
    let err = p
        .replan_from_direction(
            plan.entry(),
            Vector3::new(1.0, 0.0, 0.0),
            0.05,
            current,
            plan.correction_limit(),
        )
        .unwrap_err();
    assert!(matches!(err, PlanningError::Unreachable(_)), "horizontal needle: {err}");
    let err = p
        .replan_from_direction(plan.entry(), Vector3::zeros(), 0.05, current, plan.correction_limit())
        .unwrap_err();
    assert!(matches!(err, PlanningError::BadDirection(_)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any reachable plan: the steps sum to the total depth, none is longer than the step length or empty, every step
    /// but the last regular one has exactly the step length, and no step goes beyond the usable insertion range.
    #[test]
    fn steps_cover_the_depth_within_step_and_insertion_limits(
        ex in -0.05f64..0.05, ey in 0.25f64..0.35, ez in 0.18f64..0.28,
        tilt in 0.0f64..0.6, heading in -3.1f64..3.1, depth in 0.005f64..0.2,
        max_step in 0.001f64..0.04, short_frac in 0.0f64..1.0, with_short in any::<bool>(), margin in 0.0f64..0.01,
    ) {
        let stop_short = if with_short { (max_step * short_frac).min(0.0049) } else { 0.0 };
        let params = PlanningParams { max_step, stop_short, insertion_margin: margin, min_depth: 0.005 };
        let entry = Point::xyz(ex, ey, ez);
        let d = Vector3::new(tilt.sin() * heading.cos(), tilt.sin() * heading.sin(), -tilt.cos());
        let target = Point::new(entry.coords + d * depth);
        let plan = match plan_robot(params.clone(), entry, target) {
            Ok(p) => p,
            Err(PlanningError::TooDeep { .. } | PlanningError::Unreachable(_) | PlanningError::TooShort { .. }) => {
                return Err(TestCaseError::reject("not plannable"));
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        let steps = plan.steps();
        let sum: f64 = steps.iter().map(|s| s.length).sum();
        prop_assert!((sum - plan.depth()).abs() < 1e-12, "sum {sum} vs depth {}", plan.depth());
        let usable = model().limit(Joint::Insertion).upper - margin;
        let regular: Vec<_> = steps.iter().filter(|s| !s.final_approach).collect();
        for (i, s) in steps.iter().enumerate() {
            prop_assert!(s.length > 0.0 && s.length <= max_step + 1e-15, "step {i} length {}", s.length);
            prop_assert!(s.insertion <= usable + 1e-15, "step {i} at {} beyond {usable}", s.insertion);
            prop_assert_eq!(s.index, i);
        }
        for s in &regular[..regular.len() - 1] {
            prop_assert!((s.length - max_step).abs() < 1e-12);
        }
        prop_assert_eq!(steps.iter().filter(|s| s.final_approach).count(), usize::from(stop_short > 0.0));
        let tip = model().forward(&steps[steps.len() - 1].goal).tip;
        prop_assert!(tip.distance(&plan.target()) < 1e-9);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any accepted re-plan: the RCM stays on the entry, the insertion is held while turning, the remaining steps cover
    /// exactly the remaining depth in steps ≤ the step length, and never beyond the usable insertion range.
    #[test]
    fn replans_hold_the_entry_and_cover_the_remaining_depth(
        tilt in 0.0f64..0.5, heading in -3.1f64..3.1, depth in 0.005f64..0.2, current_frac in 0.0f64..1.0,
    ) {
        let p = planner(PlanningParams::default());
        let entry = Point::xyz(0.01, 0.30, 0.24);
        let dir = Vector3::new(tilt.sin() * heading.cos(), tilt.sin() * heading.sin(), -tilt.cos());
        let current = depth * current_frac;
        let re = match p.replan_from_direction(entry, dir, depth, current, deep_limit()) {
            Ok(r) => r,
            Err(PlanningError::TooDeep { .. } | PlanningError::Unreachable(_)) => {
                return Err(TestCaseError::reject("not reachable"));
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        let s = model().forward(&re.reorient_goal());
        prop_assert!(s.rcm.distance(&entry) < 1e-9);
        prop_assert_eq!(re.reorient_goal().insertion(), current);
        let sum: f64 = re.steps().iter().map(|s| s.length).sum();
        prop_assert!((sum - (depth - current)).abs() < 1e-12 || (re.steps().is_empty() && depth - current < 1e-6));
        for s in re.steps() {
            prop_assert!(s.length > 0.0 && s.length <= 0.030 + 1e-15);
            prop_assert!(s.insertion <= p.max_depth() + 1e-15);
        }
    }
}

/// A limit deep enough for any depth the property tests ask (a 199 mm plan: limit 204 mm).
fn deep_limit() -> acus_control::planning::DepthLimit {
    let (e, t) = vertical(0.199);
    plan_robot(no_margin(), e, t).unwrap().correction_limit()
}

#[test]
fn correction_deeper_than_planned_plus_margin_is_refused_naming_both_depths() {
    use acus_control::planning::CORRECTION_DEPTH_MARGIN;
    let p = planner(PlanningParams::default());
    let plan = plan();
    let current = plan.steps()[0].insertion;
    let limit = plan.correction_limit();
    assert!((limit.max_depth() - (plan.depth() + CORRECTION_DEPTH_MARGIN)).abs() < 1e-15);
    // Just inside the margin: accepted.
    let inside = plan.depth() + CORRECTION_DEPTH_MARGIN - 1e-4;
    assert!(p
        .replan_from_direction(plan.entry(), *plan.direction(), inside, current, limit)
        .is_ok());
    // Just beyond it, yet well within the robot's reach (which alone bounded a re-plan before): refused.
    let beyond = plan.depth() + CORRECTION_DEPTH_MARGIN + 1e-4;
    assert!(beyond + 0.01 < p.max_depth(), "the robot could reach it");
    let err = p
        .replan_from_direction(plan.entry(), *plan.direction(), beyond, current, limit)
        .unwrap_err();
    match &err {
        PlanningError::DeeperThanPlanned {
            depth_mm,
            planned_mm,
            margin_mm,
        } => {
            assert!((depth_mm - beyond * 1e3).abs() < 1e-9);
            assert!((planned_mm - plan.depth() * 1e3).abs() < 1e-9);
            assert!((margin_mm - 5.0).abs() < 1e-12);
        }
        other => panic!("expected DeeperThanPlanned, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains(&format!("{:.3} mm", beyond * 1e3)), "{text}");
    assert!(text.contains(&format!("{:.3} mm", plan.depth() * 1e3)), "{text}");
    assert!(text.contains("retract"), "the way out: {text}");
}

#[test]
fn successive_corrections_cannot_walk_past_the_planned_limit() {
    // Each check scan asks for 2 mm more than the last correction. The bound comes from the plan, not from the last
    // re-plan, so the third one is refused: the corrections do not accumulate.
    let p = planner(PlanningParams::default());
    let plan = plan();
    let current = plan.steps()[0].insertion;
    let mut depth = plan.depth();
    let mut accepted = 0;
    for _ in 0..5 {
        depth += 0.002;
        match p.replan_from_direction(plan.entry(), *plan.direction(), depth, current, plan.correction_limit()) {
            Ok(re) => {
                assert!(re.depth() <= plan.depth() + 0.005 + 1e-12);
                accepted += 1;
            }
            Err(PlanningError::DeeperThanPlanned { .. }) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(accepted, 2);
}

#[test]
fn target_found_again_is_accepted_only_near_the_planned_target() {
    use acus_control::frames::Ct;
    use acus_control::planning::MAX_TARGET_DRIFT;
    let plan = plan();
    let planned = plan.target_ct();
    let off = |d: f64| Point::<Ct>::new(planned.coords + Vector3::new(0.6, 0.0, 0.8) * d);
    let near = off(MAX_TARGET_DRIFT - 1e-4);
    assert!(plan.bounded_target(&near).unwrap().distance(&near) < 1e-15);
    match plan.bounded_target(&off(MAX_TARGET_DRIFT + 1e-4)) {
        Err(PlanningError::TargetDrifted { drift_mm, max_mm }) => {
            assert!((drift_mm - (MAX_TARGET_DRIFT + 1e-4) * 1e3).abs() < 1e-9);
            assert!((max_mm - 10.0).abs() < 1e-12);
        }
        other => panic!("expected TargetDrifted, got {other:?}"),
    }
    assert!(matches!(
        plan.bounded_target(&Point::<Ct>::xyz(f64::NAN, 0.0, 0.0)),
        Err(PlanningError::NonFinite(_))
    ));
}

#[test]
fn nan_tre_limit_refuses_the_plan() {
    let gate = QualityGate {
        max_predicted_tre: f64::NAN,
        ..QualityGate::default()
    };
    let err = planner(PlanningParams::default())
        .plan(to_ct(entry_robot()), to_ct(target_robot()), &gated(), &gate)
        .unwrap_err();
    assert!(matches!(err, PlanningError::PredictedTreTooHigh { .. }), "{err}");
}
