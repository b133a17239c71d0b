//! Drive model: the CiA 402 power state machine (IEC 61800-7-201 §4.3, Figure 4) and the axis
//! dynamics behind it, in cyclic synchronous position mode.
//!
//! One call to [`Drive::step`] is one SYNC0 period: read controlword / target from the object
//! dictionary (the outputs the master just wrote), advance the axis, write statusword and actuals.

use serde::{Deserialize, Serialize};

use crate::od::{idx, ObjectDictionary};

/// Physical parameters of one emulated axis, SI at the joint (m or rad).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DriveParams {
    /// Encoder counts per joint unit (m or rad), after gear and lead.
    pub counts_per_unit: f64,
    /// Moved mass (kg, prismatic) or inertia (kg·m², revolute); from the URDF.
    pub mass: f64,
    /// Velocity limit of the motor at the joint (unit/s).
    pub max_velocity: f64,
    /// Acceleration limit (unit/s²).
    pub max_acceleration: f64,
    /// Rated force/torque (N or N·m), the 1000 ‰ of 0x6077.
    pub rated_effort: f64,
    /// Position at power-on (unit), before the home offset.
    pub initial_position: f64,
}

impl Default for DriveParams {
    fn default() -> Self {
        Self {
            counts_per_unit: 1.0e6,
            mass: 2.0,
            max_velocity: 0.1,
            max_acceleration: 1.0,
            rated_effort: 50.0,
            initial_position: 0.0,
        }
    }
}

/// CiA 402 power states (IEC 61800-7-201 Figure 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// Not ready to switch on (internal, left at the first step).
    NotReadyToSwitchOn,
    /// Switch on disabled.
    SwitchOnDisabled,
    /// Ready to switch on.
    ReadyToSwitchOn,
    /// Switched on.
    SwitchedOn,
    /// Operation enabled: the axis follows the target.
    OperationEnabled,
    /// Quick stop active: braking on the quick-stop ramp.
    QuickStopActive,
    /// Fault reaction active: braking, then Fault.
    FaultReactionActive,
    /// Fault: no torque until a fault reset.
    Fault,
}

impl PowerState {
    /// Statusword bits 0–6 of the state (IEC 61800-7-201 Table 30), with bit 5 (quick stop) where set.
    fn statusword_bits(self) -> u16 {
        match self {
            Self::NotReadyToSwitchOn => 0x0000,
            Self::SwitchOnDisabled => 0x0040,
            Self::ReadyToSwitchOn => 0x0021,
            Self::SwitchedOn => 0x0023,
            Self::OperationEnabled => 0x0027,
            Self::QuickStopActive => 0x0007,
            Self::FaultReactionActive => 0x000F,
            Self::Fault => 0x0008,
        }
    }
}

/// Error code reported in 0x603F for a following error (CiA 402 / DS402 error codes, 0x8611).
pub const ERR_FOLLOWING: u16 = 0x8611;
/// Error code for loss of process data while enabled (0x8700: sync controller / communication).
pub const ERR_COMMUNICATION: u16 = 0x8700;

/// One emulated drive.
#[derive(Debug, Clone)]
pub struct Drive {
    params: DriveParams,
    state: PowerState,
    /// Position in counts, continuous (quantised on output).
    pos: f64,
    /// Velocity in counts/s.
    vel: f64,
    last_target: Option<f64>,
    last_controlword: u16,
    error_code: u16,
    following_error: f64,
    effort: f64,
}

impl Drive {
    /// A drive at its initial position, in Not-ready-to-switch-on.
    pub fn new(params: DriveParams) -> Self {
        Self {
            pos: params.initial_position * params.counts_per_unit,
            params,
            state: PowerState::NotReadyToSwitchOn,
            vel: 0.0,
            last_target: None,
            last_controlword: 0,
            error_code: 0,
            following_error: 0.0,
            effort: 0.0,
        }
    }

    /// Current power state.
    pub fn state(&self) -> PowerState {
        self.state
    }

    /// Position in joint units (before home offset), continuous.
    pub fn position(&self) -> f64 {
        self.pos / self.params.counts_per_unit
    }

    /// Velocity in joint units per second.
    pub fn velocity(&self) -> f64 {
        self.vel / self.params.counts_per_unit
    }

    /// Inject a drive fault (e.g. 0x2310 over-current). It takes effect at once: the drive enters
    /// Fault reaction active and reports it in its statusword (call [`Drive::publish`]).
    pub fn inject_fault(&mut self, code: u16) {
        self.enter_fault(code);
    }

