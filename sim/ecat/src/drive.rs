//! Drive model: the CiA 402 power state machine (IEC 61800-7-201 §4.3, Figure 4) and the axis
//! dynamics behind it, in cyclic synchronous position mode.
//!
//! One call to [`Drive::step`] is one SYNC0 period: read controlword / target from the object
//! dictionary (the outputs the master just wrote), advance the axis, write statusword and actuals.

use serde::{Deserialize, Serialize};

use crate::od::{idx, ObjectDictionary};

/// Unit of the feed constant 0x6092 of a linear axis: nanometres (0x60A8 = [`SI_NANOMETRE`]).
pub const FEED_UNIT_LINEAR_M: f64 = 1e-9;
/// Unit of the feed constant 0x6092 of a rotary axis: micro-degrees (0x60A8 = [`SI_MICRODEGREE`]).
pub const FEED_UNIT_ROTARY_RAD: f64 = 1e-6 * std::f64::consts::PI / 180.0;
/// SI unit of position 0x60A8 (CiA 402 §6.2 / ETG.6010 notation: prefix byte 3, unit byte 2): 10⁻⁹ m.
pub const SI_NANOMETRE: u32 = 0xF701_0000;
/// SI unit of position 0x60A8: 10⁻⁶ ° (degree, unit index 0x41).
pub const SI_MICRODEGREE: u32 = 0xFA41_0000;

/// Parameters of one emulated axis, SI at the joint (m or rad). The scaling is what the drive holds in its dictionary —
/// encoder resolution 0x608F, gear ratio 0x6091, feed constant 0x6092 in the unit of 0x60A8 — and the counts it reports
/// follow from those objects, so a drive configured unlike the master's YAML both reads differently by SDO and moves
/// differently.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveParams {
    /// Rotary axis: the feed constant is in µ° ([`SI_MICRODEGREE`]); otherwise linear, in nm ([`SI_NANOMETRE`]).
    #[serde(default)]
    pub rotary: bool,
    /// Encoder increments per motor revolution (0x608F:1; 0x608F:2 = 1).
    pub encoder_counts_per_rev: u32,
    /// Gear ratio 0x6091:1, motor revolutions ...
    pub gear_motor_revolutions: u32,
    /// ... per 0x6091:2 driving-shaft revolutions.
    pub gear_shaft_revolutions: u32,
    /// Feed constant 0x6092:1, feed (nm or µ°) ...
    pub feed: u32,
    /// ... per 0x6092:2 driving-shaft revolutions.
    pub feed_shaft_revolutions: u32,
    /// Moved mass (kg, prismatic) or inertia (kg·m², revolute); from the URDF.
    pub mass: f64,
    /// Velocity limit of the motor at the joint (unit/s).
    pub max_velocity: f64,
    /// Acceleration limit (unit/s²); also the power-on quick-stop deceleration 0x6085.
    pub max_acceleration: f64,
    /// Rated force/torque (N or N·m), the 1000 ‰ of 0x6077.
    pub rated_effort: f64,
    /// Position at power-on (unit), before the home offset.
    pub initial_position: f64,
}

impl Default for DriveParams {
    /// A generic linear drive: 17-bit encoder, direct drive, 1 mm per revolution — not the positioner's axes, so a
    /// master configured for those refuses it at bring-up.
    fn default() -> Self {
        Self {
            rotary: false,
            encoder_counts_per_rev: 1 << 17,
            gear_motor_revolutions: 1,
            gear_shaft_revolutions: 1,
            feed: 1_000_000,
            feed_shaft_revolutions: 1,
            mass: 2.0,
            max_velocity: 0.1,
            max_acceleration: 1.0,
            rated_effort: 50.0,
            initial_position: 0.0,
        }
    }
}

/// Best rational approximation `n / d` of `x > 0` with `d ≤ max_den` (continued fractions); `None` when `x` is not
/// finite and positive or `n` would not fit a u32.
pub fn ratio(x: f64, max_den: u32) -> Option<(u32, u32)> {
    if !(x.is_finite() && x > 0.0) {
        return None;
    }
    let (mut h0, mut h1, mut k0, mut k1) = (0u64, 1u64, 1u64, 0u64);
    let mut r = x;
    let mut best = None;
    for _ in 0..64 {
        let a = r.floor();
        if a > f64::from(u32::MAX) {
            break;
        }
        let a = a as u64;
        let (h2, k2) = (a * h1 + h0, a * k1 + k0);
        if k2 > u64::from(max_den) || h2 > u64::from(u32::MAX) {
            break;
        }
        best = Some((h2 as u32, k2 as u32));
        (h0, h1, k0, k1) = (h1, h2, k1, k2);
        let frac = r - a as f64;
        if frac.abs() < 1e-12 || (h2 as f64 / k2 as f64 - x).abs() <= 1e-12 * x {
            break;
        }
        r = 1.0 / frac;
    }
    best.filter(|(n, _)| *n > 0)
}

