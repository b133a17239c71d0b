//! The pure cycle without a bus: CiA 402 sequencing, safe start-up, latching and reset edges,
//! limits. Drives are the emulator's drive model fed with the PDO bytes the master encodes.
#![allow(clippy::needless_range_loop)]

mod common;

use acus_ethercat::cia402::{cw, DriveState};
use acus_ethercat::cycle::{BusHealth, Command, Fault, Mode, ResetAnswer, ResetReply};
use acus_ethercat::safety::StopSource;
use common::pure::PureRig;

fn rig() -> (PureRig, f64) {
    let cfg = common::config();
    (PureRig::new(&cfg.axes, cfg.cycle_time_s), cfg.cycle_time_s)
}

fn run(rig: &mut PureRig, dt: f64, cmd: &Command, cycles: usize) -> acus_ethercat::cycle::Status {
    let mut s = rig.master_step(BusHealth::Ok, cmd);
    rig.drives_step(dt);
    for _ in 1..cycles {
        s = rig.master_step(BusHealth::Ok, cmd);
        rig.drives_step(dt);
    }
    s
}

fn enabled_cmd() -> Command {
    Command {
        enable: true,
        enable_seq: 1,
        ..Command::default()
    }
}

#[test]
fn enable_walks_the_power_state_machine_and_starts_at_actual() {
    let (mut rig, dt) = rig();
    let s = run(&mut rig, dt, &Command::default(), 3);
    assert_eq!(s.mode, Mode::Disabled);
    let actual = s.actual;
    let cmd = enabled_cmd();
    // Disabled holds the drives in Ready to switch on (shutdown); enabling continues from there.
    let mut words = vec![s.controlword[0]];
    let mut s = s;
    for _ in 0..10 {
        s = run(&mut rig, dt, &cmd, 1);
        if words.last() != Some(&s.controlword[0]) {
            words.push(s.controlword[0]);
        }
    }
    assert_eq!(words, [cw::SHUTDOWN, cw::SWITCH_ON, cw::ENABLE_OPERATION]);
    assert_eq!(s.mode, Mode::Enabled);
    for i in 0..6 {
        assert_eq!(
            s.setpoint[i], actual[i],
            "axis {i}: first setpoint is the actual position"
        );
        assert_eq!(s.drive_state[i], DriveState::OperationEnabled);
    }
}

#[test]
fn goals_are_clamped_to_the_joint_range() {
    let (mut rig, dt) = rig();
    let mut cmd = enabled_cmd();
    run(&mut rig, dt, &cmd, 10);
    cmd.goal[..6].copy_from_slice(&[1.0, -1.0, 1.0, 3.0, -3.0, 1.0]);
    cmd.goal_seq = 1;
    let s = run(&mut rig, dt, &cmd, 12_000);
    assert_eq!(s.fault, None);
    let cfg = common::config();
    for (i, a) in cfg.axes.iter().enumerate() {
        let want = cmd.goal[i].clamp(a.lower, a.upper);
        assert_eq!(s.setpoint[i], a.to_si(a.to_counts(want)), "axis {i}");
    }
}

#[test]
fn bus_fault_latches_with_quick_stop_and_needs_reset_then_enable() {
    let (mut rig, dt) = rig();
    let mut cmd = enabled_cmd();
    run(&mut rig, dt, &cmd, 10);
    let s = rig.master_step(BusHealth::WorkingCounter { got: 15, expected: 18 }, &cmd);
    assert_eq!(s.fault, Some(Fault::WorkingCounter { got: 15, expected: 18 }));
    assert!(
        s.controlword[..6].iter().all(|c| *c == cw::QUICK_STOP),
        "quick stop in the same cycle"
    );
    rig.drives_step(dt);
    // Healthy frames again: still latched; a new enable request does nothing.
    cmd.enable_seq = 2;
    let s = run(&mut rig, dt, &cmd, 200);
    assert_eq!(s.mode, Mode::Faulted);
    assert!(s.drive_state[..6].iter().all(|d| *d == DriveState::SwitchOnDisabled));
    // Reset → Disabled (not re-enabled by the still-true enable level).
    cmd.reset_seq = 1;
    let s = run(&mut rig, dt, &cmd, 20);
    assert_eq!((s.mode, s.fault), (Mode::Disabled, None));
    cmd.enable_seq = 3;
    let s = run(&mut rig, dt, &cmd, 20);
    assert_eq!(s.mode, Mode::Enabled);
}

