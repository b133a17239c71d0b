//! The simulation's configuration (launch/config/sim.yaml): typed, read once, range-checked at start-up. Two halves that
//! never mix: the controller's configuration ([`ControllerConfig`], the `controller:` section), and the simulated world
//! (the world file, launch/config/worlds/, with the patient's truth and every error source).
//!
//! Its own crate, without ROS (the `acus` composition root re-exports it as `acus_launch::config`), so that the loader
//! can be fuzzed and tested on any machine. Reading files is kept apart from parsing and checking: [`SimFile::from_yaml`]
//! and [`SimConfig::from_parts`] are pure functions of text, which the fuzz target drives directly.
#![deny(missing_docs)]

mod check;
mod error;
mod joints;
mod overrides;
mod respiration;
mod tracker;

use std::path::{Path, PathBuf};

use acus_control::frames::{Ct, Point};
use acus_control::kinematics::PositionerModel;
use acus_control::registration::QualityGate;
use acus_sim_twin::patient::PatientConfig;
use acus_sim_twin::world;
use serde::Deserialize;

/// The world file's types, for [`Parts`] (and so that a user of this crate needs no direct dependency on the twin).
pub use acus_sim_twin::world::{WorldError, WorldModel};
pub use error::ConfigError;
pub use overrides::Overrides;
pub use respiration::RespirationFile;
pub use tracker::{MountFile, TrackerFile};

/// The YAML file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimFile {
    /// The design URDF the twin's robot was built from (its errors are drawn against it), relative to the file.
    pub robot: PathBuf,
    /// Drive configuration, relative to the file.
    pub drives: PathBuf,
    /// Joint positions at power-on, chain order (in the file: by joint name, in chain order; see `joints`).
    #[serde(deserialize_with = "joints::deserialize")]
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
    /// The NDI tracker's calibration (reference on the frame, tip in the needle tool), for `acus sim --tracker`.
    #[serde(default)]
    pub tracker: Option<TrackerFile>,
    /// Respiratory gating of scans and insertion steps on a belt; none for a patient whose breathing does not matter.
    #[serde(default)]
    pub respiration: Option<RespirationFile>,
    /// Apply the check scans' corrections (default); false inserts straight along the plan and only measures (the
    /// comparison arm of an accuracy study; `acus sim --no-correction`).
    #[serde(default = "correct_by_default")]
    pub correct_on_check_scans: bool,
    /// Withdraw-and-redirect, for when no correction of the inserted needle reaches the target.
    #[serde(default)]
    pub redirect: RedirectFile,
}

/// When a check scan finds the needle off course and no correction of the inserted needle reaches the target, the
/// needle is withdrawn along its track to `depth` below the entry and re-aimed from there.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedirectFile {
    /// Tip depth below the entry to withdraw to, m: above the organ's capsule, in the subcutaneous tissue.
    pub depth: f64,
    /// Largest turn of the withdrawn needle about the entry, rad.
    pub max_angle: f64,
    /// Most redirects in one procedure (each is another pass through the tissue).
    pub max_count: usize,
}

impl Default for RedirectFile {
    /// 15 mm: the subcutaneous layer over the liver (CT-guided liver biopsy practice: withdraw to the subcutaneous
    /// tissue and redirect); 15°; two redirects.
    fn default() -> Self {
        Self {
            depth: 0.015,
            max_angle: 15f64.to_radians(),
            max_count: 2,
        }
    }
}

fn correct_by_default() -> bool {
    true
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

/// What a sim file names, read (for [`SimConfig::from_parts`]; [`SimConfig::load_in`] reads them from disk).
#[derive(Clone, Debug)]
pub struct Parts {
    /// The `robot` URDF's text.
    pub design_urdf: String,
    /// Where it was read from (for messages).
    pub design_path: PathBuf,
    /// The `controller.urdf` text.
    pub urdf: String,
    /// Where it was read from (for messages).
    pub urdf_path: PathBuf,
    /// The drive file's path (not read here).
    pub drives_path: PathBuf,
    /// The world, checked.
    pub world: WorldModel,
    /// Where the world was read from.
    pub world_path: PathBuf,
}

/// The worlds shipped in launch/config/worlds/ (`ideal`, `still`, `realistic`), or a file.
pub fn world_path(choice: &str, relative_to: &Path) -> PathBuf {
    match choice {
        "ideal" | "still" | "realistic" => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("worlds")
            .join(format!("{choice}.yaml")),
        file => relative_to.join(file),
    }
}

impl SimFile {
    /// Parse and check YAML text (no file is read: the paths it names are resolved by [`SimConfig::load_in`]).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let file: Self = serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".into(),
            message: e.to_string(),
        })?;
        file.check()?;
        Ok(file)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The positioner model of a URDF, or an error naming the field that points at it.
