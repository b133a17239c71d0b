//! One emulated EtherCAT SubDevice: the ESC memory (ETG1000.4 §6 / Beckhoff ESC datasheet
//! section II register map), the AL state machine (ETG1000.6 §6.4), SII access, FMMUs, sync
//! managers, DC time registers, the CoE mailbox and the CiA 402 drive behind the PDI.

use std::collections::VecDeque;

use crate::coe;
use crate::drive::{Drive, DriveParams};
use crate::od::ObjectDictionary;
use crate::sii::{self, layout, Identity};

/// Size of the emulated ESC address space (registers + process RAM).
const MEM: usize = 0x2000;

/// ESC register addresses (ETG1000.4 Table 31 and following; Beckhoff ESC datasheet II).
pub mod reg {
    /// ESC type (0x0000), revision, build, #FMMU, #SM, RAM size, port descriptor.
    pub const TYPE: u16 = 0x0000;
    /// ESC features supported (0x0008).
    pub const FEATURES: u16 = 0x0008;
    /// Configured station address (0x0010).
    pub const STATION_ADDRESS: u16 = 0x0010;
    /// DL status (0x0110).
    pub const DL_STATUS: u16 = 0x0110;
    /// AL control (0x0120).
    pub const AL_CONTROL: u16 = 0x0120;
    /// AL status (0x0130).
    pub const AL_STATUS: u16 = 0x0130;
    /// AL status code (0x0134).
    pub const AL_STATUS_CODE: u16 = 0x0134;
    /// Watchdog divider (0x0400): watchdog time unit = (divider + 2) × 40 ns.
    pub const WATCHDOG_DIVIDER: u16 = 0x0400;
    /// Sync-manager (process data) watchdog time (0x0420), in watchdog time units; 0 disables it.
    pub const SM_WATCHDOG_TIME: u16 = 0x0420;
    /// Watchdog status process data (0x0440): bit 0 = 1 while not expired.
    pub const SM_WATCHDOG_STATUS: u16 = 0x0440;
    /// Watchdog counter process data (0x0442): expiries so far.
    pub const SM_WATCHDOG_COUNTER: u16 = 0x0442;
    /// SII control/status (0x0502), address (0x0504), data (0x0508).
    pub const SII_CONTROL: u16 = 0x0502;
    /// FMMU 0 (0x0600), 16 bytes each.
    pub const FMMU0: u16 = 0x0600;
    /// SM 0 (0x0800), 8 bytes each.
    pub const SM0: u16 = 0x0800;
    /// DC receive time port 0 (0x0900).
    pub const DC_RECV_PORT0: u16 = 0x0900;
    /// DC system time (0x0910).
    pub const DC_SYSTEM_TIME: u16 = 0x0910;
    /// DC receive time ECAT processing unit (0x0918).
    pub const DC_RECV_PU: u16 = 0x0918;
    /// DC system time offset (0x0920).
    pub const DC_OFFSET: u16 = 0x0920;
    /// DC system time difference (0x092C).
    pub const DC_DIFF: u16 = 0x092C;
    /// DC activation (0x0981).
    pub const DC_ACTIVE: u16 = 0x0981;
    /// SYNC0 cycle time (0x09A0).
    pub const DC_SYNC0_CYCLE: u16 = 0x09A0;
}

/// AL states (ETG1000.6 Table 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum AlState {
    /// INIT.
    Init = 1,
    /// PRE-OPERATIONAL: mailbox.
    PreOp = 2,
    /// SAFE-OPERATIONAL: inputs valid.
    SafeOp = 4,
    /// OPERATIONAL: outputs valid.
    Op = 8,
}

/// AL status codes used here (ETG1000.6 Table 11).
pub mod al_code {
    /// Invalid requested state change.
    pub const INVALID_STATE_CHANGE: u16 = 0x0011;
    /// Unknown requested state.
    pub const UNKNOWN_STATE: u16 = 0x0012;
    /// Bootstrap not supported.
    pub const BOOTSTRAP: u16 = 0x0013;
    /// Invalid mailbox configuration.
    pub const INVALID_MAILBOX: u16 = 0x0016;
    /// Sync manager watchdog: process data stopped arriving in OP.
    pub const SM_WATCHDOG: u16 = 0x001B;
    /// Invalid output configuration.
    pub const INVALID_OUTPUTS: u16 = 0x001D;
    /// Invalid input configuration.
    pub const INVALID_INPUTS: u16 = 0x001E;
    /// Invalid DC SYNC configuration.
    pub const INVALID_DC_SYNC: u16 = 0x0030;
}