/// Every reset request is answered once, with its sequence number: refused with the typed cause while the link is still
/// lost, taken once a frame comes back; a frame lost after a taken reset is a new fault, latched after the answer (the
/// case a waiter could not tell from a reset that was never answered: the same fault, `reset_refused` false).
#[test]
fn a_reset_is_answered_refused_while_frames_are_lost_and_a_later_loss_is_a_new_fault() {
    let (mut rig, dt) = rig();
    let mut cmd = enabled_cmd();
    run(&mut rig, dt, &cmd, 10);
    let lost = rig.master_step(BusHealth::Lost, &cmd);
    assert_eq!((lost.mode, lost.fault), (Mode::Faulted, Some(Fault::FrameLost)));
    assert_eq!(lost.reset_reply, None);
    // Still lost: refused, the cause named.
    cmd.reset_seq = 1;
    let s = rig.master_step(BusHealth::Lost, &cmd);
    assert_eq!(
        s.reset_reply,
        Some(ResetReply {
            seq: 1,
            cycle: s.cycle,
            answer: ResetAnswer::Refused {
                cause: Fault::FrameLost
            }
        })
    );
    assert!(s.reset_refused);
    assert_eq!(
        (s.mode, s.fault, s.fault_cycle),
        (Mode::Faulted, Some(Fault::FrameLost), lost.cycle)
    );
    // A wrong working counter is a link cause too.
    cmd.reset_seq = 2;
    let s = rig.master_step(BusHealth::WorkingCounter { got: 3, expected: 18 }, &cmd);
    let cause = Fault::WorkingCounter { got: 3, expected: 18 };
    assert_eq!(
        s.reset_reply.map(|r| (r.seq, r.answer)),
        Some((2, ResetAnswer::Refused { cause }))
    );
    rig.drives_step(dt);
    // The link is back: the next request is taken.
    cmd.reset_seq = 3;
    let taken = rig.master_step(BusHealth::Ok, &cmd);
    rig.drives_step(dt);
    assert_eq!(
        taken.reset_reply.map(|r| (r.seq, r.answer)),
        Some((3, ResetAnswer::Taken))
    );
    assert!(!taken.reset_refused);
    assert_eq!((taken.mode, taken.fault), (Mode::Resetting, None));
    // A frame lost right after: latched again, after the answer; the reply still names the taken request.
    let again = rig.master_step(BusHealth::Lost, &cmd);
    assert_eq!((again.mode, again.fault), (Mode::Faulted, Some(Fault::FrameLost)));
    assert!(
        again.fault_cycle > taken.cycle,
        "a new fault, latched after the taken reset"
    );
    assert_eq!(again.reset_reply, taken.reset_reply);
    // The same request seen again is no new edge; a new one clears it.
    let s = run(&mut rig, dt, &cmd, 5);
    assert_eq!(s.mode, Mode::Faulted);
    cmd.reset_seq = 4;
    let s = run(&mut rig, dt, &cmd, 20);
    assert_eq!((s.mode, s.fault), (Mode::Disabled, None));
    // A request with nothing latched is answered too.
    cmd.reset_seq = 5;
    let s = run(&mut rig, dt, &cmd, 1);
    assert_eq!(
        s.reset_reply.map(|r| (r.seq, r.answer)),
        Some((5, ResetAnswer::NothingLatched))
    );
}

