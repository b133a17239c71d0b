//! Guards of the simulated procedure, through the ROS interface: an unreachable target, a registration the gate refuses,
//! the enable released and the e-stop pressed mid-insertion. Each stops in a safe state with a clear message, and the
//! robot does not move afterwards (checked on the drive clock) until the operator asks again.

use std::time::Duration;

use acus_control::kinematics::JointPositions;
use acus_ethercat::runner::Pacing;
use acus_launch::config::SimConfig;
use acus_launch::operator::{Answer, BiopsyLog, Operator};
use acus_launch::system::{self, Drives, SimSystem};
use acus_nodes::testing::isolated;

fn config() -> SimConfig {
    // The ideal world: these tests are about the guards, not accuracy.
    let mut c = SimConfig::load_in(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml").as_ref(),
        Some("ideal"),
    )
    .unwrap();
    // Slow insertion (1 mm/s): a step lasts long enough on the drive clock to be interrupted midway.
    c.controller.file.motion.insertion_speed = 0.02;
    c
}

/// Two consoles, `operator` and `second`: every one must be heard, each refreshes only its own sources.
fn two_consoles() -> SimConfig {
    let mut c = config();
    c.controller.file.consoles = vec!["operator".into(), "second".into()];
    c
}

/// Start the console `second` with its deadman held, and clear the start-up stop of its silence before it came up.
async fn second_console(sim: &SimSystem, op: &mut Operator, log: &mut BiopsyLog) -> Operator {
    // It publishes the same plan points (they are latched topics: the last publisher's stand).
    let c = config();
    let second = Operator::start_console(&sim.ctx, "second", c.controller.entry, c.controller.target)
        .await
        .unwrap();
    second.deadman().hold(true);
    assert!(reset_once_released(op, log).await, "reset once both consoles are heard");
    second
}

/// Run `body` against a started system and operator.
fn with_system(config: SimConfig, body: impl AsyncFnOnce(&SimSystem, &mut Operator, &mut BiopsyLog)) {
    let out = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let sim = system::start(
        &config,
        out.path(),
        Pacing::Simulated,
        &Drives::InProcess,
        &system::Attached::default(),
    )
    .unwrap();
    rt.block_on(async {
        let mut operator = Operator::start(&sim.ctx, config.controller.entry, config.controller.target)
            .await
            .unwrap();
        operator.on_answer = Box::new(|a: &Answer| println!("{} {}: {}", a.service, a.success, a.message));
        let mut log = BiopsyLog::default();
        body(&sim, &mut operator, &mut log).await;
    });
}

