//! A line of emulated SubDevices and the EtherCAT frame processing they do together
//! (ETG1000.4 §5.4: datagram commands, addressing, working counter).

use std::time::Instant;

use crate::drive::DriveParams;
use crate::esc::{Clock, SubDevice};
use crate::sii::Identity;
use crate::Error;

/// EtherType of EtherCAT frames.
pub const ETHERTYPE: u16 = 0x88A4;
/// Emulated propagation delay per hop (ns), for the DC receive-time latches.
const HOP_NS: u64 = 150;

/// Faults the emulator can inject, for safety tests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Percentage (0–100) of frames silently dropped.
    pub drop_percent: u8,
    /// Link down: every frame is lost.
    pub link_down: bool,
    /// A SubDevice (by position) that no longer answers: frames pass it untouched.
    pub missing: Option<usize>,
}

/// Vendor ID the emulated drives report (emulator use only).
pub const VENDOR_ID: u32 = 0x0000_0ACE;
/// Product code the emulated drives report ("402" in hex digits: CiA 402 CSP drive).
pub const PRODUCT_CODE: u32 = 0x0000_0402;

/// N SubDevices in a line, with a shared clock and the fault switches.
#[derive(Debug)]
pub struct Network {
    devices: Vec<SubDevice>,
    faults: Faults,
    start: Instant,
    frames: u64,
    dropped: u64,
    rng: u64,
    monitor: HaltMonitor,
    clock: Clock,
}

/// Measures the master's reaction to an injected fault: answered frames from the fault's onset
/// until every present drive is commanded to halt (quick stop or disable voltage).
#[derive(Debug, Clone, Copy, Default)]
struct HaltMonitor {
    armed: bool,
    onset: bool,
    answered: u64,
    latency: Option<u64>,
}

