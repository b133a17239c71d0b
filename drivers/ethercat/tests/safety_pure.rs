//! Every fault of the cycle's safety supervisor injected into the pure cycle ([`Cycle::step_with`] on crafted inputs
//! against the emulator's drive model): latched within 2 cycles of becoming observable, quick stop on every axis,
//! nothing moves until reset, a reset refused while the cause persists.
#![allow(clippy::needless_range_loop)]

mod common;

use acus_ethercat::cia402::cw;
use acus_ethercat::cycle::{BusHealth, Command, Fault, Mode, Status};
use acus_ethercat::safety::{SourceKind, SourceSample, StopSource};
use acus_sim_ecat::drive::PowerState;
use common::pure::PureRig;

const N: usize = 6;

fn rig() -> (PureRig, f64) {
    let cfg = common::config();
    (PureRig::new(&cfg.axes, cfg.cycle_time_s), cfg.cycle_time_s)
}

fn run(rig: &mut PureRig, dt: f64, cmd: &Command, cycles: usize) -> Status {
    let mut s = rig.master_step(BusHealth::Ok, cmd);
    rig.drives_step(dt);
    for _ in 1..cycles {
        s = rig.master_step(BusHealth::Ok, cmd);
        rig.drives_step(dt);
    }
    s
}

/// Enabled and every axis moving towards a goal 20 mm / 0.2 rad away.
fn moving(rig: &mut PureRig, dt: f64) -> Command {
    let mut cmd = Command {
        enable: true,
        enable_seq: 1,
        ..Command::default()
    };
    let s0 = run(rig, dt, &cmd, 10);
    assert_eq!(s0.mode, Mode::Enabled);
    cmd.goal[..N].copy_from_slice(&s0.actual[..N]);
    for i in 0..N {
        cmd.goal[i] += if i < 3 || i == 5 { 0.02 } else { 0.2 };
    }
    cmd.goal_seq = 1;
    let s = run(rig, dt, &cmd, 200);
    assert_eq!(s.fault, None);
    cmd
}

fn assert_quick_stop(s: &Status) {
    assert_eq!(s.mode, Mode::Faulted);
    assert!(
        s.controlword[..N].iter().all(|c| *c == cw::QUICK_STOP),
        "controlwords {:x?}",
        &s.controlword[..N]
    );
}

/// After the latch: the drives brake, then nothing moves for 300 cycles; a reset edge while `cause` holds is refused.
fn assert_held_and_reset_refused(rig: &mut PureRig, dt: f64, cmd: &mut Command, fault: Fault) {
    let stopped = run(rig, dt, cmd, 500);
    let later = run(rig, dt, cmd, 300);
    for i in 0..N {
        assert_eq!(stopped.actual[i], later.actual[i], "axis {i} moved while latched");
    }
    cmd.reset_seq += 1;
    let s = run(rig, dt, cmd, 5);
    assert!(s.reset_refused, "reset accepted while the cause persists");
    assert_eq!((s.mode, s.fault), (Mode::Faulted, Some(fault)));
}

fn reset_goes_through(rig: &mut PureRig, dt: f64, cmd: &mut Command) {
    cmd.reset_seq += 1;
    cmd.enable = false;
    let s = run(rig, dt, cmd, 20);
    assert!(!s.reset_refused);
    assert_eq!((s.mode, s.fault), (Mode::Disabled, None));
}

fn source(kind: SourceKind, asserted: bool, counter: u32, deadline: u32) -> SourceSample {
    SourceSample {
        registered: true,
        kind,
        asserted,
        counter,
        deadline,
    }
}

#[test]
fn an_estop_source_pressed_quick_stops_and_blocks_reset_while_pressed() {
    let (mut rig, dt) = rig();
    rig.safety.sources[0] = source(SourceKind::EmergencyStop, false, 1, 50);
    rig.live_sources[0] = true;
    let mut cmd = moving(&mut rig, dt);
    rig.safety.sources[0].asserted = true;
    let s = rig.master_step(BusHealth::Ok, &cmd);
    let fault = Fault::EmergencyStop {
        source: StopSource::Input {
            index: 0,
            silent: false,
        },
    };
    assert_eq!(s.fault, Some(fault));
    assert_eq!(s.fault_cycle, s.cycle, "latched in the cycle it was seen");
    assert_quick_stop(&s);
    rig.drives_step(dt);
    assert_held_and_reset_refused(&mut rig, dt, &mut cmd, fault);
    rig.safety.sources[0].asserted = false;
    reset_goes_through(&mut rig, dt, &mut cmd);
}

