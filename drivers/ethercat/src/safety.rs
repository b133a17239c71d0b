//! The safety supervisor's rules, evaluated inside [`crate::cycle::Cycle::step`] on the drive clock (cycles).
//!
//! Pure and allocation-free: [`Supervisor`] keeps fixed-size per-axis and per-source state and turns the inputs of one
//! period (frame, command, a [`SafetySample`] of the registered sources, the runner's lateness flag) into a fault or a
//! motion inhibit. The lock-free handoff that feeds it lives beside it: [`SourceTable`] holds one `AtomicU64` per
//! registered source, written by the source's owner through its [`SafetyInput`] handle and read by the cycle thread
//! once per period. One handle writes one slot, so one source never refreshes another.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::cia402::DriveInputs;
use crate::config::MAX_AXES;

/// Safety sources the cycle reads every period (fixed storage).
pub const MAX_SOURCES: usize = 8;

/// Overrun windows are kept as a bit shift register of this many cycles.
pub const MAX_OVERRUN_WINDOW: u32 = 128;

/// What a registered safety source asserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// An emergency stop: asserted = pressed. Pressed or silent beyond its deadline latches
    /// [`crate::cycle::Fault::EmergencyStop`].
    #[default]
    EmergencyStop,
    /// An enable (deadman): asserted = held. Released or silent halts the motion and holds it (no latch).
    Enable,
}

/// Who stopped the robot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSource {
    /// The stop level carried in the command ([`crate::runner::Controller::emergency_stop`]).
    Command,
    /// A registered source (index as returned at registration; the controller knows its name).
    Input {
        /// Source index.
        index: u8,
        /// True when the source fell silent (no refresh within its deadline) rather than pressed.
        silent: bool,
    },
}

/// Tunables of the supervisor, in cycles and fractions (validated once, at start-up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SafetySettings {
    /// The command heartbeat must change at least this often while Enabling/Enabled; 0 turns the watchdog off.
    pub stale_command_cycles: u32,
    /// Overspeed when |velocity actual| > vmax × (1 + margin).
    pub overspeed_margin: f64,
    /// Encoder jump when |Δ position| between consecutive fresh frames > vmax × dt × factor × cycles + `jump_counts`.
    pub encoder_jump_factor: f64,
    /// Allowance for encoder noise in an encoder-jump check, counts.
    pub encoder_jump_counts: f64,
    /// An overrun burst latches when this many late periods fall within `overrun_window` cycles; 0 turns it off.
    pub overrun_burst: u32,
    /// Window of the overrun burst, cycles (at most [`MAX_OVERRUN_WINDOW`]).
    pub overrun_window: u32,
}

impl SafetySettings {
    /// Defaults for a period of `dt` s: command watchdog 50 ms, overspeed margin 20 %, encoder jump 3 × vmax·dt + 4
    /// counts, overrun burst 5 in 100 cycles.
    pub fn for_period(dt: f64) -> Self {
        let stale = if dt > 0.0 {
            (0.05 / dt).round().max(1.0) as u32
        } else {
            50
        };
        Self {
            stale_command_cycles: stale,
            overspeed_margin: 0.2,
            encoder_jump_factor: 3.0,
            encoder_jump_counts: 4.0,
            overrun_burst: 5,
            overrun_window: 100,
        }
    }

    /// Range check: the names the field and the value that is wrong.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |field: &'static str, value: f64| Err(crate::Error::Settings { field, value });
        if !(self.overspeed_margin.is_finite() && self.overspeed_margin >= 0.0) {
            return bad("overspeed_margin", self.overspeed_margin);
        }
        if !(self.encoder_jump_factor.is_finite() && self.encoder_jump_factor >= 1.0) {
            return bad("encoder_jump_factor", self.encoder_jump_factor);
        }
        if !(self.encoder_jump_counts.is_finite() && self.encoder_jump_counts >= 0.0) {
            return bad("encoder_jump_counts", self.encoder_jump_counts);
        }
        if self.overrun_window == 0 || self.overrun_window > MAX_OVERRUN_WINDOW {
            return bad("overrun_window", f64::from(self.overrun_window));
        }
        if self.overrun_burst > self.overrun_window {
            return bad("overrun_burst", f64::from(self.overrun_burst));
        }
        Ok(())
    }
}

