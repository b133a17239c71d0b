//! The simulated world's noise model: how the robot as built, the fiducial frame as manufactured, the scanner, the table
//! and the operator differ from what the controller is configured with. Read from a YAML world file
//! (launch/config/worlds/*.yaml, documented there field by field with the source of each default), range-checked once;
//! every random draw comes from the seed, so the same seed in the same world gives the same biopsy.

use std::path::Path;

use acus_sim_needle::TissueModel;
use nalgebra::{Unit, Vector3};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::Deserialize;

/// A world file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorldModel {
    /// Name printed with every result measured in it.
    pub name: String,
    /// The robot as built vs its nominal URDF.
    pub robot: RobotErrors,
    /// The fiducial frame as manufactured vs its model.
    pub frame: FrameErrors,
    /// The CT scanner and its table.
    pub scanner: ScannerModel,
    /// The patient (truth).
    pub patient: PatientTruth,
    /// The operator at the console.
    pub operator: OperatorModel,
}

/// Robot as built; σ are standard deviations of zero-mean Gaussian draws, one per joint (and per axis of a vector).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RobotErrors {
    /// Zero (homing) offset of each prismatic joint, σ, m.
    pub zero_offset_prismatic: f64,
    /// Zero offset of each revolute joint, σ, rad.
    pub zero_offset_rotary: f64,
    /// Position error of each movable joint's origin, σ per axis, m.
    pub origin_position: f64,
    /// Direction error of each movable joint's axis, σ per perpendicular component, rad.
    pub axis_direction: f64,
    /// Dead band of the insertion drive train (lead screw / belt), m.
    pub insertion_backlash: f64,
    /// Tilt of the needle in its holder (clearance), at most this, rad.
    pub holder_play: f64,
}

impl RobotErrors {
    /// The robot exactly as designed.
    pub const NONE: Self = Self {
        zero_offset_prismatic: 0.0,
        zero_offset_rotary: 0.0,
        origin_position: 0.0,
        axis_direction: 0.0,
        insertion_backlash: 0.0,
        holder_play: 0.0,
    };
}

/// Fiducial frame as manufactured.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FrameErrors {
    /// Each sphere centre's deviation from the model, σ per axis, m.
    pub sphere_centre: f64,
}

/// The scanner's image formation and its table.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScannerModel {
    /// Additive image noise, σ, HU.
    pub noise_hu: f64,
    /// In-plane point spread (Gaussian) full width at half maximum, m; 0 for none.
    pub psf_fwhm: f64,
    /// Metal streaks from the needle in its slices.
    pub streaks: StreakModel,
    /// Table position repeatability between scans along its travel (CT z), σ, m.
    pub table_sigma: f64,
}

/// Metal streaks: bright and dark rays radiating from the needle's cross-section, decaying with distance.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreakModel {
    /// Ray amplitude at the needle surface, HU; 0 for none.
    pub amplitude_hu: f64,
    /// Distance over which a ray's amplitude falls by e, m.
    pub decay_length: f64,
    /// Number of bright rays (as many dark ones between them).
    pub rays: u32,
}

/// The patient's truth.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatientTruth {
    /// Lesion centre, CT (LPS), m.
    pub lesion: [f64; 3],
    /// Lesion radius, m.
    pub lesion_radius: f64,
    /// Lesion attenuation, HU.
    pub lesion_hu: f64,
    /// Needle shaft radius, m.
    pub needle_radius: f64,
    /// The needle–tissue pair.
    pub tissue: TissueTruth,
    /// Breathing (free, and breath-holds on instruction) with the belt that reads it; none for a still patient.
    #[serde(default)]
    pub breathing: Option<crate::respiration::RespirationModel>,
}

/// Needle–tissue parameters (see `acus_sim_needle::TissueModel`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TissueTruth {
    /// 1/m.
    pub curvature: f64,
    /// Relative spread.
    pub curvature_spread: f64,
    /// rad/√m.
    pub heading_noise: f64,
    /// m.
    pub shift_max: f64,
    /// m.
    pub shift_length: f64,
    /// rad.
    pub bevel_angle: f64,
}

impl TissueTruth {
    /// The needle model's parameters with `seed`.
    pub fn model(&self, seed: u64) -> TissueModel {
        TissueModel {
            curvature: self.curvature,
            curvature_spread: self.curvature_spread,
            heading_noise: self.heading_noise,
            shift_max: self.shift_max,
            shift_length: self.shift_length,
            bevel_angle: self.bevel_angle,
            seed,
            ..TissueModel::default()
        }
    }
}

/// The operator.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OperatorModel {
    /// Error of the target the operator picks on the planning scan, σ per axis, m.
    pub target_pick_sigma: f64,
}

/// A world file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The YAML does not match the schema.
    #[error("parsing {path}: {message}")]
    Parse {
        /// File.
        path: String,
        /// serde's message (names the field).
        message: String,
    },
    /// A value is out of its range.
    #[error("{field} = {value} outside [{min}, {max}]")]
    OutOfRange {
        /// Field path, e.g. `robot.origin_position`.
        field: &'static str,
        /// Value.
        value: f64,
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
}