#[test]
fn one_console_silent_while_another_talks_is_an_estop_naming_the_silent_one() {
    let (mut rig, dt) = rig();
    let deadline = 20;
    rig.safety.sources[0] = source(SourceKind::EmergencyStop, false, 0, deadline);
    rig.safety.sources[1] = source(SourceKind::EmergencyStop, false, 0, deadline);
    rig.live_sources = [true, true, false, false, false, false, false, false];
    let mut cmd = moving(&mut rig, dt);
    rig.live_sources[1] = false;
    // Console 0 keeps refreshing "released"; console 1 falls silent at cycle `quiet`.
    let quiet = rig.cycle.status().cycle;
    let mut k = 0;
    let s = loop {
        k += 1;
        let s = rig.master_step(BusHealth::Ok, &cmd);
        rig.drives_step(dt);
        if s.fault.is_some() || k > 100 {
            break s;
        }
    };
    let fault = Fault::EmergencyStop {
        source: StopSource::Input { index: 1, silent: true },
    };
    assert_eq!(s.fault, Some(fault));
    // Silent means: more than `deadline` cycles without a change; observable at quiet + deadline + 1.
    assert!(
        s.fault_cycle <= quiet + u64::from(deadline) + 2,
        "latched at {}, silent since {quiet}",
        s.fault_cycle
    );
    assert_quick_stop(&s);
    assert_held_and_reset_refused(&mut rig, dt, &mut cmd, fault);
    rig.live_sources[1] = true;
    reset_goes_through(&mut rig, dt, &mut cmd);
}

/// Enable released (or silent): a CiA 402 quick stop at the drives (they brake on their own ramp and stay powered in
/// Quick stop active), never back, goals refused, no latch; back held: Enable operation (transition 16), and only a
/// newer goal moves.
fn enable_lost(silent: bool) {
    let (mut rig, dt) = rig();
    rig.safety.sources[2] = source(SourceKind::Enable, true, 1, 30);
    rig.live_sources[2] = true;
    let mut cmd = moving(&mut rig, dt);
    let before = run(&mut rig, dt, &cmd, 1);
    if silent {
        rig.live_sources[2] = false;
    } else {
        rig.safety.sources[2].asserted = false;
    }
    let mut last = before.setpoint[5];
    let mut s = before;
    let mut released_at = None;
    let mut quick_stop_at = None;
    let mut last_drive = rig.drive(5).position();
    for _ in 0..3000 {
        s = run(&mut rig, dt, &cmd, 1);
        if !s.enable_held && released_at.is_none() {
            released_at = Some(s.cycle);
        }
        if quick_stop_at.is_none() && s.controlword[..N].iter().all(|c| *c == cw::QUICK_STOP) {
            quick_stop_at = Some(s.cycle);
        }
        assert!(s.setpoint[5] >= last - 1e-9, "the needle went back");
        assert!(rig.drive(5).position() >= last_drive - 1e-9, "the drive went back");
        last = s.setpoint[5];
        last_drive = rig.drive(5).position();
    }
    let released_at = released_at.expect("enable seen released");
    assert!(
        released_at <= before.cycle + if silent { 32 } else { 1 },
        "released seen at {released_at}"
    );
    // The quick stop leaves in the frame of the cycle that saw the release, and the drives take it.
    assert_eq!(quick_stop_at, Some(released_at));
    for i in 0..N {
        assert_eq!(rig.drive(i).state(), PowerState::QuickStopActive, "axis {i}");
        assert!(rig.drive(i).velocity().abs() < 1e-9, "axis {i} still moving");
    }
    assert_eq!(s.fault, None, "a released enable is a hold, not a latch");
    assert!(s.halted && s.in_position && s.mode == Mode::Enabled);
    assert!(s.setpoint[5] < cmd.goal[5] - 0.005, "the goal was abandoned");
    // A goal sent while released is refused.
    cmd.goal[5] = s.setpoint[5] + 0.01;
    cmd.goal_seq += 1;
    let held = run(&mut rig, dt, &cmd, 300);
    assert!(
        (held.setpoint[5] - s.setpoint[5]).abs() < 1e-9,
        "moved while the enable was released"
    );
    // Held and fresh again: the refused goal stays refused; a newer one moves.
    rig.safety.sources[2].asserted = true;
    rig.live_sources[2] = true;
    let again = run(&mut rig, dt, &cmd, 300);
    assert!(again.enable_held);
    assert_eq!(again.fault, None);
    for i in 0..N {
        assert_eq!(
            rig.drive(i).state(),
            PowerState::OperationEnabled,
            "axis {i} back (transition 16)"
        );
    }
    assert!(again.controlword[..N].iter().all(|c| *c == cw::ENABLE_OPERATION));
    assert!(
        (again.setpoint[5] - s.setpoint[5]).abs() < 1e-9,
        "resumed a goal sent while released"
    );
    cmd.goal_seq += 1;
    let moved = run(&mut rig, dt, &cmd, 3000);
    assert!(
        (moved.setpoint[5] - cmd.goal[5]).abs() < 1e-6,
        "the newer goal was reached"
    );
}