/// One source as the cycle saw it this period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceSample {
    /// The slot holds a registered source.
    pub registered: bool,
    /// Its kind.
    pub kind: SourceKind,
    /// Pressed (e-stop) / held (enable).
    pub asserted: bool,
    /// Heartbeat counter, bumped by every write of the owner.
    pub counter: u32,
    /// Freshness deadline, cycles.
    pub deadline: u32,
}

/// The safety inputs of one period, besides the frame and the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SafetySample {
    /// Every source slot.
    pub sources: [SourceSample; MAX_SOURCES],
    /// This period started late (real-time pacing measured it).
    pub late: bool,
}

const REGISTERED: u64 = 1;
const KIND_ENABLE: u64 = 1 << 1;
const ASSERTED: u64 = 1 << 2;

fn pack(kind: SourceKind, asserted: bool, counter: u32) -> u64 {
    REGISTERED
        | if kind == SourceKind::Enable { KIND_ENABLE } else { 0 }
        | if asserted { ASSERTED } else { 0 }
        | (u64::from(counter) << 32)
}

#[derive(Debug, Default)]
struct Slot {
    word: AtomicU64,
    deadline: AtomicU32,
}

/// The slots of every registered source: written by the handles, read by the cycle thread (wait-free both ways).
#[derive(Debug, Default)]
pub struct SourceTable {
    slots: [Slot; MAX_SOURCES],
}

impl SourceTable {
    /// Register `kind` in slot `index` with a deadline of `deadline` cycles; the source starts silent (an enable
    /// released, an e-stop pressed) until its owner's first refresh.
    pub(crate) fn register(self: &Arc<Self>, index: usize, kind: SourceKind, deadline: u32) -> Option<SafetyInput> {
        let slot = self.slots.get(index)?;
        slot.deadline.store(deadline, Ordering::Relaxed);
        slot.word.store(pack(kind, false, 0), Ordering::Release);
        Some(SafetyInput {
            table: Arc::clone(self),
            index,
            kind,
            counter: 0,
        })
    }

    /// Read every slot (the cycle thread, once per period).
    pub fn sample(&self, late: bool) -> SafetySample {
        let mut s = SafetySample {
            late,
            ..SafetySample::default()
        };
        for (out, slot) in s.sources.iter_mut().zip(&self.slots) {
            let w = slot.word.load(Ordering::Acquire);
            *out = SourceSample {
                registered: w & REGISTERED != 0,
                kind: if w & KIND_ENABLE != 0 {
                    SourceKind::Enable
                } else {
                    SourceKind::EmergencyStop
                },
                asserted: w & ASSERTED != 0,
                counter: (w >> 32) as u32,
                deadline: slot.deadline.load(Ordering::Relaxed),
            };
        }
        s
    }
}

/// The owner's handle on one safety source (`Send`, not `Clone`: one owner, one slot). Dropping it stops the
/// refreshes, so the source goes silent and the cycle reacts as for a released enable / pressed e-stop.
#[derive(Debug)]
pub struct SafetyInput {
    table: Arc<SourceTable>,
    index: usize,
    kind: SourceKind,
    counter: u32,
}

impl SafetyInput {
    /// Report the level (pressed for an e-stop, held for an enable) and refresh the heartbeat. Call at least once per
    /// deadline; wait-free.
    pub fn refresh(&mut self, asserted: bool) {
        // Counter 0 means "never refreshed" to the supervisor: skip it when the counter wraps.
        self.counter = self.counter.wrapping_add(1).max(1);
        if let Some(slot) = self.table.slots.get(self.index) {
            slot.word
                .store(pack(self.kind, asserted, self.counter), Ordering::Release);
        }
    }

    /// Slot index (named in [`StopSource::Input`]).
    pub fn index(&self) -> u8 {
        self.index as u8
    }

    /// Kind of the source.
    pub fn kind(&self) -> SourceKind {
        self.kind
    }
}

/// What the sources say this period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceVerdict {
    /// The first e-stop source pressed or silent.
    pub estop: Option<StopSource>,
    /// Every registered enable source held and fresh (true when none is registered).
    pub enable_held: bool,
}

