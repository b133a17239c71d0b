//! Acceptance 1: ethercrab finds 6 emulated drives in-process, maps PDOs by SDO, reaches OP with
//! DC, enables them (statusword 0x0627) and moves all six axes through a trajectory within the
//! following-error window.
#![allow(clippy::needless_range_loop)]

mod common;

use std::time::Duration;

use acus_ethercat::cia402::{DriveState, RX_MAPPING, TX_MAPPING};
use acus_ethercat::cycle::Mode;
use common::*;

#[test]
fn six_drives_map_by_sdo_enable_and_follow_a_trajectory() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut rig = start(&[0.0, 0.0, 0.01, 0.0, 0.0, 0.0]);
    let n = rig.cfg.axes.len();
    assert_eq!(n, 6);
    {
        // PDO assignment and mapping were written by SDO: the emulator's power-on mapping is
        // shorter (controlword + target / statusword + position), ours has 3 / 6 entries.
        let net = rig.link.network();
        assert_eq!(net.devices().len(), 6);
        for (d, a) in net.devices().iter().zip(&rig.cfg.axes) {
            assert_eq!(d.al_state(), acus_sim_ecat::esc::AlState::Op);
            let rx: Vec<u32> = d.od.assigned_mapping(0x1C12);
            let tx: Vec<u32> = d.od.assigned_mapping(0x1C13);
            assert_eq!(rx, RX_MAPPING.to_vec());
            assert_eq!(tx, TX_MAPPING.to_vec());
            assert_eq!(d.od.u32(0x6065, 0), a.following_error_window_counts());
            // DC: SYNC0 active with cyclic operation (0x0981 = 0x03), 1 ms SYNC0 cycle (0x09A0),
            // and a system time offset written by the master (0x0920).
            assert_eq!(d.memory(0x0981, 1)[0] & 0x03, 0x03);
            assert_eq!(u32::from_le_bytes(d.memory(0x09A0, 4).try_into().unwrap()), 1_000_000);
            assert_ne!(u64::from_le_bytes(d.memory(0x0920, 8).try_into().unwrap()), 0);
        }
    }
    let mut ctrl = rig.ctrl.take().unwrap().enable();
    let s = wait_for(
        &mut ctrl,
        Duration::from_secs(10),
        |_| {},
        |s| s.mode == Mode::Enabled || s.fault.is_some(),
    );
    assert_eq!(s.fault, None);
    // At rest in Operation enabled the drives report 0x0627 (ready, switched on, enabled,
    // quick stop off, remote, target reached).
    let s = wait_for(
        &mut ctrl,
        Duration::from_secs(5),
        |_| {},
        |s| s.statusword[..n].iter().all(|w| *w == 0x0627),
    );
    assert!(s.drive_state[..n].iter().all(|d| *d == DriveState::OperationEnabled));

    let windows: Vec<f64> = rig.cfg.axes.iter().map(|a| a.following_error_window).collect();
    let trajectory: [[f64; 6]; 3] = [
        [0.02, -0.03, 0.05, 0.3, -0.2, 0.04],
        [-0.05, 0.04, 0.1, -0.4, 0.3, 0.1],
        [0.0, 0.0, 0.02, 0.0, 0.0, 0.01],
    ];
    let mut worst = [0.0f64; 6];
    for goal in trajectory {
        let seq = ctrl.move_to(&goal, 1.0).unwrap();
        let s = wait_for(
            &mut ctrl,
            Duration::from_secs(60),
            |s| {
                assert_eq!(s.fault, None, "fault during the trajectory");
                for i in 0..n {
                    let fe = (s.setpoint[i] - s.actual[i]).abs();
                    worst[i] = worst[i].max(fe);
                    assert!(
                        fe <= windows[i],
                        "axis {i}: following error {fe} > window {}",
                        windows[i]
                    );
                }
            },
            |s| s.goal_seq == seq && s.goal_reached,
        );
        // Let the drives settle, then every axis is at the goal to within the encoder quantum
        // plus the settling error the drive may still have.
        let settled = wait_for(&mut ctrl, Duration::from_secs(5), |_| {}, |x| x.cycle >= s.cycle + 300);
        let drives = drive_positions(&rig.link);
        for i in 0..n {
            let q = 1.0 / rig.cfg.axes[i].counts_per_unit;
            assert!(
                (settled.actual[i] - goal[i]).abs() <= windows[i] / 10.0,
                "axis {i}: actual {} goal {}",
                settled.actual[i],
                goal[i]
            );
            assert!(
                (drives[i] - goal[i]).abs() <= windows[i] / 10.0 + q,
                "axis {i}: emulated drive at {}",
                drives[i]
            );
        }
    }
    eprintln!("worst following error per axis (SI): {worst:?}");
    let ctrl = ctrl.disable();
    ctrl.shutdown().unwrap();
}
