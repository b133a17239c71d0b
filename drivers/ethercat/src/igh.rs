//! IgH EtherCAT master backend (feature `igh`), on the `ethercat` crate 0.3.1 with pregenerated
//! bindings.
//!
//! **Needs the IgH kernel module on the target machine**: it opens `/dev/EtherCAT0` and checks the
//! ioctl magic of IgH 1.5 (or the Synapticon fork the bindings were generated from). It compiles
//! anywhere; it runs only where that module is loaded. The IgH master writes the PDO assignment
//! and mapping (from [`Master`]'s slave configuration) and the start-up SDOs itself at PRE-OP.

use std::time::{SystemTime, UNIX_EPOCH};

use ethercat::{
    DomainIdx, Idx, Master, MasterAccess, PdoCfg, PdoEntryIdx, PdoEntryInfo, PdoEntryPos, PdoIdx, SdoIdx, SlaveAddr,
    SlaveId, SmCfg, SubIdx,
};

use crate::bus::Bus;
use crate::cia402::{DriveInputs, DriveOutputs, MODE_CSP, QUICK_STOP_OPTION_HOLD, RX_MAPPING, TX_MAPPING};
use crate::config::{AxisConfig, MAX_AXES};
use crate::cycle::BusHealth;
use crate::Error;

fn err(e: impl std::fmt::Display) -> Error {
    Error::Master(format!("IgH: {e}"))
}

fn pdo(index: u16, mapping: &[u32]) -> PdoCfg {
    PdoCfg {
        idx: PdoIdx::new(index),
        entries: mapping
            .iter()
            .enumerate()
            .map(|(i, m)| PdoEntryInfo {
                pos: PdoEntryPos::from(i as u8),
                entry_idx: PdoEntryIdx {
                    idx: Idx::new((m >> 16) as u16),
                    sub_idx: SubIdx::new((m >> 8) as u8),
                },
                bit_len: (m & 0xFF) as u8,
                name: String::new(),
            })
            .collect(),
    }
}

/// Drives on an IgH master, activated (the master walks them to OP once the cycle runs).
pub struct IghBus {
    master: Master,
    domain: DomainIdx,
    n: usize,
    rx_off: [[usize; 3]; MAX_AXES],
    tx_off: [[usize; 6]; MAX_AXES],
    expected_wkc: u32,
}

impl IghBus {
    /// Configure master `index` for `axes` (vendor/product as the drives report them), CSP with
    /// DC SYNC0 every `cycle_ns`, and activate it.
    pub fn open(
        index: u32,
        axes: &[AxisConfig],
        vendor_id: u32,
        product_code: u32,
        cycle_ns: u32,
    ) -> Result<Self, Error> {
        if axes.len() > MAX_AXES {
            return Err(Error::DriveCount {
                found: axes.len(),
                expected: MAX_AXES,
            });
        }
        let mut master = Master::open(index, MasterAccess::ReadWrite).map_err(err)?;
        master.reserve().map_err(err)?;
        let domain = master.create_domain().map_err(err)?;
        let mut rx_off = [[0usize; 3]; MAX_AXES];
        let mut tx_off = [[0usize; 6]; MAX_AXES];
        for (i, axis) in axes.iter().enumerate() {
            let mut sc = master
                .configure_slave(
                    SlaveAddr::ByPos(i as u16),
                    SlaveId {
                        vendor_id,
                        product_code,
                    },
                )
                .map_err(err)?;
            sc.config_sm_pdos(SmCfg::output(2.into()), &[pdo(0x1600, &RX_MAPPING)])
                .map_err(err)?;
            sc.config_sm_pdos(SmCfg::input(3.into()), &[pdo(0x1A00, &TX_MAPPING)])
                .map_err(err)?;
            sc.add_sdo(SdoIdx::new(0x6060, 0), &MODE_CSP).map_err(err)?;
            sc.add_sdo(SdoIdx::new(0x6065, 0), &axis.following_error_window_counts())
                .map_err(err)?;
            sc.add_sdo(SdoIdx::new(0x605A, 0), &QUICK_STOP_OPTION_HOLD)
                .map_err(err)?;
            sc.add_sdo(SdoIdx::new(0x607C, 0), &axis.to_counts(axis.homing_offset))
                .map_err(err)?;
            for (k, m) in RX_MAPPING.iter().enumerate() {
                let e = PdoEntryIdx {
                    idx: Idx::new((m >> 16) as u16),
                    sub_idx: SubIdx::new((m >> 8) as u8),
                };
                rx_off[i][k] = sc.register_pdo_entry(e, domain).map_err(err)?.byte;
            }
            for (k, m) in TX_MAPPING.iter().enumerate() {
                let e = PdoEntryIdx {
                    idx: Idx::new((m >> 16) as u16),
                    sub_idx: SubIdx::new((m >> 8) as u8),
                };
                tx_off[i][k] = sc.register_pdo_entry(e, domain).map_err(err)?.byte;
            }
            // AssignActivate 0x0300: SYNC0 (ETG1020 §21), shift half a cycle.
            sc.config_dc(0x0300, cycle_ns, (cycle_ns / 2) as i32, 0, 0)
                .map_err(err)?;
        }
        master.activate().map_err(err)?;
        Ok(Self {
            master,
            domain,
            n: axes.len(),
            rx_off,
            tx_off,
            expected_wkc: 3 * axes.len() as u32,
        })
    }
}

