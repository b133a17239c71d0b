//! Drive configuration: what the URDF cannot hold (encoder, gear, lead, acceleration limit,
//! following-error window, homing offset) from YAML, merged with the joint limits and moved
//! masses from the URDF into typed, range-checked [`AxisConfig`]s. Read once at start-up.

use std::collections::HashMap;
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
    /// Vendor id the drive must report in 0x1018:01; unchecked when absent.
    #[serde(default)]
    pub vendor_id: Option<u32>,
    /// Product code the drive must report in 0x1018:02; unchecked when absent.
    #[serde(default)]
    pub product_code: Option<u32>,
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
    /// Encoder counts per motor revolution (the drive's 0x608F, verified at bring-up).
    pub encoder_counts_per_rev: u32,
    /// Motor per output revolutions (the drive's 0x6091).
    pub gear_ratio: f64,
    /// Screw lead, m per screw revolution, prismatic only (the drive's 0x6092 in SI).
    pub lead_m_per_rev: Option<f64>,
    /// Vendor id the drive must report (0x1018:01), if configured.
    pub vendor_id: Option<u32>,
    /// Product code the drive must report (0x1018:02), if configured.
    pub product_code: Option<u32>,
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

/// Longest cycle period accepted, s.
pub const MAX_CYCLE_TIME_S: f64 = 0.01;
/// Largest gear ratio accepted (motor per output revolutions).
pub const MAX_GEAR_RATIO: f64 = 10_000.0;
/// Longest screw lead accepted, m per revolution.
pub const MAX_LEAD_M: f64 = 1.0;
/// Largest acceleration limit accepted, m/s² or rad/s² (beyond it a value is a typo, not a positioner).
pub const MAX_ACCELERATION: f64 = 1_000.0;

