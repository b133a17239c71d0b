//! The pure 1 kHz cycle: check (safety) → interpolate → CiA 402 sequencing, on raw PDO values.
//!
//! No IO, no allocation, no locks: [`Cycle::step`] takes the inputs just read and the latest
//! command, and fills the outputs to write. Safe start-up: while an axis is not enabled its target
//! is its actual position, so the first enabled setpoint is where the drive already is. Any fault
//! latches: quick stop on every axis, no motion until a reset request (a new `reset_seq`) and a
//! fresh enable; after the reset the interpolator starts again from the actual positions.

use crate::cia402::{cw, DriveInputs, DriveOutputs, DriveState, MODE_CSP};
use crate::config::{AxisConfig, MAX_AXES};
use crate::safety::{setpoint_step_ok, MotionFault, SafetySample, SafetySettings, StopSource, Supervisor};

pub use crate::cycle_types::{BusHealth, Command, Fault, Mode, ResetAnswer, ResetReply, Status};
pub use crate::profile::interpolate;

/// Limits the cycle needs per axis, copied from [`AxisConfig`] (no heap, no strings).
#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    cpu: f64,
    lower: f64,
    upper: f64,
    vmax: f64,
    amax: f64,
    window: f64,
    /// Position window, counts.
    in_position: f64,
}

/// Cycles allowed for the power state machine walk and for fault acknowledgement.
const ENABLE_TIMEOUT_CYCLES: u32 = 2000;

/// Cycles every axis must stay inside its position window before the group is in position (0x6068 at 1 kHz: 20 ms).
pub const IN_POSITION_CYCLES: u32 = 20;

/// A drive in Quick stop active is at a standstill below this fraction of its velocity limit (velocity actual, 0x606C).
const STANDSTILL: f64 = 0.01;

/// The cycle state. Create once (outside the loop), then call [`Cycle::step`] every period.
#[derive(Debug, Clone)]
pub struct Cycle {
    n: usize,
    dt: f64,
    lim: [Limits; MAX_AXES],
    pos: [f64; MAX_AXES],
    vel: [f64; MAX_AXES],
    inputs_seen: bool,
    /// Positions held after enabling, until a goal newer than the enable arrives.
    hold: [f64; MAX_AXES],
    last_enable_seq: u32,
    last_reset_seq: u32,
    last_halt_seq: u32,
    /// The goal a halt abandoned, while no newer goal has arrived.
    halted_goal_seq: Option<u32>,
    mode_cycles: u32,
    in_position_cycles: u32,
    sup: Supervisor,
    enable_was_held: bool,
    /// An enable was let go: the drives are sent a CiA 402 quick stop until every enable is back and every drive,
    /// seen in Quick stop active, is Operation enabled again.
    enable_stop: bool,
    quick_stop_seen: [bool; MAX_AXES],
    last_target: [i32; MAX_AXES],
    was_enabled: bool,
    status: Status,
}

impl Cycle {
    /// A cycle for `axes` (at most [`MAX_AXES`]; extra axes are ignored) with period `dt` s and the default safety
    /// settings ([`SafetySettings::for_period`]).
    pub fn new(axes: &[AxisConfig], dt: f64) -> Self {
        Self::build(axes, dt, SafetySettings::for_period(dt))
    }

    /// As [`Cycle::new`] with the given safety settings, range-checked.
    pub fn with_settings(axes: &[AxisConfig], dt: f64, settings: SafetySettings) -> Result<Self, crate::Error> {
        settings.validate()?;
        Ok(Self::build(axes, dt, settings))
    }

