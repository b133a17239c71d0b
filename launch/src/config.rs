//! The simulation's configuration (launch/config/sim.yaml): typed, read once, range-checked at start-up.

use std::path::{Path, PathBuf};

use acus_control::frames::{Ct, Point};
use acus_control::registration::QualityGate;
use acus_sim_needle::TissueModel;
use acus_sim_twin::patient::PatientConfig;
use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The YAML file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimFile {
    /// URDF, relative to the file.
    pub robot: PathBuf,
    /// Drive configuration, relative to the file.
    pub drives: PathBuf,
    /// Joint positions at power-on.
    pub start_pose: [f64; 6],
    /// The patient.
    pub patient: PatientFile,
    /// The needle–tissue pair.
    pub tissue: TissueFile,
    /// Planning scan.
    pub planning_scan: ScanFile,
    /// Check scans.
    pub check_scan: ScanFile,
    /// Step schedule.
    pub planning: PlanningFile,
    /// Speeds.
    pub motion: MotionFile,
    /// Seed of the needle and the image noise.
    pub seed: u64,
    /// Registration quality gate (defaults: at least 6 fiducials, FRE ≤ 0.5 mm RMS, every residual ≤ 1 mm, predicted
    /// TRE at the target ≤ 1 mm).
    #[serde(default)]
    pub registration_gate: Option<GateFile>,
}

/// Registration gate section; every field in metres.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateFile {
    /// Fewest matched fiducials.
    pub min_fiducials: usize,
    /// m.
    pub max_fre_rms: f64,
    /// m.
    pub max_fiducial_residual: f64,
    /// m.
    pub max_predicted_tre: f64,
}

/// Patient section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientFile {
    /// Lesion centre, CT, m.
    pub lesion: [f64; 3],
    /// Lesion radius, m.
    pub lesion_radius: f64,
    /// Lesion HU.
    pub lesion_hu: f64,
    /// Entry on the anterior skin above this CT (x, z), m.
    pub entry_xz: [f64; 2],
}

/// Tissue section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TissueFile {
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

/// A scan protocol.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanFile {
    /// In-plane pixel, m.
    pub pixel: f64,
    /// Slice spacing and thickness, m.
    pub slice: f64,
    /// Image noise σ, HU.
    pub noise_hu: f64,
    /// Time the scan takes on the scanner (acquisition and reconstruction), s, for the simulated clock.
    pub seconds: f64,
}

/// Planning section.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanningFile {
    /// m.
    pub max_step: f64,
    /// m.
    pub insertion_margin: f64,
}

/// Motion section.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionFile {
    /// Fraction of the velocity limits.
    pub align_speed: f64,
    /// Fraction of the velocity limits.
    pub insertion_speed: f64,
}

/// Everything resolved.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The file as read.
    pub file: SimFile,
    /// URDF text.
    pub urdf: String,
    /// Drive configuration path.
    pub drives_path: PathBuf,
    /// The patient and the robot's placement.
    pub patient: PatientConfig,
    /// Entry point, CT.
    pub entry: Point<Ct>,
    /// The registration gate.
    pub gate: QualityGate,
}

impl SimConfig {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: SimFile = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let urdf_path = dir.join(&file.robot);
        let urdf = std::fs::read_to_string(&urdf_path).with_context(|| format!("reading {}", urdf_path.display()))?;
        check(&file)?;
        let mut patient = PatientConfig::reference();
        let [x, y, z] = file.patient.lesion;
        patient.lesion = Point::xyz(x, y, z);
        patient.lesion_radius = file.patient.lesion_radius;
        patient.lesion_hu = file.patient.lesion_hu;
        let t = &file.tissue;
        patient.tissue = TissueModel {
            curvature: t.curvature,
            curvature_spread: t.curvature_spread,
            heading_noise: t.heading_noise,
            shift_max: t.shift_max,
            shift_length: t.shift_length,
            bevel_angle: t.bevel_angle,
            seed: file.seed,
            ..TissueModel::default()
        };
        patient
            .tissue
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: tissue: {e}", path.display()))?;
        let [ex, ez] = file.patient.entry_xz;
        let entry = patient.skin_above(&Point::xyz(ex, 0.0, ez));
        let mut gate = QualityGate::default();
        if let Some(g) = file.registration_gate {
            gate = QualityGate {
                min_fiducials: g.min_fiducials,
                max_fre_rms: g.max_fre_rms,
                max_fiducial_residual: g.max_fiducial_residual,
                max_predicted_tre: g.max_predicted_tre,
                ..gate
            };
        }
        Ok(Self {
            drives_path: dir.join(&file.drives),
            file,
            urdf,
            patient,
            entry,
            gate,
        })
    }
}

fn check(f: &SimFile) -> Result<()> {
    let positive = |name: &str, v: f64, max: f64| -> Result<()> {
        if !(v.is_finite() && v > 0.0 && v <= max) {
            bail!("{name} = {v} outside (0, {max}]");
        }
        Ok(())
    };
    for (name, s) in [("planning_scan", &f.planning_scan), ("check_scan", &f.check_scan)] {
        positive(&format!("{name}.pixel [m]"), s.pixel, 0.005)?;
        positive(&format!("{name}.slice [m]"), s.slice, 0.01)?;
        positive(&format!("{name}.seconds"), s.seconds, 600.0)?;
        if !(s.noise_hu.is_finite() && s.noise_hu >= 0.0) {
            bail!("{name}.noise_hu = {} must be ≥ 0", s.noise_hu);
        }
    }
    positive("patient.lesion_radius [m]", f.patient.lesion_radius, 0.05)?;
    positive("planning.max_step [m]", f.planning.max_step, 0.2)?;
    positive("motion.align_speed", f.motion.align_speed, 1.0)?;
    positive("motion.insertion_speed", f.motion.insertion_speed, 1.0)?;
    if !(f.planning.insertion_margin.is_finite() && f.planning.insertion_margin >= 0.0) {
        bail!(
            "planning.insertion_margin = {} must be ≥ 0",
            f.planning.insertion_margin
        );
    }
    if f.start_pose
        .iter()
        .chain(&f.patient.lesion)
        .chain(&f.patient.entry_xz)
        .any(|v| !v.is_finite())
    {
        bail!("start_pose, patient.lesion and patient.entry_xz must be finite");
    }
    Ok(())
}