    fn enter_fault(&mut self, code: u16) {
        if !matches!(self.state, PowerState::Fault | PowerState::FaultReactionActive) {
            self.error_code = code;
            self.state = PowerState::FaultReactionActive;
        }
    }

    /// Process data went away while the axis was powered (leaving OP): fault reaction.
    pub fn communication_lost(&mut self) {
        if matches!(self.state, PowerState::OperationEnabled | PowerState::QuickStopActive) {
            self.enter_fault(ERR_COMMUNICATION);
        }
    }

    /// Acceleration limit in counts/s²: the configured limit, or what the rated effort can give
    /// the moved mass (F = m·a), whichever is lower.
    fn accel_limit(&self) -> f64 {
        let p = &self.params;
        let by_effort = if p.mass > 0.0 {
            p.rated_effort / p.mass
        } else {
            f64::INFINITY
        };
        p.max_acceleration.min(by_effort) * p.counts_per_unit
    }

    /// Brake towards zero velocity with the acceleration limit; true once stopped.
    fn brake(&mut self, dt: f64) -> bool {
        let a_max = self.accel_limit();
        let dv = (-self.vel).clamp(-a_max * dt, a_max * dt);
        self.effort = self.params.mass * dv / dt / self.params.counts_per_unit;
        self.vel += dv;
        self.pos += self.vel * dt;
        self.vel.abs() < 1e-9
    }

    /// One SYNC0 period of length `dt` seconds. `outputs_valid` is false outside OP.
    pub fn step(&mut self, od: &mut ObjectDictionary, dt: f64, outputs_valid: bool) {
        let cw = if outputs_valid {
            od.i32(idx::CONTROLWORD) as u16
        } else {
            0
        };
        let mode = od.i32(idx::MODES) as i8;
        let home = f64::from(od.i32(idx::HOME_OFFSET));
        let target_user = f64::from(od.i32(idx::TARGET_POSITION));
        let window = f64::from(od.u32(idx::FOLLOWING_ERROR_WINDOW, 0));
        if mode == 8 {
            od.set(idx::MODES_DISPLAY, &[8]);
        }
        let csp = od.i32(idx::MODES_DISPLAY) == 8;
        let rising_reset = cw & 0x80 != 0 && self.last_controlword & 0x80 == 0;
        self.last_controlword = cw;
        use PowerState::*;
        // Transitions (IEC 61800-7-201 Table 28): command masks on controlword bits 0–3, 7.
        let shutdown = cw & 0x87 == 0x06;
        let switch_on = cw & 0x8F == 0x07;
        let enable = cw & 0x8F == 0x0F;
        let disable_voltage = cw & 0x82 == 0x00;
        let quick_stop = cw & 0x86 == 0x02;
        self.state = match self.state {
            NotReadyToSwitchOn => SwitchOnDisabled,
            SwitchOnDisabled if shutdown => ReadyToSwitchOn,
            ReadyToSwitchOn if switch_on => SwitchedOn,
            ReadyToSwitchOn if enable => SwitchedOn, // 3 then 4 on the next cycle
            ReadyToSwitchOn if disable_voltage || quick_stop => SwitchOnDisabled,
            SwitchedOn if enable && csp => OperationEnabled,
            SwitchedOn if shutdown => ReadyToSwitchOn,
            SwitchedOn if disable_voltage || quick_stop => SwitchOnDisabled,
            OperationEnabled if quick_stop => QuickStopActive,
            OperationEnabled if disable_voltage => SwitchOnDisabled,
            OperationEnabled if shutdown => ReadyToSwitchOn,
            OperationEnabled if switch_on => SwitchedOn,
            Fault if rising_reset => SwitchOnDisabled,
            s => s,
        };
        if self.state == SwitchOnDisabled && self.error_code != 0 {
            self.error_code = 0;
        }
        let user_pos = self.pos + home;
        match self.state {
            OperationEnabled => {
                // Target in drive coordinates; feed-forward plus proportional position loop.
                let target = target_user - home;
                let prev = self.last_target.unwrap_or(target);
                let v_ff = (target - prev) / dt;
                let kp = 200.0;
                let v_des = v_ff + kp * (target - self.pos);
                let a_max = self.accel_limit();
                let v_max = self.params.max_velocity * self.params.counts_per_unit;
                let dv = (v_des - self.vel).clamp(-a_max * dt, a_max * dt);
                self.vel = (self.vel + dv).clamp(-v_max, v_max);
                self.effort = self.params.mass * dv / dt / self.params.counts_per_unit;
                self.pos += self.vel * dt;
                self.last_target = Some(target);
                self.following_error = target - self.pos;
                if window > 0.0 && self.following_error.abs() > window {
                    self.enter_fault(ERR_FOLLOWING);
                }
            }
            QuickStopActive => {
                if self.brake(dt) {
                    self.state = SwitchOnDisabled; // quick stop option code 2
                }
            }
            FaultReactionActive => {
                if self.brake(dt) {
                    self.state = Fault;
                }
            }
            _ => {
                // No torque: the holding brake keeps the axis where it is.
                self.vel = 0.0;
                self.effort = 0.0;
                self.last_target = None;
                self.following_error = target_user - user_pos;
            }
        }
        self.publish(od);
    }