    fn build(axes: &[AxisConfig], dt: f64, settings: SafetySettings) -> Self {
        let n = axes.len().min(MAX_AXES);
        let mut lim = [Limits::default(); MAX_AXES];
        for (l, a) in lim.iter_mut().zip(axes) {
            *l = Limits {
                cpu: a.counts_per_unit,
                lower: a.lower,
                upper: a.upper,
                vmax: a.max_velocity,
                amax: a.max_acceleration,
                window: a.following_error_window,
                in_position: a.position_window * a.counts_per_unit,
            };
        }
        Self {
            n,
            dt,
            lim,
            pos: [0.0; MAX_AXES],
            vel: [0.0; MAX_AXES],
            inputs_seen: false,
            hold: [0.0; MAX_AXES],
            last_enable_seq: 0,
            last_reset_seq: 0,
            last_halt_seq: 0,
            halted_goal_seq: None,
            mode_cycles: 0,
            in_position_cycles: 0,
            sup: Supervisor::new(settings),
            enable_was_held: true,
            enable_stop: false,
            quick_stop_seen: [false; MAX_AXES],
            last_target: [0; MAX_AXES],
            was_enabled: false,
            status: Status {
                axes: n,
                ..Status::default()
            },
        }
    }

    /// The status after the last step.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Safety settings in force.
    pub fn safety_settings(&self) -> &SafetySettings {
        self.sup.settings()
    }

    /// Record what the runner obtained of the real-time settings (published in every status).
    pub fn set_realtime(&mut self, realtime: bool, memory_locked: bool) {
        self.status.realtime = realtime;
        self.status.memory_locked = memory_locked;
    }

    fn latch(&mut self, fault: Fault) {
        if self.status.fault.is_none() {
            self.status.fault = Some(fault);
            self.status.fault_cycle = self.status.cycle;
        }
        self.status.mode = Mode::Faulted;
    }

    fn set_mode(&mut self, m: Mode) {
        if self.status.mode != m {
            self.status.mode = m;
            self.mode_cycles = 0;
        }
    }

    /// One period without registered safety sources and without lateness ([`Cycle::step_with`]).
    pub fn step(
        &mut self,
        bus: BusHealth,
        inputs: &[DriveInputs],
        cmd: &Command,
        outputs: &mut [DriveOutputs],
    ) -> &Status {
        self.step_with(bus, inputs, cmd, &SafetySample::default(), outputs)
    }