fn rd<const N: usize>(d: &[u8], off: usize) -> [u8; N] {
    let mut b = [0u8; N];
    if let Some(s) = d.get(off..off + N) {
        b.copy_from_slice(s);
    }
    b
}

impl Bus for IghBus {
    fn drives(&self) -> usize {
        self.n
    }

    fn exchange(&mut self, outputs: &[DriveOutputs], inputs: &mut [DriveInputs]) -> BusHealth {
        if self.master.receive().is_err() || self.master.domain(self.domain).process().is_err() {
            return BusHealth::Lost;
        }
        let health = match self.master.domain(self.domain).state() {
            Ok(s) if s.working_counter == self.expected_wkc => BusHealth::Ok,
            Ok(s) => BusHealth::WorkingCounter {
                got: s.working_counter.min(u32::from(u16::MAX)) as u16,
                expected: self.expected_wkc.min(u32::from(u16::MAX)) as u16,
            },
            Err(_) => BusHealth::Lost,
        };
        let (n, rx_off, tx_off) = (self.n, self.rx_off, self.tx_off);
        if let Ok(d) = self.master.domain_data(self.domain) {
            if health == BusHealth::Ok {
                for (i, inp) in inputs.iter_mut().enumerate().take(n) {
                    let t = &tx_off[i];
                    *inp = DriveInputs {
                        statusword: u16::from_le_bytes(rd(d, t[0])),
                        position: i32::from_le_bytes(rd(d, t[1])),
                        velocity: i32::from_le_bytes(rd(d, t[2])),
                        torque: i16::from_le_bytes(rd(d, t[3])),
                        error_code: u16::from_le_bytes(rd(d, t[4])),
                        mode_display: rd::<1>(d, t[5])[0] as i8,
                    };
                }
            }
            for (i, o) in outputs.iter().enumerate().take(n) {
                let r = &rx_off[i];
                for (off, bytes) in [
                    (r[0], &o.controlword.to_le_bytes()[..]),
                    (r[1], &o.target.to_le_bytes()[..]),
                    (r[2], &[o.mode as u8][..]),
                ] {
                    if let Some(s) = d.get_mut(off..off + bytes.len()) {
                        s.copy_from_slice(bytes);
                    }
                }
            }
        }
        // DC: application time (ns since the EtherCAT epoch, 2000-01-01), then distribute the
        // reference clock (IgH cyclic DC recipe).
        const EPOCH_2000_NS: u64 = 946_684_800 * 1_000_000_000;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| (d.as_nanos() as u64).saturating_sub(EPOCH_2000_NS));
        let _ = self.master.set_application_time(now);
        let _ = self.master.sync_reference_clock();
        let _ = self.master.sync_slave_clocks();
        if self.master.domain(self.domain).queue().is_err() || self.master.send().is_err() {
            return BusHealth::Lost;
        }
        health
    }
}
