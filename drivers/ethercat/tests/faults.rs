//! Acceptance 3: each injected fault (drive fault, link down, device missing, 10 % dropped
//! frames) ends in a quick stop within 2 cycles, a latched fault and no motion until reset;
//! after the reset the drives resume from their actual positions.
#![allow(clippy::needless_range_loop)]

mod common;

use std::time::Duration;

use acus_ethercat::cia402::{cw, DriveState};
use acus_ethercat::cycle::{Fault, Mode, Status};
use acus_ethercat::runner::{Controller, Enabled, Event};
use acus_sim_ecat::Faults;
use common::*;

enum Inject {
    DriveFault,
    LinkDown,
    Missing,
    Drops,
}

fn halted(c: u16) -> bool {
    c == cw::QUICK_STOP || c == cw::DISABLE_VOLTAGE
}

fn scenario(kind: Inject) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut rig = start(&[0.0, 0.0, 0.02, 0.0, 0.0, 0.02]);
    let n = rig.cfg.axes.len();
    let mut ctrl: Controller<Enabled> = rig.ctrl.take().unwrap().enable();
    let s = wait_for(
        &mut ctrl,
        Duration::from_secs(10),
        |_| {},
        |s| s.mode == Mode::Enabled || s.fault.is_some(),
    );
    assert_eq!(s.fault, None);
    // Put every axis in motion, then inject mid-move.
    ctrl.move_to(&[0.08, -0.08, 0.12, 0.8, -0.6, 0.15], 1.0).unwrap();
    let s0 = wait_for(
        &mut ctrl,
        Duration::from_secs(5),
        |s| assert_eq!(s.fault, None),
        |x| x.cycle >= s.cycle + 200,
    );
    assert!(s0.setpoint[0] > 0.005, "axis 0 should be moving, at {}", s0.setpoint[0]);

    let injected_at = {
        let mut net = rig.link.network();
        match kind {
            Inject::DriveFault => net.inject_drive_fault(2, 0x2310),
            Inject::LinkDown => net.set_faults(Faults {
                link_down: true,
                ..Faults::default()
            }),
            Inject::Missing => net.set_faults(Faults {
                missing: Some(4),
                ..Faults::default()
            }),
            Inject::Drops => net.set_faults(Faults {
                drop_percent: 10,
                ..Faults::default()
            }),
        }
        drop(net);
        ctrl.status().cycle
    };
    let f = wait_for(&mut ctrl, Duration::from_secs(10), |_| {}, |s| s.fault.is_some());
    let fault = f.fault.unwrap();
    match kind {
        Inject::DriveFault => assert_eq!(fault, Fault::Drive { axis: 2, code: 0x2310 }),
        Inject::LinkDown | Inject::Drops => assert_eq!(fault, Fault::FrameLost),
        Inject::Missing => assert!(matches!(fault, Fault::WorkingCounter { .. }), "{fault:?}"),
    }
    if !matches!(kind, Inject::Drops) {
        // Detected by the first exchange after the injection (one may already be in flight).
        assert!(
            f.fault_cycle <= injected_at + 2,
            "fault at cycle {}, injected after cycle {injected_at}",
            f.fault_cycle
        );
    }
    // The fault also left the cycle as an event on the SPSC ring, with its cycle number.
    let mut latched_events = Vec::new();
    while let Some(e) = ctrl.next_event() {
        if let Event::FaultLatched { cycle, fault } = e {
            latched_events.push((cycle, fault));
        }
    }
    assert_eq!(
        latched_events.first(),
        Some(&(f.fault_cycle, fault)),
        "events {latched_events:?}"
    );
    // Quick stop commanded to every axis in the cycle the fault latched.
    let at_latch = wait_for(&mut ctrl, Duration::from_secs(1), |_| {}, |s| s.cycle >= f.cycle);
    assert!(
        at_latch.controlword[..n].iter().all(|c| halted(*c)),
        "controlwords {:x?}",
        at_latch.controlword
    );

    // Restore the line (the fault cause goes away) — the latch must hold regardless.
    rig.link.network().set_faults(Faults::default());
    // Emulator side: answered frames from the onset until all drives were commanded to halt.
    let latency = loop {
        if let Some(l) = rig.link.network().halt_latency() {
            break l;
        }
        let s = ctrl.status();
        assert!(s.cycle < f.cycle + 5000, "drives never received the quick stop");
        std::thread::yield_now();
    };
    assert!(
        latency <= 2,
        "quick stop reached the drives {latency} answered frames after the fault"
    );
    eprintln!(
        "{fault:?}: latched {} cycle(s) after the injection was observed, quick stop at the drives after {latency} answered frame(s)",
        f.fault_cycle.saturating_sub(injected_at)
    );

    // No motion until reset: the drives brake and stay; a motion command is ignored.
    let stopped = wait_for(
        &mut ctrl,
        Duration::from_secs(10),
        |s| assert_eq!(s.mode, Mode::Faulted),
        |s| {
            s.drive_state[..n]
                .iter()
                .all(|d| matches!(d, DriveState::SwitchOnDisabled | DriveState::Fault))
        },
    );
    ctrl.move_to(&[0.0, 0.0, 0.02, 0.0, 0.0, 0.02], 1.0).unwrap();
    let held = drive_positions(&rig.link);
    wait_for(
        &mut ctrl,
        Duration::from_secs(5),
        |s| {
            assert_eq!(s.mode, Mode::Faulted);
            assert!(s.controlword[..n].iter().all(|c| halted(*c)));
        },
        |s| s.cycle >= stopped.cycle + 300,
    );
    let still = drive_positions(&rig.link);
    for i in 0..n {
        assert_eq!(held[i], still[i], "axis {i} moved while latched");
    }

    // Reset (rising edge of bit 7 on the faulted drive), enable again: resume from actual.
    let mut ctrl = ctrl.reset();
    let s = wait_for(
        &mut ctrl,
        Duration::from_secs(10),
        |_| {},
        |s: &Status| s.mode == Mode::Disabled && s.fault.is_none(),
    );
    assert!(s.drive_state[..n].iter().all(|d| !d.is_fault()), "{:?}", s.drive_state);
    let before = drive_positions(&rig.link);
    let mut ctrl = ctrl.enable();
    let en = wait_for(
        &mut ctrl,
        Duration::from_secs(10),
        |_| {},
        |s| s.mode == Mode::Enabled || s.fault.is_some(),
    );
    assert_eq!(en.fault, None);
    for i in 0..n {
        let q = 1.0 / rig.cfg.axes[i].counts_per_unit;
        assert!(
            (en.setpoint[i] - before[i]).abs() <= q,
            "axis {i}: first setpoint {} vs actual {}",
            en.setpoint[i],
            before[i]
        );
    }
    let after_enable = drive_positions(&rig.link);
    for i in 0..n {
        let q = 1.0 / rig.cfg.axes[i].counts_per_unit;
        assert!((after_enable[i] - before[i]).abs() <= q, "axis {i} jumped on enable");
    }
    let goal = [0.01, 0.01, 0.05, 0.1, 0.1, 0.03];
    let seq = ctrl.move_to(&goal, 1.0).unwrap();
    wait_for(
        &mut ctrl,
        Duration::from_secs(60),
        |s| assert_eq!(s.fault, None),
        |s| s.goal_seq == seq && s.goal_reached,
    );
    ctrl.disable().shutdown().unwrap();
}

#[test]
fn drive_fault_quick_stops_and_latches() {
    scenario(Inject::DriveFault);
}

#[test]
fn link_down_quick_stops_and_latches() {
    scenario(Inject::LinkDown);
}

#[test]
fn missing_device_quick_stops_and_latches() {
    scenario(Inject::Missing);
}

#[test]
fn ten_percent_dropped_frames_quick_stop_and_latch() {
    scenario(Inject::Drops);
}
