//! The procedure without ROS: the executive on emulated drives (real EtherCAT frames in process), a twin patient scanned
//! by the virtual scanner into DICOM series on disk, and the registration computed from the planning scan as the
//! registration node would. One insertion step with its check scan, then a console's e-stop pressed mid-step stops it, and the stop is reported typed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use acus_executive::{Executive, Op, Report};

#[test]
fn an_insertion_step_runs_without_ros_and_a_consoles_estop_stops_the_next() {
    let common::Bench {
        motion,
        mut estop,
        mut deadman,
        patient,
        scanner,
        settings,
        fiducials,
        out,
        link: _link,
    } = common::bench();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pressed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let button = Arc::clone(&pressed);
        let console = tokio::spawn(async move {
            loop {
                estop.refresh(button.load(std::sync::atomic::Ordering::Relaxed));
                deadman.refresh(true);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let mut running = Executive::start(settings, motion.clone(), scanner);
        let exec = running.executive.clone();
        let ask = async |op: Op| {
            let a = exec.request(op).await;
            println!("{op}: {} {}", a.ok, a.text);
            a
        };
        assert!(ask(Op::Scan).await.ok);
        let centres = common::detections(&out.path().join("01"), &fiducials);
        assert!(ask(Op::Power(true)).await.ok);
        // No registration comes: the plan waits a bounded time, then is refused, saying why.
        let unregistered = ask(Op::Plan).await;
        assert!(
            !unregistered.ok && unregistered.text.contains("no registration within"),
            "{}",
            unregistered.text
        );
        // The plan request goes first and waits for the registration, as over ROS, where the registration node's
        // detections may arrive after its caller has moved on: the procedure fits and gates them itself.
        let (planned, ()) = tokio::join!(ask(Op::Plan), async {
            tokio::task::yield_now().await;
            exec.detections(centres).await
        });
        assert!(planned.ok, "{}", planned.text);
        assert!(ask(Op::Align).await.ok);
        let step = ask(Op::InsertStep).await;
        assert!(step.ok && step.text.contains("check scan 1"), "{}", step.text);

        // The check scan's tip, reported typed, lies where the twin's needle is (ideal world: within 0.3 mm).
        let mut check = None;
        while let Ok(report) = running.reports.try_recv() {
            if let Report::CheckScan { result, .. } = report {
                check = Some(result);
            }
        }
        let check = check.expect("a check-scan report");
        let true_tip = patient.lock().unwrap().tip().unwrap();
        let seen_error = check.tip_ct.distance(&true_tip);
        assert!(
            seen_error < 0.3e-3,
            "tip found {:.3} mm from the twin's",
            seen_error * 1e3
        );

        // The console's e-stop is pressed during the next step: the cycle stops it, the machine hears the e-stop.
        let next = tokio::spawn({
            let exec = exec.clone();
            async move { exec.request(Op::InsertStep).await }
        });
        let mut status = motion.status();
        let at = status.borrow().actual.insertion();
        status.wait_for(|s| s.actual.insertion() > at + 1e-3).await.unwrap();
        pressed.store(true, std::sync::atomic::Ordering::Relaxed);
        let answer = next.await.unwrap();
        assert!(!answer.ok && answer.text.contains("e-stop"), "{}", answer.text);
        let stopped = *status.wait_for(|s| s.fault.is_some()).await.unwrap();
        assert!(
            matches!(
                stopped.fault,
                Some(acus_ethercat::cycle::Fault::EmergencyStop {
                    source: acus_ethercat::safety::StopSource::Input {
                        index: 0,
                        silent: false
                    }
                })
            ),
            "{:?}",
            stopped.fault
        );
        console.abort();
    });
}
