//! The motion supervisor on emulated drives (in process, real EtherCAT frames through ethercrab's PduTx/PduRx): enable
//! holds the actual pose, a move completes at its goal, an emergency stop mid-move ends it with a latched fault and no
//! motion, a reset while the stop is held is refused, and after release and reset the drives resume from where they are.

use std::time::Duration;

use acus_control::kinematics::JointPositions;
use acus_ethercat::config::DrivesConfig;
use acus_ethercat::cycle::Fault;
use acus_ethercat::ethercrab_bus::BusTiming;
use acus_ethercat::runner::{Controller, Pacing};
use acus_ethercat::safety::StopSource;
use acus_executive::motion::{Motion, MotionError};

fn drives_config() -> DrivesConfig {
    DrivesConfig::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../launch/config/positioner_drives.yaml"
    )))
    .unwrap()
}

/// The emulated drives at `start`, brought up on the simulated clock's process-data wait (not the real-time 1.5
/// periods): the lockstep drives do not age while a frame is late, and these tests share 2 cores with the suite.
fn drives_at(config: &DrivesConfig, start: &[f64]) -> acus_sim_twin::drives::InProcessDrives {
    let timing = BusTiming {
        dc_static_sync_iterations: 200,
        pdu_timeout: Duration::from_millis(50),
        process_data_timeout: acus_ethercat::ethercrab_bus::SIMULATED_PD_TIMEOUT,
        ..BusTiming::default()
    };
    acus_sim_twin::drives::in_process(config, start, timing).unwrap()
}

#[test]
fn emergency_stop_mid_move_latches_and_resumes_from_actual_after_reset() {
    let config = drives_config();
    let start = [0.01, -0.02, 0.05, 0.1, -0.1, 0.0];
    let acus_sim_twin::drives::InProcessDrives { link, bus } = drives_at(&config, &start);
    let true_positions = || -> Vec<f64> { link.network().devices().iter().map(|d| d.drive.position()).collect() };
    let period = Duration::from_secs_f64(config.cycle_time_s);
    // Lockstep with the emulator: the drive clock advances one period per frame, as fast as the machine allows.
    let controller = Controller::spawn_paced(bus, &config.axes, period, Pacing::Simulated).unwrap();
    let motion = Motion::start(controller, period).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        motion.enable().await.unwrap();
        let held = motion.status().borrow().actual;
        for (i, q) in start.iter().enumerate() {
            assert!(
                (held.0[i] - q).abs() < 1e-5,
                "axis {i} holds its power-on position after enable"
            );
        }
        let goal = JointPositions::new(0.02, -0.01, 0.06, 0.0, 0.0, 0.0);
        let reached = motion.move_to(goal, 1.0).await.unwrap();
        for i in 0..6 {
            assert!((reached.0[i] - goal.0[i]).abs() < 1e-5, "axis {i} at its goal");
        }

        // A long insertion move, stopped midway.
        let far = JointPositions::new(0.02, -0.01, 0.06, 0.0, 0.0, 0.15);
        let mover = motion.clone();
        let moving = tokio::spawn(async move { mover.move_to(far, 0.2).await });
        let mut status = motion.status();
        status.wait_for(|s| s.actual.0[5] > 0.01).await.unwrap();
        motion.emergency_stop(true).await.unwrap();
        let outcome = moving.await.unwrap();
        assert!(
            matches!(
                outcome,
                Err(MotionError::Faulted(Fault::EmergencyStop {
                    source: StopSource::Command
                }))
            ),
            "{outcome:?}"
        );
        let stopped_at = status.wait_for(|s| s.fault.is_some()).await.unwrap().actual.0[5];
        assert!(stopped_at < 0.14, "stopped before the goal, at {stopped_at} m");

        // Held: reset refused at once, saying why; motion refused; nothing moves (a few thousand cycles of the drive clock).
        let reset = motion.reset().await;
        assert!(matches!(reset, Err(MotionError::EStopActive)), "{reset:?}");
        assert!(matches!(
            motion.move_to(far, 0.2).await,
            Err(MotionError::NotEnabled | MotionError::Faulted(_))
        ));
        // The drives finish their quick-stop ramp first (the fault is reported when the stop is commanded, not when
        // the axes are still): at rest means no axis moved by a nanometre over 200 cycles.
        let moved = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        let mut before = true_positions();
        loop {
            let c0 = motion.status().borrow().cycle;
            status.wait_for(|s| s.cycle > c0 + 200).await.unwrap();
            let now = true_positions();
            let at_rest = moved(&before, &now) < 1e-9;
            before = now;
            if at_rest {
                break;
            }
        }
        let c0 = motion.status().borrow().cycle;
        status.wait_for(|s| s.cycle > c0 + 2_000).await.unwrap();
        let after = true_positions();
        assert!(
            moved(&before, &after) < 1e-9,
            "no motion while the stop is held: {before:?} → {after:?}"
        );

        // Released, reset, enabled: the drives hold where they stopped, then move on.
        motion.emergency_stop(false).await.unwrap();
        motion.reset().await.unwrap();
        motion.enable().await.unwrap();
        let resumed = motion.status().borrow().actual;
        assert!(
            (resumed.0[5] - after[5]).abs() < 1e-5,
            "resumes from the actual position"
        );
        let back = motion.move_to(goal, 1.0).await.unwrap();
        assert!((back.0[5] - goal.0[5]).abs() < 1e-5);
    });
}

/// A reset is answered from the cycle's own reply to that request: refused, naming the lost link, while the link is cut
/// (at once, not after a timeout), and taken once the link is back. No sleep: each step waits on the status.
#[test]
fn a_reset_while_the_link_is_cut_is_refused_naming_it_and_taken_once_it_is_back() {
    use acus_sim_ecat::network::Faults;
    let config = drives_config();
    let start = [0.0; 6];
    let acus_sim_twin::drives::InProcessDrives { link, bus } = drives_at(&config, &start);
    let period = Duration::from_secs_f64(config.cycle_time_s);
    let controller = Controller::spawn_paced(bus, &config.axes, period, Pacing::Simulated).unwrap();
    let motion = Motion::start(controller, period).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        motion.enable().await.unwrap();
        link.network().set_faults(Faults {
            link_down: true,
            ..Faults::default()
        });
        let mut status = motion.status();
        status.wait_for(|s| s.fault.is_some()).await.unwrap();
        let cycle = status.borrow().cycle;
        match motion.reset().await {
            Err(MotionError::ResetRefused(Fault::FrameLost)) => {}
            other => panic!("a reset with the link cut: {other:?}"),
        }
        // Answered by the cycle's reply, not by the supervisor's timeout (3000 cycles).
        let answered = status.borrow().cycle - cycle;
        assert!(answered < 3000, "answered after {answered} cycles");
        link.network().set_faults(Faults::default());
        // The frame in flight when the link came back may still be reported lost: a second request is taken.
        let mut tries = 0;
        loop {
            tries += 1;
            match motion.reset().await {
                Ok(()) => break,
                Err(MotionError::ResetRefused(Fault::FrameLost)) if tries < 3 => {}
                other => panic!("a reset with the link back: {other:?}"),
            }
        }
        assert!(status.borrow().fault.is_none());
        motion.enable().await.unwrap();
    });
}