#[test]
fn drive_fault_reset_is_a_rising_edge_of_bit_7() {
    let (mut rig, dt) = rig();
    let mut cmd = enabled_cmd();
    run(&mut rig, dt, &cmd, 10);
    rig.inject_fault(1, 0x2310);
    let s = run(&mut rig, dt, &cmd, 1);
    assert_eq!(s.fault, Some(Fault::Drive { axis: 1, code: 0x2310 }));
    let s = run(&mut rig, dt, &cmd, 100);
    assert_eq!(s.drive_state[1], DriveState::Fault);
    assert_eq!(s.controlword[1], cw::DISABLE_VOLTAGE);
    cmd.enable = false;
    cmd.reset_seq = 1;
    let mut seen = Vec::new();
    let mut s = s;
    for _ in 0..6 {
        s = run(&mut rig, dt, &cmd, 1);
        seen.push(s.controlword[1]);
    }
    // 0x80 once (the edge), after which the drive leaves Fault and the group is Disabled.
    assert_eq!(seen[0], cw::FAULT_RESET);
    assert_eq!(s.mode, Mode::Disabled);
    assert_eq!(s.drive_state[1], DriveState::ReadyToSwitchOn);
}

#[test]
fn following_error_latches() {
    let (mut rig, dt) = rig();
    let mut cmd = enabled_cmd();
    run(&mut rig, dt, &cmd, 10);
    cmd.goal[..6].copy_from_slice(&[0.05, 0.0, 0.075, 0.0, 0.0, 0.1]);
    cmd.goal_seq = 1;
    // The master keeps commanding but the drives stop answering with new positions
    // (inputs frozen): the setpoint runs away from the actual position.
    let mut s = run(&mut rig, dt, &cmd, 5);
    for _ in 0..2000 {
        s = rig.master_step(BusHealth::Ok, &cmd);
        if s.fault.is_some() {
            break;
        }
    }
    match s.fault {
        Some(Fault::FollowingError { axis, error }) => {
            let w = common::config().axes[usize::from(axis)].following_error_window;
            assert!(
                error.abs() > w && error.abs() < 1.5 * w,
                "axis {axis}: error {error}, window {w}"
            );
        }
        other => panic!("expected a following error, got {other:?}"),
    }
}

#[test]
fn emergency_stop_quick_stops_latches_and_blocks_reset_while_held() {
    let (mut rig, dt) = rig();
    let mut cmd = enabled_cmd();
    run(&mut rig, dt, &cmd, 10);
    // Moving: the Z axis towards a goal 20 mm away.
    let s0 = run(&mut rig, dt, &cmd, 1);
    cmd.goal[..6].copy_from_slice(&s0.actual[..6]);
    cmd.goal[2] += 0.02;
    cmd.goal_seq = 1;
    let moving = run(&mut rig, dt, &cmd, 300);
    assert!((moving.setpoint[2] - s0.actual[2]).abs() > 1e-3, "axis 2 is moving");
    cmd.emergency_stop = true;
    let s = rig.master_step(BusHealth::Ok, &cmd);
    assert_eq!(
        (s.mode, s.fault),
        (
            Mode::Faulted,
            Some(Fault::EmergencyStop {
                source: StopSource::Command
            })
        )
    );
    assert!(
        s.controlword[..6].iter().all(|c| *c == cw::QUICK_STOP),
        "quick stop in the same cycle"
    );
    rig.drives_step(dt);
    // Held: a reset edge does nothing, and no setpoint moves.
    let stopped = run(&mut rig, dt, &cmd, 200);
    cmd.reset_seq = 1;
    let s = run(&mut rig, dt, &cmd, 50);
    assert_eq!(
        (s.mode, s.fault),
        (
            Mode::Faulted,
            Some(Fault::EmergencyStop {
                source: StopSource::Command
            })
        ),
        "reset ignored while held"
    );
    assert_eq!(s.actual[2], stopped.actual[2], "no motion while the stop is held");
    // Released: the fault stays latched until a new reset edge; then Disabled, and enabling starts at actual.
    cmd.emergency_stop = false;
    let s = run(&mut rig, dt, &cmd, 50);
    assert_eq!(s.mode, Mode::Faulted, "releasing the stop does not clear the latch");
    cmd.reset_seq = 2;
    let s = run(&mut rig, dt, &cmd, 20);
    assert_eq!((s.mode, s.fault), (Mode::Disabled, None));
    cmd.enable_seq = 2;
    cmd.enable_goal_seq = cmd.goal_seq;
    let s = run(&mut rig, dt, &cmd, 20);
    assert_eq!(s.mode, Mode::Enabled);
    for i in 0..6 {
        assert!(
            (s.setpoint[i] - s.actual[i]).abs() < 1e-6,
            "axis {i} resumes from its actual position"
        );
    }
}

