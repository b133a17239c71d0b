//! Property test of the procedure's safety rules: whatever the order of events, the machine never asks for motion while
//! the e-stop is active (or unreported), the enable is released or a fault is latched; it moves only in answer to an
//! operator request; a rejected event changes nothing; a held reset clears a fault at most once.
//!
//! The oracle for the interlocks is kept here, independently of the machine, from the raw input events.

mod procedure_fixture;

use std::sync::OnceLock;

use acus_control::procedure::{Event, Procedure, ProcedureConfig};
use procedure_fixture::*;
use proptest::prelude::*;

/// Every kind of event, with real registrations, plans and corrections.
fn pool() -> &'static [Event] {
    static POOL: OnceLock<Vec<Event>> = OnceLock::new();
    POOL.get_or_init(|| {
        vec![
            Event::ScanAcquired,
            Event::Registered(gated()),
            Event::RegistrationRefused(refused()),
            Event::Planned(plan()),
            Event::PlanFailed(unreachable()),
            Event::AlignRequested,
            Event::Aligned,
            Event::InsertStepRequested,
            Event::StepDone,
            Event::CheckScanAnalysed { tip_error: 0.5e-3 },
            Event::CheckScanAnalysed { tip_error: 4e-3 },
            Event::Replanned(replan(Some(0))),
            Event::Replanned(replan(None)),
            Event::ConfirmRequested,
            Event::RetractRequested,
            Event::Retracted,
            Event::AbortRequested,
            Event::NewProcedure,
            Event::EnableChanged(true),
            Event::EnableChanged(false),
            Event::EStop(true),
            Event::EStop(false),
            Event::Fault("drive 3 error 0x2310".into()),
            Event::Reset(true),
            Event::Reset(false),
        ]
    })
}

fn is_request(e: &Event) -> bool {
    matches!(
        e,
        Event::AlignRequested | Event::InsertStepRequested | Event::RetractRequested | Event::Replanned(_)
    )
}

/// Safety inputs weighted lower than procedure events, so that random walks get far into the procedure.
fn event_index() -> impl Strategy<Value = usize> {
    let n = pool().len();
    prop_oneof![6 => 0..18usize, 1 => 18..n]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_motion_without_interlocks_and_never_by_itself(
        armed_prefix in any::<bool>(),
        indices in proptest::collection::vec(event_index(), 1..80),
    ) {
        let mut p = Procedure::new(ProcedureConfig::default());
        let (mut enable, mut estop, mut fault, mut reset) = (false, true, false, false);
        let mut events: Vec<Event> = Vec::new();
        if armed_prefix {
            // Start mid-procedure: armed, aligned, ready to insert.
            events.extend([Event::EStop(false), Event::EnableChanged(true)]);
            events.extend(to_aligned());
        }
        events.extend(indices.iter().map(|&i| pool()[i].clone()));
        for (k, e) in events.into_iter().enumerate() {
            match e {
                Event::EnableChanged(v) => enable = v,
                Event::EStop(v) => estop = v,
                Event::Fault(_) => fault = true,
                Event::Reset(v) => {
                    if v && !reset {
                        fault = false;
                    }
                    reset = v;
                }
                _ => {}
            }
            let before = p.clone();
            match p.handle(e.clone()) {
                Ok(actions) => {
                    for a in &actions {
                        if a.is_motion() {
                            prop_assert!(enable && !estop && !fault,
                                "event {k} {e:?} gave {a:?} with enable {enable}, e-stop {estop}, fault {fault}");
                            prop_assert!(is_request(&e), "event {k} {e:?} moved the robot by itself: {a:?}");
                        }
                    }
                }
                Err(r) => {
                    prop_assert_eq!(&p, &before, "rejected {:?} ({}) changed the machine", e, r);
                    prop_assert!(!matches!(e, Event::EnableChanged(_) | Event::EStop(_) | Event::Fault(_) | Event::Reset(_)),
                        "safety input {:?} was rejected: {}", e, r);
                }
            }
            prop_assert_eq!(p.interlocks().fault().is_some(), fault);
            prop_assert_eq!(p.interlocks().enable(), enable);
            prop_assert_eq!(p.interlocks().estop(), estop);
        }
    }
}
