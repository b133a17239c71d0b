//! Acceptance 2: a drive whose actual position is far from zero does not move when enabled —
//! the first setpoint is the actual position, never a default.
#![allow(clippy::needless_range_loop)]

mod common;

use std::time::Duration;

use acus_ethercat::cycle::Mode;
use common::*;

#[test]
fn drives_far_from_zero_hold_position_when_enabled() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let initial = [0.08, -0.07, 0.12, 0.9, -0.6, 0.15];
    let mut rig = start(&initial);
    let n = rig.cfg.axes.len();
    // The master read the actual positions at PRE-OP (SDO 0x6064): far from zero.
    for i in 0..n {
        let a = &rig.cfg.axes[i];
        assert_eq!(rig.initial_counts[i], a.to_counts(initial[i]), "axis {i}");
    }
    let before = drive_positions(&rig.link);
    let mut ctrl = rig.ctrl.take().unwrap().enable();
    let enabled = wait_for(
        &mut ctrl,
        Duration::from_secs(10),
        |_| {},
        |s| s.mode == Mode::Enabled || s.fault.is_some(),
    );
    assert_eq!(enabled.fault, None);
    // Hold enabled for 500 cycles, watching every published cycle: setpoints stay at the
    // actual positions and the emulated axes do not move.
    let mut max_dev = [0.0f64; 6];
    let mut sp_dev = [0.0f64; 6];
    wait_for(
        &mut ctrl,
        Duration::from_secs(10),
        |s| {
            assert_eq!(s.fault, None);
            for i in 0..n {
                max_dev[i] = max_dev[i].max((s.actual[i] - initial[i]).abs());
                sp_dev[i] = sp_dev[i].max((s.setpoint[i] - initial[i]).abs());
            }
        },
        |s| s.cycle >= enabled.cycle + 500,
    );
    let after = drive_positions(&rig.link);
    for i in 0..n {
        let quantum = 1.0 / rig.cfg.axes[i].counts_per_unit;
        assert!(
            (after[i] - before[i]).abs() <= quantum,
            "axis {i} moved from {} to {}",
            before[i],
            after[i]
        );
        assert!(max_dev[i] <= quantum, "axis {i}: actual deviated {}", max_dev[i]);
        assert!(sp_dev[i] <= quantum, "axis {i}: setpoint deviated {}", sp_dev[i]);
    }
    ctrl.disable().shutdown().unwrap();
}

#[test]
fn bring_up_refuses_a_line_with_a_drive_missing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = config();
    // Five drives answer, six are configured.
    let params: Vec<_> = cfg.axes[..5]
        .iter()
        .map(|a| sim_params(a, 0.5 * (a.lower + a.upper)))
        .collect();
    let (tx, rx, pdu_loop) = acus_ethercat::ethercrab_bus::pdu_storage().unwrap();
    let _link =
        acus_sim_ecat::inproc::InProcessLink::spawn(acus_sim_ecat::Network::new(&params).unwrap(), tx, rx).unwrap();
    let timing = acus_ethercat::ethercrab_bus::BusTiming {
        dc_static_sync_iterations: 10,
        ..Default::default()
    };
    match acus_ethercat::ethercrab_bus::EthercrabBus::bring_up(pdu_loop, &cfg.axes, timing) {
        Err(e @ acus_ethercat::Error::DriveCount { found: 5, expected: 6 }) => {
            assert_eq!(e.to_string(), "found 5 EtherCAT SubDevices, configuration expects 6");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("bring-up accepted 5 drives for 6 axes"),
    }
}