impl DriveParams {
    /// Unit objects of a drive on an axis with this encoder (counts per motor revolution), gear ratio (motor per shaft
    /// revolutions) and, for a linear axis, screw lead (m per shaft revolution; `None`: rotary), as a commissioning
    /// engineer would enter them; the physical values are [`DriveParams::default`]'s until set. `None` when a value has
    /// no integer ratio (up to 1/1000) in the objects.
    pub fn with_units(encoder_counts_per_rev: u32, gear_ratio: f64, lead_m_per_rev: Option<f64>) -> Option<Self> {
        let (gear_motor_revolutions, gear_shaft_revolutions) = ratio(gear_ratio, 1000)?;
        let (rotary, (feed, feed_shaft_revolutions)) = match lead_m_per_rev {
            Some(lead) => (false, ratio(lead / FEED_UNIT_LINEAR_M, 1000)?),
            None => (true, (360_000_000, 1)),
        };
        Some(Self {
            rotary,
            encoder_counts_per_rev,
            gear_motor_revolutions,
            gear_shaft_revolutions,
            feed,
            feed_shaft_revolutions,
            ..Self::default()
        })
    }

    /// Encoder counts per joint unit (counts/m or counts/rad) from the unit objects.
    pub fn counts_per_unit(&self) -> f64 {
        let unit = if self.rotary {
            FEED_UNIT_ROTARY_RAD
        } else {
            FEED_UNIT_LINEAR_M
        };
        let motor_revs_per_shaft_rev = f64::from(self.gear_motor_revolutions) / f64::from(self.gear_shaft_revolutions);
        let feed_per_shaft_rev = f64::from(self.feed) / f64::from(self.feed_shaft_revolutions) * unit;
        f64::from(self.encoder_counts_per_rev) * motor_revs_per_shaft_rev / feed_per_shaft_rev
    }

    /// The first parameter that makes no drive (a zero in the unit objects, a non-finite or non-positive physical value,
    /// or a scaling whose counts are not finite), by name.
    pub fn invalid_field(&self) -> Option<&'static str> {
        let ints = [
            ("encoder_counts_per_rev", self.encoder_counts_per_rev),
            ("gear_motor_revolutions", self.gear_motor_revolutions),
            ("gear_shaft_revolutions", self.gear_shaft_revolutions),
            ("feed", self.feed),
            ("feed_shaft_revolutions", self.feed_shaft_revolutions),
        ];
        if let Some((name, _)) = ints.iter().find(|(_, v)| *v == 0) {
            return Some(name);
        }
        let positive = [
            ("mass", self.mass),
            ("max_velocity", self.max_velocity),
            ("max_acceleration", self.max_acceleration),
            ("rated_effort", self.rated_effort),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Some(name);
        }
        if !self.initial_position.is_finite() || !(self.initial_position * self.counts_per_unit()).abs().lt(&2.0e9) {
            return Some("initial_position");
        }
        None
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
    /// Counts per joint unit, from the unit objects (computed once).
    cpu: f64,
    state: PowerState,
    /// Position in counts, continuous (quantised on output).
    pos: f64,
    /// Velocity in counts/s.
    vel: f64,
    last_target: Option<f64>,
    last_controlword: u16,
    /// A quick stop the drive made by itself (outputs invalid): it ends in Switch on disabled whatever 0x605A says.
    forced_stop: bool,
    error_code: u16,
    following_error: f64,
    effort: f64,
}