/// Power-on watchdog divider: 2498 → a time unit of 100 µs (Beckhoff ESC datasheet, register 0x0400).
pub const DEFAULT_WATCHDOG_DIVIDER: u16 = 2498;
/// Power-on SM watchdog time: 1000 units = 100 ms, as on real ESCs (register 0x0420).
pub const DEFAULT_SM_WATCHDOG_TIME: u16 = 1000;
/// Samples of position history a SubDevice keeps (16 s at 1 kHz), oldest dropped first.
pub const HISTORY_LEN: usize = 16_384;
/// Longest gap between two [`SubDevice::tick`]s that is run as elapsed time, in SYNC0 periods. A longer one means the
/// emulator process itself was not scheduled (the servers tick at least every millisecond): the emulated hardware did not
/// run either, so that time is skipped — not stepped through, and not counted by the SM watchdog (the master's frames
/// were waiting for it, not lost) — and added to [`SubDevice::skipped_ns`].
const MAX_CATCH_UP: u64 = 20;

/// What advances the drive dynamics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// One SYNC0 period per process-data frame: the drives' time is frames × period, so a master on a simulated clock
    /// (`Pacing::Simulated`, faster than real time) sees consistent dynamics. Without frames no time passes: motion
    /// during a link loss is zero by construction and the SM watchdog never expires (its time never elapses).
    #[default]
    Lockstep,
    /// The emulator's own wall clock: the drives step every SYNC0 period of elapsed time whether frames arrive or not
    /// (see [`crate::Network::advance`]), and the SM watchdog expires when process data stops, as on hardware.
    Wall,
}

/// An emulated SubDevice with one CiA 402 drive behind it.
#[derive(Debug, Clone)]
pub struct SubDevice {
    mem: Vec<u8>,
    sii: Vec<u8>,
    /// The CoE object dictionary.
    pub od: ObjectDictionary,
    /// The drive model.
    pub drive: Drive,
    state: AlState,
    error: bool,
    mbx_in_full: bool,
    /// Local clock offset against the emulator clock (ns), so DC offset compensation matters.
    skew_ns: u64,
    /// Process data was exchanged in the current frame.
    pd_touched: bool,
    /// RxPDO and TxPDO mapping entries (0x1C12, 0x1C13), read on entering SAFE-OP: the dictionary refuses mapping
    /// changes outside PRE-OP, so they hold while process data flows and need not be looked up every frame.
    rx_mapping: Vec<u32>,
    tx_mapping: Vec<u32>,
    /// Outputs were written through an FMMU in OP in the current frame (retriggers the SM watchdog).
    outputs_written: bool,
    /// The drive's own time (ns): of its last step.
    clock_ns: u64,
    /// Next SYNC0 step on the wall clock ([`Clock::Wall`]).
    next_step_ns: Option<u64>,
    /// Emulator time of the last output write in OP (or of entering OP).
    outputs_at: Option<u64>,
    /// Emulator time the SM watchdog last expired.
    watchdog_expired_at: Option<u64>,
    skipped_ns: u64,
    /// (drive clock ns, position in joint units) after every step.
    history: VecDeque<(u64, f64)>,
}

fn rd_u16(m: &[u8], a: u16) -> u16 {
    let a = usize::from(a);
    u16::from_le_bytes([m[a], m[a + 1]])
}

fn overlaps(start: u16, len: usize, reg: u16, reg_len: usize) -> bool {
    let (s, e) = (usize::from(start), usize::from(start) + len);
    let (rs, re) = (usize::from(reg), usize::from(reg) + reg_len);
    s < re && rs < e
}

