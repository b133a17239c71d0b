//! The procedure state machine: the happy path through every stage with a real registration and plan, and each guard.

mod procedure_fixture;

use acus_control::kinematics::Joint;
use acus_control::procedure::{Action, Event, Halt, Motion, Procedure, ProcedureConfig, Reason, Stage};
use procedure_fixture::*;

fn rejected(p: &mut Procedure, e: Event) -> String {
    let before = p.clone();
    let r = p.handle(e.clone()).expect_err(&format!("{e:?} should be rejected"));
    assert_eq!(*p, before, "a rejected {e:?} changed the machine");
    r.to_string()
}

fn no_motion(actions: &[Action]) {
    assert!(actions.iter().all(|a| !a.is_motion()), "unexpected motion {actions:?}");
}

#[test]
fn happy_path_through_every_stage() {
    let mut p = armed();
    let plan = plan();
    assert_eq!(p.handle(Event::ScanAcquired).unwrap(), vec![]);
    assert_eq!(p.stage(), &Stage::Registering);
    assert_eq!(p.handle(Event::Registered(gated())).unwrap(), vec![]);
    assert_eq!(p.stage(), &Stage::Planning);
    assert_eq!(p.handle(Event::Planned(plan.clone())).unwrap(), vec![]);
    assert_eq!(p.stage(), &Stage::ReadyToAlign);
    assert_eq!(
        p.handle(Event::AlignRequested).unwrap(),
        vec![Action::MoveTo {
            goal: plan.align_goal(),
            motion: Motion::Align
        }]
    );
    assert_eq!(p.stage(), &Stage::Aligning);
    assert_eq!(p.handle(Event::Aligned).unwrap(), vec![]);
    let n = plan.steps().len();
    assert_eq!(n, 3);
    for (k, step) in plan.steps().iter().enumerate() {
        assert_eq!(p.stage(), &Stage::ReadyToInsert { next: k });
        assert_eq!(
            p.handle(Event::InsertStepRequested).unwrap(),
            vec![Action::MoveTo {
                goal: step.goal,
                motion: Motion::Insert { step: k }
            }]
        );
        assert!(p.needle_may_be_in());
        assert_eq!(
            p.handle(Event::StepDone).unwrap(),
            vec![Action::AcquireCheckScan { step: k }]
        );
        assert_eq!(p.stage(), &Stage::Checking { step: k });
        assert_eq!(
            p.handle(Event::CheckScanAnalysed { tip_error: 0.4e-3 }).unwrap(),
            vec![]
        );
    }
    assert_eq!(p.stage(), &Stage::ReadyToConfirm);
    assert_eq!(p.handle(Event::ConfirmRequested).unwrap(), vec![]);
    assert_eq!(p.stage(), &Stage::Confirmed);
    let lower = model().limit(Joint::Insertion).lower;
    assert_eq!(
        p.handle(Event::RetractRequested).unwrap(),
        vec![Action::RetractTo {
            insertion: lower,
            motion: Motion::Retract
        }]
    );
    assert_eq!(p.handle(Event::Retracted).unwrap(), vec![]);
    assert_eq!(p.stage(), &Stage::Done);
    assert!(!p.needle_may_be_in());
    assert_eq!(p.handle(Event::NewProcedure).unwrap(), vec![]);
    assert_eq!(p.stage(), &Stage::Idle);
    assert!(p.plan().is_none());
}

#[test]
fn wrong_order_is_rejected_and_changes_nothing() {
    let mut p = armed();
    assert_eq!(
        rejected(&mut p, Event::InsertStepRequested),
        "cannot insert: procedure is idle; this needs: ready to insert, paused during an insertion step, or a failed check scan to take again"
    );
    feed(
        &mut p,
        vec![Event::ScanAcquired, Event::Registered(gated()), Event::Planned(plan())],
    );
    assert!(rejected(&mut p, Event::InsertStepRequested).starts_with("cannot insert: procedure is ready to align"));
    assert!(rejected(&mut p, Event::StepDone).starts_with("cannot accept a step report: procedure is ready to align"));
    assert!(rejected(&mut p, Event::ConfirmRequested).starts_with("cannot confirm:"));
    feed(
        &mut p,
        vec![
            Event::AlignRequested,
            Event::Aligned,
            Event::InsertStepRequested,
            Event::StepDone,
        ],
    );
    assert_eq!(
        rejected(&mut p, Event::CheckScanAnalysed { tip_error: f64::NAN }),
        "cannot accept a check-scan result: tip error NaN m is not a finite distance ≥ 0"
    );
    assert!(rejected(&mut p, Event::ScanAcquired).contains("the needle may still be in the patient"));
    assert!(rejected(&mut p, Event::NewProcedure).contains("the needle may still be in the patient"));
}