impl Network {
    /// A line of drives with the given parameters, serial numbers 1..=N.
    pub fn new(params: &[DriveParams]) -> Result<Self, Error> {
        if params.is_empty() || params.len() > 64 {
            return Err(Error::DriveCount(params.len()));
        }
        let n = params.len();
        if let Some((i, field)) = params
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.invalid_field().map(|f| (i, f)))
        {
            return Err(Error::Params(format!("drive {i}: {field} is not a usable value")));
        }
        let devices = params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let id = Identity {
                    vendor_id: VENDOR_ID,
                    product_code: PRODUCT_CODE,
                    revision: 1,
                    serial: i as u32 + 1,
                };
                let mut d = SubDevice::new(id, *p, 1_000_000 * (i as u64 + 1) + 12_345);
                d.set_ports(i + 1 < n);
                d
            })
            .collect();
        Ok(Self {
            devices,
            faults: Faults::default(),
            start: Instant::now(),
            frames: 0,
            dropped: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            monitor: HaltMonitor::default(),
            clock: Clock::default(),
        })
    }

    /// What advances the drives: [`Clock::Lockstep`] (the default) or the emulator's own [`Clock::Wall`].
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The clock in use.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Set every SubDevice's SM watchdog time (register 0x0420, in units of the power-on divider: 100 µs), as a master
    /// may; `Duration::ZERO` disables it. Rounded up to the unit, at most 6.5 s.
    pub fn set_sm_watchdog(&mut self, time: std::time::Duration) {
        let units = time.as_nanos().div_ceil(100_000).min(u128::from(u16::MAX)) as u16;
        for d in &mut self.devices {
            d.write_phys(
                crate::esc::reg::WATCHDOG_DIVIDER,
                &crate::esc::DEFAULT_WATCHDOG_DIVIDER.to_le_bytes(),
                0,
                false,
            );
            d.write_phys(crate::esc::reg::SM_WATCHDOG_TIME, &units.to_le_bytes(), 0, false);
        }
    }

    /// Under [`Clock::Wall`], step every drive to the emulator's present time (call it at least once per SYNC0 period
    /// while no frames come: the servers do); nothing under [`Clock::Lockstep`].
    pub fn advance(&mut self) {
        if self.clock == Clock::Wall {
            let t = self.now_ns();
            for d in &mut self.devices {
                d.tick(t);
            }
        }
    }

    /// The SubDevices, in line order.
    pub fn devices(&self) -> &[SubDevice] {
        &self.devices
    }

    /// Mutable access, e.g. to inject a drive fault.
    pub fn devices_mut(&mut self) -> &mut [SubDevice] {
        &mut self.devices
    }

    /// Frames handled so far (answered or dropped).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames lost to fault injection so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Current fault injection.
    pub fn faults(&self) -> Faults {
        self.faults
    }

    /// Set the fault injection. Injecting link-down, a missing device or drops arms the halt
    /// monitor (see [`Network::halt_latency`]); onset is now, or the first dropped frame for drops.
    pub fn set_faults(&mut self, faults: Faults) {
        let new_fault = (faults.link_down && !self.faults.link_down)
            || (faults.missing.is_some() && self.faults.missing.is_none())
            || (faults.drop_percent > 0 && self.faults.drop_percent == 0);
        if new_fault {
            let immediate = faults.link_down || faults.missing.is_some();
            self.monitor = HaltMonitor {
                armed: true,
                onset: immediate,
                answered: 0,
                latency: None,
            };
        }
        self.faults = faults;
    }

    /// Put drive `index` into Fault with 0x603F `code`; arms the halt monitor with onset now.
    pub fn inject_drive_fault(&mut self, index: usize, code: u16) {
        if let Some(d) = self.devices.get_mut(index) {
            d.inject_drive_fault(code);
            self.monitor = HaltMonitor {
                armed: true,
                onset: true,
                answered: 0,
                latency: None,
            };
        }
    }

    /// Answered frames from the onset of the last injected fault until all present drives were
    /// commanded to halt (controlword bit 1 or bit 2 clear); `None` while not yet seen.
    pub fn halt_latency(&self) -> Option<u64> {
        self.monitor.latency
    }

    fn update_monitor(&mut self) {
        let m = &mut self.monitor;
        if !m.armed || !m.onset || m.latency.is_some() {
            return;
        }
        m.answered += 1;
        let missing = self.faults.missing;
        let halted = self
            .devices
            .iter()
            .enumerate()
            .filter(|(i, _)| missing != Some(*i))
            .all(|(_, d)| {
                let cw = d.od.i32(crate::od::idx::CONTROLWORD) as u16;
                cw & 0x0006 != 0x0006
            });
        if halted {
            m.latency = Some(m.answered);
        }
    }

    /// The emulator's own clock: ns since the line powered on.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn should_drop(&mut self) -> bool {
        if self.faults.link_down {
            return true;
        }
        if self.faults.drop_percent == 0 {
            return false;
        }
        // xorshift64*: reproducible, no dependency, good enough to pick frames to drop.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33;
        (r % 100) < u64::from(self.faults.drop_percent)
    }

    /// Process one Ethernet frame in place. Returns false if the frame is lost (fault injection,
    /// not EtherCAT, malformed): then nothing is sent back.
    pub fn process_frame(&mut self, frame: &mut [u8]) -> bool {
        self.frames += 1;
        // Time passes for the drives whether or not this frame reaches them.
        self.advance();
        if frame.len() < 16 || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE {
            return false;
        }
        if self.should_drop() {
            self.dropped += 1;
            if self.monitor.armed {
                self.monitor.onset = true;
            }
            return false;
        }
        let t = self.now_ns();
        let header = u16::from_le_bytes([frame[14], frame[15]]);
        if header >> 12 != 1 {
            return false; // only EtherCAT datagram frames (type 1)
        }
        let payload_len = usize::from(header & 0x07FF);
        let end = (16 + payload_len).min(frame.len());
        let mut off = 16;
        while off + 12 <= end {
            let cmd = frame[off];
            let len = usize::from(u16::from_le_bytes([frame[off + 6], frame[off + 7]]) & 0x07FF);
            let more = frame[off + 7] & 0x80 != 0;
            let data_start = off + 10;
            if data_start + len + 2 > end {
                return false;
            }
            let (head, rest) = frame.split_at_mut(data_start);
            let (data, wkc_bytes) = rest.split_at_mut(len);
            let mut wkc = u16::from_le_bytes([wkc_bytes[0], wkc_bytes[1]]);
            self.datagram(cmd, &mut head[off + 2..off + 6], data, &mut wkc, t);
            wkc_bytes[..2].copy_from_slice(&wkc.to_le_bytes());
            off = data_start + len + 2;
            if !more {
                break;
            }
        }
        let clock = self.clock;
        for (i, d) in self.devices.iter_mut().enumerate() {
            if self.faults.missing != Some(i) {
                d.end_of_frame(t, clock);
            }
        }
        self.update_monitor();
        // Return bit: the frame came back through the line (ETG1000.4 §5.2; ethercrab filters on it).
        frame[6] |= 0x02;
        true
    }

    fn datagram(&mut self, cmd: u8, addr: &mut [u8], data: &mut [u8], wkc: &mut u16, t: u64) {
        let n = self.devices.len();
        let adp = u16::from_le_bytes([addr[0], addr[1]]);
        let ado = u16::from_le_bytes([addr[2], addr[3]]);
        let logical = u32::from_le_bytes([addr[0], addr[1], addr[2], addr[3]]);
        let mut position_adp = adp;
        // FRMW: the addressed device reads; the others write what it placed in the datagram.
        let mut frmw_value: Option<Vec<u8>> = None;
        for i in 0..n {
            if self.faults.missing == Some(i) {
                continue; // a missing device neither answers nor increments the address
            }
            let tt = t + HOP_NS * i as u64;
            let dev = &mut self.devices[i];
            let fixed = dev.station_address() == adp;
            let auto = position_adp == 0;
            match cmd {
                0 => {}
                1 | 2 | 3 | 13 => {
                    if auto {
                        match cmd {
                            1 => {
                                dev.read_phys(ado, data, tt, false);
                                *wkc += 1;
                            }
                            2 => {
                                dev.write_phys(ado, data, tt, false);
                                *wkc += 1;
                            }
                            3 => {
                                let incoming = data.to_vec();
                                dev.read_phys(ado, data, tt, false);
                                dev.write_phys(ado, &incoming, tt, false);
                                *wkc += 3;
                            }
                            _ => {
                                dev.read_phys(ado, data, tt, false);
                                *wkc += 1;
                            }
                        }
                    } else if cmd == 13 {
                        dev.write_phys(ado, data, tt, true);
                        *wkc += 1;
                    }
                }
                4 | 5 | 6 | 14 => {
                    if fixed {
                        match cmd {
                            4 | 14 => {
                                dev.read_phys(ado, data, tt, false);
                                *wkc += 1;
                            }
                            5 => {
                                dev.write_phys(ado, data, tt, false);
                                *wkc += 1;
                            }
                            _ => {
                                let incoming = data.to_vec();
                                dev.read_phys(ado, data, tt, false);
                                dev.write_phys(ado, &incoming, tt, false);
                                *wkc += 3;
                            }
                        }
                        if cmd == 14 {
                            frmw_value = Some(data.to_vec());
                        }
                    } else if cmd == 14 && frmw_value.is_some() {
                        dev.write_phys(ado, data, tt, true);
                    }
                }
                7 => {
                    dev.read_phys(ado, data, tt, true);
                    *wkc += 1;
                }
                8 => {
                    if ado == crate::esc::reg::DC_RECV_PORT0 {
                        let back = (i + 1 < n).then(|| t + HOP_NS * (2 * (n - 1) - i) as u64 + 40);
                        dev.latch_receive_times(tt, back);
                    }
                    dev.write_phys(ado, data, tt, false);
                    *wkc += 1;
                }
                9 => {
                    let incoming = data.to_vec();
                    dev.read_phys(ado, data, tt, true);
                    dev.write_phys(ado, &incoming, tt, false);
                    *wkc += 3;
                }
                10..=12 => *wkc += dev.logical(cmd, logical, data),
                _ => {}
            }
            // Every device increments the position address as the frame passes (ETG1000.4 §5.3.2).
            position_adp = position_adp.wrapping_add(1);
        }
        if matches!(cmd, 1..=3 | 7..=9 | 13) {
            addr[0..2].copy_from_slice(&position_adp.to_le_bytes());
        }
    }
}