impl SubDevice {
    /// A powered-on SubDevice in INIT.
    pub fn new(identity: Identity, params: DriveParams, skew_ns: u64) -> Self {
        let mut mem = vec![0u8; MEM];
        mem[0] = 0x11; // ESC type (an ET1100-class device)
        mem[1] = 1;
        mem[4] = 8; // FMMUs
        mem[5] = 8; // SMs
        mem[6] = 8; // KiB process RAM
        mem[7] = 0x0F; // ports 0, 1: MII
                       // Features (0x0008): DC supported (bit 2), 64-bit DC (bit 3).
        mem[8] = 0x0C;
        let mut dev = Self {
            sii: sii::build_image(&identity),
            od: ObjectDictionary::cia402_drive(&identity),
            drive: Drive::new(params),
            mem,
            state: AlState::Init,
            error: false,
            mbx_in_full: false,
            skew_ns,
            pd_touched: false,
            rx_mapping: Vec::new(),
            tx_mapping: Vec::new(),
            outputs_written: false,
            clock_ns: 0,
            next_step_ns: None,
            outputs_at: None,
            watchdog_expired_at: None,
            skipped_ns: 0,
            history: VecDeque::with_capacity(HISTORY_LEN),
        };
        dev.od.put_drive_units(&params);
        let w = usize::from(reg::WATCHDOG_DIVIDER);
        dev.mem[w..w + 2].copy_from_slice(&DEFAULT_WATCHDOG_DIVIDER.to_le_bytes());
        let w = usize::from(reg::SM_WATCHDOG_TIME);
        dev.mem[w..w + 2].copy_from_slice(&DEFAULT_SM_WATCHDOG_TIME.to_le_bytes());
        dev.mem[usize::from(reg::SM_WATCHDOG_STATUS)] = 1;
        dev.publish_al();
        // Let the drive leave Not-ready-to-switch-on and publish its actual position.
        dev.drive.step(&mut dev.od, 0.001, false);
        dev.publish_inputs();
        dev
    }

    /// AL state.
    pub fn al_state(&self) -> AlState {
        self.state
    }

    /// Raw ESC memory (registers and process RAM), e.g. to check what a master configured.
    pub fn memory(&self, addr: u16, len: usize) -> &[u8] {
        let a = usize::from(addr).min(MEM);
        &self.mem[a..(a + len).min(MEM)]
    }

    /// Configured station address.
    pub fn station_address(&self) -> u16 {
        rd_u16(&self.mem, reg::STATION_ADDRESS)
    }

    /// Set DL status (0x0110): link/communication on port 0, and on port 1 unless last in line.
    pub fn set_ports(&mut self, port1_open: bool) {
        // Bits 4/5: physical link ports 0/1; bit 9 / 11: communication on port 0 / 1;
        // bit 8: port 0 loop closed is 0 (open), bit 10: port 1 loop closed when nothing behind.
        let mut v: u16 = 0x0001 | 0x0002 | 0x0010 | 0x0200;
        if port1_open {
            v |= 0x0020 | 0x0800;
        } else {
            v |= 0x0400;
        }
        self.mem[0x110..0x112].copy_from_slice(&v.to_le_bytes());
    }

    fn local_time(&self, t: u64) -> u64 {
        t.wrapping_add(self.skew_ns)
    }

    fn system_time(&self, t: u64) -> u64 {
        let o = usize::from(reg::DC_OFFSET);
        let offset = u64::from_le_bytes(self.mem[o..o + 8].try_into().unwrap_or([0; 8]));
        self.local_time(t).wrapping_add(offset)
    }

    fn publish_al(&mut self) {
        let s = self.state as u16 | if self.error { 0x10 } else { 0 };
        self.mem[0x130..0x132].copy_from_slice(&s.to_le_bytes());
        // SM1 status "mailbox full" (bit 3 of SM status, offset 5 of the SM block).
        let sm1 = usize::from(reg::SM0) + 8 + 5;
        if self.mbx_in_full {
            self.mem[sm1] |= 0x08;
        } else {
            self.mem[sm1] &= !0x08;
        }
    }

    fn set_error(&mut self, code: u16) {
        self.error = true;
        self.mem[0x134..0x136].copy_from_slice(&code.to_le_bytes());
    }