#[test]
fn a_plan_from_another_registration_is_refused() {
    let mut p = armed();
    feed(&mut p, vec![Event::ScanAcquired, Event::Registered(gated())]);
    // Same points, registered with more noise: another T_robot_ct.
    let other = {
        use acus_control::registration::{register_points, MatchParams, QualityGate};
        let reg = register_points(fiducials(), &detections(1e-4), &MatchParams::default()).unwrap();
        let g = QualityGate::default().check(reg, &[]).unwrap();
        planner(Default::default())
            .plan(to_ct(entry_robot()), to_ct(target_robot()), &g, &QualityGate::default())
            .unwrap()
    };
    assert_eq!(
        rejected(&mut p, Event::Planned(other)),
        "cannot accept a plan: the plan was made with another registration than the current one"
    );
}

#[test]
fn a_refused_registration_blocks_alignment_with_the_gate_numbers() {
    let mut p = armed();
    feed(&mut p, vec![Event::ScanAcquired, Event::RegistrationRefused(refused())]);
    let msg = rejected(&mut p, Event::AlignRequested);
    println!("{msg}");
    assert!(msg.starts_with("cannot align: registration refused: FRE "), "{msg}");
    assert!(msg.contains("mm RMS exceeds the limit 0.500 mm"), "{msg}");
    assert!(rejected(&mut p, Event::InsertStepRequested).starts_with("cannot insert: registration refused: FRE"));
    // A new scan starts over.
    feed(&mut p, vec![Event::ScanAcquired]);
    assert_eq!(p.stage(), &Stage::Registering);
}

#[test]
fn an_unreachable_target_blocks_alignment_with_the_kinematics_numbers() {
    let mut p = armed();
    let err = unreachable();
    feed(
        &mut p,
        vec![
            Event::ScanAcquired,
            Event::Registered(gated()),
            Event::PlanFailed(err.clone()),
        ],
    );
    let msg = rejected(&mut p, Event::AlignRequested);
    println!("{msg}");
    assert_eq!(msg, format!("cannot align: {err}"));
    assert!(
        msg.starts_with("cannot align: target unreachable: ") && msg.contains("limit 45.00°"),
        "{msg}"
    );
}

#[test]
fn the_estop_counts_as_active_until_reported() {
    let mut p = Procedure::new(ProcedureConfig::default());
    feed(
        &mut p,
        vec![
            Event::EnableChanged(true),
            Event::ScanAcquired,
            Event::Registered(gated()),
            Event::Planned(plan()),
        ],
    );
    assert_eq!(
        rejected(&mut p, Event::AlignRequested),
        "cannot align: e-stop state not reported yet (treated as active)"
    );
    feed(&mut p, vec![Event::EStop(false)]);
    assert!(p.handle(Event::AlignRequested).unwrap()[0].is_motion());
}

/// Inserting step 2 (index 1) of the plan.
fn mid_insertion() -> Procedure {
    let mut p = armed();
    let mut events = to_aligned();
    events.extend([
        Event::InsertStepRequested,
        Event::StepDone,
        Event::CheckScanAnalysed { tip_error: 0.3e-3 },
        Event::InsertStepRequested,
    ]);
    feed(&mut p, events);
    assert_eq!(p.stage(), &Stage::Inserting { step: 1 });
    p
}

#[test]
fn enable_released_mid_insertion_holds_and_waits_for_the_operator() {
    let mut p = mid_insertion();
    assert_eq!(p.handle(Event::EnableChanged(false)).unwrap(), vec![Action::Hold]);
    assert_eq!(
        p.stage(),
        &Stage::Paused {
            interrupted: Motion::Insert { step: 1 },
            cause: Halt::EnableReleased
        }
    );
    assert_eq!(
        p.status(),
        "paused: insertion step 2 stopped (enable (deadman) released)"
    );
    assert_eq!(
        rejected(&mut p, Event::InsertStepRequested),
        "cannot insert: enable (deadman) released"
    );
    assert_eq!(
        rejected(&mut p, Event::RetractRequested),
        "cannot retract: enable (deadman) released"
    );
    assert!(rejected(&mut p, Event::StepDone).starts_with("cannot accept a step report: procedure is paused"));
    // Pressing the enable again moves nothing by itself.
    assert_eq!(p.handle(Event::EnableChanged(true)).unwrap(), vec![]);
    assert!(matches!(p.stage(), Stage::Paused { .. }));
    // The operator asks again: the same step's goal (absolute, planned from wherever the needle stopped).
    let goal = p.steps()[1].goal;
    assert_eq!(
        p.handle(Event::InsertStepRequested).unwrap(),
        vec![Action::MoveTo {
            goal,
            motion: Motion::Insert { step: 1 }
        }]
    );
}