/// Supervisor state carried between periods (fixed size).
#[derive(Debug, Clone)]
pub struct Supervisor {
    settings: SafetySettings,
    heartbeat: u32,
    command_age: u32,
    src_counter: [u32; MAX_SOURCES],
    src_age: [u32; MAX_SOURCES],
    src_seen: [bool; MAX_SOURCES],
    overruns_window: u128,
    overruns: u64,
    last_pos: [i32; MAX_AXES],
    have_pos: bool,
    since_fresh: u32,
}

impl Supervisor {
    /// A supervisor with `settings` (already validated).
    pub fn new(settings: SafetySettings) -> Self {
        Self {
            settings,
            heartbeat: 0,
            command_age: 0,
            src_counter: [0; MAX_SOURCES],
            src_age: [0; MAX_SOURCES],
            src_seen: [false; MAX_SOURCES],
            overruns_window: 0,
            overruns: 0,
            last_pos: [0; MAX_AXES],
            have_pos: false,
            since_fresh: 0,
        }
    }

    /// Settings in force.
    pub fn settings(&self) -> &SafetySettings {
        &self.settings
    }

    /// Track the command heartbeat; returns the cycles since it last changed.
    pub fn observe_heartbeat(&mut self, heartbeat: u32) -> u32 {
        if heartbeat != self.heartbeat {
            self.heartbeat = heartbeat;
            self.command_age = 0;
        } else {
            self.command_age = self.command_age.saturating_add(1);
        }
        self.command_age
    }

    /// The command is stale (the watchdog is on and the heartbeat is older than its deadline).
    pub fn command_stale(&self) -> bool {
        self.settings.stale_command_cycles > 0 && self.command_age > self.settings.stale_command_cycles
    }

    /// Cycles since the command heartbeat last changed.
    pub fn command_age(&self) -> u32 {
        self.command_age
    }

    /// Age every source, refresh those whose counter changed, and judge them. A source's deadline runs from the cycle
    /// that first saw it registered.
    pub fn observe_sources(&mut self, sample: &SafetySample) -> SourceVerdict {
        let mut v = SourceVerdict {
            estop: None,
            enable_held: true,
        };
        for (i, s) in sample.sources.iter().enumerate() {
            if !s.registered {
                continue;
            }
            if !self.src_seen[i] || s.counter != self.src_counter[i] {
                self.src_seen[i] = true;
                self.src_counter[i] = s.counter;
                self.src_age[i] = 0;
            } else {
                self.src_age[i] = self.src_age[i].saturating_add(1);
            }
            // A source that has never spoken is silent from the start: an e-stop nobody has heard yet counts as
            // pressed, not as released until its first deadline runs out.
            let silent = s.counter == 0 || self.src_age[i] > s.deadline;
            match s.kind {
                SourceKind::EmergencyStop if (s.asserted || silent) && v.estop.is_none() => {
                    v.estop = Some(StopSource::Input { index: i as u8, silent });
                }
                SourceKind::Enable if !s.asserted || silent => v.enable_held = false,
                _ => {}
            }
        }
        v
    }

    /// Shift the overrun window; returns the overruns inside it.
    pub fn observe_overrun(&mut self, late: bool) -> u32 {
        let w = self.settings.overrun_window.clamp(1, MAX_OVERRUN_WINDOW);
        let mask = if w >= 128 { u128::MAX } else { (1u128 << w) - 1 };
        self.overruns_window = ((self.overruns_window << 1) | u128::from(late)) & mask;
        self.overruns += u64::from(late);
        self.overruns_window.count_ones()
    }

    /// The overrun count in the window reaches the burst threshold.
    pub fn overrun_burst(&self) -> Option<u32> {
        let c = self.overruns_window.count_ones();
        (self.settings.overrun_burst > 0 && c >= self.settings.overrun_burst).then_some(c)
    }