    #[allow(clippy::needless_range_loop)] // parallel per-axis arrays, indexed together
    /// One period. `inputs`/`outputs` hold one entry per axis (shorter slices are handled as far
    /// as they go); `safety` is this period's sample of the safety sources and the runner's lateness.
    /// Returns the status to publish.
    pub fn step_with(
        &mut self,
        bus: BusHealth,
        inputs: &[DriveInputs],
        cmd: &Command,
        safety: &SafetySample,
        outputs: &mut [DriveOutputs],
    ) -> &Status {
        let n = self.n.min(inputs.len()).min(outputs.len());
        let s = &mut self.status;
        s.cycle += 1;
        self.mode_cycles = self.mode_cycles.saturating_add(1);
        let fresh = bus == BusHealth::Ok;
        // 1. Read: actual positions and drive states (kept from the last good frame otherwise).
        if fresh {
            for i in 0..n {
                s.statusword[i] = inputs[i].statusword;
                s.drive_state[i] = DriveState::from_statusword(inputs[i].statusword);
                s.actual[i] = f64::from(inputs[i].position) / self.lim[i].cpu;
            }
            self.inputs_seen = inputs[..n].iter().all(|x| x.statusword != 0);
        }
        // 2. Check.
        match bus {
            BusHealth::Ok => {}
            BusHealth::Lost => self.latch(Fault::FrameLost),
            BusHealth::NotOperational => self.latch(Fault::NotOperational),
            BusHealth::WorkingCounter { got, expected } => self.latch(Fault::WorkingCounter { got, expected }),
        }
        // The safety supervisor: command age, sources, overruns, goals, overspeed and encoder jumps.
        let age = self.sup.observe_heartbeat(cmd.heartbeat);
        let verdict = self.sup.observe_sources(safety);
        self.sup.observe_overrun(safety.late);
        self.status.command_age = age;
        self.status.overruns = self.sup.overruns();
        self.status.enable_held = verdict.enable_held;
        self.status.estop_active = if cmd.emergency_stop {
            Some(StopSource::Command)
        } else {
            verdict.estop
        };
        if cmd.emergency_stop {
            self.latch(Fault::EmergencyStop {
                source: StopSource::Command,
            });
        } else if let Some(source) = verdict.estop {
            self.latch(Fault::EmergencyStop { source });
        }
        if matches!(self.status.mode, Mode::Enabling | Mode::Enabled) && self.sup.command_stale() {
            self.latch(Fault::StaleCommand { cycles: age });
        }
        let burst = self.sup.overrun_burst();
        if let Some(count) = burst {
            self.latch(Fault::OverrunBurst { count });
        }
        let mut goal_invalid = None;
        for i in 0..n {
            if !cmd.goal[i].is_finite() || cmd.depth_limit[i].is_nan() {
                goal_invalid.get_or_insert(Fault::InvalidGoal { axis: i as u8 });
                self.latch(Fault::InvalidGoal { axis: i as u8 });
            }
        }
        let mut motion_limits = [(1.0, f64::INFINITY); MAX_AXES];
        for (m, l) in motion_limits.iter_mut().zip(&self.lim).take(n) {
            *m = (l.cpu, l.vmax);
        }
        let motion = self
            .sup
            .check_motion(fresh && self.inputs_seen, &inputs[..n], &motion_limits[..n], self.dt);
        match motion {
            Some(MotionFault::Overspeed { axis, velocity }) => self.latch(Fault::Overspeed { axis, velocity }),
            Some(MotionFault::EncoderJump { axis, jump }) => self.latch(Fault::EncoderJump { axis, jump }),
            None => {}
        }
        // A reset is refused while any cause is still there; the first found is the answer's reason.
        let link = match bus {
            BusHealth::Ok => None,
            BusHealth::Lost => Some(Fault::FrameLost),
            BusHealth::NotOperational => Some(Fault::NotOperational),
            BusHealth::WorkingCounter { got, expected } => Some(Fault::WorkingCounter { got, expected }),
        };
        let persisting = self
            .status
            .estop_active
            .map(|source| Fault::EmergencyStop { source })
            .or(link)
            .or(goal_invalid)
            .or(burst.map(|count| Fault::OverrunBurst { count }))
            .or(match motion {
                Some(MotionFault::Overspeed { axis, velocity }) => Some(Fault::Overspeed { axis, velocity }),
                Some(MotionFault::EncoderJump { axis, jump }) => Some(Fault::EncoderJump { axis, jump }),
                None => None,
            })
            .or(self.sup.command_stale().then_some(Fault::StaleCommand { cycles: age }));
        let reset_edge = cmd.reset_seq != self.last_reset_seq;
        self.last_reset_seq = cmd.reset_seq;
        let enable_edge = cmd.enable_seq != self.last_enable_seq;
        self.last_enable_seq = cmd.enable_seq;
        let s = &mut self.status;
        s.reset_seq = cmd.reset_seq;
        if fresh && self.status.mode != Mode::Resetting {
            for i in 0..n {
                let st = self.status.drive_state[i];
                if st.is_fault() {
                    self.latch(Fault::Drive {
                        axis: i as u8,
                        code: inputs[i].error_code,
                    });
                }
                if self.status.mode == Mode::Enabled {
                    let l = self.lim[i];
                    let fe = self.status.setpoint[i] - self.status.actual[i];
                    // Braking on its own ramp after a released enable: the drive follows no setpoint.
                    let stopping = self.enable_stop && st == DriveState::QuickStopActive;
                    if st != DriveState::OperationEnabled && !stopping {
                        self.latch(Fault::DriveDisabled { axis: i as u8 });
                    } else if !stopping && fe.abs() > l.window {
                        self.latch(Fault::FollowingError {
                            axis: i as u8,
                            error: fe,
                        });
                    } else if inputs[i].mode_display != MODE_CSP {
                        self.latch(Fault::EnableTimeout { axis: i as u8 });
                    }
                    let p = self.status.actual[i];
                    if p < l.lower - l.window || p > l.upper + l.window {
                        self.latch(Fault::OutOfRange {
                            axis: i as u8,
                            position: p,
                        });
                    }
                    let limit = cmd.depth_limit[i];
                    if p > limit + l.window {
                        self.latch(Fault::DepthLimit {
                            axis: i as u8,
                            position: p,
                            limit,
                        });
                    }
                }
            }
        }
        // 3. Mode changes from the command.
        // Every reset request is answered once, whatever the mode (a request that finds nothing latched says so).
        if reset_edge {
            let answer = match (self.status.mode, persisting) {
                (Mode::Faulted, Some(cause)) => ResetAnswer::Refused { cause },
                (Mode::Faulted, None) => ResetAnswer::Taken,
                _ => ResetAnswer::NothingLatched,
            };
            self.status.reset_refused = matches!(answer, ResetAnswer::Refused { .. });
            self.status.reset_reply = Some(ResetReply {
                seq: cmd.reset_seq,
                cycle: self.status.cycle,
                answer,
            });
        }
        match self.status.mode {
            Mode::Faulted => {
                // A reset while a cause persists (e-stop held, a source silent, the link, a bad goal, ...) is refused;
                // the edge is used up.
                if reset_edge && persisting.is_none() {
                    self.status.fault = None;
                    self.set_mode(Mode::Resetting);
                }
            }
            Mode::Resetting => {
                if fresh && self.status.drive_state[..n].iter().all(|d| !d.is_fault()) {
                    self.set_mode(Mode::Disabled);
                } else if self.mode_cycles > ENABLE_TIMEOUT_CYCLES {
                    let axis = self.status.drive_state[..n]
                        .iter()
                        .position(|d| d.is_fault())
                        .unwrap_or(0);
                    self.latch(Fault::Drive {
                        axis: axis as u8,
                        code: inputs.get(axis).map_or(0, |x| x.error_code),
                    });
                }
            }
            Mode::Disabled => {
                if cmd.enable && enable_edge && self.inputs_seen && fresh {
                    self.set_mode(Mode::Enabling);
                }
            }
            Mode::Enabling | Mode::Enabled => {
                if !cmd.enable {
                    self.set_mode(Mode::Disabled);
                }
            }
        }
        if self.status.mode == Mode::Enabling {
            let all_on = self.status.drive_state[..n]
                .iter()
                .all(|d| *d == DriveState::OperationEnabled);
            if fresh && all_on {
                // Safe start-up: the interpolator starts at the actual position, at rest.
                // A goal sent before this enable is stale: hold here until a newer one arrives.
                for i in 0..n {
                    self.pos[i] = self.status.actual[i];
                    self.vel[i] = 0.0;
                    self.hold[i] = self.status.actual[i];
                }
                self.halted_goal_seq = None;
                self.set_mode(Mode::Enabled);
            } else if self.mode_cycles > ENABLE_TIMEOUT_CYCLES {
                let axis = self.status.drive_state[..n]
                    .iter()
                    .position(|d| *d != DriveState::OperationEnabled)
                    .unwrap_or(0);
                self.latch(Fault::EnableTimeout { axis: axis as u8 });
            }
        }
        // 4. Interpolate and write.
        let mode = self.status.mode;
        let scale = if cmd.speed_scale > 0.0 && cmd.speed_scale <= 1.0 {
            cmd.speed_scale
        } else {
            0.0
        };
        if cmd.halt_seq != self.last_halt_seq {
            self.last_halt_seq = cmd.halt_seq;
            if mode == Mode::Enabled {
                // Stopping point of each axis braking at its acceleration limit from the current setpoint motion.
                for i in 0..n {
                    let (l, v) = (self.lim[i], self.vel[i]);
                    let stop = self.pos[i] + v * v.abs() / (2.0 * l.amax);
                    self.hold[i] = stop.clamp(l.lower, l.upper);
                }
                self.halted_goal_seq = Some(cmd.halt_goal_seq);
            }
        }
        // An enable source released or silent: the same halt, and every goal that arrives while it lasts is abandoned
        // (a hold, not a latch: motion resumes only with a goal newer than the release, once every enable is back).
        if !verdict.enable_held && mode == Mode::Enabled {
            if self.enable_was_held && self.halted_goal_seq.is_none() {
                for i in 0..n {
                    let (l, v) = (self.lim[i], self.vel[i]);
                    let stop = self.pos[i] + v * v.abs() / (2.0 * l.amax);
                    self.hold[i] = stop.clamp(l.lower, l.upper);
                }
            }
            self.halted_goal_seq = Some(cmd.goal_seq);
        }
        self.enable_was_held = verdict.enable_held || mode != Mode::Enabled;
        // The released enable also stops the drives themselves: a CiA 402 quick stop (0x605A = 6: their own ramp,
        // 0x6085, then powered and holding in Quick stop active), which goes on braking if this thread stalls. Once
        // every enable is back and every drive has been seen in Quick stop active, Enable operation (transition 16)
        // brings them back; the interpolator restarts at the actual position and holds until a newer goal.
        let mut resume = false;
        if mode != Mode::Enabled {
            self.enable_stop = false;
        } else {
            if !verdict.enable_held && !self.enable_stop {
                self.enable_stop = true;
                self.quick_stop_seen = [false; MAX_AXES];
            }
            if self.enable_stop && fresh {
                for i in 0..n {
                    self.quick_stop_seen[i] |= self.status.drive_state[i] == DriveState::QuickStopActive;
                }
                resume = verdict.enable_held && self.quick_stop_seen[..n].iter().all(|s| *s);
                let back = self.status.drive_state[..n]
                    .iter()
                    .all(|d| *d == DriveState::OperationEnabled);
                if resume && back {
                    self.enable_stop = false;
                    for i in 0..n {
                        self.pos[i] = self.status.actual[i];
                        self.vel[i] = 0.0;
                        self.hold[i] = self.status.actual[i];
                    }
                }
            }
        }
        if self.halted_goal_seq.is_some_and(|seq| seq != cmd.goal_seq) {
            self.halted_goal_seq = None;
        }
        let mut reached = true;
        let mut within = true;
        for i in 0..n {
            let st = self.status.drive_state[i];
            let actual_counts = inputs[i].position;
            let (controlword, target) = match mode {
                Mode::Enabled if self.enable_stop && self.quick_stop_seen[i] => {
                    // The drive ignores the target in Quick stop active: keep it at the actual position, so that
                    // transition 16 finds no step.
                    self.pos[i] = self.status.actual[i];
                    self.vel[i] = 0.0;
                    self.hold[i] = self.status.actual[i];
                    reached &= f64::from(inputs[i].velocity).abs() <= STANDSTILL * self.lim[i].vmax * self.lim[i].cpu;
                    let c = if resume { cw::ENABLE_OPERATION } else { cw::QUICK_STOP };
                    (c, actual_counts)
                }
                Mode::Enabled => {
                    let l = self.lim[i];
                    let wanted = if cmd.goal_seq == cmd.enable_goal_seq || self.halted_goal_seq.is_some() {
                        self.hold[i]
                    } else {
                        cmd.goal[i]
                    };
                    // The procedure's depth limit narrows the range (never below the lower limit).
                    let upper = l.upper.min(cmd.depth_limit[i]).max(l.lower);
                    let goal = wanted.clamp(l.lower, upper);
                    let (p, v) = interpolate(self.pos[i], self.vel[i], goal, l.vmax * scale, l.amax, self.dt);
                    self.pos[i] = p;
                    self.vel[i] = v;
                    let target = (p * l.cpu).round() as i32;
                    if !p.is_finite()
                        || (self.was_enabled && !setpoint_step_ok(self.last_target[i], target, l.vmax * l.cpu, self.dt))
                    {
                        self.latch(Fault::SetpointVelocity { axis: i as u8 });
                    }
                    reached &= p == goal && v == 0.0;
                    within &= f64::from(actual_counts.saturating_sub(target)).abs() <= l.in_position;
                    // Until the drive shows Quick stop active it follows this braking setpoint.
                    let c = if self.enable_stop {
                        cw::QUICK_STOP
                    } else {
                        cw::ENABLE_OPERATION
                    };
                    (c, target)
                }
                Mode::Enabling => {
                    let c = match st {
                        DriveState::SwitchOnDisabled => cw::SHUTDOWN,
                        DriveState::ReadyToSwitchOn => cw::SWITCH_ON,
                        DriveState::SwitchedOn | DriveState::OperationEnabled if inputs[i].mode_display == MODE_CSP => {
                            cw::ENABLE_OPERATION
                        }
                        DriveState::SwitchedOn | DriveState::OperationEnabled => cw::SWITCH_ON,
                        _ => cw::DISABLE_VOLTAGE,
                    };
                    (c, actual_counts)
                }
                // Quick stop active leaves only by Disable voltage (transition 12) or Enable operation (16).
                Mode::Disabled if st == DriveState::QuickStopActive => (cw::DISABLE_VOLTAGE, actual_counts),
                Mode::Disabled => (cw::SHUTDOWN, actual_counts),
                Mode::Resetting => {
                    // Rising edge of bit 7: alternate 0 / 0x80 while a drive stays in Fault.
                    let c = if st == DriveState::Fault && self.status.controlword[i] & cw::FAULT_RESET == 0 {
                        cw::FAULT_RESET
                    } else {
                        cw::DISABLE_VOLTAGE
                    };
                    (c, actual_counts)
                }
                Mode::Faulted => {
                    let standstill =
                        f64::from(inputs[i].velocity).abs() <= STANDSTILL * self.lim[i].vmax * self.lim[i].cpu;
                    (quick_stop_word(st, standstill), actual_counts)
                }
            };
            if mode != Mode::Enabled {
                self.pos[i] = self.status.actual[i];
                self.vel[i] = 0.0;
                reached = false;
            }
            self.status.setpoint[i] = f64::from(target) / self.lim[i].cpu;
            self.status.controlword[i] = controlword;
            self.last_target[i] = target;
            outputs[i] = DriveOutputs {
                controlword,
                target,
                mode: MODE_CSP,
            };
        }
        if mode != Mode::Faulted && self.status.mode == Mode::Faulted {
            // Latched while writing the outputs (a setpoint refused): quick stop on every axis in this same frame.
            for i in 0..n {
                let c = quick_stop_word(self.status.drive_state[i], false);
                self.status.controlword[i] = c;
                self.status.setpoint[i] = self.status.actual[i];
                self.last_target[i] = inputs[i].position;
                outputs[i] = DriveOutputs {
                    controlword: c,
                    target: inputs[i].position,
                    mode: MODE_CSP,
                };
            }
            reached = false;
        }
        self.was_enabled = self.status.mode == Mode::Enabled;
        self.status.halted = self.halted_goal_seq.is_some();
        self.status.goal_seq = cmd.goal_seq;
        self.status.goal_reached = reached && n > 0;
        self.in_position_cycles = if self.status.goal_reached && within {
            self.in_position_cycles.saturating_add(1)
        } else {
            0
        };
        self.status.in_position = self.in_position_cycles >= IN_POSITION_CYCLES;
        &self.status
    }
}

/// The controlword of a latched fault: quick stop from every powered state, disable voltage otherwise and once a
/// quick stop has come to a standstill.
fn quick_stop_word(st: DriveState, standstill: bool) -> u16 {
    match st {
        // Stopped on the quick-stop ramp: a latched fault ends unpowered (transition 12), as with option code 2.
        DriveState::QuickStopActive if standstill => cw::DISABLE_VOLTAGE,
        DriveState::OperationEnabled
        | DriveState::QuickStopActive
        | DriveState::SwitchedOn
        | DriveState::ReadyToSwitchOn => cw::QUICK_STOP,
        _ => cw::DISABLE_VOLTAGE,
    }
}
