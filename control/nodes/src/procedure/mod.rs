//! The procedure node: the operator's interface to a CT-guided needle placement, over standard ROS 2 services.
//!
//! It owns the procedure state machine (acus-control), which decides every motion; this node only turns operator
//! requests, safety inputs and reports into its events and carries out the actions it returns, through the motion
//! supervisor (EtherCAT) and a scan source (the CT scanner). One actor task owns all of it, so events reach the machine
//! one at a time, in order.
//!
//! Services (std_srvs/Trigger unless noted; each answers when the request has run its course, with one line saying what
//! happened or why not): `/procedure/scan` (planning scan), `/plan` (entry + target → plan), `/align`, `/insert_step`
//! (applies the correction from the last check scan, inserts one step, takes and analyses the check scan), `/confirm`,
//! `/retract`, `/abort`, `/reset_fault`, `/procedure/new`, `/enable` (std_srvs/SetBool: the deadman level).
//! Topics in: `/estop` (std_msgs/Bool, published at ≥ 10 Hz by each console; until the first message, after 0.5 s of
//! silence, and until 0.5 s after the last "pressed" from any console, the e-stop counts as pressed), `/plan/entry` and
//! `/plan/target` (geometry_msgs/PointStamped, frame `ct`). Out: `/procedure/state` (std_msgs/String, transient local),
//! `/needle/tip` (geometry_msgs/PoseStamped, `robot_base`, from the measured joints), `/diagnostics` (check scans).

mod actor;
pub mod check;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acus_control::frames::{Ct, Point};
use acus_control::planning::Planner;
use acus_control::registration::{GatedRegistration, RegistrationError};
use futures::StreamExt;
use r2r::geometry_msgs::msg::{PointStamped, PoseStamped};
use r2r::std_msgs::msg::{Bool, String as StringMsg};
use r2r::std_srvs::srv::{SetBool, Trigger};
use r2r::QosProfile;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::RosContext;
use crate::motion::Motion;
use crate::{msg, NodeError, RunningNode, Spinner};

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
    /// Acquire a scan; resolves to the series folder, or why there is none.
    fn acquire(&self, purpose: ScanPurpose) -> futures::future::BoxFuture<'static, Result<PathBuf, String>>;
}

/// Settings of the procedure node.
#[derive(Clone)]
pub struct ProcedureSettings {
    /// The planner (positioner model and step schedule).
    pub planner: Planner,
    /// Rules of the state machine.
    pub machine: acus_control::procedure::ProcedureConfig,
    /// The registration gate (the planner checks the predicted TRE at the target against it).
    pub gate: acus_control::registration::QualityGate,
    /// Entry point from the configuration (CT), until one arrives on `/plan/entry`.
    pub entry: Option<Point<Ct>>,
    /// Target from the configuration (CT), until one arrives on `/plan/target`.
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
    /// The lesion to find again on each check scan: radius (m) and contrast to the surrounding tissue (HU), as read off
    /// the planning scan; none to keep aiming at the planned target.
    pub lesion: Option<(f64, f64)>,
    /// The needle as its datasheet gives it, for the finder on each check scan.
    pub needle: NeedleSpec,
}

/// The needle's datasheet values the check-scan finder looks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NeedleSpec {
    /// Shaft radius (half the outer diameter), m.
    pub radius: f64,
    /// Attenuation of its metal as the scanner reports it, HU.
    pub hu: f64,
}

/// Operator requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Scan,
    Plan,
    Align,
    InsertStep,
    Confirm,
    Retract,
    Abort,
    Reset,
    New,
    Enable(bool),
}

/// Everything that reaches the actor (a few per second: the size difference between variants costs nothing).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Input {
    Request(Op, oneshot::Sender<(bool, String)>),
    EStop(bool),
    Registration(Result<GatedRegistration, RegistrationError>),
    Entry(Point<Ct>),
    Target(Point<Ct>),
}

/// Longest silence of `/estop` before it counts as pressed. E-stop consoles publish their state at ≥ 10 Hz.
pub const ESTOP_HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(500);

const TRIGGERS: [(&str, Op); 9] = [
    ("/procedure/scan", Op::Scan),
    ("/plan", Op::Plan),
    ("/align", Op::Align),
    ("/insert_step", Op::InsertStep),
    ("/confirm", Op::Confirm),
    ("/retract", Op::Retract),
    ("/abort", Op::Abort),
    ("/reset_fault", Op::Reset),
    ("/procedure/new", Op::New),
];

