//! Drive configuration: what the URDF cannot hold (encoder, gear, lead, acceleration limit,
//! following-error window, homing offset) from YAML, merged with the joint limits and moved
//! masses from the URDF into typed, range-checked [`AxisConfig`]s. Read once at start-up.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// Most axes one cycle handles (fixed-size arrays in the cycle: no allocation).
pub const MAX_AXES: usize = 8;

/// One drive as written in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveEntry {
    /// URDF joint this drive moves.
    pub joint: String,
    /// Encoder counts per motor revolution.
    pub encoder_counts_per_rev: u32,
    /// Motor revolutions per output revolution (revolute) or per screw revolution (prismatic).
    pub gear_ratio: f64,
    /// Screw lead, m per screw revolution (prismatic joints only).
    #[serde(default)]
    pub lead_m_per_rev: Option<f64>,
    /// Acceleration limit at the joint, m/s² or rad/s² (URDF has none).
    pub max_acceleration: f64,
    /// Following-error window at the joint, m or rad (CiA 402 0x6065).
    pub following_error_window: f64,
    /// Homing offset at the joint, m or rad (CiA 402 0x607C).
    #[serde(default)]
    pub homing_offset: f64,
    /// Position window at the joint, m or rad (CiA 402 0x6067): a move is done when the axis stays this close to its
    /// goal for [`crate::cycle::IN_POSITION_CYCLES`]. Default: [`DEFAULT_POSITION_WINDOW_COUNTS`] encoder counts.
    #[serde(default)]
    pub position_window: Option<f64>,
}

/// Position window when the configuration names none, in encoder counts: wider than a servo's standstill jitter.
pub const DEFAULT_POSITION_WINDOW_COUNTS: f64 = 20.0;

/// The YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrivesFile {
    /// Cycle period, s (1 kHz: 0.001).
    pub cycle_time_s: f64,
    /// URDF path, relative to the YAML file.
    pub urdf: PathBuf,
    /// Drives in EtherCAT line order.
    pub drives: Vec<DriveEntry>,
}

/// Joint kind, from the URDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JointKind {
    /// Linear axis: SI unit m.
    Prismatic,
    /// Rotary axis: SI unit rad.
    Revolute,
}

/// One axis, fully resolved, SI at the joint.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisConfig {
    /// Joint name.
    pub joint: String,
    /// Prismatic or revolute.
    pub kind: JointKind,
    /// Encoder counts per joint unit (counts/m or counts/rad).
    pub counts_per_unit: f64,
    /// Lower joint limit (URDF).
    pub lower: f64,
    /// Upper joint limit (URDF).
    pub upper: f64,
    /// Velocity limit (URDF), unit/s.
    pub max_velocity: f64,
    /// Acceleration limit (config), unit/s².
    pub max_acceleration: f64,
    /// Effort limit (URDF), N or N·m.
    pub max_effort: f64,
    /// Moved mass (kg) or inertia about the axis (kg·m²), URDF subtree of the child link.
    pub mass: f64,
    /// Following-error window, unit.
    pub following_error_window: f64,
    /// Homing offset, unit.
    pub homing_offset: f64,
    /// Position window, unit (0x6067).
    pub position_window: f64,
}

impl AxisConfig {
    /// Joint units → counts. Callers keep `q` inside the limits, which fit in i32 (checked at load).
    pub fn to_counts(&self, q: f64) -> i32 {
        (q * self.counts_per_unit).round() as i32
    }

    /// Counts → joint units.
    pub fn to_si(&self, counts: i32) -> f64 {
        f64::from(counts) / self.counts_per_unit
    }

    /// Following-error window in counts (0x6065).
    pub fn following_error_window_counts(&self) -> u32 {
        (self.following_error_window * self.counts_per_unit).round().max(1.0) as u32
    }

    fn unit(&self) -> &'static str {
        match self.kind {
            JointKind::Prismatic => "m",
            JointKind::Revolute => "rad",
        }
    }
}

/// The resolved drive configuration of a robot.
#[derive(Debug, Clone, PartialEq)]
pub struct DrivesConfig {
    /// Cycle period, s.
    pub cycle_time_s: f64,
    /// Axes in EtherCAT line order.
    pub axes: Vec<AxisConfig>,
}

/// Strictly positive and not NaN.
fn positive(x: f64) -> bool {
    x > 0.0
}

fn subtree_mass(robot: &urdf_rs::Robot, link: &str, axis: [f64; 3], revolute: bool, depth: usize) -> f64 {
    if depth > 64 {
        return 0.0;
    }
    let own = robot.links.iter().find(|l| l.name == link).map_or(0.0, |l| {
        if revolute {
            let i = &l.inertial.inertia;
            // Inertia about the joint axis direction (diagonal terms weighted by the axis).
            axis[0].abs() * i.ixx + axis[1].abs() * i.iyy + axis[2].abs() * i.izz
        } else {
            l.inertial.mass.value
        }
    });
    own + robot
        .joints
        .iter()
        .filter(|j| j.parent.link == link)
        .map(|j| subtree_mass(robot, &j.child.link, axis, revolute, depth + 1))
        .sum::<f64>()
}