#[test]
fn estop_mid_insertion_quick_stops_and_only_an_operator_request_moves_again() {
    let mut p = mid_insertion();
    assert_eq!(p.handle(Event::EStop(true)).unwrap(), vec![Action::QuickStop]);
    assert_eq!(
        p.stage(),
        &Stage::Paused {
            interrupted: Motion::Insert { step: 1 },
            cause: Halt::EStop
        }
    );
    assert_eq!(
        rejected(&mut p, Event::InsertStepRequested),
        "cannot insert: e-stop active"
    );
    assert_eq!(
        rejected(&mut p, Event::RetractRequested),
        "cannot retract: e-stop active"
    );
    assert_eq!(p.handle(Event::EStop(false)).unwrap(), vec![]);
    assert_eq!(p.handle(Event::EnableChanged(false)).unwrap(), vec![Action::Hold]);
    assert_eq!(p.handle(Event::EnableChanged(true)).unwrap(), vec![]);
    // The operator chooses to retract instead of continuing.
    let actions = p.handle(Event::RetractRequested).unwrap();
    assert_eq!(
        actions,
        vec![Action::RetractTo {
            insertion: 0.0,
            motion: Motion::Retract
        }]
    );
    feed(&mut p, vec![Event::Retracted]);
    assert_eq!(p.stage(), &Stage::Done);
}

#[test]
fn a_fault_latches_until_a_rising_reset_edge_and_nothing_moves_by_itself() {
    let mut p = mid_insertion();
    assert_eq!(
        p.handle(Event::Fault("axis 5 following error 2.10 mm".into())).unwrap(),
        vec![Action::QuickStop]
    );
    let cause = Halt::Fault("axis 5 following error 2.10 mm".into());
    assert_eq!(
        p.stage(),
        &Stage::Paused {
            interrupted: Motion::Insert { step: 1 },
            cause
        }
    );
    assert!(
        p.status()
            .ends_with("FAULT LATCHED: axis 5 following error 2.10 mm (reset required)"),
        "{}",
        p.status()
    );
    assert_eq!(
        rejected(&mut p, Event::InsertStepRequested),
        "cannot insert: fault latched (axis 5 following error 2.10 mm); reset it first"
    );
    assert!(rejected(&mut p, Event::StepDone).starts_with("cannot accept a step report: fault latched"));
    // Enable and e-stop cycling do not clear it.
    no_motion(&feed(
        &mut p,
        vec![
            Event::EnableChanged(false),
            Event::EnableChanged(true),
            Event::EStop(true),
            Event::EStop(false),
        ],
    ));
    assert!(p.interlocks().fault().is_some());
    // Rising edge clears; nothing moves.
    assert_eq!(p.handle(Event::Reset(true)).unwrap(), vec![]);
    assert_eq!(p.interlocks().fault(), None);
    // A second fault while the reset is still held latches, and the held reset does not clear it again.
    assert_eq!(
        p.handle(Event::Fault("drive 2 error 0x7500".into())).unwrap(),
        vec![Action::QuickStop]
    );
    no_motion(&feed(&mut p, vec![Event::Reset(true), Event::Reset(true)]));
    assert_eq!(p.interlocks().fault(), Some("drive 2 error 0x7500"));
    assert!(matches!(rejected(&mut p, Event::RetractRequested).as_str(), s if s.contains("fault latched (drive 2")));
    // Release and press again: cleared. Still no motion until the operator asks.
    no_motion(&feed(
        &mut p,
        vec![Event::Reset(false), Event::Reset(true), Event::Reset(false)],
    ));
    assert_eq!(p.interlocks().fault(), None);
    assert!(matches!(
        p.stage(),
        Stage::Paused {
            interrupted: Motion::Insert { step: 1 },
            ..
        }
    ));
    let actions = p.handle(Event::InsertStepRequested).unwrap();
    assert_eq!(
        actions,
        vec![Action::MoveTo {
            goal: p.steps()[1].goal,
            motion: Motion::Insert { step: 1 }
        }]
    );
}