#[test]
fn a_move_is_in_position_only_once_every_drive_has_settled_inside_its_window() {
    let (mut rig, dt) = rig();
    let mut cmd = enabled_cmd();
    let s0 = run(&mut rig, dt, &cmd, 10);
    assert_eq!(s0.mode, Mode::Enabled);
    cmd.goal[..6].copy_from_slice(&s0.actual[..6]);
    cmd.goal[5] += 0.02; // 20 mm of insertion
    cmd.goal_seq = 1;
    let axes = common::config().axes;
    let mut first_reached = None;
    let mut in_position_at = None;
    for c in 0..5000 {
        let s = run(&mut rig, dt, &cmd, 1);
        if s.goal_reached && first_reached.is_none() {
            first_reached = Some(c);
            // The setpoint is at the goal; the drive still follows it by its lag.
            assert!(!s.in_position, "in position the cycle the setpoint arrived");
        }
        if s.in_position {
            for (i, a) in axes.iter().enumerate() {
                let off = (s.actual[i] - s.setpoint[i]).abs();
                assert!(
                    off <= a.position_window,
                    "axis {i} {off} outside its window {}",
                    a.position_window
                );
            }
            in_position_at = Some(c);
            break;
        }
    }
    let (reached, settled) = (
        first_reached.expect("setpoint reached"),
        in_position_at.expect("in position"),
    );
    assert!(
        settled >= reached + acus_ethercat::cycle::IN_POSITION_CYCLES as usize,
        "in position at cycle {settled}, setpoint at the goal at {reached}"
    );
}

#[test]
fn a_halt_brakes_along_the_motion_and_never_returns_until_a_new_goal() {
    let (mut rig, dt) = rig();
    let mut cmd = enabled_cmd();
    let s0 = run(&mut rig, dt, &cmd, 10);
    cmd.goal[..6].copy_from_slice(&s0.actual[..6]);
    cmd.goal[5] += 0.05; // inserting 50 mm
    cmd.goal_seq = 1;
    let mut s = run(&mut rig, dt, &cmd, 40);
    let (p_halt, v_halt) = {
        let before = s.setpoint[5];
        s = run(&mut rig, dt, &cmd, 1);
        (s.setpoint[5], (s.setpoint[5] - before) / dt)
    };
    assert!(v_halt > 0.0, "the needle was advancing");
    cmd.halt_goal_seq = cmd.goal_seq;
    cmd.halt_seq += 1;
    let mut last = p_halt;
    for _ in 0..2000 {
        s = run(&mut rig, dt, &cmd, 1);
        assert!(
            s.setpoint[5] >= last - 1e-9,
            "the needle went back: {} after {}",
            s.setpoint[5],
            last
        );
        last = s.setpoint[5];
    }
    assert!(s.in_position, "halted in position");
    let amax = common::config().axes[5].max_acceleration;
    let braking = v_halt * v_halt / (2.0 * amax);
    assert!(
        (s.setpoint[5] - p_halt - braking).abs() < 0.1e-3 + v_halt * dt,
        "stopped {:.4} mm beyond the halt, braking distance {:.4} mm",
        (s.setpoint[5] - p_halt) * 1e3,
        braking * 1e3
    );
    assert!(s.setpoint[5] < cmd.goal[5] - 0.01, "the abandoned goal was not pursued");
    // A newer goal moves again.
    cmd.goal_seq = 2;
    let s = run(&mut rig, dt, &cmd, 12_000);
    assert!((s.setpoint[5] - cmd.goal[5]).abs() < 1e-6, "the new goal was reached");
}