impl WorldModel {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Self, WorldError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorldError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|e| match e {
            WorldError::Parse { message, .. } => WorldError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parse and check YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, WorldError> {
        let world: Self = serde_yaml::from_str(text).map_err(|e| WorldError::Parse {
            path: "<text>".into(),
            message: e.to_string(),
        })?;
        world.validate()?;
        Ok(world)
    }

    /// Every value finite and in its range.
    pub fn validate(&self) -> Result<(), WorldError> {
        let (r, s, p, t) = (&self.robot, &self.scanner, &self.patient, &self.patient.tissue);
        let deg = core::f64::consts::PI / 180.0;
        let checks: [(&'static str, f64, f64, f64); 24] = [
            ("robot.zero_offset_prismatic", r.zero_offset_prismatic, 0.0, 0.005),
            ("robot.zero_offset_rotary", r.zero_offset_rotary, 0.0, 2.0 * deg),
            ("robot.origin_position", r.origin_position, 0.0, 0.005),
            ("robot.axis_direction", r.axis_direction, 0.0, 2.0 * deg),
            ("robot.insertion_backlash", r.insertion_backlash, 0.0, 0.002),
            ("robot.holder_play", r.holder_play, 0.0, 2.0 * deg),
            ("frame.sphere_centre", self.frame.sphere_centre, 0.0, 0.002),
            ("scanner.noise_hu", s.noise_hu, 0.0, 200.0),
            ("scanner.psf_fwhm", s.psf_fwhm, 0.0, 0.005),
            ("scanner.streaks.amplitude_hu", s.streaks.amplitude_hu, 0.0, 2000.0),
            ("scanner.streaks.decay_length", s.streaks.decay_length, 1e-4, 0.2),
            ("scanner.streaks.rays", f64::from(s.streaks.rays), 1.0, 64.0),
            ("scanner.table_sigma", s.table_sigma, 0.0, 0.005),
            ("patient.lesion[x]", p.lesion[0], -0.3, 0.3),
            ("patient.lesion[y]", p.lesion[1], -0.3, 0.3),
            ("patient.lesion[z]", p.lesion[2], -0.3, 0.3),
            ("patient.lesion_radius", p.lesion_radius, 1e-3, 0.05),
            ("patient.lesion_hu", p.lesion_hu, -200.0, 500.0),
            ("patient.needle_radius", p.needle_radius, 1e-4, 0.003),
            ("patient.tissue.curvature", t.curvature, 0.0, 20.0),
            ("patient.tissue.curvature_spread", t.curvature_spread, 0.0, 2.0),
            ("patient.tissue.heading_noise", t.heading_noise, 0.0, 1.0),
            ("patient.tissue.shift_max", t.shift_max, 0.0, 0.02),
            ("operator.target_pick_sigma", self.operator.target_pick_sigma, 0.0, 0.01),
        ];
        let more = [
            ("patient.tissue.shift_length", t.shift_length, 1e-3, 0.5),
            ("patient.tissue.bevel_angle", t.bevel_angle, -10.0, 10.0),
        ];
        let breathing = p.breathing.map(|b| {
            let (f, h) = (b.free, b.hold);
            [
                ("patient.breathing.free.amplitude", f.amplitude, 0.0, 0.05),
                ("patient.breathing.free.ap_ratio", f.ap_ratio, 0.0, 2.0),
                ("patient.breathing.free.period", f.period, 1.0, 20.0),
                ("patient.breathing.free.n", f64::from(f.n), 1.0, 6.0),
                (
                    "patient.breathing.free.period_variability",
                    f.period_variability,
                    0.0,
                    0.5,
                ),
                (
                    "patient.breathing.free.amplitude_variability",
                    f.amplitude_variability,
                    0.0,
                    0.5,
                ),
                ("patient.breathing.free.drift_sigma", f.drift_sigma, 0.0, 0.02),
                ("patient.breathing.free.drift_time", f.drift_time, 1.0, 3600.0),
                ("patient.breathing.free.signal_gain", f.signal_gain, 1e-3, 1e9),
                ("patient.breathing.free.signal_noise", f.signal_noise, 0.0, 1e9),
                ("patient.breathing.free.signal_lag", f.signal_lag, 0.0, 2.0),
                ("patient.breathing.free.signal_rate", f.signal_rate, 1.0, 1000.0),
                ("patient.breathing.hold.level_sigma", h.level_sigma, 0.0, 0.02),
                ("patient.breathing.hold.drift_max", h.drift_max, 0.0, 0.02),
                ("patient.breathing.hold.drift_span", h.drift_span, 1.0, 120.0),
                ("patient.breathing.hold.reaction", h.reaction, 0.1, 10.0),
                ("patient.breathing.hold.duration", h.duration, 5.0, 120.0),
                ("patient.breathing.hold.duration_sigma", h.duration_sigma, 0.0, 60.0),
            ]
        });
        for (field, value, min, max) in checks.into_iter().chain(more).chain(breathing.into_iter().flatten()) {
            if !(value.is_finite() && value >= min && value <= max) {
                return Err(WorldError::OutOfRange { field, value, min, max });
            }
        }
        Ok(())
    }
}

/// Which random stream a draw belongs to: independent sources draw from independent streams, so switching one source
/// off leaves the others' draws unchanged.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    /// Robot geometry and zero offsets.
    Robot = 1,
    /// Fiducial sphere centres.
    Frame = 2,
    /// Table position of scan `n` (added to the stream number).
    Table = 3,
    /// The operator's pick.
    Operator = 4,
    /// Holder play.
    Play = 5,
    /// Metal streak phases.
    Streaks = 6,
    /// Breathing: each cycle's period, amplitude and end-expiration level.
    Breathing = 7,
    /// Respiratory belt noise of sample `n`.
    Belt = 8,
    /// The tracker's tool mounts (reference on the frame, tool on the needle hub).
    Tracker = 9,
    /// Breath-hold `n`: its level, creep and length.
    BreathHold = 10,
}

/// A seeded random stream for `stream` of the world drawn with `seed` (`index` separates e.g. scans).
pub fn rng(seed: u64, stream: Stream, index: u64) -> rand_xorshift::XorShiftRng {
    let mix = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((stream as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(index.wrapping_mul(0x94D0_49BB_1331_11EB));
    rand_xorshift::XorShiftRng::seed_from_u64(mix)
}

/// A zero-mean Gaussian vector with `sigma` per axis (zero when `sigma` is 0).
pub fn gaussian_vector(rng: &mut impl rand::Rng, sigma: f64) -> Vector3<f64> {
    match Normal::new(0.0, sigma) {
        Ok(n) if sigma > 0.0 => Vector3::new(n.sample(rng), n.sample(rng), n.sample(rng)),
        _ => Vector3::zeros(),
    }
}

/// A uniform draw in [0, 1).
pub fn uniform(rng: &mut impl rand::Rng) -> f64 {
    rng.random::<f64>()
}

/// A zero-mean Gaussian scalar (zero when `sigma` is 0).
pub fn gaussian(rng: &mut impl rand::Rng, sigma: f64) -> f64 {
    match Normal::new(0.0, sigma) {
        Ok(n) if sigma > 0.0 => n.sample(rng),
        _ => 0.0,
    }
}

/// `axis` tilted by Gaussian components of σ `sigma` (rad) along two directions perpendicular to it.
pub fn tilt(rng: &mut impl rand::Rng, axis: &Unit<Vector3<f64>>, sigma: f64) -> Unit<Vector3<f64>> {
    let helper = if axis.x.abs() < 0.9 { Vector3::x() } else { Vector3::y() };
    let u = axis.cross(&helper).normalize();
    let v = axis.cross(&u);
    let (a, b) = (gaussian(rng, sigma), gaussian(rng, sigma));
    Unit::new_normalize(axis.into_inner() + u * a + v * b)
}

/// A tilt direction and angle uniform over the disc of radius `max` (rad) about `axis`: (unit rotation axis ⟂ `axis`,
/// angle).
pub fn play(rng: &mut impl rand::Rng, axis: &Unit<Vector3<f64>>, max: f64) -> (Unit<Vector3<f64>>, f64) {
    let helper = if axis.x.abs() < 0.9 { Vector3::x() } else { Vector3::y() };
    let u = axis.cross(&helper).normalize();
    let v = axis.cross(&u);
    let phi: f64 = rng.random::<f64>() * core::f64::consts::TAU;
    let angle = max * rng.random::<f64>().sqrt();
    (Unit::new_normalize(u * phi.cos() + v * phi.sin()), angle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../launch/config/worlds")
            .join(name)
    }

    #[test]
    fn both_shipped_worlds_load() {
        let ideal = WorldModel::load(&file("ideal.yaml")).unwrap();
        let realistic = WorldModel::load(&file("realistic.yaml")).unwrap();
        assert_eq!(ideal.name, "ideal");
        assert_eq!(realistic.name, "realistic");
        assert!(ideal.robot.origin_position < 1e-12 && realistic.robot.origin_position > 1e-4);
    }

    #[test]
    fn an_unknown_field_and_an_out_of_range_value_are_named() {
        let text = std::fs::read_to_string(file("realistic.yaml")).unwrap();
        let unknown = text.replace("holder_play:", "holder_slop:");
        let e = WorldModel::from_yaml(&unknown).unwrap_err().to_string();
        assert!(e.contains("holder_slop"), "{e}");
        let negative = text.replace("noise_hu: 15", "noise_hu: -3");
        let e = WorldModel::from_yaml(&negative).unwrap_err().to_string();
        assert!(e.contains("scanner.noise_hu"), "{e}");
        let nan = text.replace("noise_hu: 15", "noise_hu: .nan");
        let e = WorldModel::from_yaml(&nan).unwrap_err().to_string();
        assert!(e.contains("scanner.noise_hu"), "{e}");
    }
}