#[test]
fn a_fault_while_standing_latches_without_changing_the_stage() {
    let mut p = armed();
    feed(&mut p, to_aligned());
    assert_eq!(
        p.handle(Event::Fault("bus frame lost".into())).unwrap(),
        vec![Action::QuickStop]
    );
    assert_eq!(p.stage(), &Stage::ReadyToInsert { next: 0 });
    let r = p.handle(Event::InsertStepRequested).unwrap_err();
    assert_eq!(r.reason, Reason::FaultLatched("bus frame lost".into()));
    feed(&mut p, vec![Event::Reset(true)]);
    assert!(p.handle(Event::InsertStepRequested).unwrap()[0].is_motion());
}

#[test]
fn a_check_scan_off_the_path_needs_a_correction_about_the_entry() {
    let mut p = armed();
    let mut events = to_aligned();
    events.extend([Event::InsertStepRequested, Event::StepDone]);
    feed(&mut p, events);
    feed(&mut p, vec![Event::CheckScanAnalysed { tip_error: 3.1e-3 }]);
    assert_eq!(p.status(), "needs correction after step 1 (tip error 3.10 mm)");
    assert!(rejected(&mut p, Event::InsertStepRequested).starts_with("cannot insert: procedure is needs correction"));
    let re = replan(Some(0));
    assert_eq!(
        p.handle(Event::Replanned(re.clone())).unwrap(),
        vec![Action::MoveTo {
            goal: re.reorient_goal(),
            motion: Motion::Reorient
        }]
    );
    feed(&mut p, vec![Event::Aligned]);
    // Steps count on across the correction: one was done, the correction's first is the procedure's second.
    assert_eq!(p.stage(), &Stage::ReadyToInsert { next: 1 });
    assert_eq!(p.status(), "ready for insertion step 2");
    assert_eq!(p.steps(), re.steps());
    assert_eq!(p.planned_steps(), 1 + re.steps().len());
    for k in 0..re.steps().len() {
        assert_eq!(p.step(1 + k), Some(&re.steps()[k]));
        let a = p.handle(Event::InsertStepRequested).unwrap();
        assert_eq!(
            a,
            vec![Action::MoveTo {
                goal: re.steps()[k].goal,
                motion: Motion::Insert { step: 1 + k }
            }]
        );
        feed(
            &mut p,
            vec![Event::StepDone, Event::CheckScanAnalysed { tip_error: 0.5e-3 }],
        );
    }
    assert_eq!(p.stage(), &Stage::ReadyToConfirm);
    // A correction must pivot about the planned entry.
    let mut q = armed();
    let mut ev = to_aligned();
    ev.extend([
        Event::InsertStepRequested,
        Event::StepDone,
        Event::CheckScanAnalysed { tip_error: 3e-3 },
    ]);
    feed(&mut q, ev);
    let off = planner(Default::default())
        .replan_from_direction(
            acus_control::frames::Point::new(plan().entry().coords + nalgebra::Vector3::new(0.002, 0.0, 0.0)),
            plan().direction().into_inner(),
            plan().depth(),
            plan().steps()[0].insertion,
            plan().correction_limit(),
        )
        .unwrap();
    assert_eq!(
        rejected(&mut q, Event::Replanned(off)),
        "cannot re-orient: the correction pivots about a point 2.000 mm from the planned entry; it must pivot about the entry"
    );
    // It must hold the insertion where the needle stands (30 mm after step 1)…
    assert_eq!(
        rejected(&mut q, Event::Replanned(replan(None))),
        "cannot re-orient: the correction holds the insertion at 0.000 mm but the needle stands at 30.000 mm"
    );
    // …and must not sweep the inserted needle through tissue by more than the allowed turn.
    let axis = nalgebra::Unit::new_normalize(plan().direction().cross(&nalgebra::Vector3::z()));
    let dir = nalgebra::UnitQuaternion::from_axis_angle(&axis, 10f64.to_radians()) * plan().direction().into_inner();
    let big = planner(Default::default())
        .replan_from_direction(
            plan().entry(),
            dir,
            plan().depth(),
            plan().steps()[0].insertion,
            plan().correction_limit(),
        )
        .unwrap();
    assert_eq!(
        rejected(&mut q, Event::Replanned(big)),
        "cannot re-orient: the correction turns the inserted needle by 10.00°, more than 5.00°; retract first"
    );
}

