//! `acus sim --tracker sim|TTY`: the NDI tracker node (acus-nodes' `tracker`) in this process, on a tracker behind a
//! tty or on the simulated one (acus-sim-serial's `SimNdi` behind a pty in `<out>/tracker/`), which sees the twin's
//! needle from the encoder positions.
//!
//! The node gets only what a lab configures: the calibration of the controller's configuration (`controller.tracker`:
//! the reference's mount on the frame, the tip in the needle tool, the port handles) and the controller's fiducial
//! model. The simulated tracker's truth (camera placement, tool mounts as built, the needle it sees) stays here in the
//! composition root and in sim/; [`TrackerHook::truth`] keeps its last frame for `<out>/truth.json`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use acus_control::frames::{Ct, NeedleTool, Point, RobotBase, Tracker, TrackerReference, Transform};
use acus_control::kinematics::JointPositions;
use acus_control::registration::FiducialModel;
use acus_ethercat::runner::Pacing;
use acus_nodes::tracker::{self, TrackerNodeConfig, TrackerStartError};
use acus_nodes::RunningNode;
use acus_serial::ndi::NdiConfig;
use acus_sim_serial::ndi::{SimNdi, SimNdiConfig};
use acus_sim_twin::patient::Patient;
use acus_sim_twin::tracker::{TrackerErrors, TrackerRig, TwinTracker};
use acus_sim_twin::world::FrameErrors;
use acus_sim_twin::TwinError;

use crate::config::TrackerFile;

/// Where the tracker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerAt {
    /// An NDI tracker (or any device speaking the combined API) on this tty.
    Device(PathBuf),
    /// The simulated tracker behind a pty in `<out>/tracker/`, seeing the twin's needle.
    Simulated,
}

impl TrackerAt {
    /// `sim` or a tty, as `--tracker` takes it.
    pub fn from_arg(arg: &str) -> Self {
        match arg {
            "sim" => TrackerAt::Simulated,
            path => TrackerAt::Device(PathBuf::from(path)),
        }
    }
}

