//! The pure 1 kHz cycle: check (safety) → interpolate → CiA 402 sequencing, on raw PDO values.
//!
//! No IO, no allocation, no locks: [`Cycle::step`] takes the inputs just read and the latest
//! command, and fills the outputs to write. Safe start-up: while an axis is not enabled its target
//! is its actual position, so the first enabled setpoint is where the drive already is. Any fault
//! latches: quick stop on every axis, no motion until a reset request (a new `reset_seq`) and a
//! fresh enable; after the reset the interpolator starts again from the actual positions.

use crate::cia402::{cw, DriveInputs, DriveOutputs, DriveState, MODE_CSP};
use crate::config::{AxisConfig, MAX_AXES};

/// Health of the last exchange, as the bus reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusHealth {
    /// Frame came back with the expected working counter.
    Ok,
    /// Frame came back with the wrong working counter (a device missing or not in OP).
    WorkingCounter {
        /// Received.
        got: u16,
        /// Expected.
        expected: u16,
    },
    /// No frame came back (link down, frame lost).
    Lost,
    /// A SubDevice left OP (AL state check in the same frame).
    NotOperational,
}

/// Why the cycle latched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// A frame did not come back.
    FrameLost,
    /// A SubDevice left OP.
    NotOperational,
    /// Working counter mismatch.
    WorkingCounter {
        /// Received.
        got: u16,
        /// Expected.
        expected: u16,
    },
    /// A drive reported a fault.
    Drive {
        /// Axis index.
        axis: u8,
        /// 0x603F error code.
        code: u16,
    },
    /// Actual position left the setpoint by more than the window.
    FollowingError {
        /// Axis index.
        axis: u8,
        /// Error, joint units.
        error: f64,
    },
    /// Actual position outside the joint range (plus one following-error window).
    OutOfRange {
        /// Axis index.
        axis: u8,
        /// Position, joint units.
        position: f64,
    },
    /// A drive left Operation enabled by itself.
    DriveDisabled {
        /// Axis index.
        axis: u8,
    },
    /// The emergency stop was pressed (an external stop request: e-stop button, safety supervisor).
    EmergencyStop,
    /// Drives did not reach Operation enabled in time, or report a mode other than CSP.
    EnableTimeout {
        /// Axis index.
        axis: u8,
    },
}

/// Operating mode of the axis group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// No torque requested (drives held in Ready to switch on).
    #[default]
    Disabled,
    /// Walking drives through the power state machine.
    Enabling,
    /// All drives in Operation enabled; setpoints interpolated towards the goal.
    Enabled,
    /// Acknowledging drive faults after a reset request.
    Resetting,
    /// Latched fault: quick stop, no motion.
    Faulted,
}

/// The command handed to the cycle (latest value wins).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Command {
    /// Hold the drives enabled. False disables (unless faulted).
    pub enable: bool,
    /// A change of this counter requests enabling (an edge that cannot be lost in a latest-value handoff).
    pub enable_seq: u32,
    /// A change of this counter requests a fault reset (the rising edge).
    pub reset_seq: u32,
    /// Goal joint positions, SI.
    pub goal: [f64; MAX_AXES],
    /// Identifies the goal, echoed in [`Status::goal_seq`] once it applies.
    pub goal_seq: u32,
    /// `goal_seq` when enabling was requested: that goal (and older) is stale, so after enabling
    /// the axes hold their actual positions until a goal with another sequence number arrives.
    pub enable_goal_seq: u32,
    /// A change of this counter requests a halt: every axis decelerates at its limit to a standstill along its current
    /// motion (no return to where the halt came, so a needle is never pulled back by a hold).
    pub halt_seq: u32,
    /// `goal_seq` when the halt was requested: that goal is abandoned; the axes stay where they stopped until a goal
    /// with another sequence number arrives.
    pub halt_goal_seq: u32,
    /// Fraction of the URDF velocity limit, (0, 1].
    pub speed_scale: f64,
    /// Emergency stop held (a level): latches [`Fault::EmergencyStop`] every cycle it is true, so a reset cannot clear
    /// the fault until the stop is released.
    pub emergency_stop: bool,
}

impl Default for Command {
    fn default() -> Self {
        Self {
            enable: false,
            enable_seq: 0,
            reset_seq: 0,
            goal: [0.0; MAX_AXES],
            goal_seq: 0,
            enable_goal_seq: 0,
            halt_seq: 0,
            halt_goal_seq: 0,
            speed_scale: 1.0,
            emergency_stop: false,
        }
    }
}

/// What the cycle publishes every period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    /// Cycle counter.
    pub cycle: u64,
    /// Group mode.
    pub mode: Mode,
    /// Latched fault, if any.
    pub fault: Option<Fault>,
    /// Cycle at which the current fault latched.
    pub fault_cycle: u64,
    /// Number of axes.
    pub axes: usize,
    /// Actual positions, SI.
    pub actual: [f64; MAX_AXES],
    /// Setpoints sent, SI.
    pub setpoint: [f64; MAX_AXES],
    /// Drive states.
    pub drive_state: [DriveState; MAX_AXES],
    /// Statuswords.
    pub statusword: [u16; MAX_AXES],
    /// Controlwords sent.
    pub controlword: [u16; MAX_AXES],
    /// Goal of the last command.
    pub goal_seq: u32,
    /// All setpoints at the goal and at rest.
    pub goal_reached: bool,
    /// Goal reached and every axis within its position window of it for [`IN_POSITION_CYCLES`] (CiA 402 0x6067/0x6068,
    /// kept by the master): the robot stands where it was sent, so a scan now images the pose the move ended in.
    pub in_position: bool,
    /// Reset requests seen.
    pub reset_seq: u32,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            cycle: 0,
            mode: Mode::Disabled,
            fault: None,
            fault_cycle: 0,
            axes: 0,
            actual: [0.0; MAX_AXES],
            setpoint: [0.0; MAX_AXES],
            drive_state: [DriveState::default(); MAX_AXES],
            statusword: [0; MAX_AXES],
            controlword: [0; MAX_AXES],
            goal_seq: 0,
            goal_reached: false,
            in_position: false,
            reset_seq: 0,
        }
    }
}

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
    status: Status,
}