/// Planning scan and registration (retrying until the registration node has heard of the scan).
async fn scan_and_register(op: &mut Operator, log: &mut BiopsyLog) -> Answer {
    let scan = op.call("/procedure/scan", log).await.unwrap();
    assert!(scan.success, "{}", scan.message);
    let series = scan
        .message
        .split("planning scan written to ")
        .nth(1)
        .unwrap()
        .split(" → ")
        .next()
        .unwrap()
        .to_owned();
    for _ in 0..200 {
        let answer = op.call("/registration/register", log).await.unwrap();
        if answer.message.contains(&series) {
            // As the biopsy does at the start of a session: the stop latched while the console was not yet heard (a
            // source never heard counts as pressed) is cleared once.
            op.call("/reset_fault", log).await.unwrap();
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the registration never saw {series}");
}

fn actual(sim: &SimSystem) -> JointPositions {
    sim.motion.status().borrow().actual
}

/// The two poses agree within half a micrometre (or microradian) per joint: the emulated servo settles by tens of
/// nanometres after braking, which an exact comparison would call motion.
fn assert_still(after: &JointPositions, before: &JointPositions) {
    let moved = after
        .0
        .iter()
        .zip(&before.0)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(moved < 0.5e-6, "moved by {:.3} µm: {before:?} → {after:?}", moved * 1e6);
}

/// No joint moves by more than an encoder count's worth over `cycles` of the drive clock.
async fn still_for(sim: &SimSystem, cycles: u64) -> JointPositions {
    let before = actual(sim);
    let mut status = sim.motion.status();
    let start = status.borrow().cycle;
    let after = status.wait_for(|s| s.cycle > start + cycles).await.unwrap().actual;
    for i in 0..6 {
        assert!(
            (after.0[i] - before.0[i]).abs() < 1e-5,
            "joint {i} moved: {} → {}",
            before.0[i],
            after.0[i]
        );
    }
    after
}

/// Until the insertion joint passes `depth` (m) during a step in flight.
async fn inserted_past(sim: &SimSystem, depth: f64) {
    let mut status = sim.motion.status();
    status.wait_for(|s| s.actual.insertion() > depth).await.unwrap();
}

/// The insertion joint's largest travel backwards (m) from the deepest point it reached, watched from the start of a
/// step until it has been still for `quiet` cycles past 4 mm.
async fn largest_backing_out(sim: &SimSystem, quiet: u64) -> f64 {
    let mut status = sim.motion.status();
    let (mut deepest, mut worst) = (f64::MIN, 0.0f64);
    let (mut last, mut last_change) = (status.borrow().actual.insertion(), status.borrow().cycle);
    while status.changed().await.is_ok() {
        let (q, cycle) = {
            let s = status.borrow_and_update();
            (s.actual.insertion(), s.cycle)
        };
        if q != last {
            (last, last_change) = (q, cycle);
        }
        deepest = deepest.max(q);
        worst = worst.max(deepest - q);
        if deepest > 0.004 && cycle > last_change + quiet {
            break;
        }
    }
    worst
}

/// The step was refused naming the e-stop, the cycle latched the e-stop fault, and the needle stands still short of the
/// step's 30 mm; returns where it stands.
async fn stopped_by_the_estop(sim: &SimSystem, answer: &Answer) -> JointPositions {
    assert!(
        !answer.success && answer.message.contains("e-stop"),
        "{}",
        answer.message
    );
    let mut status = sim.motion.status();
    let stopped = *status.wait_for(|s| s.fault.is_some()).await.unwrap();
    // The first console's e-stop is source 0 (its deadman is 1; a second console's are 2 and 3).
    assert!(
        matches!(
            stopped.fault,
            Some(acus_ethercat::cycle::Fault::EmergencyStop {
                source: acus_ethercat::safety::StopSource::Input { index: 0, .. }
            })
        ),
        "{:?}",
        stopped.fault
    );
    let held = still_for(sim, 3_000).await;
    assert!(held.insertion() < 0.029, "stopped at {:.1} mm", held.insertion() * 1e3);
    held
}

/// `/reset_fault` until it goes through (the release travels with the consoles' next heartbeats; 2 s at most).
async fn reset_once_released(op: &mut Operator, log: &mut BiopsyLog) -> bool {
    for _ in 0..100 {
        if op.call("/reset_fault", log).await.unwrap().success {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[test]
fn unreachable_target_is_refused_with_the_joint_and_nothing_moves() {
    isolated(|| {
        let mut c = config();
        // A lesion 13 cm to the side: the y stage (±100 mm) cannot bring the needle guide over it.
        c.world.patient.lesion = [-0.12, -0.03, 0.01];
        c.file.entry_xz = [-0.12, 0.01];
        c.apply_world().unwrap();
        with_system(c, async |sim, op, log| {
            assert!(scan_and_register(op, log).await.success);
            assert!(op.set_enable(true, log).await.unwrap().success);
            let start = actual(sim);
            let plan = op.call("/plan", log).await.unwrap();
            assert!(!plan.success);
            assert!(
                plan.message.contains("unreachable") && plan.message.contains("_joint"),
                "{}",
                plan.message
            );
            let align = op.call("/align", log).await.unwrap();
            assert!(
                !align.success && align.message.starts_with("cannot align"),
                "{}",
                align.message
            );
            let after = still_for(sim, 2_000).await;
            assert_still(&after, &start);
        });
    });
}

#[test]
fn a_refused_registration_blocks_planning_and_motion() {
    isolated(|| {
        let mut c = config();
        c.controller.gate.max_fre_rms = 0.01e-3; // stricter than any real scan: the gate must refuse
        with_system(c, async |sim, op, log| {
            let registered = scan_and_register(op, log).await;
            assert!(!registered.success);
            assert!(
                registered.message.contains("FRE") && registered.message.contains("exceeds"),
                "{}",
                registered.message
            );
            assert!(op.set_enable(true, log).await.unwrap().success);
            let start = actual(sim);
            let plan = op.call("/plan", log).await.unwrap();
            assert!(!plan.success && plan.message.contains("regist"), "{}", plan.message);
            let align = op.call("/align", log).await.unwrap();
            assert!(!align.success, "{}", align.message);
            assert_still(&still_for(sim, 2_000).await, &start);
        });
    });
}

/// Scan, register, enable, plan and align.
async fn ready_to_insert(op: &mut Operator, log: &mut BiopsyLog) {
    assert!(scan_and_register(op, log).await.success);
    assert!(op.set_enable(true, log).await.unwrap().success);
    assert!(op.call("/plan", log).await.unwrap().success);
    assert!(op.call("/align", log).await.unwrap().success);
}

/// Start the first insertion step; returns the step's answer once `interrupt` has run midway.
async fn interrupt_first_step(
    sim: &SimSystem,
    op: &mut Operator,
    log: &mut BiopsyLog,
    interrupt: impl AsyncFnOnce(),
) -> Answer {
    // The step runs in the operator's request; `interrupt` acts once the needle is 5 mm in.
    let step = op.call("/insert_step", log);
    let stop = async {
        inserted_past(sim, 0.005).await;
        interrupt().await;
    };
    let (answer, ()) = tokio::join!(step, stop);
    answer.unwrap()
}

#[test]
fn releasing_the_enable_mid_insertion_holds_and_waits_for_the_operator() {
    isolated(|| {
        with_system(two_consoles(), async |sim, op, log| {
            let mut second = second_console(sim, op, log).await;
            ready_to_insert(op, log).await;
            // The second console releases its deadman while the first waits on its step.
            let step = interrupt_first_step(sim, op, log, async || {
                assert!(
                    second
                        .set_enable(false, &mut BiopsyLog::default())
                        .await
                        .unwrap()
                        .success
                );
            });
            let (answer, backing_out) = tokio::join!(step, largest_backing_out(sim, 500));
            // The hold brakes along the insertion: the needle is never pulled back. Tolerance 0.5 µm: the emulated
            // servo settles after braking by tens of nanometres (0.086 µm seen in a CI run); the old hold, which set a
            // goal at the measured position and came back to it, pulled the needle back by 12 µm.
            assert!(
                backing_out < 0.5e-6,
                "the needle backed out {:.3} µm",
                backing_out * 1e6
            );
            assert!(
                !answer.success && answer.message.contains("enable (deadman) released"),
                "{}",
                answer.message
            );
            let held = still_for(sim, 3_000).await;
            assert!(
                held.insertion() < 0.029,
                "stopped short of the 30 mm step, at {:.1} mm",
                held.insertion() * 1e3
            );
            // Enabling again moves nothing by itself; the operator's request resumes the step from where it stopped.
            second.deadman().hold(true);
            assert!(op.set_enable(true, log).await.unwrap().success);
            assert_still(&still_for(sim, 2_000).await, &held);
            let resumed = op.call("/insert_step", log).await.unwrap();
            assert!(resumed.success, "{}", resumed.message);
            assert!((actual(sim).insertion() - 0.030).abs() < 1e-4);
        });
    });
}

#[test]
fn estop_mid_insertion_quick_stops_latches_and_needs_release_and_reset() {
    isolated(|| {
        with_system(config(), async |sim, op, log| {
            ready_to_insert(op, log).await;
            let button = op.estop_button();
            let answer = interrupt_first_step(sim, op, log, async || button.hold(true)).await;
            let held = stopped_by_the_estop(sim, &answer).await;
            // Still held: a reset is refused, and so is the step.
            let reset = op.call("/reset_fault", log).await.unwrap();
            assert!(!reset.success, "{}", reset.message);
            let step = op.call("/insert_step", log).await.unwrap();
            assert!(!step.success, "{}", step.message);
            assert_still(&still_for(sim, 2_000).await, &held);
            // Released and reset: the drives come back disabled and nothing moves until enabled and asked again; then the
            // step resumes from where the needle stopped.
            op.hold_estop(false);
            assert!(reset_once_released(op, log).await, "reset after release");
            assert!(op.set_enable(true, log).await.unwrap().success);
            assert_still(&still_for(sim, 2_000).await, &held);
            let resumed = op.call("/insert_step", log).await.unwrap();
            assert!(resumed.success, "{}", resumed.message);
            assert!((actual(sim).insertion() - 0.030).abs() < 1e-4);
        });
    });
}

#[test]
fn a_silent_estop_console_counts_as_pressed_mid_insertion() {
    isolated(|| {
        with_system(config(), async |sim, op, log| {
            ready_to_insert(op, log).await;
            let button = op.estop_button();
            let answer = interrupt_first_step(sim, op, log, async || button.fall_silent()).await;
            let held = stopped_by_the_estop(sim, &answer).await;
            // The console comes back (released): the latch stays until a reset, and nothing moves by itself.
            op.hold_estop(false);
            assert_still(&still_for(sim, 2_000).await, &held);
            assert!(sim.motion.status().borrow().fault.is_some(), "latched until reset");
        });
    });
}

#[test]
fn a_second_console_cannot_release_an_estop_held_on_the_first() {
    isolated(|| {
        with_system(two_consoles(), async |sim, op, log| {
            // A second console heartbeats "released" all along, interleaved with the first one's "pressed".
            let second = second_console(sim, op, log).await;
            ready_to_insert(op, log).await;
            second.hold_estop(false);
            let button = op.estop_button();
            let answer = interrupt_first_step(sim, op, log, async || button.hold(true)).await;
            let held = stopped_by_the_estop(sim, &answer).await;
            // For as long as the first console holds its stop, a reset is refused, however the messages interleave.
            for _ in 0..40 {
                let reset = op.call("/reset_fault", log).await.unwrap();
                assert!(!reset.success, "reset while an e-stop is held: {}", reset.message);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert_still(&still_for(sim, 500).await, &held);
            // Released on the first console too: a reset goes through once the last "pressed" is a heartbeat old.
            button.hold(false);
            assert!(reset_once_released(op, log).await, "reset after both consoles released");
        });
    });
}

#[test]
fn a_console_whose_deadman_falls_silent_holds_the_insertion_like_a_release() {
    isolated(|| {
        with_system(config(), async |sim, op, log| {
            ready_to_insert(op, log).await;
            // The console crashes while enabled: its deadman stops publishing (nothing says "released").
            let deadman = op.deadman();
            let answer = interrupt_first_step(sim, op, log, async || deadman.fall_silent()).await;
            assert!(
                !answer.success && answer.message.contains("enable (deadman) released"),
                "{}",
                answer.message
            );
            let held = still_for(sim, 3_000).await;
            assert!(held.insertion() < 0.029, "stopped at {:.1} mm", held.insertion() * 1e3);
            assert!(!sim.motion.status().borrow().enable_held, "the cycle holds the axes");
            // Heard again (held): nothing moves until the operator asks.
            deadman.hold(true);
            assert_still(&still_for(sim, 2_000).await, &held);
        });
    });
}
