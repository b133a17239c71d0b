//! The simulation's configuration (launch/config/sim.yaml): typed, read once, range-checked at start-up. Two halves that
//! never mix: the controller's configuration ([`ControllerConfig`], the `controller:` section), and the simulated world
//! (the world file, launch/config/worlds/, with the patient's truth and every error source).

use std::path::{Path, PathBuf};

use acus_control::frames::{Ct, Point};
use acus_control::registration::QualityGate;
use acus_sim_twin::patient::PatientConfig;
use acus_sim_twin::world::{self, WorldModel};
use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The YAML file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimFile {
    /// The design URDF the twin's robot was built from (its errors are drawn against it), relative to the file.
    pub robot: PathBuf,
    /// Drive configuration, relative to the file.
    pub drives: PathBuf,
    /// Joint positions at power-on.
    pub start_pose: [f64; 6],
    /// The simulated world (noise model) run unless told otherwise: `ideal`, `realistic` or a file relative to this one.
    pub world: String,
    /// Skin entry the operator plans: on the anterior skin above this CT (x, z), m.
    pub entry_xz: [f64; 2],
    /// Planning scan.
    pub planning_scan: ScanFile,
    /// Check scans.
    pub check_scan: ScanFile,
    /// Seed of every random draw of the world (robot as built, frame, table, operator, needle, image noise).
    pub seed: u64,
    /// What the controller is configured with: all it knows besides frames, images and messages.
    pub controller: ControllerFile,
}

/// The controller's configuration: the nominal robot and frame (URDF), the needle's datasheet, the lesion as the
/// radiologist reads it off the planning scan, the tissue prior, the step schedule, the speeds and the registration gate.
/// Nothing here is read from the simulated world.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControllerFile {
    /// Nominal URDF (robot geometry and fiducial frame model), relative to the sim file.
    pub urdf: PathBuf,
    /// The needle's datasheet.
    pub needle: NeedleFile,
    /// The lesion as read off the planning scan.
    pub lesion: LesionFile,
    /// Prior on the needle's curvature in tissue for the correction, 1/m.
    pub curvature_prior: f64,
    /// Prior 1σ of the needle axis's tilt at the entry (the robot's pointing accuracy after registration, as the
    /// controller assumes it), rad.
    pub axis_tilt_prior: f64,
    /// Prior 1σ of the needle entry's lateral offset (likewise), m.
    pub axis_offset_prior: f64,
    /// No correction when the tip is this close to the target, m.
    pub done_within: f64,
    /// Below this remaining depth the needle is only advanced, not re-aimed, m.
    pub min_correction_depth: f64,
    /// Step schedule.
    pub planning: PlanningFile,
    /// Speeds.
    pub motion: MotionFile,
    /// Registration quality gate (defaults: at least 6 fiducials, FRE ≤ 0.5 mm RMS, every residual ≤ 1 mm, predicted
    /// TRE at the target ≤ 1 mm).
    #[serde(default)]
    pub registration_gate: Option<GateFile>,
    /// Operator consoles, each with its own e-stop and deadman (`/estop/<name>`, `/deadman/<name>`); every one must be
    /// heard. Default: one console, `operator`.
    #[serde(default = "default_consoles")]
    pub consoles: Vec<String>,
    /// Longest silence of a console topic before it counts as pressed / released, s (wall clock).
    #[serde(default = "default_console_deadline")]
    pub console_deadline: f64,
}

fn default_consoles() -> Vec<String> {
    vec!["operator".to_owned()]
}

fn default_console_deadline() -> f64 {
    0.25
}

/// The needle's datasheet values the finder looks for.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NeedleFile {
    /// Outer diameter, m.
    pub diameter: f64,
    /// Attenuation of its metal as the scanner reports it, HU.
    pub hu: f64,
}

/// The lesion to find again on each check scan.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LesionFile {
    /// Radius, m.
    pub radius: f64,
    /// Contrast to the surrounding tissue, HU.
    pub contrast_hu: f64,
}

/// Registration gate section; every field in metres.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
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

/// A scan protocol (the operator's choice at the scanner; the image noise is the world's).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanFile {
    /// In-plane pixel, m.
    pub pixel: f64,
    /// Slice spacing and thickness, m.
    pub slice: f64,
    /// Time the scan takes on the scanner (acquisition and reconstruction), s, for the simulated clock.
    pub seconds: f64,
}

/// Planning section.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanningFile {
    /// m.
    pub max_step: f64,
    /// m.
    pub insertion_margin: f64,
}

/// Motion section.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MotionFile {
    /// Fraction of the velocity limits.
    pub align_speed: f64,
    /// Fraction of the velocity limits.
    pub insertion_speed: f64,
}

/// The controller's configuration, resolved: the only input `system::start` builds the procedure's settings from.
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerConfig {
    /// The file section.
    pub file: ControllerFile,
    /// Nominal URDF text.
    pub urdf: String,
    /// The registration gate.
    pub gate: QualityGate,
    /// Entry point the operator planned, CT.
    pub entry: Point<Ct>,
    /// Target the operator picked on the planning scan, CT.
    pub target: Point<Ct>,
}

/// Everything resolved.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The file as read.
    pub file: SimFile,
    /// The controller's configuration.
    pub controller: ControllerConfig,
    /// Design URDF text (the twin builds its robot from it).
    pub design_urdf: String,
    /// Drive configuration path.
    pub drives_path: PathBuf,
    /// The simulated world.
    pub world: WorldModel,
    /// Where the world was read from.
    pub world_path: PathBuf,
    /// The patient and the robot's placement (truth).
    pub patient: PatientConfig,
}