impl DrivesConfig {
    /// Load the YAML at `path` and the URDF it names.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        let file: DrivesFile =
            serde_yaml::from_str(&text).map_err(|e| Error::Config(format!("parsing {}: {e}", path.display())))?;
        let urdf_path = path.parent().unwrap_or(Path::new(".")).join(&file.urdf);
        let urdf_text = std::fs::read_to_string(&urdf_path)
            .map_err(|e| Error::Config(format!("reading URDF {}: {e}", urdf_path.display())))?;
        Self::from_parts(&file, &urdf_text)
    }

    /// Merge a parsed YAML file with URDF text; every number is range-checked.
    pub fn from_parts(file: &DrivesFile, urdf_text: &str) -> Result<Self, Error> {
        let robot = urdf_rs::read_from_string(urdf_text).map_err(|e| Error::Config(format!("URDF: {e}")))?;
        if !positive(file.cycle_time_s) || file.cycle_time_s > 0.01 {
            return Err(Error::Config(format!(
                "cycle_time_s {} s outside (0, 0.01] s",
                file.cycle_time_s
            )));
        }
        if file.drives.is_empty() || file.drives.len() > MAX_AXES {
            return Err(Error::Config(format!(
                "{} drives configured; 1 to {MAX_AXES} supported",
                file.drives.len()
            )));
        }
        let mut axes = Vec::with_capacity(file.drives.len());
        for d in &file.drives {
            let j = robot
                .joints
                .iter()
                .find(|j| j.name == d.joint)
                .ok_or_else(|| Error::Config(format!("joint {:?} not found in URDF {:?}", d.joint, robot.name)))?;
            let kind = match j.joint_type {
                urdf_rs::JointType::Prismatic => JointKind::Prismatic,
                urdf_rs::JointType::Revolute => JointKind::Revolute,
                ref other => {
                    return Err(Error::Config(format!(
                        "joint {:?} is {other:?}; only prismatic and revolute joints have drives",
                        d.joint
                    )))
                }
            };
            let bad = |what: &str, v: f64| Error::Config(format!("joint {:?}: {what} {v} must be > 0", d.joint));
            if d.encoder_counts_per_rev == 0 {
                return Err(bad("encoder_counts_per_rev", 0.0));
            }
            if !positive(d.gear_ratio) {
                return Err(bad("gear_ratio", d.gear_ratio));
            }
            if !positive(d.max_acceleration) {
                return Err(bad("max_acceleration", d.max_acceleration));
            }
            if !positive(d.following_error_window) {
                return Err(bad("following_error_window", d.following_error_window));
            }
            let motor_counts_per_output_rev = f64::from(d.encoder_counts_per_rev) * d.gear_ratio;
            let counts_per_unit = match (kind, d.lead_m_per_rev) {
                (JointKind::Prismatic, Some(lead)) if lead > 0.0 => motor_counts_per_output_rev / lead,
                (JointKind::Prismatic, other) => {
                    return Err(Error::Config(format!(
                        "prismatic joint {:?} needs lead_m_per_rev > 0, got {other:?}",
                        d.joint
                    )))
                }
                (JointKind::Revolute, None) => motor_counts_per_output_rev / std::f64::consts::TAU,
                (JointKind::Revolute, Some(l)) => {
                    return Err(Error::Config(format!(
                        "revolute joint {:?} has a lead ({l} m/rev)",
                        d.joint
                    )))
                }
            };
            let lim = &j.limit;
            if !positive(lim.upper - lim.lower) || !positive(lim.velocity) {
                return Err(Error::Config(format!(
                    "joint {:?}: URDF limits lower {} upper {} velocity {} are not a usable range",
                    d.joint, lim.lower, lim.upper, lim.velocity
                )));
            }
            let a = j.axis.xyz.0;
            let mass = subtree_mass(&robot, &j.child.link, a, kind == JointKind::Revolute, 0);
            let axis = AxisConfig {
                joint: d.joint.clone(),
                kind,
                counts_per_unit,
                lower: lim.lower,
                upper: lim.upper,
                max_velocity: lim.velocity,
                max_acceleration: d.max_acceleration,
                max_effort: lim.effort,
                mass,
                following_error_window: d.following_error_window,
                homing_offset: d.homing_offset,
                position_window: d
                    .position_window
                    .unwrap_or(DEFAULT_POSITION_WINDOW_COUNTS / counts_per_unit),
            };
            if !(axis.position_window.is_finite() && axis.position_window > 0.0) {
                return Err(Error::Config(format!(
                    "joint {:?}: position window {} {} must be positive",
                    d.joint,
                    axis.position_window,
                    axis.unit()
                )));
            }
            let extreme = (lim.lower.abs().max(lim.upper.abs()) + d.homing_offset.abs()) * counts_per_unit;
            if extreme >= f64::from(i32::MAX) {
                return Err(Error::Config(format!(
                    "joint {:?}: range ±{:.4} {} is {extreme:.0} counts, beyond the 32-bit position",
                    d.joint,
                    lim.lower.abs().max(lim.upper.abs()),
                    axis.unit()
                )));
            }
            axes.push(axis);
        }
        Ok(Self {
            cycle_time_s: file.cycle_time_s,
            axes,
        })
    }
}