/// Start the `procedure` node.
pub fn start(
    ctx: &r2r::Context,
    settings: ProcedureSettings,
    motion: Motion,
    scanner: Arc<dyn ScanSource>,
    mut registrations: watch::Receiver<Option<Result<GatedRegistration, RegistrationError>>>,
) -> Result<RunningNode, NodeError> {
    let mut node = r2r::Node::create(ctx.clone(), "procedure", "").ros("create node procedure")?;
    let latched = QosProfile::default().transient_local().keep_last(1);
    let mut services = Vec::new();
    for (name, op) in TRIGGERS {
        let stream = node
            .create_service::<Trigger::Service>(name, QosProfile::services_default())
            .ros(name)?;
        services.push((op, stream));
    }
    let mut enable = node
        .create_service::<SetBool::Service>("/enable", QosProfile::services_default())
        .ros("/enable")?;
    let mut estop = node
        .subscribe::<Bool>("/estop", QosProfile::default())
        .ros("subscribe /estop")?;
    let entry = node
        .subscribe::<PointStamped>("/plan/entry", latched.clone())
        .ros("subscribe /plan/entry")?;
    let target = node
        .subscribe::<PointStamped>("/plan/target", latched.clone())
        .ros("subscribe /plan/target")?;
    let state_pub = node
        .create_publisher::<StringMsg>("/procedure/state", latched)
        .ros("/procedure/state")?;
    let tip_pub = node
        .create_publisher::<PoseStamped>("/needle/tip", QosProfile::default())
        .ros("/needle/tip")?;
    let diagnostics = node
        .create_publisher::<r2r::diagnostic_msgs::msg::DiagnosticArray>("/diagnostics", QosProfile::default())
        .ros("/diagnostics")?;
    let spinner = Spinner::start(node)?;

    let (tx, rx) = mpsc::channel::<Input>(64);
    let mut tasks = Vec::new();
    for (op, mut stream) in services {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(request) = stream.next().await {
                let (reply_tx, reply_rx) = oneshot::channel();
                let (success, message) = if tx.send(Input::Request(op, reply_tx)).await.is_err() {
                    (false, "procedure node stopped".to_owned())
                } else {
                    reply_rx.await.unwrap_or((false, "procedure node stopped".to_owned()))
                };
                if let Err(e) = request.respond(Trigger::Response { success, message }) {
                    tracing::warn!("answering a procedure service failed: {e}");
                }
            }
        }));
    }
    let enable_tx = tx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(request) = enable.next().await {
            let (reply_tx, reply_rx) = oneshot::channel();
            let op = Op::Enable(request.message.data);
            let (success, message) = if enable_tx.send(Input::Request(op, reply_tx)).await.is_err() {
                (false, "procedure node stopped".to_owned())
            } else {
                reply_rx.await.unwrap_or((false, "procedure node stopped".to_owned()))
            };
            if let Err(e) = request.respond(SetBool::Response { success, message }) {
                tracing::warn!("answering /enable failed: {e}");
            }
        }
    }));
    // The e-stop bypasses the actor's queue to the drives (defence in depth), then informs the machine in order. Its
    // state must keep arriving: a console that falls silent counts as pressed (a cut cable must not read "released").
    // Several consoles may publish on the topic, and a message carries no sender: a "released" only counts once no
    // "pressed" has arrived for a heartbeat period, so one console cannot release a stop held on another.
    let (estop_tx, estop_motion) = (tx.clone(), motion.clone());
    tasks.push(tokio::spawn(async move {
        let mut pressed = true;
        let mut last_press: Option<tokio::time::Instant> = None;
        loop {
            let held = match tokio::time::timeout(ESTOP_HEARTBEAT_TIMEOUT, estop.next()).await {
                Ok(Some(m)) if m.data => {
                    last_press = Some(tokio::time::Instant::now());
                    true
                }
                Ok(Some(_)) => last_press.is_some_and(|t| t.elapsed() < ESTOP_HEARTBEAT_TIMEOUT),
                Ok(None) => {
                    // The subscription is gone: nothing can release the stop any more, so it stays pressed.
                    tracing::error!("the /estop subscription ended: emergency stop held");
                    let _ = estop_motion.emergency_stop(true).await;
                    let _ = estop_tx.send(Input::EStop(true)).await;
                    return;
                }
                Err(_) if pressed => continue,
                Err(_) => {
                    tracing::error!(
                        "e-stop state not received for {} ms: treated as pressed",
                        ESTOP_HEARTBEAT_TIMEOUT.as_millis()
                    );
                    true
                }
            };
            pressed = held;
            let _ = estop_motion.emergency_stop(held).await;
            let _ = estop_tx.send(Input::EStop(held)).await;
        }
    }));
    for (mut stream, is_target) in [(entry, false), (target, true)] {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = stream.next().await {
                if m.header.frame_id != "ct" {
                    tracing::warn!("ignoring a plan point in frame '{}': expected 'ct'", m.header.frame_id);
                    continue;
                }
                let p = Point::xyz(m.point.x, m.point.y, m.point.z);
                let _ = tx
                    .send(if is_target { Input::Target(p) } else { Input::Entry(p) })
                    .await;
            }
        }));
    }
    let registration_tx = tx.clone();
    tasks.push(tokio::spawn(async move {
        while registrations.changed().await.is_ok() {
            let latest = registrations.borrow_and_update().clone();
            if let Some(result) = latest {
                let _ = registration_tx.send(Input::Registration(result)).await;
            }
        }
    }));
    let model = settings.planner.model().clone();
    let tip_status = motion.status();
    tasks.push(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        loop {
            ticker.tick().await;
            let q = tip_status.borrow().actual;
            let needle = model.forward(&q);
            let (p, o) = (needle.tip.coords, needle.tip_orientation);
            let pose = r2r::geometry_msgs::msg::Pose {
                position: r2r::geometry_msgs::msg::Point { x: p.x, y: p.y, z: p.z },
                orientation: r2r::geometry_msgs::msg::Quaternion {
                    x: o.i,
                    y: o.j,
                    z: o.k,
                    w: o.w,
                },
            };
            if tip_pub
                .publish(&PoseStamped {
                    header: msg::header("robot_base"),
                    pose,
                })
                .is_err()
            {
                tracing::warn!("publishing /needle/tip failed");
            }
        }
    }));
    let actor = actor::Actor::new(settings, motion, scanner, state_pub, diagnostics);
    tasks.push(tokio::spawn(actor.run(rx)));
    Ok(RunningNode::new(spinner, tasks))
}