    /// Latch DC receive times (a write to 0x0900 passed): port 0 on the way out, port 1 on return.
    pub fn latch_receive_times(&mut self, t_port0: u64, t_port1: Option<u64>) {
        let l0 = self.local_time(t_port0);
        self.mem[0x900..0x904].copy_from_slice(&(l0 as u32).to_le_bytes());
        let l1 = t_port1.map(|t| self.local_time(t) as u32).unwrap_or(0);
        self.mem[0x904..0x908].copy_from_slice(&l1.to_le_bytes());
        self.mem[0x918..0x920].copy_from_slice(&l0.to_le_bytes());
    }

    fn sm(&self, n: u16) -> (u16, u16, bool) {
        let b = reg::SM0 + 8 * n;
        (
            rd_u16(&self.mem, b),
            rd_u16(&self.mem, b + 2),
            self.mem[usize::from(b) + 6] & 1 == 1,
        )
    }

    /// Check the configuration a requested state needs; the AL status code on failure.
    fn check_config(&self, to: AlState) -> Result<(), u16> {
        if to >= AlState::PreOp {
            let ok0 = self.sm(0) == (layout::MBX_OUT_ADDR, layout::MBX_LEN, true);
            let ok1 = self.sm(1) == (layout::MBX_IN_ADDR, layout::MBX_LEN, true);
            if !(ok0 && ok1) {
                return Err(al_code::INVALID_MAILBOX);
            }
        }
        if to >= AlState::SafeOp {
            for (n, assign, addr, code) in [
                (2u16, 0x1C12u16, layout::PD_OUT_ADDR, al_code::INVALID_OUTPUTS),
                (3, 0x1C13, layout::PD_IN_ADDR, al_code::INVALID_INPUTS),
            ] {
                let want = self.od.assigned_len(assign);
                let (start, len, enabled) = self.sm(n);
                if usize::from(len) != want || (want > 0 && (start != addr || !enabled)) {
                    return Err(code);
                }
            }
            let active = self.mem[usize::from(reg::DC_ACTIVE)];
            if active & 0x03 == 0x03
                && rd_u16(&self.mem, reg::DC_SYNC0_CYCLE) == 0
                && rd_u16(&self.mem, reg::DC_SYNC0_CYCLE + 2) == 0
            {
                return Err(al_code::INVALID_DC_SYNC);
            }
        }
        Ok(())
    }

    fn al_control(&mut self, t: u64) {
        let v = rd_u16(&self.mem, reg::AL_CONTROL);
        let ack = v & 0x10 != 0;
        if self.error && !ack {
            // An error must be acknowledged before a new state request is accepted.
            self.publish_al();
            return;
        }
        if ack {
            self.error = false;
            self.mem[0x134..0x136].copy_from_slice(&[0, 0]);
        }
        let requested = match v & 0x0F {
            1 => AlState::Init,
            2 => AlState::PreOp,
            4 => AlState::SafeOp,
            8 => AlState::Op,
            3 => {
                self.set_error(al_code::BOOTSTRAP);
                self.publish_al();
                return;
            }
            _ => {
                self.set_error(al_code::UNKNOWN_STATE);
                self.publish_al();
                return;
            }
        };
        use AlState::*;
        let allowed = matches!(
            (self.state, requested),
            (_, Init) | (Init, PreOp) | (PreOp, SafeOp) | (SafeOp, Op) | (SafeOp | Op, PreOp) | (Op, SafeOp)
        ) || self.state == requested;
        if !allowed {
            self.set_error(al_code::INVALID_STATE_CHANGE);
        } else if let Err(code) = self.check_config(requested) {
            self.set_error(code);
            // ETG1000.6 §6.4.1: a failed step up leaves the device in a lower state with the error bit.
            if requested > self.state && self.state > AlState::Init {
                // stay
            }
        } else {
            if self.state == Op && requested < Op {
                self.drive.communication_lost();
            }
            if requested == Init {
                self.mbx_in_full = false;
            }
            if requested == Op && self.state != Op {
                // The watchdog counts from entering OP.
                self.outputs_at = Some(t);
                self.mem[usize::from(reg::SM_WATCHDOG_STATUS)] |= 1;
            }
            self.state = requested;
            if requested >= AlState::SafeOp {
                self.rx_mapping = self.od.assigned_mapping(0x1C12);
                self.tx_mapping = self.od.assigned_mapping(0x1C13);
            }
        }
        self.publish_al();
    }