#[test]
fn abort_mid_insertion_holds_and_leaves_only_retraction() {
    let mut p = mid_insertion();
    assert_eq!(p.handle(Event::AbortRequested).unwrap(), vec![Action::Hold]);
    assert_eq!(p.stage(), &Stage::Aborted);
    assert!(rejected(&mut p, Event::InsertStepRequested).starts_with("cannot insert: procedure is aborted"));
    assert!(rejected(&mut p, Event::NewProcedure).contains("retract it first"));
    assert_eq!(
        p.handle(Event::RetractRequested).unwrap(),
        vec![Action::RetractTo {
            insertion: 0.0,
            motion: Motion::Retract
        }]
    );
    feed(&mut p, vec![Event::Retracted, Event::NewProcedure]);
    assert_eq!(p.stage(), &Stage::Idle);
}

#[test]
fn a_tip_error_limit_that_is_not_a_number_asks_for_a_correction() {
    let mut p = Procedure::new(ProcedureConfig {
        max_tip_error: f64::NAN,
        ..ProcedureConfig::default()
    });
    feed(&mut p, vec![Event::EStop(false), Event::EnableChanged(true)]);
    let mut events = to_aligned();
    events.extend([Event::InsertStepRequested, Event::StepDone]);
    feed(&mut p, events);
    feed(&mut p, vec![Event::CheckScanAnalysed { tip_error: 0.1e-3 }]);
    assert!(
        matches!(p.stage(), Stage::NeedsCorrection { step: 0, .. }),
        "{}",
        p.status()
    );
}

#[test]
fn a_correction_too_large_for_the_inserted_needle_is_made_as_a_redirect_after_a_withdrawal() {
    let mut p = armed();
    let mut events = to_aligned();
    events.extend([
        Event::InsertStepRequested,
        Event::StepDone,
        Event::CheckScanAnalysed { tip_error: 4e-3 },
    ]);
    feed(&mut p, events);
    let depth_after_step = plan().steps()[0].insertion;
    let axis = nalgebra::Unit::new_normalize(plan().direction().cross(&nalgebra::Vector3::z()));
    let turned =
        |deg: f64| nalgebra::UnitQuaternion::from_axis_angle(&axis, deg.to_radians()) * plan().direction().into_inner();
    let redirect = |deg: f64, withdraw_depth: f64| {
        planner(Default::default()).redirect(
            plan().entry(),
            turned(deg),
            plan().depth(),
            depth_after_step,
            withdraw_depth,
            plan().correction_limit(),
        )
    };
    // 10° is too much for the inserted needle (5°) but not for a redirect (15°).
    let re = redirect(10.0, 0.010).unwrap();
    let w = re.withdraw_to().unwrap();
    assert!(w < depth_after_step - 1e-3, "withdraws: {w} from {depth_after_step}");
    // A redirect may not "withdraw" deeper than the tip nor out of the skin.
    assert!(matches!(
        redirect(10.0, 0.2),
        Err(acus_control::planning::PlanningError::BadWithdrawal { .. })
    ));
    assert!(matches!(
        redirect(10.0, 0.0),
        Err(acus_control::planning::PlanningError::BadWithdrawal { .. })
    ));
    // The needle first comes back along its own axis (only the insertion joint moves), then turns, then inserts.
    assert_eq!(
        p.handle(Event::Replanned(re.clone())).unwrap(),
        vec![Action::RetractTo {
            insertion: w,
            motion: Motion::Withdraw
        }]
    );
    assert_eq!(p.stage(), &Stage::Withdrawing);
    // Released enable mid-withdrawal: paused, and resumed by the operator's align request.
    feed(&mut p, vec![Event::EnableChanged(false)]);
    assert!(matches!(
        p.stage(),
        Stage::Paused {
            interrupted: Motion::Withdraw,
            ..
        }
    ));
    feed(&mut p, vec![Event::EnableChanged(true)]);
    assert_eq!(
        p.handle(Event::AlignRequested).unwrap(),
        vec![Action::RetractTo {
            insertion: w,
            motion: Motion::Withdraw
        }]
    );
    assert_eq!(
        p.handle(Event::Withdrawn).unwrap(),
        vec![Action::MoveTo {
            goal: re.reorient_goal(),
            motion: Motion::Reorient
        }]
    );
    feed(&mut p, vec![Event::Aligned]);
    assert_eq!(p.stage(), &Stage::ReadyToInsert { next: 1 });
    assert_eq!(p.steps(), re.steps());
    assert!(
        (re.steps()[0].goal.insertion() - w) > 1e-3,
        "the first step inserts from the withdrawn depth"
    );

    // Beyond the redirect limit: refused with the numbers, and nothing moves.
    let mut q = armed();
    let mut ev = to_aligned();
    ev.extend([
        Event::InsertStepRequested,
        Event::StepDone,
        Event::CheckScanAnalysed { tip_error: 4e-3 },
    ]);
    feed(&mut q, ev);
    let too_far = redirect(20.0, 0.010).unwrap();
    assert_eq!(
        rejected(&mut q, Event::Replanned(too_far)),
        "cannot re-orient: the correction turns the inserted needle by 20.00°, more than 15.00°; retract first"
    );
    assert!(matches!(q.stage(), Stage::NeedsCorrection { .. }));
    // A withdrawal report out of turn is refused.
    assert!(rejected(&mut q, Event::Withdrawn).contains("withdrawing for a redirect"));
}