#[test]
fn enable_released_quick_stops_the_drives_and_resumes_when_held_again() {
    enable_lost(false);
}

#[test]
fn enable_client_silent_quick_stops_like_a_release() {
    // The client crashed while holding: its counter stops changing.
    enable_lost(true);
}

#[test]
fn a_stalled_supervisor_latches_a_stale_command() {
    let (mut rig, dt) = rig();
    let mut cmd = moving(&mut rig, dt);
    let deadline = rig.cycle.safety_settings().stale_command_cycles;
    rig.stalled = true;
    let since = rig.cycle.status().cycle;
    let mut s = run(&mut rig, dt, &cmd, 1);
    while s.fault.is_none() && s.cycle < since + 200 {
        assert!(s.controlword[..N].iter().all(|c| *c == cw::ENABLE_OPERATION));
        s = run(&mut rig, dt, &cmd, 1);
    }
    assert!(matches!(s.fault, Some(Fault::StaleCommand { .. })), "{:?}", s.fault);
    // Observable once the age passes the deadline: at since + deadline + 1.
    assert!(
        s.fault_cycle <= since + u64::from(deadline) + 2,
        "latched at {}, stalled after {since}",
        s.fault_cycle
    );
    assert_quick_stop(&s);
    let fault = s.fault.unwrap();
    assert_held_and_reset_refused(&mut rig, dt, &mut cmd, fault);
    rig.stalled = false;
    reset_goes_through(&mut rig, dt, &mut cmd);
}

#[test]
fn goals_are_clamped_to_the_depth_limit() {
    let (mut rig, dt) = rig();
    let mut cmd = moving(&mut rig, dt);
    let s = run(&mut rig, dt, &cmd, 1);
    let limit = s.setpoint[5] + 0.005;
    cmd.depth_limit[5] = limit;
    cmd.goal[5] = limit + 0.03;
    cmd.goal_seq += 1;
    let mut deepest = f64::MIN;
    let mut s = s;
    for _ in 0..4000 {
        s = run(&mut rig, dt, &cmd, 1);
        deepest = deepest.max(s.setpoint[5]);
    }
    assert_eq!(s.fault, None);
    assert!(deepest <= limit + 1e-6, "setpoint {deepest} beyond the limit {limit}");
    assert!((s.setpoint[5] - limit).abs() < 1e-6, "stopped at the limit");
}

#[test]
fn insertion_beyond_the_depth_limit_latches() {
    let (mut rig, dt) = rig();
    let mut cmd = moving(&mut rig, dt);
    let s = run(&mut rig, dt, &cmd, 1);
    // The limit lands 5 mm behind the needle (beyond the 1 mm window): observable at once.
    let limit = s.actual[5] - 0.005;
    cmd.depth_limit[5] = limit;
    let s = rig.master_step(BusHealth::Ok, &cmd);
    match s.fault {
        Some(Fault::DepthLimit {
            axis: 5,
            position,
            limit: l,
        }) => {
            assert!(position > l + 0.001 && (l - limit).abs() < 1e-12, "{position} {l}");
        }
        other => panic!("expected a depth-limit fault, got {other:?}"),
    }
    assert_eq!(s.fault_cycle, s.cycle);
    assert_quick_stop(&s);
    rig.drives_step(dt);
    // Disabled after a reset: the depth check belongs to motion, so the reset goes through once the drives stopped.
    let stopped = run(&mut rig, dt, &cmd, 500);
    let later = run(&mut rig, dt, &cmd, 300);
    assert_eq!(stopped.actual[5], later.actual[5]);
    reset_goes_through(&mut rig, dt, &mut cmd);
}

#[test]
fn a_nan_goal_latches_and_never_becomes_zero_counts() {
    let (mut rig, dt) = rig();
    let mut cmd = moving(&mut rig, dt);
    cmd.goal[3] = f64::NAN;
    cmd.goal_seq += 1;
    let s = rig.master_step(BusHealth::Ok, &cmd);
    assert_eq!(s.fault, Some(Fault::InvalidGoal { axis: 3 }));
    assert_quick_stop(&s);
    for i in 0..N {
        assert_eq!(
            rig.outputs[i].target, rig.inputs[i].position,
            "axis {i}: target is the actual position"
        );
    }
    rig.drives_step(dt);
    assert_held_and_reset_refused(&mut rig, dt, &mut cmd, Fault::InvalidGoal { axis: 3 });
    cmd.goal[3] = 0.0;
    reset_goes_through(&mut rig, dt, &mut cmd);
}

