//! Steering from the check scans on emulated drives (real EtherCAT frames), with the twin scanned into DICOM:
//! - a check scan that finds the needle where no correction of the inserted needle reaches the target leads to a
//!   redirect, never to a dead end: the needle is withdrawn along its track to the redirect depth, turned about the
//!   entry and inserted again, the twin cutting a new track; after the procedure's last allowed redirect the next one is
//!   refused with the way out stated, and the needle holds. (The limits are set so that every check scan asks for a
//!   redirect, a tip error limit of 10 µm and a correction turn limit of 0.05°: the test is about the path, not about
//!   when a real needle would need it.)
//! - a check scan that gives no answer is taken again on the operator's next request.

mod common;

use std::sync::Arc;
use std::time::Duration;

use acus_executive::{Executive, Op};
use acus_sim_twin::withdrawal::Shallowest;

#[test]
fn a_needle_off_course_is_withdrawn_and_redirected_and_the_last_allowed_redirect_is_said() {
    let common::Bench {
        motion,
        mut estop,
        mut deadman,
        patient,
        scanner,
        mut settings,
        fiducials,
        out,
        link: _link,
    } = common::bench();
    settings.machine.max_tip_error = 10e-6;
    settings.machine.max_correction_angle = 0.05f64.to_radians();
    settings.machine.max_redirects = 2;
    // An oblique path (the bench's default is vertical, where this robot's yaw range leaves some tilt directions out of
    // reach: a correction there may have no joint solution at all).
    let lesion = settings.target.unwrap();
    settings.entry = Some(
        patient
            .lock()
            .unwrap()
            .config()
            .skin_above(&acus_control::frames::Point::new(
                lesion.coords + nalgebra::Vector3::new(0.025, 0.0, 0.0),
            )),
    );
    let redirect_depth = settings.redirect_depth;
    let tip_offset = {
        let model = settings.planner.model();
        let home = model.forward(&Default::default());
        (home.tip.coords - home.rcm.coords).dot(&home.direction)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let console = tokio::spawn(async move {
            loop {
                estop.refresh(false);
                deadman.refresh(true);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let _scanner_watch = common::watch_withdrawals(Arc::clone(&scanner.shallowest), &motion);
        let lowest = Arc::new(Shallowest::default());
        let _test_watch = common::watch_withdrawals(Arc::clone(&lowest), &motion);
        let running = Executive::start(settings, motion.clone(), scanner);
        let exec = running.executive.clone();
        common::ready_to_insert(&exec, out.path(), &fiducials).await;

        let first = exec.request(Op::InsertStep).await;
        println!("{}", first.text);
        assert!(
            first.ok && first.text.contains("needs correction after step 1"),
            "{}",
            first.text
        );
        let deep = motion.status().borrow().actual.insertion();
        let track_before = patient.lock().unwrap().needle().unwrap().path();

        let mut redirects = 0;
        let _ = lowest.take();
        let mut answer = exec.request(Op::InsertStep).await;
        while answer.ok && answer.text.contains("redirect (") {
            println!("{}", answer.text);
            redirects += 1;
            assert!(
                answer.text.contains("withdrawing to 15.0 mm below the entry"),
                "{}",
                answer.text
            );
            // The drives pulled the needle back to the redirect depth (insertion joint = tip depth − tip offset), not
            // out of the skin, and the step that followed went deeper again.
            let low = lowest.take().expect("the drives reported poses").insertion();
            assert!(
                (low - (redirect_depth - tip_offset)).abs() < 0.1e-3,
                "withdrawn to {:.3} mm (joint), not {:.3}",
                low * 1e3,
                (redirect_depth - tip_offset) * 1e3
            );
            assert!(motion.status().borrow().actual.insertion() > low + 5e-3);
            assert!(answer.text.contains("check scan"), "{}", answer.text);
            if redirects == 1 {
                // The twin's needle left its old track at the withdrawal depth: the first 14 mm are the old track's,
                // the rest is new.
                let track = patient.lock().unwrap().needle().unwrap().path();
                let entry = track[0].coords.coords;
                let shared = track
                    .iter()
                    .zip(&track_before)
                    .take_while(|(a, b)| a.distance(b) < 1e-9)
                    .count();
                let shared_depth = (track[shared.saturating_sub(1)].coords.coords - entry).norm();
                assert!(
                    (redirect_depth - 1.5e-3..=redirect_depth + 1e-4).contains(&shared_depth),
                    "the new track leaves the old one {:.2} mm deep",
                    shared_depth * 1e3
                );
            }
            let _ = lowest.take();
            answer = exec.request(Op::InsertStep).await;
        }
        println!("{}", answer.text);
        assert_eq!(redirects, 2, "{}", answer.text);
        // The third is refused with the reason and the way out, and nothing moves.
        assert!(!answer.ok, "{}", answer.text);
        assert!(
            answer.text.contains("2 redirects made") && answer.text.contains("retract"),
            "{}",
            answer.text
        );
        let held = motion.status().borrow().actual.insertion();
        assert!(held > redirect_depth, "the needle is still in: {held}");
        let _ = lowest.take();
        tokio::task::yield_now().await;
        let again = exec.request(Op::InsertStep).await;
        assert!(!again.ok);
        let moved = (motion.status().borrow().actual.insertion() - held).abs();
        assert!(moved < 1e-6, "moved {moved} m after a refusal");
        // The operator's way out works: the needle comes out.
        let out_answer = exec.request(Op::Retract).await;
        assert!(out_answer.ok, "{}", out_answer.text);
        assert!(deep > held - 1.0, "{deep}");
        console.abort();
    });
}

/// A check scan that gives no answer (here the scanner aborts it) latches nothing and moves nothing: the procedure
/// says so and how to go on, and the operator's next insert request takes the scan again.
#[test]
fn a_check_scan_that_fails_is_taken_again_on_the_next_request() {
    let b = common::bench();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let console = common::console(b.estop, b.deadman);
        let running = Executive::start(b.settings, b.motion.clone(), b.scanner.clone());
        let exec = running.executive.clone();
        common::ready_to_insert(&exec, b.out.path(), &b.fiducials).await;
        b.scanner
            .fail_next_check
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let step = exec.request(Op::InsertStep).await;
        println!("{}", step.text);
        assert!(!step.ok, "{}", step.text);
        assert!(step.text.contains("tube arcing"), "{}", step.text);
        assert!(
            step.text
                .ends_with("→ check scan after step 1 failed: insert to scan again, or retract"),
            "{}",
            step.text
        );
        assert!(!step.text.contains("FAULT LATCHED"), "{}", step.text);
        let stood = b.motion.status().borrow().actual.insertion();
        let again = exec.request(Op::InsertStep).await;
        println!("{}", again.text);
        assert!(again.ok && again.text.contains("check scan 1:"), "{}", again.text);
        let moved = (b.motion.status().borrow().actual.insertion() - stood).abs();
        assert!(moved < 1e-9, "the retake moved the needle by {moved} m");
        assert!(again.text.ends_with("→ ready for insertion step 2"), "{}", again.text);
        console.abort();
    });
}