    /// Overruns since start.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// Overspeed and encoder jump on a fresh frame; `limits` gives (counts per unit, vmax) per axis. Returns the first
    /// fault found as (axis, kind). Call every period; `fresh` false only ages the last position.
    pub fn check_motion(
        &mut self,
        fresh: bool,
        inputs: &[DriveInputs],
        limits: &[(f64, f64)],
        dt: f64,
    ) -> Option<MotionFault> {
        if !fresh {
            self.since_fresh = self.since_fresh.saturating_add(1);
            return None;
        }
        let gap = f64::from(self.since_fresh.saturating_add(1));
        self.since_fresh = 0;
        let mut found = None;
        for (i, (x, &(cpu, vmax))) in inputs.iter().zip(limits).enumerate().take(MAX_AXES) {
            let v = f64::from(x.velocity) / cpu;
            if found.is_none() && v.abs() > vmax * (1.0 + self.settings.overspeed_margin) {
                found = Some(MotionFault::Overspeed {
                    axis: i as u8,
                    velocity: v,
                });
            }
            if self.have_pos && found.is_none() {
                let jump = f64::from(x.position) - f64::from(self.last_pos[i]);
                let allowed =
                    vmax * cpu * dt * self.settings.encoder_jump_factor * gap + self.settings.encoder_jump_counts;
                if jump.abs() > allowed {
                    found = Some(MotionFault::EncoderJump {
                        axis: i as u8,
                        jump: jump / cpu,
                    });
                }
            }
            self.last_pos[i] = x.position;
        }
        self.have_pos = inputs.iter().all(|x| x.statusword != 0);
        found
    }
}

/// A fault found by [`Supervisor::check_motion`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MotionFault {
    /// |velocity actual| beyond the limit and margin (joint units/s).
    Overspeed {
        /// Axis.
        axis: u8,
        /// Velocity actual, joint units/s.
        velocity: f64,
    },
    /// Position actual jumped (joint units).
    EncoderJump {
        /// Axis.
        axis: u8,
        /// Jump, joint units.
        jump: f64,
    },
}

/// Defensive check of the interpolator's output: the setpoint step from `prev` to `next` counts stays within `vmax`
/// (counts/s) × `dt` (plus one count of rounding). False means a bug upstream: the cycle quick-stops instead of sending
/// the step.
pub fn setpoint_step_ok(prev: i32, next: i32, vmax_counts: f64, dt: f64) -> bool {
    (f64::from(next) - f64::from(prev)).abs() <= vmax_counts * dt * (1.0 + 1e-9) + 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setpoint_step_check_refuses_a_step_beyond_the_limit() {
        assert!(setpoint_step_ok(0, 100, 100_000.0, 0.001));
        assert!(setpoint_step_ok(0, 101, 100_000.0, 0.001));
        assert!(!setpoint_step_ok(0, 102, 100_000.0, 0.001));
        assert!(!setpoint_step_ok(0, -500, 100_000.0, 0.001));
    }

    #[test]
    fn a_source_never_refreshed_is_silent_from_the_first_cycle() {
        let table = Arc::new(SourceTable::default());
        let mut estop = table.register(0, SourceKind::EmergencyStop, 1_000).unwrap();
        let mut enable = table.register(1, SourceKind::Enable, 1_000).unwrap();
        let mut s = Supervisor::new(SafetySettings::for_period(0.001));
        let v = s.observe_sources(&table.sample(false));
        assert_eq!(v.estop, Some(StopSource::Input { index: 0, silent: true }));
        assert!(!v.enable_held);
        // Once heard, each counts by its level, and stays fresh within its deadline.
        estop.refresh(false);
        enable.refresh(true);
        let v = s.observe_sources(&table.sample(false));
        assert_eq!((v.estop, v.enable_held), (None, true));
        for _ in 0..1_000 {
            s.observe_sources(&table.sample(false));
        }
        let v = s.observe_sources(&table.sample(false));
        assert_eq!(
            v.estop,
            Some(StopSource::Input { index: 0, silent: true }),
            "silent past its deadline"
        );
    }

    #[test]
    fn overrun_window_forgets_old_overruns() {
        let mut s = Supervisor::new(SafetySettings::for_period(0.001));
        for _ in 0..4 {
            s.observe_overrun(true);
        }
        assert_eq!(s.overrun_burst(), None);
        for _ in 0..100 {
            s.observe_overrun(false);
        }
        assert_eq!(s.observe_overrun(true), 1);
        assert_eq!(s.overruns(), 5);
    }

    #[test]
    fn settings_validation_names_the_field() {
        let mut s = SafetySettings::for_period(0.001);
        assert!(s.validate().is_ok());
        s.overspeed_margin = f64::NAN;
        assert!(matches!(
            s.validate(),
            Err(crate::Error::Settings {
                field: "overspeed_margin",
                ..
            })
        ));
    }
}