#[test]
fn redirects_are_limited_per_procedure() {
    let mut p = Procedure::new(ProcedureConfig {
        max_redirects: 1,
        ..ProcedureConfig::default()
    });
    feed(&mut p, vec![Event::EStop(false), Event::EnableChanged(true)]);
    let mut events = to_aligned();
    events.extend([
        Event::InsertStepRequested,
        Event::StepDone,
        Event::CheckScanAnalysed { tip_error: 4e-3 },
    ]);
    feed(&mut p, events);
    let redirect = |p: &Procedure| {
        let insertion = p.step(p.planned_steps() - 1).map_or(0.0, |s| s.insertion);
        planner(Default::default())
            .redirect(
                plan().entry(),
                plan().direction().into_inner(),
                plan().depth(),
                insertion,
                0.010,
                plan().correction_limit(),
            )
            .unwrap()
    };
    let first = redirect(&p);
    feed(&mut p, vec![Event::Replanned(first), Event::Withdrawn, Event::Aligned]);
    feed(
        &mut p,
        vec![
            Event::InsertStepRequested,
            Event::StepDone,
            Event::CheckScanAnalysed { tip_error: 4e-3 },
        ],
    );
    let second = redirect(&p);
    assert_eq!(
        rejected(&mut p, Event::Replanned(second)),
        "cannot re-orient: 1 redirects made, the most one procedure allows; retract and plan again on a new scan"
    );
    assert!(matches!(p.stage(), Stage::NeedsCorrection { .. }));
}

#[test]
fn a_check_scan_that_gives_no_answer_is_taken_again_on_request_and_nothing_moves() {
    let mut p = armed();
    let mut events = to_aligned();
    events.extend([Event::InsertStepRequested, Event::StepDone]);
    feed(&mut p, events);
    assert_eq!(p.stage(), &Stage::Checking { step: 0 });
    // A failure outside a check is refused and changes nothing.
    let mut q = armed();
    feed(&mut q, to_aligned());
    assert!(rejected(&mut q, Event::CheckScanFailed).contains("this needs: checking"));

    feed(&mut p, vec![Event::CheckScanFailed]);
    assert_eq!(p.stage(), &Stage::CheckFailed { step: 0 });
    assert_eq!(
        p.status(),
        "check scan after step 1 failed: insert to scan again, or retract"
    );
    // No fault latched: the way out is open. An insert request takes the scan again, and moves nothing.
    assert!(p.interlocks().fault().is_none());
    let again = p.handle(Event::InsertStepRequested).unwrap();
    assert_eq!(again, vec![Action::AcquireCheckScan { step: 0 }]);
    no_motion(&again);
    assert_eq!(p.stage(), &Stage::Checking { step: 0 });
    feed(&mut p, vec![Event::CheckScanAnalysed { tip_error: 0.3e-3 }]);
    assert_eq!(p.stage(), &Stage::ReadyToInsert { next: 1 });
    // Or the operator retracts.
    feed(
        &mut p,
        vec![Event::InsertStepRequested, Event::StepDone, Event::CheckScanFailed],
    );
    assert!(matches!(
        p.handle(Event::RetractRequested).unwrap()[..],
        [Action::RetractTo {
            motion: Motion::Retract,
            ..
        }]
    ));
}