impl Cycle {
    /// A cycle for `axes` (at most [`MAX_AXES`]; extra axes are ignored) with period `dt` s.
    pub fn new(axes: &[AxisConfig], dt: f64) -> Self {
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

    #[allow(clippy::needless_range_loop)] // parallel per-axis arrays, indexed together
    /// One period. `inputs`/`outputs` hold one entry per axis (shorter slices are handled as far
    /// as they go). Returns the status to publish.
    pub fn step(
        &mut self,
        bus: BusHealth,
        inputs: &[DriveInputs],
        cmd: &Command,
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
        if cmd.emergency_stop {
            self.latch(Fault::EmergencyStop);
        }
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
                    if st != DriveState::OperationEnabled {
                        self.latch(Fault::DriveDisabled { axis: i as u8 });
                    } else if fe.abs() > l.window {
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
                }
            }
        }
        // 3. Mode changes from the command.
        match self.status.mode {
            Mode::Faulted => {
                // A reset while the emergency stop is still held is ignored (the edge is used up).
                if reset_edge && fresh && !cmd.emergency_stop {
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
        if self.halted_goal_seq.is_some_and(|seq| seq != cmd.goal_seq) {
            self.halted_goal_seq = None;
        }
        let mut reached = true;
        let mut within = true;
        for i in 0..n {
            let st = self.status.drive_state[i];
            let actual_counts = inputs[i].position;
            let (controlword, target) = match mode {
                Mode::Enabled => {
                    let l = self.lim[i];
                    let wanted = if cmd.goal_seq == cmd.enable_goal_seq || self.halted_goal_seq.is_some() {
                        self.hold[i]
                    } else {
                        cmd.goal[i]
                    };
                    let goal = wanted.clamp(l.lower, l.upper);
                    let (p, v) = interpolate(self.pos[i], self.vel[i], goal, l.vmax * scale, l.amax, self.dt);
                    self.pos[i] = p;
                    self.vel[i] = v;
                    let target = (p * l.cpu).round() as i32;
                    reached &= p == goal && v == 0.0;
                    within &= f64::from(actual_counts.saturating_sub(target)).abs() <= l.in_position;
                    (cw::ENABLE_OPERATION, target)
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
                    let c = match st {
                        DriveState::OperationEnabled
                        | DriveState::QuickStopActive
                        | DriveState::SwitchedOn
                        | DriveState::ReadyToSwitchOn => cw::QUICK_STOP,
                        _ => cw::DISABLE_VOLTAGE,
                    };
                    (c, actual_counts)
                }
            };
            if mode != Mode::Enabled {
                self.pos[i] = self.status.actual[i];
                self.vel[i] = 0.0;
                reached = false;
            }
            self.status.setpoint[i] = f64::from(target) / self.lim[i].cpu;
            self.status.controlword[i] = controlword;
            outputs[i] = DriveOutputs {
                controlword,
                target,
                mode: MODE_CSP,
            };
        }
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

/// One step of a time-optimal, velocity- and acceleration-limited approach to `goal`
/// (trapezoidal profile, re-planned every period so a new goal is taken at any time).
pub fn interpolate(p: f64, v: f64, goal: f64, vmax: f64, amax: f64, dt: f64) -> (f64, f64) {
    let d = goal - p;
    let dv_max = amax * dt;
    if d.abs() <= 0.5 * dv_max * dt && v.abs() <= dv_max {
        return (goal, 0.0);
    }
    // Fastest speed from which the remaining distance still allows a stop (discrete braking).
    let v_stop = ((2.0 * amax * d.abs()).sqrt() - 0.5 * dv_max).max(0.0);
    let v_des = d.signum() * vmax.min(v_stop);
    let v_new = v + (v_des - v).clamp(-dv_max, dv_max);
    let p_new = p + v_new * dt;
    // Never step past the goal.
    if (goal - p_new) * d < 0.0 {
        return (goal, 0.0);
    }
    (p_new, v_new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_respects_limits_and_arrives() {
        let (vmax, amax, dt) = (0.05, 0.5, 0.001);
        let (mut p, mut v) = (0.0, 0.0);
        let mut steps = 0;
        while (p, v) != (0.1, 0.0) {
            let (p2, v2) = interpolate(p, v, 0.1, vmax, amax, dt);
            assert!(v2.abs() <= vmax + 1e-12, "velocity {v2}");
            assert!((v2 - v).abs() <= amax * dt + 1e-12, "acceleration {}", (v2 - v) / dt);
            assert!(p2 <= 0.1 + 1e-12);
            (p, v) = (p2, v2);
            steps += 1;
            assert!(steps < 10_000, "did not arrive: p {p} v {v}");
        }
        // 0.1 m at 0.05 m/s with 0.1 s ramps: 2.1 s ideal.
        assert!((2000..2300).contains(&steps), "took {steps} cycles");
    }
}
