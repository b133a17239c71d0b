//! acus-executive: the procedure's execution, free of ROS.
//!
//! The procedure actor feeds the state machine (acus-control) with operator requests, safety levels and outcomes, and
//! carries out its actions: motions through the motion supervisor (the EtherCAT cycle), scans through a [`ScanSource`],
//! check-scan analysis on a blocking thread. Everything that happens comes back as a typed [`Report`]. The ROS 2 nodes
//! (acus-nodes) only translate requests in and reports out, so the whole procedure runs, and is tested, with plain
//! `cargo test` on emulated drives.
//!
//! The e-stop and the enable (deadman) are not requests: they are the cycle's own verdict on its registered sources
//! (`Status::estop_active`, `Status::enable_held`), read from the motion status. No message on any bus can hold or
//! release them here; the consoles' adapters only refresh their sources.
#![deny(missing_docs)]

mod actor;
pub mod check;
mod fault;
pub mod gating;
pub mod motion;

use std::path::PathBuf;

use acus_control::frames::{Ct, Point};
use acus_control::planning::Planner;
use acus_control::procedure::Stage;
use acus_control::registration::{GatedRegistration, RegistrationError};
use tokio::sync::{mpsc, oneshot};

pub use check::{CheckResult, CheckScanError};
pub use fault::ExecutiveFault;
pub use gating::{BeltSample, GatingError, GatingSettings};
pub use motion::{describe_fault, Motion, MotionError, MotionStatus};

/// What a scan is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanPurpose {
    /// The planning scan (fiducials, patient, target).
    Planning,
    /// The check scan after insertion step `step` (index from 0).
    Check {
        /// Step index.
        step: usize,
    },
}

/// A CT scanner as the procedure sees it: asked for a scan, it answers with the folder of the new series.
pub trait ScanSource: Send + Sync {
    /// Acquire a scan; resolves to the series folder, or why there is none (for the operator).
    fn acquire(&self, purpose: ScanPurpose) -> futures::future::BoxFuture<'static, Result<PathBuf, String>>;
}

/// Settings of the procedure.
#[derive(Clone)]
pub struct ProcedureSettings {
    /// The planner (positioner model and step schedule).
    pub planner: Planner,
    /// Rules of the state machine.
    pub machine: acus_control::procedure::ProcedureConfig,
    /// The registration gate: the procedure gates the fiducials it hears of itself, and the planner checks the
    /// predicted TRE at the target against it.
    pub gate: acus_control::registration::QualityGate,
    /// The fiducial frame (from the URDF): the procedure fits `T_robot_ct` to the detections itself.
    pub fiducials: acus_control::registration::FiducialModel,
    /// Entry point from the configuration (CT), until the operator gives one.
    pub entry: Option<Point<Ct>>,
    /// Target from the configuration (CT), until the operator gives one.
    pub target: Option<Point<Ct>>,
    /// Fraction of the velocity limits for alignment and re-orientation.
    pub align_speed: f64,
    /// Fraction of the velocity limits for insertion and retraction.
    pub insertion_speed: f64,
    /// Prior on the needle's curvature for the correction, 1/m.
    pub curvature_prior: f64,
    /// Prior on the rigid error of the needle axis for the correction: the robot's pointing accuracy after registration,
    /// as the controller assumes it.
    pub axis_prior: acus_control::needle::AxisPrior,
    /// No correction when the tip is this close to the target, m.
    pub done_within: f64,
    /// Below this remaining depth (m) the needle is not re-aimed (a pivot would sweep the inserted needle through the
    /// tissue for little lateral gain), only advanced along its own axis to the target's depth.
    pub min_correction_depth: f64,
    /// Tip depth below the entry (m) a redirect withdraws the needle to before it re-aims: above the organ, in the
    /// subcutaneous tissue.
    pub redirect_depth: f64,
    /// The lesion to find again on each check scan: radius (m) and contrast to the surrounding tissue (HU), as read off
    /// the planning scan; none to keep aiming at the planned target.
    pub lesion: Option<(f64, f64)>,
    /// The needle as its datasheet gives it, for the finder on each check scan.
    pub needle: NeedleSpec,
    /// Respiratory gating of scans and insertion steps (breath-holds read from a belt); none for a patient whose
    /// breathing does not matter (a phantom).
    pub gating: Option<GatingSettings>,
    /// Apply the check scans' corrections (false: insert straight along the plan and only measure, the comparison arm
    /// of an accuracy study).
    pub correct: bool,
}

/// The needle's datasheet values the check-scan finder looks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NeedleSpec {
    /// Shaft radius (half the outer diameter), m.
    pub radius: f64,
    /// Attenuation of its metal as the scanner reports it, HU.
    pub hu: f64,
}

/// An operator request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Acquire the planning scan.
    Scan,
    /// Plan from the entry and target held.
    Plan,
    /// Align the needle on the planned line.
    Align,
    /// Apply the last correction, insert one step, take and analyse its check scan.
    InsertStep,
    /// Confirm the tip at the target.
    Confirm,
    /// Retract the needle along its axis.
    Retract,
    /// Abort: stop, retraction stays possible.
    Abort,
    /// Reset a latched fault (every cause gone).
    Reset,
    /// Start over (needle out).
    New,
    /// Power the drives (true: they hold their actual position) or remove power (false).
    Power(bool),
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Scan => "scan",
            Op::Plan => "plan",
            Op::Align => "align",
            Op::InsertStep => "insert_step",
            Op::Confirm => "confirm",
            Op::Retract => "retract",
            Op::Abort => "abort",
            Op::Reset => "reset_fault",
            Op::New => "new",
            Op::Power(true) => "power on",
            Op::Power(false) => "power off",
        })
    }
}