    fn sii_command(&mut self) {
        let ctrl = rd_u16(&self.mem, reg::SII_CONTROL);
        if ctrl & 0x0100 != 0 {
            // Read: 8 bytes (bit 6 "read size" = 1) from the word address in 0x0504.
            let word = usize::from(rd_u16(&self.mem, 0x0504));
            for i in 0..8 {
                self.mem[0x508 + i] = *self.sii.get(word * 2 + i).unwrap_or(&0xFF);
            }
        }
        // Writes and reloads are accepted and ignored (the image is ROM here); busy clears at once.
        let status: u16 = 0x0040; // read size 8 bytes, not busy, no errors
        self.mem[0x502..0x504].copy_from_slice(&status.to_le_bytes());
    }

    fn writable(a: usize) -> bool {
        !(a < 0x10
            || (0x110..0x112).contains(&a)
            || (0x130..0x136).contains(&a)
            || (0x900..0x910).contains(&a)
            || (0x918..0x920).contains(&a))
    }

    /// Physical read (APRD/FPRD/BRD/…): bytes at `ado` into `out`; BRD ORs (`or = true`).
    pub fn read_phys(&mut self, ado: u16, out: &mut [u8], t: u64, or: bool) {
        if overlaps(ado, out.len(), reg::DC_SYSTEM_TIME, 8) {
            let st = self.system_time(t);
            self.mem[0x910..0x918].copy_from_slice(&st.to_le_bytes());
        }
        self.publish_al();
        for (i, b) in out.iter_mut().enumerate() {
            let v = *self.mem.get(usize::from(ado) + i).unwrap_or(&0);
            if or {
                *b |= v
            } else {
                *b = v
            }
        }
        // Reading the last byte of the SM1 mailbox frees it (ESC mailbox handshake).
        let last = layout::MBX_IN_ADDR + layout::MBX_LEN - 1;
        if self.mbx_in_full && overlaps(ado, out.len(), last, 1) {
            self.mbx_in_full = false;
            self.publish_al();
        }
    }

    /// Physical write (APWR/FPWR/BWR/…): store, then run register side effects.
    pub fn write_phys(&mut self, ado: u16, data: &[u8], t: u64, frmw: bool) {
        for (i, b) in data.iter().enumerate() {
            let a = usize::from(ado) + i;
            if a < MEM && Self::writable(a) {
                self.mem[a] = *b;
            }
        }
        let len = data.len();
        if overlaps(ado, len, reg::AL_CONTROL, 2) {
            self.al_control(t);
        }
        if overlaps(ado, len, reg::SII_CONTROL, 2) {
            self.sii_command();
        }
        if frmw && overlaps(ado, len, reg::DC_SYSTEM_TIME, 8) && len >= 4 {
            // Drift control input: difference between the distributed and the own system time.
            let own = self.system_time(t) as u32;
            let got = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let diff = got.wrapping_sub(own) as i32;
            let enc = if diff < 0 {
                diff.unsigned_abs() | 0x8000_0000
            } else {
                diff as u32
            };
            self.mem[0x92C..0x930].copy_from_slice(&enc.to_le_bytes());
        }
        let mbx_last = layout::MBX_OUT_ADDR + layout::MBX_LEN - 1;
        if self.state >= AlState::PreOp && overlaps(ado, len, mbx_last, 1) && !self.mbx_in_full {
            let start = usize::from(layout::MBX_OUT_ADDR);
            let req = self.mem[start..start + usize::from(layout::MBX_LEN)].to_vec();
            if let Some(resp) = coe::handle(&mut self.od, &req, self.state == AlState::PreOp) {
                let s = usize::from(layout::MBX_IN_ADDR);
                let n = resp.len().min(usize::from(layout::MBX_LEN));
                self.mem[s..s + usize::from(layout::MBX_LEN)].fill(0);
                self.mem[s..s + n].copy_from_slice(&resp[..n]);
                self.mbx_in_full = true;
                self.publish_al();
            }
        }
    }