impl Drive {
    /// A drive at its initial position, in Not-ready-to-switch-on.
    pub fn new(params: DriveParams) -> Self {
        let cpu = params.counts_per_unit();
        Self {
            pos: params.initial_position * cpu,
            cpu,
            params,
            state: PowerState::NotReadyToSwitchOn,
            vel: 0.0,
            last_target: None,
            last_controlword: 0,
            forced_stop: false,
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
        self.pos / self.cpu
    }

    /// Velocity in joint units per second.
    pub fn velocity(&self) -> f64 {
        self.vel / self.cpu
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
        p.max_acceleration.min(by_effort) * self.cpu
    }

    /// Quick-stop deceleration in counts/s²: 0x6085 (what the master or the power-on value set), bounded by what the
    /// rated effort can give the moved mass.
    fn quick_stop_decel(&self, od: &ObjectDictionary) -> f64 {
        let p = &self.params;
        let by_effort = if p.mass > 0.0 {
            p.rated_effort / p.mass * self.cpu
        } else {
            f64::INFINITY
        };
        match f64::from(od.u32(idx::QUICK_STOP_DECELERATION, 0)) {
            d if d > 0.0 => d.min(by_effort),
            _ => self.accel_limit(),
        }
    }

    /// Outputs became invalid (sync-manager watchdog): the drive performs a quick stop by itself, as with the quick
    /// stop command (IEC 61800-7-201 Table 28, transitions 11 and 7/10/12): braking from Operation enabled, Switch on
    /// disabled from the other powered states.
    pub fn quick_stop(&mut self) {
        use PowerState::*;
        self.state = match self.state {
            OperationEnabled => QuickStopActive,
            ReadyToSwitchOn | SwitchedOn => SwitchOnDisabled,
            s => s,
        };
        self.forced_stop = self.state == PowerState::QuickStopActive;
    }

    /// Encoder counts per joint unit of this drive (from its unit objects).
    pub fn counts_per_unit(&self) -> f64 {
        self.cpu
    }

    /// The parameters the drive was built with.
    pub fn params(&self) -> &DriveParams {
        &self.params
    }

    /// Brake towards zero velocity with deceleration `a_max` (counts/s²); true once stopped.
    fn brake(&mut self, dt: f64, a_max: f64) -> bool {
        let dv = (-self.vel).clamp(-a_max * dt, a_max * dt);
        self.effort = self.params.mass * dv / dt / self.cpu;
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
        // Quick stop option code (0x605A): 5–8 brake and stay in Quick stop active, powered and holding, until Enable
        // operation (transition 16) or Disable voltage (12); the others (2, the power-on value) end in Switch on
        // disabled once stopped.
        let stays_in_quick_stop = (5..=8).contains(&od.i32(idx::QUICK_STOP_OPTION)) && !self.forced_stop;
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
            QuickStopActive if outputs_valid && disable_voltage => SwitchOnDisabled,
            QuickStopActive if outputs_valid && enable && stays_in_quick_stop => OperationEnabled,
            Fault if rising_reset => SwitchOnDisabled,
            s => s,
        };
        if self.state != QuickStopActive {
            self.forced_stop = false;
        }
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
                let v_max = self.params.max_velocity * self.cpu;
                let dv = (v_des - self.vel).clamp(-a_max * dt, a_max * dt);
                self.vel = (self.vel + dv).clamp(-v_max, v_max);
                self.effort = self.params.mass * dv / dt / self.cpu;
                self.pos += self.vel * dt;
                self.last_target = Some(target);
                self.following_error = target - self.pos;
                if window > 0.0 && self.following_error.abs() > window {
                    self.enter_fault(ERR_FOLLOWING);
                }
            }
            QuickStopActive => {
                let a = self.quick_stop_decel(od);
                self.last_target = None; // back in Operation enabled, the first target gives no feed-forward
                if self.brake(dt, a) && !stays_in_quick_stop {
                    self.state = SwitchOnDisabled; // quick stop option codes 1–4
                }
            }
            FaultReactionActive => {
                let a = self.accel_limit();
                if self.brake(dt, a) {
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
        let params = DriveParams {
            initial_position: 10_000.0 / DriveParams::default().counts_per_unit(),
            ..DriveParams::default()
        };
        let mut od = od;
        od.put_drive_units(&params);
        (Drive::new(params), od)
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
    fn unit_objects_give_the_scaling() {
        assert_eq!(ratio(100.0, 1000), Some((100, 1)));
        assert_eq!(ratio(2.5, 1000), Some((5, 2)));
        assert_eq!(ratio(5e6, 1000), Some((5_000_000, 1)));
        assert_eq!(ratio(f64::NAN, 1000), None);
        let lin = DriveParams::with_units(1 << 20, 1.0, Some(0.005)).unwrap();
        assert!((lin.counts_per_unit() - f64::from(1u32 << 20) / 0.005).abs() < 1e-3);
        let rot = DriveParams::with_units(1 << 20, 100.0, None).unwrap();
        assert!((rot.counts_per_unit() - f64::from(1u32 << 20) * 100.0 / std::f64::consts::TAU).abs() < 1e-3);
        assert_eq!(DriveParams { feed: 0, ..lin }.invalid_field(), Some("feed"));
        assert_eq!(DriveParams { mass: f64::NAN, ..lin }.invalid_field(), Some("mass"));
    }

    /// A drive enabled in CSP and cruising for 0.3 s at `speed` (m/s): its target moves `speed` × 1 ms per period.
    fn cruising(speed: f64) -> (Drive, ObjectDictionary) {
        let (mut d, mut od) = setup();
        od.set(idx::MODES, &[8]);
        od.set(idx::TARGET_POSITION, &10_000i32.to_le_bytes()); // where `setup` puts it
        od.set(idx::FOLLOWING_ERROR_WINDOW, &100_000_000u32.to_le_bytes());
        for w in [0u16, 0x06, 0x07, 0x0F] {
            cw(&mut od, &mut d, w);
        }
        let cpu = d.counts_per_unit();
        let mut target = f64::from(od.i32(idx::TARGET_POSITION));
        for _ in 0..300 {
            target += speed * 0.001 * cpu;
            od.set(idx::TARGET_POSITION, &(target.round() as i32).to_le_bytes());
            cw(&mut od, &mut d, 0x0F);
        }
        (d, od)
    }

    /// Periods (1 ms, outputs invalid) until a drive's own quick stop leaves Quick stop active.
    fn self_quick_stop(d: &mut Drive, od: &mut ObjectDictionary) -> u32 {
        let mut steps = 0;
        while d.state() == PowerState::QuickStopActive {
            d.step(od, 0.001, false);
            steps += 1;
            assert!(steps < 10_000);
        }
        steps
    }

    #[test]
    fn quick_stop_brakes_at_0x6085_then_switch_on_disabled() {
        let (mut d, mut od) = cruising(0.05);
        let cpu = d.counts_per_unit();
        let v0 = d.velocity();
        assert!(v0 > 0.045, "moving at {v0}");
        let decel = 0.5; // m/s², below the acceleration limit
        od.set(idx::QUICK_STOP_DECELERATION, &((decel * cpu) as u32).to_le_bytes());
        d.quick_stop();
        assert_eq!(d.state(), PowerState::QuickStopActive);
        let steps = self_quick_stop(&mut d, &mut od);
        assert_eq!(d.state(), PowerState::SwitchOnDisabled);
        let t = f64::from(steps) * 0.001;
        assert!(
            (t - v0 / decel).abs() < 0.003,
            "braked in {t} s, v0/a = {} s",
            v0 / decel
        );
    }

    #[test]
    fn quick_stop_option_6_holds_powered_until_enable_operation() {
        let (mut d, mut od) = cruising(0.02);
        od.set(idx::QUICK_STOP_OPTION, &6i16.to_le_bytes());
        let cpu = d.counts_per_unit();
        assert!(d.velocity() > 0.015);
        // The quick stop command: braking, then stopped and still powered (not Switch on disabled).
        for _ in 0..2000 {
            cw(&mut od, &mut d, 0x02);
        }
        assert_eq!(d.state(), PowerState::QuickStopActive);
        assert!(d.velocity().abs() < 1e-9);
        let stopped_at = d.position();
        for _ in 0..100 {
            cw(&mut od, &mut d, 0x02);
        }
        assert!(
            (d.position() - stopped_at).abs() < 1e-12,
            "the axis holds where it stopped"
        );
        // Transition 16: Enable operation returns to Operation enabled; with the target at the actual position the
        // axis does not move.
        let here = od.i32(idx::POSITION_ACTUAL);
        od.set(idx::TARGET_POSITION, &here.to_le_bytes());
        for _ in 0..50 {
            cw(&mut od, &mut d, 0x0F);
        }
        assert_eq!(d.state(), PowerState::OperationEnabled);
        assert!(
            (d.position() - stopped_at).abs() * cpu < 1.0,
            "moved {} counts",
            (d.position() - stopped_at) * cpu
        );
        // A quick stop the drive makes by itself (outputs invalid) still ends in Switch on disabled.
        d.quick_stop();
        self_quick_stop(&mut d, &mut od);
        assert_eq!(d.state(), PowerState::SwitchOnDisabled);
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