fn positioner(field: &'static str, path: &Path, urdf: &str) -> Result<PositionerModel, ConfigError> {
    PositionerModel::from_urdf_str(urdf).map_err(|e| ConfigError::Urdf {
        field,
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

impl SimConfig {
    /// Read and check `path`, in the world the file names.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_in(path, None)
    }

    /// Read and check `path` in `world` (`ideal`, `realistic` or a world file; none: the file's own choice). Reads the
    /// sim file, both URDFs and the world file; the drive file is only located here (`system::load_drives` reads it,
    /// checked against the joint order).
    pub fn load_in(path: &Path, world: Option<&str>) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let file = SimFile::from_yaml(&read(path)?).map_err(|e| e.in_file(&shown))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let design_path = dir.join(&file.robot);
        let urdf_path = dir.join(&file.controller.urdf);
        let world_path = match world {
            Some(w) => world_path(w, Path::new(".")),
            None => world_path(&file.world, dir),
        };
        let world = WorldModel::load(&world_path).map_err(|error| ConfigError::World {
            path: world_path.display().to_string(),
            error,
        })?;
        let parts = Parts {
            design_urdf: read(&design_path)?,
            design_path,
            urdf: read(&urdf_path)?,
            urdf_path,
            drives_path: dir.join(&file.drives),
            world,
            world_path,
        };
        Self::from_parts(file, parts)
    }

    /// Resolve a checked file with what it names, already read: both URDFs parsed as positioners (the start pose
    /// within the design's joint limits), the registration gate, the patient's truth and the operator's plan from the
    /// world. Pure: no file is read.
    pub fn from_parts(file: SimFile, parts: Parts) -> Result<Self, ConfigError> {
        let design = positioner("robot", &parts.design_path, &parts.design_urdf)?;
        file.check_robot(&design)?;
        positioner("controller.urdf", &parts.urdf_path, &parts.urdf)?;
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
            urdf: parts.urdf,
            gate,
            entry: Point::xyz(0.0, 0.0, 0.0),
            target: Point::xyz(0.0, 0.0, 0.0),
        };
        let mut config = Self {
            drives_path: parts.drives_path,
            file,
            controller,
            design_urdf: parts.design_urdf,
            patient: PatientConfig::reference(),
            world: parts.world,
            world_path: parts.world_path,
        };
        config.apply_world()?;
        Ok(config)
    }

    /// Use `seed` for every draw of the world.
    pub fn set_seed(&mut self, seed: u64) -> Result<(), ConfigError> {
        self.file.seed = seed;
        self.apply_world()
    }

    /// The patient's truth from the world, and the operator's plan (entry and picked target) for the controller.
    pub fn apply_world(&mut self) -> Result<(), ConfigError> {
        let p = &self.world.patient;
        let [x, y, z] = p.lesion;
        self.patient.lesion = Point::xyz(x, y, z);
        self.patient.lesion_radius = p.lesion_radius;
        self.patient.lesion_hu = p.lesion_hu;
        self.patient.needle_radius = p.needle_radius;
        self.patient.tissue = p.tissue.model(self.file.seed);
        self.patient.tissue.validate().map_err(|e| ConfigError::Tissue {
            path: self.world_path.display().to_string(),
            message: e.to_string(),
        })?;
        self.check_entry_on_body()?;
        self.plan_as_operator();
        Ok(())
    }

    /// The entry must lie above the body: off its sides, the skin point "above" it is no point of the skin, and off
    /// its ends the needle would go into air.
    fn check_entry_on_body(&self) -> Result<(), ConfigError> {
        let body = self.patient.body();
        let [ex, ez] = self.file.entry_xz;
        let (dx, dz) = (ex - body.center.coords.x, ez - body.center.coords.z);
        // Written so that NaN (a field set in code, not checked by `check`) fails too.
        let (across, along) = (dx.abs() < body.semi_x, dz.abs() <= body.length / 2.0);
        if !across {
            return Err(ConfigError::OutOfRange {
                field: "entry_xz[x]".into(),
                value: ex,
                range: format!("the body's width ({} ± {}) m", body.center.coords.x, body.semi_x),
            });
        }
        if !along {
            return Err(ConfigError::OutOfRange {
                field: "entry_xz[z]".into(),
                value: ez,
                range: format!("the body's length ({} ± {}) m", body.center.coords.z, body.length / 2.0),
            });
        }
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