#[test]
fn velocity_actual_beyond_the_limit_is_an_overspeed() {
    let (mut rig, dt) = rig();
    let mut cmd = moving(&mut rig, dt);
    let a = common::config().axes[1].clone();
    let fast = (a.max_velocity * 1.3 * a.counts_per_unit) as i32;
    let s = rig.master_step_with(BusHealth::Ok, &cmd, |x| x[1].velocity = fast);
    match s.fault {
        Some(Fault::Overspeed { axis: 1, velocity }) => assert!(velocity > a.max_velocity * 1.2, "{velocity}"),
        other => panic!("expected overspeed, got {other:?}"),
    }
    assert_quick_stop(&s);
    rig.drives_step(dt);
    // Still reported fast: a reset is refused.
    cmd.reset_seq += 1;
    let s = rig.master_step_with(BusHealth::Ok, &cmd, |x| x[1].velocity = fast);
    assert!(s.reset_refused && s.mode == Mode::Faulted);
    rig.drives_step(dt);
    let stopped = run(&mut rig, dt, &cmd, 500);
    let later = run(&mut rig, dt, &cmd, 300);
    assert_eq!(&stopped.actual[..N], &later.actual[..N], "moved while latched");
    // Slow again (the next frames are the drive's): the reset goes through.
    reset_goes_through(&mut rig, dt, &mut cmd);
}

#[test]
fn within_the_margin_is_no_overspeed() {
    let (mut rig, dt) = rig();
    let cmd = moving(&mut rig, dt);
    let a = common::config().axes[1].clone();
    let v = (a.max_velocity * 1.15 * a.counts_per_unit) as i32;
    let s = rig.master_step_with(BusHealth::Ok, &cmd, |x| x[1].velocity = v);
    assert_eq!(s.fault, None);
}

#[test]
fn an_encoder_jump_latches() {
    let (mut rig, dt) = rig();
    let mut cmd = moving(&mut rig, dt);
    let a = common::config().axes[4].clone();
    // 5 × what the axis can move in a period at its limit.
    let jump = (5.0 * a.max_velocity * dt * a.counts_per_unit) as i32;
    let s = rig.master_step_with(BusHealth::Ok, &cmd, |x| x[4].position += jump);
    match s.fault {
        Some(Fault::EncoderJump { axis: 4, jump: j }) => assert!(j.abs() > 4.0 * a.max_velocity * dt, "{j}"),
        other => panic!("expected an encoder jump, got {other:?}"),
    }
    assert_quick_stop(&s);
    rig.drives_step(dt);
    assert_held_and_reset_refused_by(&mut rig, dt, &mut cmd, jump);
    reset_goes_through(&mut rig, dt, &mut cmd);
}

/// The jump repeats in every reset frame (the encoder keeps jumping): refused.
fn assert_held_and_reset_refused_by(rig: &mut PureRig, dt: f64, cmd: &mut Command, jump: i32) {
    run(rig, dt, cmd, 500);
    cmd.reset_seq += 1;
    let mut flip = 1;
    let s = rig.master_step_with(BusHealth::Ok, cmd, |x| {
        x[4].position += jump * flip;
        flip = -flip;
    });
    assert!(s.reset_refused && s.mode == Mode::Faulted);
    rig.drives_step(dt);
    run(rig, dt, cmd, 5);
}

#[test]
fn a_burst_of_overruns_latches_and_a_reset_waits_for_the_window_to_clear() {
    let (mut rig, dt) = rig();
    let mut cmd = moving(&mut rig, dt);
    let burst = rig.cycle.safety_settings().overrun_burst;
    let mut s = run(&mut rig, dt, &cmd, 1);
    // Scattered overruns (one in 30) are counted, not a burst.
    for k in 0..300 {
        rig.safety.late = k % 30 == 0;
        s = run(&mut rig, dt, &cmd, 1);
    }
    assert_eq!(s.fault, None);
    assert_eq!(s.overruns, 10);
    rig.safety.late = false;
    run(&mut rig, dt, &cmd, 100);
    let mut latched_after = 0;
    for k in 1..=burst {
        rig.safety.late = true;
        s = rig.master_step(BusHealth::Ok, &cmd);
        rig.drives_step(dt);
        if s.fault.is_some() {
            latched_after = k;
            break;
        }
    }
    assert_eq!(s.fault, Some(Fault::OverrunBurst { count: burst }));
    assert_eq!(latched_after, burst, "latched at the overrun that completed the burst");
    assert_quick_stop(&s);
    rig.safety.late = false;
    cmd.reset_seq += 1;
    let r = run(&mut rig, dt, &cmd, 3);
    assert!(r.reset_refused, "reset accepted with the burst still in the window");
    run(&mut rig, dt, &cmd, 100);
    reset_goes_through(&mut rig, dt, &mut cmd);
}