fn field_error(field: String, value: impl std::fmt::Display, reason: impl Into<String>) -> Error {
    Error::ConfigField {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// `x` finite and in (0, max].
fn in_range(x: f64, max: f64) -> bool {
    x.is_finite() && x > 0.0 && x <= max
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
    /// Load the YAML at `path` and the URDF it names. Unknown and repeated joints are refused; the line order is not
    /// checked (see [`DrivesConfig::load_in_order`]).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let (file, urdf) = Self::read(path)?;
        Self::resolve(&file, &urdf, None)
    }

    /// Load as [`DrivesConfig::load`], and refuse a file whose drives are not, in line order, exactly the joints of
    /// `order` (the controller's joint order: axis i of the cycle is the controller's joint i).
    pub fn load_in_order(path: &Path, order: &[&str]) -> Result<Self, Error> {
        let (file, urdf) = Self::read(path)?;
        Self::resolve(&file, &urdf, Some(order))
    }

    fn read(path: &Path) -> Result<(DrivesFile, String), Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        let file: DrivesFile =
            serde_yaml::from_str(&text).map_err(|e| Error::Config(format!("parsing {}: {e}", path.display())))?;
        let urdf_path = path.parent().unwrap_or(Path::new(".")).join(&file.urdf);
        let urdf_text = std::fs::read_to_string(&urdf_path)
            .map_err(|e| Error::Config(format!("reading URDF {}: {e}", urdf_path.display())))?;
        Ok((file, urdf_text))
    }

    /// Merge a parsed YAML file with URDF text; every number is range-checked, unknown and repeated joints refused.
    pub fn from_parts(file: &DrivesFile, urdf_text: &str) -> Result<Self, Error> {
        Self::resolve(file, urdf_text, None)
    }

    /// [`DrivesConfig::from_parts`], and the drives must be the joints of `order`, in that order.
    pub fn from_parts_in_order(file: &DrivesFile, urdf_text: &str, order: &[&str]) -> Result<Self, Error> {
        Self::resolve(file, urdf_text, Some(order))
    }

    fn resolve(file: &DrivesFile, urdf_text: &str, order: Option<&[&str]>) -> Result<Self, Error> {
        let robot = urdf_rs::read_from_string(urdf_text).map_err(|e| Error::Config(format!("URDF: {e}")))?;
        // One parse, one map by name: every lookup below goes through it.
        let joints: HashMap<&str, &urdf_rs::Joint> = robot.joints.iter().map(|j| (j.name.as_str(), j)).collect();
        if !in_range(file.cycle_time_s, MAX_CYCLE_TIME_S) {
            return Err(field_error(
                "cycle_time_s".into(),
                file.cycle_time_s,
                format!("must be in (0, {MAX_CYCLE_TIME_S}] s"),
            ));
        }
        if file.drives.is_empty() || file.drives.len() > MAX_AXES {
            return Err(field_error(
                "drives".into(),
                format!("{} entries", file.drives.len()),
                format!("1 to {MAX_AXES} drives supported"),
            ));
        }
        if let Some(order) = order {
            if order.len() != file.drives.len() {
                return Err(field_error(
                    "drives".into(),
                    format!("{} entries", file.drives.len()),
                    format!("the controller drives {} joints {order:?}", order.len()),
                ));
            }
        }
        let mut axes: Vec<AxisConfig> = Vec::with_capacity(file.drives.len());
        for (i, d) in file.drives.iter().enumerate() {
            let f = |name: &str| format!("drives[{i}].{name} ({})", d.joint);
            let j = joints.get(d.joint.as_str()).ok_or_else(|| {
                field_error(
                    format!("drives[{i}].joint"),
                    &d.joint,
                    format!("not found in URDF {:?}", robot.name),
                )
            })?;
            if let Some(k) = axes.iter().position(|a| a.joint == d.joint) {
                return Err(field_error(
                    format!("drives[{i}].joint"),
                    &d.joint,
                    format!("already the joint of drives[{k}]: one drive per joint"),
                ));
            }
            if let Some(order) = order {
                if order[i] != d.joint {
                    return Err(field_error(
                        format!("drives[{i}].joint"),
                        &d.joint,
                        format!(
                            "the controller's joint order {order:?} puts {:?} at line position {i}",
                            order[i]
                        ),
                    ));
                }
            }
            let kind = match j.joint_type {
                urdf_rs::JointType::Prismatic => JointKind::Prismatic,
                urdf_rs::JointType::Revolute => JointKind::Revolute,
                ref other => {
                    return Err(field_error(
                        format!("drives[{i}].joint"),
                        &d.joint,
                        format!("is {other:?} in the URDF; only prismatic and revolute joints have drives"),
                    ))
                }
            };
            if d.encoder_counts_per_rev == 0 {
                return Err(field_error(f("encoder_counts_per_rev"), 0, "must be > 0"));
            }
            if !in_range(d.gear_ratio, MAX_GEAR_RATIO) {
                return Err(field_error(
                    f("gear_ratio"),
                    d.gear_ratio,
                    format!("must be in (0, {MAX_GEAR_RATIO}]"),
                ));
            }
            if !in_range(d.max_acceleration, MAX_ACCELERATION) {
                return Err(field_error(
                    f("max_acceleration"),
                    d.max_acceleration,
                    format!("must be in (0, {MAX_ACCELERATION}] (m or rad)/s²"),
                ));
            }
            let motor_counts_per_output_rev = f64::from(d.encoder_counts_per_rev) * d.gear_ratio;
            let counts_per_unit = match (kind, d.lead_m_per_rev) {
                (JointKind::Prismatic, Some(lead)) if in_range(lead, MAX_LEAD_M) => motor_counts_per_output_rev / lead,
                (JointKind::Prismatic, other) => {
                    return Err(field_error(
                        f("lead_m_per_rev"),
                        other.map_or("none".to_string(), |l| l.to_string()),
                        format!("prismatic joint {:?} needs a lead in (0, {MAX_LEAD_M}] m", d.joint),
                    ))
                }
                (JointKind::Revolute, None) => motor_counts_per_output_rev / std::f64::consts::TAU,
                (JointKind::Revolute, Some(l)) => {
                    return Err(field_error(
                        f("lead_m_per_rev"),
                        l,
                        format!("revolute joint {:?} has no lead", d.joint),
                    ))
                }
            };
            let lim = &j.limit;
            let finite = [lim.lower, lim.upper, lim.velocity, lim.effort]
                .iter()
                .all(|v| v.is_finite());
            if !finite || lim.upper <= lim.lower || lim.velocity <= 0.0 {
                return Err(Error::Config(format!(
                    "joint {:?}: URDF limits lower {} upper {} velocity {} effort {} are not a usable range",
                    d.joint, lim.lower, lim.upper, lim.velocity, lim.effort
                )));
            }
            let range = lim.upper - lim.lower;
            if !in_range(d.following_error_window, range) {
                return Err(field_error(
                    f("following_error_window"),
                    d.following_error_window,
                    format!("must be in (0, {range}], the joint's range"),
                ));
            }
            if !d.homing_offset.is_finite() {
                return Err(field_error(f("homing_offset"), d.homing_offset, "must be finite"));
            }
            let position_window = d
                .position_window
                .unwrap_or(DEFAULT_POSITION_WINDOW_COUNTS / counts_per_unit);
            if !in_range(position_window, d.following_error_window) {
                return Err(field_error(
                    f("position_window"),
                    position_window,
                    format!(
                        "the position window must be in (0, {}], the following-error window",
                        d.following_error_window
                    ),
                ));
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
                position_window,
                encoder_counts_per_rev: d.encoder_counts_per_rev,
                gear_ratio: d.gear_ratio,
                lead_m_per_rev: d.lead_m_per_rev,
                vendor_id: d.vendor_id,
                product_code: d.product_code,
            };
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
