//! A bus-free rig for the pure cycle: the master's decode → step → encode against the emulator's
//! drive model and object dictionary (no frames), shared by the allocation test and the bench.
#![allow(dead_code)]

use acus_ethercat::cia402::{DriveInputs, DriveOutputs, RX_LEN, TX_LEN};
use acus_ethercat::config::{AxisConfig, MAX_AXES};
use acus_ethercat::cycle::{BusHealth, Command, Cycle, Status};
use acus_ethercat::safety::{SafetySample, MAX_SOURCES};
use acus_sim_ecat::drive::{Drive, DriveParams};
use acus_sim_ecat::od::{idx, ObjectDictionary};
use acus_sim_ecat::sii::Identity;

pub struct PureRig {
    pub cycle: Cycle,
    pub n: usize,
    pub rx: [[u8; RX_LEN]; MAX_AXES],
    pub tx: [[u8; TX_LEN]; MAX_AXES],
    pub inputs: [DriveInputs; MAX_AXES],
    pub outputs: [DriveOutputs; MAX_AXES],
    /// The safety sources and lateness handed to every step.
    pub safety: SafetySample,
    /// The rig plays the supervisor and bumps the command heartbeat every step, unless stalled.
    pub stalled: bool,
    /// Sources whose owner refreshes them every step (the others keep the counter the test sets).
    pub live_sources: [bool; MAX_SOURCES],
    heartbeat: u32,
    drives: Vec<(Drive, ObjectDictionary)>,
}

impl PureRig {
    pub fn new(axes: &[AxisConfig], dt: f64) -> Self {
        let drives = axes
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let id = Identity {
                    vendor_id: 0xACE,
                    product_code: 0x402,
                    revision: 1,
                    serial: i as u32,
                };
                let mut od = ObjectDictionary::cia402_drive(&id);
                od.set(
                    idx::FOLLOWING_ERROR_WINDOW,
                    &a.following_error_window_counts().to_le_bytes(),
                );
                // As the bring-up writes it (`map_pdos`).
                od.set(
                    idx::QUICK_STOP_OPTION,
                    &acus_ethercat::cia402::QUICK_STOP_OPTION_HOLD.to_le_bytes(),
                );
                let p: DriveParams = super::sim_params(a, 0.5 * (a.lower + a.upper));
                (Drive::new(p), od)
            })
            .collect();
        let mut rig = Self {
            cycle: Cycle::new(axes, dt),
            n: axes.len(),
            rx: [[0; RX_LEN]; MAX_AXES],
            tx: [[0; TX_LEN]; MAX_AXES],
            inputs: [DriveInputs::default(); MAX_AXES],
            outputs: [DriveOutputs::default(); MAX_AXES],
            safety: SafetySample::default(),
            stalled: false,
            live_sources: [false; MAX_SOURCES],
            heartbeat: 0,
            drives,
        };
        rig.drives_step(dt);
        rig
    }

    /// The master's share of one period: decode inputs, step, encode outputs. No allocation.
    pub fn master_step(&mut self, bus: BusHealth, cmd: &Command) -> Status {
        self.master_step_with(bus, cmd, |_| {})
    }

    /// As [`PureRig::master_step`], with `tamper` applied to the decoded inputs (a crafted frame).
    pub fn master_step_with(
        &mut self,
        bus: BusHealth,
        cmd: &Command,
        tamper: impl FnOnce(&mut [DriveInputs]),
    ) -> Status {
        for i in 0..self.n {
            if let Some(d) = DriveInputs::decode(&self.tx[i]) {
                self.inputs[i] = d;
            }
        }
        tamper(&mut self.inputs[..self.n]);
        if !self.stalled {
            self.heartbeat = self.heartbeat.wrapping_add(1);
        }
        for (src, live) in self.safety.sources.iter_mut().zip(self.live_sources) {
            if live {
                src.counter = src.counter.wrapping_add(1);
            }
        }
        let mut cmd = *cmd;
        cmd.heartbeat = self.heartbeat;
        let s = *self.cycle.step_with(
            bus,
            &self.inputs[..self.n],
            &cmd,
            &self.safety,
            &mut self.outputs[..self.n],
        );
        for i in 0..self.n {
            self.outputs[i].encode(&mut self.rx[i]);
        }
        s
    }

    /// The drives' share: apply the RxPDO bytes, step the dynamics, produce TxPDO bytes.
    pub fn drives_step(&mut self, dt: f64) {
        for (i, (drive, od)) in self.drives.iter_mut().enumerate() {
            let rx = &self.rx[i];
            od.set(idx::CONTROLWORD, &rx[0..2]);
            od.set(idx::TARGET_POSITION, &rx[2..6]);
            od.set(idx::MODES, &rx[6..7]);
            drive.step(od, dt, true);
            write_tx(od, &mut self.tx[i]);
        }
    }

    /// The emulated drive of `axis` (its own state and motion, not what the master reads).
    pub fn drive(&self, axis: usize) -> &Drive {
        &self.drives[axis].0
    }

    pub fn inject_fault(&mut self, axis: usize, code: u16) {
        let (d, od) = &mut self.drives[axis];
        d.inject_fault(code);
        d.publish(od);
        write_tx(od, &mut self.tx[axis]);
    }
}

/// TxPDO bytes from the dictionary, in the master's mapping order.
fn write_tx(od: &ObjectDictionary, tx: &mut [u8; TX_LEN]) {
    let mut off = 0;
    for (index, len) in [
        (idx::STATUSWORD, 2),
        (idx::POSITION_ACTUAL, 4),
        (idx::VELOCITY_ACTUAL, 4),
        (idx::TORQUE_ACTUAL, 2),
        (idx::ERROR_CODE, 2),
        (idx::MODES_DISPLAY, 1),
    ] {
        if let Ok(v) = od.read(index, 0) {
            tx[off..off + len].copy_from_slice(&v[..len]);
        }
        off += len;
    }
}