/// Why the tracker did not start.
#[derive(Debug, thiserror::Error)]
pub enum TrackerHookError {
    /// The controller's configuration has no `controller.tracker` section.
    #[error("--tracker needs the tracker's calibration: the configuration has no controller.tracker section")]
    NotConfigured,
    /// The patient's lock was poisoned by a panic elsewhere.
    #[error("the simulated patient is unavailable (a thread panicked holding it)")]
    Patient,
    /// The twin cannot place the simulated tracker's rig.
    #[error("the simulated tracker's rig: {0}")]
    Rig(#[from] TwinError),
    /// The simulated tracker's pty.
    #[error("the simulated tracker: {0}")]
    Sim(#[from] acus_sim_serial::SimError),
    /// Its folder.
    #[error("creating {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The node refused its settings or ROS refused an endpoint.
    #[error("the tracker node: {0}")]
    Node(#[from] TrackerStartError),
}

/// The simulated tracker's truth at its last camera frame (never given to the controller).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerTruth {
    /// Camera time of the frame, s since the simulated tracker started.
    pub camera_time: f64,
    /// The straight needle's tip the needle tool follows (guide tip + depth along the holder), CT.
    pub tip_ct: Point<Ct>,
    /// The same tip, robot base.
    pub tip_robot: Point<RobotBase>,
    /// The reference tool as the camera sees it, without the tracker's noise.
    pub t_tracker_ref: Transform<Tracker, TrackerReference>,
    /// The needle tool as the camera sees it, without the tracker's noise.
    pub t_tracker_needle: Transform<Tracker, NeedleTool>,
}

/// The running tracker: the node and, when simulated, the device. Dropping it stops both (the node first: `TSTOP`).
pub struct TrackerHook {
    /// The tracker node.
    pub node: RunningNode,
    /// The simulated tracker, if one was started.
    pub sim: Option<SimNdi>,
    /// The simulated tracker's truth, updated every camera frame (none on a device).
    pub truth: Option<Arc<Mutex<Option<TrackerTruth>>>>,
}

impl TrackerHook {
    /// The simulated tracker's truth at its last frame, if it has served one.
    pub fn last_truth(&self) -> Option<TrackerTruth> {
        let truth = self.truth.as_ref()?;
        *truth.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The twin's side of a simulated tracker.
pub struct SimWorld<'a> {
    /// The patient (its robot as built and frame as manufactured are read once, here).
    pub patient: &'a Arc<Mutex<Patient>>,
    /// The design fiducial model (the one the frame was manufactured from).
    pub design: &'a FiducialModel,
    /// The world's frame errors: the tool mounts are machined like the frame ([`TrackerErrors::from_frame`]).
    pub frame_errors: &'a FrameErrors,
    /// The world's seed.
    pub seed: u64,
}

/// Distance of the simulated camera from the middle of the frame and the guide tip, m (a ceiling mount).
const CAMERA_DISTANCE: f64 = 1.5;

/// The reply timeout on the simulated clock (the driver's default, 200 ms, on the real-time clock). The simulated clock
/// keeps a cycle thread busy on every core it can get: a reply late by 200 ms of wall time there is the tracker or its
/// reader waiting for a core, not a tracker gone silent (as the pedal's `SIMULATED_PEDAL_DEADLINE`).
pub const SIMULATED_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Start the tracker node on `at`, inside a tokio runtime, with the controller's `calibration` (none: refused) and
/// fiducial `model`. `world` and `joints` (the encoder positions now) are used only for [`TrackerAt::Simulated`].
pub fn start_tracker(
    ctx: &r2r::Context,
    at: &TrackerAt,
    (out, pacing): (&Path, Pacing),
    (calibration, model): (Option<&TrackerFile>, &FiducialModel),
    world: SimWorld<'_>,
    joints: impl Fn() -> JointPositions + Send + Sync + 'static,
) -> Result<TrackerHook, TrackerHookError> {
    let file = calibration.ok_or(TrackerHookError::NotConfigured)?;
    let (path, sim, truth) = match at {
        TrackerAt::Device(path) => (path.clone(), None, None),
        TrackerAt::Simulated => {
            let twin = {
                let patient = world.patient.lock().map_err(|_| TrackerHookError::Patient)?;
                let rig = TrackerRig::overhead(&patient, world.design, CAMERA_DISTANCE)?;
                let errors = TrackerErrors::from_frame(world.frame_errors);
                TwinTracker::new(&patient, world.design, rig, &errors, world.seed)?
            };
            let dir = out.join("tracker");
            std::fs::create_dir_all(&dir).map_err(|source| TrackerHookError::Folder {
                path: dir.clone(),
                source,
            })?;
            let config = SimNdiConfig {
                seed: world.seed ^ 0x5EED_0F4D,
                ..SimNdiConfig::new(2)
            };
            let truth = Arc::new(Mutex::new(None));
            let last = Arc::clone(&truth);
            let poses = twin.into_observed_pose_fn(
                move |_| joints(),
                move |camera_time, s| {
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(TrackerTruth {
                        camera_time,
                        tip_ct: s.tip_ct,
                        tip_robot: s.tip_robot,
                        t_tracker_ref: s.t_tracker_ref,
                        t_tracker_needle: s.t_tracker_needle,
                    });
                },
            );
            let sim = SimNdi::start(&dir, config, poses)?;
            (sim.path().to_owned(), Some(sim), Some(truth))
        }
    };
    let mut ndi = NdiConfig::new(path);
    if pacing == Pacing::Simulated {
        ndi.reply_timeout = SIMULATED_REPLY_TIMEOUT;
    }
    let node = tracker::start(
        ctx,
        TrackerNodeConfig {
            ndi,
            reference_handle: file.reference_handle,
            needle_handle: file.needle_handle,
            calibration: file.calibration(),
            model: model.clone(),
        },
    )?;
    Ok(TrackerHook { node, sim, truth })
}
