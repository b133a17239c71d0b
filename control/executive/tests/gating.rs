//! Respiratory gating in the procedure, without ROS: emulated drives on the simulated clock, a belt driven by the test
//! on the drive clock (25 Hz, the level the test sets), and the executive's breathing instructions. An insertion step
//! waits for a hold in the window of the planning scan's level, pauses where it is when the hold leaves the window
//! (never backing out) and resumes in the next good hold; a step that gets no good hold is refused with the needle held.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use acus_executive::{BeltSample, Executive, GatingSettings, Motion, Op, Report};

/// Belt units per metre (a bellows read in Pa).
const GAIN: f64 = 25_000.0;

fn gating(attempts: u32) -> GatingSettings {
    GatingSettings {
        gain: GAIN,
        window: 1e-3,
        settle: 2.0,
        hold_limit: 20.0,
        recovery: 4.0,
        attempts,
        gated: true,
    }
}

/// The organ's level the belt reads, mm (set by the test).
#[derive(Clone, Default)]
struct Level(Arc<AtomicU64>);

impl Level {
    fn set(&self, mm: f64) {
        self.0.store(mm.to_bits(), Ordering::Relaxed);
    }
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// The belt: one sample per 40 ms of drive-clock time, at the level set.
fn belt(exec: Executive, motion: &Motion, level: Level, period: f64) -> tokio::task::JoinHandle<()> {
    let mut status = motion.status();
    tokio::spawn(async move {
        let mut last = -1i64;
        while status.changed().await.is_ok() {
            let t = status.borrow_and_update().cycle as f64 * period;
            let k = (t / 0.04).floor() as i64;
            if k > last {
                last = k;
                exec.respiration(BeltSample {
                    t: k as f64 * 0.04,
                    value: level.get() * 1e-3 * GAIN,
                });
            }
        }
    })
}

#[test]
fn a_step_waits_for_a_good_hold_pauses_when_it_is_lost_and_resumes_where_it_stopped_without_backing_out() {
    let mut b = common::bench();
    b.settings.gating = Some(gating(10));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let console = common::console(b.estop, b.deadman);
        let mut running = Executive::start(b.settings, b.motion.clone(), b.scanner);
        let exec = running.executive.clone();
        let level = Level::default();
        let _belt = belt(exec.clone(), &b.motion, level.clone(), 1e-3);
        // The planning scan in a hold at level 0: the reference.
        common::ready_to_insert(&exec, b.out.path(), &b.fiducials).await;

        // The patient holds 3 mm off: the step waits, the needle does not move, the patient is asked again.
        level.set(3.0);
        let mut status = b.motion.status();
        let start = status.borrow().actual.insertion();
        let step = tokio::spawn({
            let exec = exec.clone();
            async move { exec.request(Op::InsertStep).await }
        });
        let mut holds_asked = 0;
        while holds_asked < 2 {
            match running.reports.recv().await {
                Some(Report::BreathHold(true)) => holds_asked += 1,
                Some(_) => {}
                None => panic!("reports ended"),
            }
        }
        let waited = status.borrow().actual.insertion() - start;
        println!("while out of the window the needle moved {:.4} mm", waited * 1e3);
        assert!(waited.abs() < 1e-6, "moved {waited} m out of the window");

        // A good hold (0.8 mm from the reference): the step starts. Mid-step the hold drifts out: the motion brakes and
        // holds; back in a hold near the level it stopped at, it resumes.
        level.set(0.8);
        status.wait_for(|s| s.actual.insertion() > start + 5e-3).await.unwrap();
        level.set(-2.5);
        // Instructed to breathe: the pause is in effect.
        loop {
            if let Some(Report::BreathHold(false)) = running.reports.recv().await {
                break;
            }
        }
        let paused_at = status.borrow().actual.insertion();
        // It stays paused while the patient breathes (two belt periods of drive time later, still there).
        let cycle = status.borrow().cycle;
        status.wait_for(|s| s.cycle > cycle + 2000).await.unwrap();
        let still = status.borrow().actual.insertion();
        println!(
            "paused at {:.2} mm (stayed {:+.4} mm over 2 s)",
            (paused_at - start) * 1e3,
            (still - paused_at) * 1e3
        );
        assert!((still - paused_at).abs() < 1e-6, "moved while paused");
        // A hold in the scan's window (-0.5 mm) but 1.3 mm from where the needle stopped: the shaft would resume bent by
        // the difference, so the step waits for another hold.
        while running.reports.try_recv().is_ok() {}
        level.set(-0.5);
        // Three asks: whichever hold was under way when the level changed, one whole hold at -0.5 mm was judged.
        let mut asked = 0;
        while asked < 3 {
            match running.reports.recv().await {
                Some(Report::BreathHold(true)) => asked += 1,
                // The step went on and ended: the assertion below says how far it moved.
                Some(Report::Answered { .. }) => break,
                Some(_) => {}
                None => panic!("reports ended"),
            }
        }
        let waited = status.borrow().actual.insertion() - paused_at;
        println!("in a hold 1.3 mm from the stop the needle moved {:.4} mm", waited * 1e3);
        assert!(
            waited.abs() < 1e-6,
            "resumed {waited} m in a hold 1.3 mm from where it stopped"
        );
        level.set(0.5);
        let answer = step.await.unwrap();
        assert!(answer.ok && answer.text.contains("check scan 1"), "{}", answer.text);
        let end = status.borrow().actual.insertion();
        assert!(end > paused_at + 5e-3, "the step resumed: {end} after {paused_at}");
        console.abort();
    });
}