    /// Logical access through the FMMUs (LRD = 10, LWR = 11, LRW = 12); returns the WKC increment.
    pub fn logical(&mut self, cmd: u8, addr: u32, data: &mut [u8]) -> u16 {
        if self.state < AlState::SafeOp {
            return 0;
        }
        let (mut read_hit, mut write_hit) = (false, false);
        let dlen = data.len() as u64;
        let mut reads = [(0usize, 0usize, 0usize); 8];
        let mut n_reads = 0;
        for f in 0..8u16 {
            let b = usize::from(reg::FMMU0 + 16 * f);
            let m = &self.mem[b..b + 16];
            if m[12] & 1 == 0 {
                continue;
            }
            let lstart = u64::from(u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
            let flen = u64::from(u16::from_le_bytes([m[4], m[5]]));
            let phys = usize::from(u16::from_le_bytes([m[8], m[9]]));
            let (r, w) = (m[11] & 1 == 1, m[11] & 2 == 2);
            let lo = lstart.max(u64::from(addr));
            let hi = (lstart + flen).min(u64::from(addr) + dlen);
            if lo >= hi {
                continue;
            }
            let (di, pi, n) = (
                (lo - u64::from(addr)) as usize,
                phys + (lo - lstart) as usize,
                (hi - lo) as usize,
            );
            if pi + n > MEM {
                continue;
            }
            if w && (cmd == 11 || cmd == 12) {
                // Outputs reach the application only in OP (ETG1000.6 §6.4: SAFE-OP outputs are ignored).
                if self.state == AlState::Op {
                    self.outputs_written = true;
                    self.mem[pi..pi + n].copy_from_slice(&data[di..di + n]);
                }
                write_hit = true;
            }
            if r && (cmd == 10 || cmd == 12) && n_reads < reads.len() {
                reads[n_reads] = (di, pi, n);
                n_reads += 1;
                read_hit = true;
            }
        }
        // Reads after writes: an LRW writes what arrived and returns what the device holds.
        for &(di, pi, n) in &reads[..n_reads] {
            data[di..di + n].copy_from_slice(&self.mem[pi..pi + n]);
        }
        if read_hit || write_hit {
            self.pd_touched = true;
        }
        match cmd {
            12 => u16::from(read_hit) + 2 * u16::from(write_hit),
            10 => u16::from(read_hit),
            _ => u16::from(write_hit),
        }
    }

    /// After a frame at emulator time `t`: outputs written in OP reach the dictionary and retrigger the SM watchdog; under
    /// [`Clock::Lockstep`] a frame that moved process data is one SYNC0 period of the application, under [`Clock::Wall`]
    /// the drive applies them at its next SYNC0 ([`SubDevice::tick`]).
    pub fn end_of_frame(&mut self, t: u64, clock: Clock) {
        let written = std::mem::take(&mut self.outputs_written);
        if !std::mem::take(&mut self.pd_touched) {
            return;
        }
        let op = self.state == AlState::Op;
        if op {
            // Outputs: RxPDO mapping (0x1C12) from SM2 memory into the dictionary.
            let mut off = usize::from(layout::PD_OUT_ADDR);
            for &m in &self.rx_mapping {
                let n = (m & 0xFF) as usize / 8;
                self.od.set((m >> 16) as u16, &self.mem[off..off + n]);
                off += n;
            }
        }
        if op && written {
            self.outputs_at = Some(t);
        }
        if clock == Clock::Lockstep {
            let period = self.sync0_period_ns();
            self.step_drive(period, self.clock_ns + period);
        }
    }

    /// SYNC0 period (0x09A0), or 1 ms before the master set one.
    fn sync0_period_ns(&self) -> u64 {
        let cycle_ns = u32::from_le_bytes(self.mem[0x9A0..0x9A4].try_into().unwrap_or([0; 4]));
        if cycle_ns > 0 {
            u64::from(cycle_ns)
        } else {
            1_000_000
        }
    }

    fn step_drive(&mut self, dt_ns: u64, t: u64) {
        let op = self.state == AlState::Op;
        self.drive.step(&mut self.od, dt_ns as f64 * 1e-9, op);
        self.clock_ns = t;
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back((t, self.drive.position()));
        self.publish_inputs();
    }

    /// Advance the drive on the wall clock ([`Clock::Wall`]) to emulator time `now`: one step per elapsed SYNC0
    /// period, the SM watchdog checked before each.
    pub fn tick(&mut self, now: u64) {
        let period = self.sync0_period_ns();
        let mut next = *self.next_step_ns.get_or_insert(now);
        if now > next + MAX_CATCH_UP * period {
            let skipped = now - next;
            self.skipped_ns += skipped;
            if let Some(at) = self.outputs_at.as_mut() {
                *at += skipped;
            }
            next = now;
        }
        while next <= now {
            self.check_watchdog(next);
            self.step_drive(period, next);
            next += period;
        }
        self.next_step_ns = Some(next);
    }

    /// SM watchdog time in ns: (0x0400 + 2) × 40 ns × 0x0420, when 0x0420 ≠ 0 and SM2's control register enables the
    /// watchdog trigger (bit 6; the SII's SM2 default 0x64 does).
    pub fn sm_watchdog_ns(&self) -> Option<u64> {
        let units = u64::from(rd_u16(&self.mem, reg::SM_WATCHDOG_TIME));
        let sm2_control = self.mem[usize::from(reg::SM0) + 2 * 8 + 4];
        if units == 0 || sm2_control & 0x40 == 0 {
            return None;
        }
        Some((u64::from(rd_u16(&self.mem, reg::WATCHDOG_DIVIDER)) + 2) * 40 * units)
    }

    /// In OP with no output write for longer than the watchdog time: like an ESC, drop to SAFE-OP with AL status code
    /// 0x001B and clear the watchdog status; the drive, its outputs invalid, performs a quick stop.
    fn check_watchdog(&mut self, t: u64) {
        if self.state != AlState::Op {
            return;
        }
        let (Some(wd), Some(at)) = (self.sm_watchdog_ns(), self.outputs_at) else {
            return;
        };
        if t.saturating_sub(at) <= wd {
            return;
        }
        self.state = AlState::SafeOp;
        self.set_error(al_code::SM_WATCHDOG);
        self.mem[usize::from(reg::SM_WATCHDOG_STATUS)] &= !1;
        let c = usize::from(reg::SM_WATCHDOG_COUNTER);
        self.mem[c] = self.mem[c].saturating_add(1);
        self.watchdog_expired_at = Some(t);
        self.drive.quick_stop();
        self.publish_al();
    }

    /// Emulator time the SM watchdog last expired, if it did.
    pub fn watchdog_expired_at(&self) -> Option<u64> {
        self.watchdog_expired_at
    }

    /// Emulator time of the last output write in OP (or of entering OP).
    pub fn outputs_at(&self) -> Option<u64> {
        self.outputs_at
    }

    /// The drive's own time (ns), of its last step.
    pub fn clock_ns(&self) -> u64 {
        self.clock_ns
    }

    /// Wall time skipped because the emulator was not scheduled for over [`MAX_CATCH_UP`] periods (see there).
    pub fn skipped_ns(&self) -> u64 {
        self.skipped_ns
    }

    /// Position history: (drive clock ns, position in joint units) after each step, oldest first.
    pub fn history(&self) -> impl Iterator<Item = (u64, f64)> + '_ {
        self.history.iter().copied()
    }

    /// AL status code register (0x0134).
    pub fn al_status_code(&self) -> u16 {
        rd_u16(&self.mem, reg::AL_STATUS_CODE)
    }

    /// Inject a drive fault (0x603F code); the statusword shows it in the very next frame.
    pub fn inject_drive_fault(&mut self, code: u16) {
        self.drive.inject_fault(code);
        self.drive.publish(&mut self.od);
        self.publish_inputs();
    }

    /// Copy the TxPDO-mapped objects (0x1C13) from the dictionary into SM3 memory.
    fn publish_inputs(&mut self) {
        if self.state < AlState::SafeOp {
            self.tx_mapping = self.od.assigned_mapping(0x1C13);
        }
        let mut off = usize::from(layout::PD_IN_ADDR);
        for &m in &self.tx_mapping {
            let n = (m & 0xFF) as usize / 8;
            if let Ok(v) = self.od.read((m >> 16) as u16, (m >> 8) as u8) {
                let k = v.len().min(n);
                self.mem[off..off + k].copy_from_slice(&v[..k]);
            }
            off += n;
        }
    }
}