    /// Write statusword, actual values and error code into the dictionary.
    pub fn publish(&self, od: &mut ObjectDictionary) {
        let home = f64::from(od.i32(idx::HOME_OFFSET));
        let window = f64::from(od.u32(idx::FOLLOWING_ERROR_WINDOW, 0));
        use PowerState::*;
        let actual = (self.pos + home).round();
        let mut sw = self.state.statusword_bits() | 0x0200; // bit 9: remote
        if self.state == OperationEnabled
            && self.following_error.abs() <= window.max(1.0) / 10.0
            && self.vel.abs() < 1.0
        {
            sw |= 0x0400; // bit 10: target reached
        }
        if self.state == OperationEnabled && window > 0.0 && self.following_error.abs() > window {
            sw |= 0x2000; // bit 13: following error
        }
        od.set(idx::STATUSWORD, &sw.to_le_bytes());
        od.set(idx::POSITION_ACTUAL, &(actual as i32).to_le_bytes());
        od.set(idx::VELOCITY_ACTUAL, &(self.vel.round() as i32).to_le_bytes());
        let torque = (self.effort / self.params.rated_effort * 1000.0).clamp(-32768.0, 32767.0);
        od.set(idx::TORQUE_ACTUAL, &(torque.round() as i16).to_le_bytes());
        od.set(idx::ERROR_CODE, &self.error_code.to_le_bytes());
        od.set(
            idx::FOLLOWING_ERROR_ACTUAL,
            &(self.following_error.round() as i32).to_le_bytes(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sii::Identity;

    fn setup() -> (Drive, ObjectDictionary) {
        let od = ObjectDictionary::cia402_drive(&Identity {
            vendor_id: 1,
            product_code: 2,
            revision: 3,
            serial: 4,
        });
        (
            Drive::new(DriveParams {
                initial_position: 0.01,
                ..DriveParams::default()
            }),
            od,
        )
    }

    fn cw(od: &mut ObjectDictionary, d: &mut Drive, word: u16) -> u16 {
        od.set(idx::CONTROLWORD, &word.to_le_bytes());
        d.step(od, 0.001, true);
        od.i32(idx::STATUSWORD) as u16
    }

    #[test]
    fn enable_sequence_reaches_0x0627_and_follows_target() {
        let (mut d, mut od) = setup();
        od.set(idx::MODES, &[8]);
        od.set(idx::TARGET_POSITION, &10_000i32.to_le_bytes());
        assert_eq!(cw(&mut od, &mut d, 0) & 0x4F, 0x40);
        assert_eq!(cw(&mut od, &mut d, 0x06) & 0x6F, 0x21);
        assert_eq!(cw(&mut od, &mut d, 0x07) & 0x6F, 0x23);
        assert_eq!(cw(&mut od, &mut d, 0x0F), 0x0627);
        od.set(idx::TARGET_POSITION, &10_050i32.to_le_bytes());
        for _ in 0..200 {
            cw(&mut od, &mut d, 0x0F);
        }
        assert_eq!(od.i32(idx::POSITION_ACTUAL), 10_050);
    }

    #[test]
    fn fault_needs_rising_edge_of_bit7() {
        let (mut d, mut od) = setup();
        od.set(idx::MODES, &[8]);
        d.inject_fault(0x2310);
        for _ in 0..3 {
            cw(&mut od, &mut d, 0x80);
        }
        assert_eq!(d.state(), PowerState::Fault, "held bit 7 is not an edge");
        assert_eq!(od.i32(idx::ERROR_CODE) as u16, 0x2310);
        cw(&mut od, &mut d, 0x00);
        cw(&mut od, &mut d, 0x80);
        assert_eq!(d.state(), PowerState::SwitchOnDisabled);
    }
}