/// The worlds shipped in launch/config/worlds/ (`ideal`, `realistic`), or a file.
pub fn world_path(choice: &str, relative_to: &Path) -> PathBuf {
    match choice {
        "ideal" | "realistic" => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/worlds")
            .join(format!("{choice}.yaml")),
        file => relative_to.join(file),
    }
}

impl SimConfig {
    /// Read and check `path`, in the world the file names.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_in(path, None)
    }

    /// Read and check `path` in `world` (`ideal`, `realistic` or a world file; none: the file's own choice).
    pub fn load_in(path: &Path, world: Option<&str>) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: SimFile = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        check(&file)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
        let design_urdf = read(&dir.join(&file.robot))?;
        let urdf = read(&dir.join(&file.controller.urdf))?;
        let world_path = match world {
            Some(w) => world_path(w, Path::new(".")),
            None => world_path(&file.world, dir),
        };
        let world = WorldModel::load(&world_path)?;
        let mut gate = QualityGate::default();
        if let Some(g) = file.controller.registration_gate {
            gate = QualityGate {
                min_fiducials: g.min_fiducials,
                max_fre_rms: g.max_fre_rms,
                max_fiducial_residual: g.max_fiducial_residual,
                max_predicted_tre: g.max_predicted_tre,
                ..gate
            };
        }
        let controller = ControllerConfig {
            file: file.controller.clone(),
            urdf,
            gate,
            entry: Point::xyz(0.0, 0.0, 0.0),
            target: Point::xyz(0.0, 0.0, 0.0),
        };
        let mut config = Self {
            drives_path: dir.join(&file.drives),
            file,
            controller,
            design_urdf,
            patient: PatientConfig::reference(),
            world,
            world_path,
        };
        config.apply_world()?;
        Ok(config)
    }

    /// Use `seed` for every draw of the world.
    pub fn set_seed(&mut self, seed: u64) -> Result<()> {
        self.file.seed = seed;
        self.apply_world()
    }

    /// The patient's truth from the world, and the operator's plan (entry and picked target) for the controller.
    pub fn apply_world(&mut self) -> Result<()> {
        let p = &self.world.patient;
        let [x, y, z] = p.lesion;
        self.patient.lesion = Point::xyz(x, y, z);
        self.patient.lesion_radius = p.lesion_radius;
        self.patient.lesion_hu = p.lesion_hu;
        self.patient.needle_radius = p.needle_radius;
        self.patient.tissue = p.tissue.model(self.file.seed);
        self.patient
            .tissue
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: patient.tissue: {e}", self.world_path.display()))?;
        self.plan_as_operator();
        Ok(())
    }

    /// The operator plans on the planning scan: the entry on the skin above `entry_xz`, the target where they read the
    /// lesion's centre (the true centre plus the world's pick error, drawn from the seed).
    pub fn plan_as_operator(&mut self) {
        let [ex, ez] = self.file.entry_xz;
        self.controller.entry = self.patient.skin_above(&Point::xyz(ex, 0.0, ez));
        let mut rng = world::rng(self.file.seed, world::Stream::Operator, 0);
        let pick = world::gaussian_vector(&mut rng, self.world.operator.target_pick_sigma);
        self.controller.target = Point::new(self.patient.lesion.coords + pick);
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
    }
    let c = &f.controller;
    positive("controller.needle.diameter [m]", c.needle.diameter, 0.005)?;
    positive("controller.needle.hu", c.needle.hu, 3071.0)?;
    positive("controller.lesion.radius [m]", c.lesion.radius, 0.05)?;
    positive("controller.lesion.contrast_hu", c.lesion.contrast_hu.abs(), 1000.0)?;
    positive("controller.curvature_prior [1/m]", c.curvature_prior + 1e-12, 20.0)?;
    positive("controller.axis_tilt_prior [rad]", c.axis_tilt_prior, 0.1)?;
    positive("controller.axis_offset_prior [m]", c.axis_offset_prior, 0.01)?;
    positive("controller.done_within [m]", c.done_within, 0.01)?;
    positive("controller.min_correction_depth [m]", c.min_correction_depth, 0.1)?;
    positive("controller.planning.max_step [m]", c.planning.max_step, 0.2)?;
    positive("controller.motion.align_speed", c.motion.align_speed, 1.0)?;
    positive("controller.motion.insertion_speed", c.motion.insertion_speed, 1.0)?;
    positive("controller.console_deadline [s]", c.console_deadline, 5.0)?;
    if c.consoles.is_empty() || c.consoles.len() > 4 {
        bail!("controller.consoles: {} consoles; give 1 to 4", c.consoles.len());
    }
    for (i, name) in c.consoles.iter().enumerate() {
        let ros_name = name.chars().next().is_some_and(|ch| ch.is_ascii_lowercase())
            && name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
        if !ros_name {
            bail!("controller.consoles[{i}] = {name:?}: a console name is lowercase letters, digits and _");
        }
        if c.consoles[..i].contains(name) {
            bail!("controller.consoles[{i}] = {name:?} is given twice");
        }
    }
    if !(c.planning.insertion_margin.is_finite() && c.planning.insertion_margin >= 0.0) {
        bail!(
            "controller.planning.insertion_margin = {} must be ≥ 0",
            c.planning.insertion_margin
        );
    }
    if f.start_pose.iter().chain(&f.entry_xz).any(|v| !v.is_finite()) {
        bail!("start_pose and entry_xz must be finite");
    }
    Ok(())
}