/// The answer to a request, once it has run its course.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The request did what was asked.
    pub ok: bool,
    /// What happened or why not, then where the procedure stands (for the operator).
    pub text: String,
}

/// What the procedure reports, in order.
#[derive(Clone, Debug)]
pub enum Report {
    /// The stage changed.
    Stage(Stage),
    /// A request was answered.
    Answered {
        /// The request.
        op: Op,
        /// Its answer.
        answer: Answer,
    },
    /// A scan was written (before its analysis: a scan that cannot be analysed is reported too).
    Scan {
        /// What it is for.
        purpose: ScanPurpose,
        /// Its series folder.
        dir: PathBuf,
    },
    /// A check scan was analysed.
    CheckScan {
        /// Check scan number (from 1).
        n: usize,
        /// Its series folder.
        dir: PathBuf,
        /// What it showed.
        result: Box<CheckResult>,
    },
    /// A fault latched in the procedure, with its typed cause.
    Fault(ExecutiveFault),
    /// Tell the patient to hold their breath (true) or to breathe (false): for the patient's instructions (a scanner's
    /// breathing commands, or the radiographer).
    BreathHold(bool),
    /// The e-stop or enable level the cycle reports changed.
    Safety {
        /// An e-stop is active (a source pressed or silent).
        estop: bool,
        /// Every enable source held and fresh.
        enable_held: bool,
    },
}

/// Everything that reaches the actor (a few per second: the size difference between variants costs nothing).
#[allow(clippy::large_enum_variant)]
enum Input {
    Request(Op, oneshot::Sender<Answer>),
    Safety { estop: bool, enable_held: bool },
    Registration(Result<GatedRegistration, RegistrationError>),
    Detections(Vec<Point<Ct>>),
    Entry(Point<Ct>),
    Target(Point<Ct>),
}

/// Handle on a running procedure. Cheap to clone.
#[derive(Clone)]
pub struct Executive {
    tx: mpsc::Sender<Input>,
    belt: std::sync::Arc<tokio::sync::watch::Sender<Option<BeltSample>>>,
}

/// A started procedure: its handle, its reports, and the tasks that run it (abort them to stop it).
pub struct Running {
    /// The handle.
    pub executive: Executive,
    /// Reports, in order (unbounded: a few per second).
    pub reports: mpsc::UnboundedReceiver<Report>,
    /// The actor and the safety-level follower.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Executive {
    /// Start the procedure on the current tokio runtime.
    pub fn start(settings: ProcedureSettings, motion: Motion, scanner: std::sync::Arc<dyn ScanSource>) -> Running {
        let (tx, rx) = mpsc::channel::<Input>(64);
        let (reports_tx, reports) = mpsc::unbounded_channel();
        // The cycle's verdict on the safety sources reaches the machine on every change (and once at the start).
        let mut status = motion.status();
        let safety_tx = tx.clone();
        let follower = tokio::spawn(async move {
            let mut last = None;
            loop {
                let now = {
                    let s = status.borrow_and_update();
                    (s.estop_active.is_some(), s.enable_held)
                };
                if last != Some(now) {
                    last = Some(now);
                    let input = Input::Safety {
                        estop: now.0,
                        enable_held: now.1,
                    };
                    if safety_tx.send(input).await.is_err() {
                        return;
                    }
                }
                if status.changed().await.is_err() {
                    // The supervisor is gone: nothing can move; say so as an e-stop.
                    let _ = safety_tx
                        .send(Input::Safety {
                            estop: true,
                            enable_held: false,
                        })
                        .await;
                    return;
                }
            }
        });
        let (belt, belt_rx) = tokio::sync::watch::channel(None);
        let actor = actor::Actor::new(settings, motion, scanner, reports_tx, belt_rx);
        let actor = tokio::spawn(actor.run(rx));
        Running {
            executive: Executive {
                tx,
                belt: std::sync::Arc::new(belt),
            },
            reports,
            tasks: vec![follower, actor],
        }
    }

    /// Make a request; resolves when it has run its course.
    pub async fn request(&self, op: Op) -> Answer {
        let stopped = || Answer {
            ok: false,
            text: "procedure stopped".to_owned(),
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        if self.tx.send(Input::Request(op, reply_tx)).await.is_err() {
            return stopped();
        }
        reply_rx.await.unwrap_or_else(|_| stopped())
    }

    /// A registration outcome (from the registration node).
    pub async fn registration(&self, result: Result<GatedRegistration, RegistrationError>) {
        let _ = self.tx.send(Input::Registration(result)).await;
    }

    /// The fiducial centres the registration node found in the planning scan (CT, any order): the procedure matches,
    /// fits and gates them itself (at its own target), so it needs nothing from that node but this list.
    pub async fn detections(&self, centres: Vec<Point<Ct>>) {
        let _ = self.tx.send(Input::Detections(centres)).await;
    }

    /// A respiratory belt sample (at the belt's rate: it goes to the gate, not through the actor).
    pub fn respiration(&self, sample: BeltSample) {
        self.belt.send_replace(Some(sample));
    }

    /// The operator's entry point, CT.
    pub async fn entry(&self, p: Point<Ct>) {
        let _ = self.tx.send(Input::Entry(p)).await;
    }

    /// The operator's target, CT.
    pub async fn target(&self, p: Point<Ct>) {
        let _ = self.tx.send(Input::Target(p)).await;
    }
}