#[test]
fn a_step_with_no_good_hold_is_refused_and_the_needle_held() {
    let mut b = common::bench();
    b.settings.gating = Some(gating(2));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let console = common::console(b.estop, b.deadman);
        let running = Executive::start(b.settings, b.motion.clone(), b.scanner);
        let exec = running.executive.clone();
        let level = Level::default();
        let _belt = belt(exec.clone(), &b.motion, level.clone(), 1e-3);
        common::ready_to_insert(&exec, b.out.path(), &b.fiducials).await;
        let start = b.motion.status().borrow().actual.insertion();
        level.set(2.0);
        let answer = exec.request(Op::InsertStep).await;
        println!("{}", answer.text);
        assert!(
            !answer.ok && answer.text.contains("no breath-hold within ±1.0 mm"),
            "{}",
            answer.text
        );
        assert!(answer.text.contains("+2.0 mm"), "{}", answer.text);
        let moved = b.motion.status().borrow().actual.insertion() - start;
        assert!(moved.abs() < 1e-6, "moved {moved} m");
        // The operator asks again once the patient holds well: the step goes.
        level.set(0.0);
        let again = exec.request(Op::InsertStep).await;
        assert!(again.ok, "{}", again.text);
        console.abort();
    });
}

/// A step interrupted while the patient holds (here: the operator aborts during the wait) tells the patient to breathe:
/// nobody is left holding their breath for a step that will not come.
#[test]
fn an_interrupted_wait_lets_the_patient_breathe() {
    let mut b = common::bench();
    b.settings.gating = Some(gating(10));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let console = common::console(b.estop, b.deadman);
        let mut running = Executive::start(b.settings, b.motion.clone(), b.scanner);
        let exec = running.executive.clone();
        let level = Level::default();
        let _belt = belt(exec.clone(), &b.motion, level.clone(), 1e-3);
        common::ready_to_insert(&exec, b.out.path(), &b.fiducials).await;
        while running.reports.try_recv().is_ok() {}
        level.set(3.0);
        let step = tokio::spawn({
            let exec = exec.clone();
            async move { exec.request(Op::InsertStep).await }
        });
        loop {
            if let Some(Report::BreathHold(true)) = running.reports.recv().await {
                break;
            }
        }
        let aborted = exec.request(Op::Abort).await;
        assert!(aborted.ok, "{}", aborted.text);
        let interrupted = step.await.unwrap();
        assert!(!interrupted.ok, "{}", interrupted.text);
        let mut last_instruction = None;
        while let Ok(report) = running.reports.try_recv() {
            if let Report::BreathHold(hold) = report {
                last_instruction = Some(hold);
            }
        }
        assert_eq!(last_instruction, Some(false), "the patient was told to breathe");
        console.abort();
    });
}
