//! Procedure-level safety rules: the enable (deadman), the e-stop, the fault latch and its reset.
//!
//! The EtherCAT cycle (`acus-ethercat`, `cycle.rs`) already latches bus and drive faults every millisecond and quick-stops
//! the axes; this is the layer above it: whether the procedure may *ask* for motion at all. Motion is allowed only while
//! the enable is held, the e-stop is released and no fault is latched. A fault stays latched until a rising edge of the
//! reset input (a held reset clears once, never again); clearing it does not restart anything.

use super::Reason;

/// The interlock inputs and the fault latch.
#[derive(Clone, Debug, PartialEq)]
pub struct Interlocks {
    enable: bool,
    estop: bool,
    estop_reported: bool,
    fault: Option<String>,
    faults_since_latch: u32,
    reset_level: bool,
}

impl Default for Interlocks {
    fn default() -> Self {
        Self::new()
    }
}

impl Interlocks {
    /// At start-up the enable is released and the e-stop counts as active until its state is first reported: a missing
    /// e-stop publisher must not read as "released".
    pub fn new() -> Self {
        Self {
            enable: false,
            estop: true,
            estop_reported: false,
            fault: None,
            faults_since_latch: 0,
            reset_level: false,
        }
    }

    /// Whether motion may be requested now, or the first reason it may not (fault, then e-stop, then enable).
    pub fn motion_allowed(&self) -> Result<(), Reason> {
        if let Some(fault) = &self.fault {
            return Err(Reason::FaultLatched(fault.clone()));
        }
        if self.estop {
            return Err(if self.estop_reported {
                Reason::EStopActive
            } else {
                Reason::EStopUnknown
            });
        }
        if !self.enable {
            return Err(Reason::EnableReleased);
        }
        Ok(())
    }

    /// True while the enable (deadman) is held.
    pub fn enable(&self) -> bool {
        self.enable
    }
    /// True while the e-stop is active (or not yet reported).
    pub fn estop(&self) -> bool {
        self.estop
    }
    /// The latched fault, if any (the first one since the last reset: the root cause).
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }
    /// Faults reported after the latched one, until the reset.
    pub fn later_faults(&self) -> u32 {
        self.faults_since_latch
    }

    pub(super) fn set_enable(&mut self, held: bool) {
        self.enable = held;
    }

    pub(super) fn set_estop(&mut self, active: bool) {
        self.estop = active;
        self.estop_reported = true;
    }

    /// Latches a fault; the first one is kept as the root cause.
    pub(super) fn latch(&mut self, fault: String) {
        match self.fault {
            None => self.fault = Some(fault),
            Some(_) => self.faults_since_latch = self.faults_since_latch.saturating_add(1),
        }
    }

    /// Feeds the reset input's level; returns true when this call cleared a latched fault (rising edge only).
    pub(super) fn reset(&mut self, level: bool) -> bool {
        let rising = level && !self.reset_level;
        self.reset_level = level;
        if rising && self.fault.is_some() {
            self.fault = None;
            self.faults_since_latch = 0;
            return true;
        }
        false
    }
}
