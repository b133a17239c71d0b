//! The procedure node: the operator's interface to a CT-guided needle placement, over standard ROS 2 services.
//!
//! The procedure itself runs in acus-executive (ROS-free); this node only turns ROS requests into its requests and its
//! reports into ROS messages, and carries each console's e-stop and deadman to the cycle's safety supervisor.
//!
//! Services (std_srvs/Trigger unless noted; each answers when the request has run its course, with one line saying what
//! happened or why not): `/procedure/scan` (planning scan), `/plan` (entry + target → plan), `/align`, `/insert_step`
//! (applies the correction from the last check scan, inserts one step, takes and analyses the check scan), `/confirm`,
//! `/retract`, `/abort`, `/reset_fault`, `/procedure/new`, `/enable` (std_srvs/SetBool: power the drives, true, or remove
//! power, false; powered drives hold their actual position).
//!
//! Safety inputs, per console named in the configuration (std_msgs/Bool, published at ≥ 20 Hz by the console):
//! `/estop/<console>` (true = pressed) and `/deadman/<console>` (true = held). Each message refreshes that console's own
//! source in the cycle ([`acus_ethercat::safety::SafetyInput`]); one console never refreshes another. A console silent
//! for its deadline counts as pressed (e-stop) and released (deadman), judged twice: here on the wall clock, and in the
//! cycle on the drive clock (which also catches this node or its executor stalling).
//!
//! Topics in: `/plan/entry` and `/plan/target` (geometry_msgs/PointStamped, frame `ct`), and `/registration/fiducials`
//! (geometry_msgs/PoseArray, frame `ct`: the sphere centres the registration node found), which this procedure matches,
//! fits and gates itself, so the registration node may run in another process or on another host. Out: `/procedure/state`
//! (std_msgs/String, transient local), and as std_msgs/String holding one JSON object each ([`crate::wire`]):
//! `/procedure/requests` (every request as received, with an id), `/procedure/answers` (its answer, same id),
//! `/procedure/faults` (each latched fault: kind and cause), `/scans` (each series written: kind, folder, UIDs); also
//! `/needle/tip` (geometry_msgs/PoseStamped, `robot_base`, from the measured joints) and `/diagnostics` (check scans).

mod report;

use std::sync::Arc;
use std::time::Duration;

use acus_control::frames::Point;
use acus_ethercat::safety::SafetyInput;
use acus_executive::{Executive, Op};
pub use acus_executive::{GatingSettings, NeedleSpec, ProcedureSettings, ScanPurpose, ScanSource};
use futures::StreamExt;
use r2r::geometry_msgs::msg::{PointStamped, PoseArray, PoseStamped};
use r2r::std_msgs::msg::Bool;
use r2r::std_srvs::srv::{SetBool, Trigger};
use r2r::QosProfile;

use crate::error::RosContext;
use crate::motion::Motion;
use crate::{msg, NodeError, RunningNode, Spinner};

/// One operator console's safety inputs, registered with the cycle before the motion supervisor starts.
pub struct Console {
    /// Its name: the topics are `/estop/<name>` and `/deadman/<name>`.
    pub name: String,
    /// Its e-stop source in the cycle.
    pub estop: SafetyInput,
    /// Its deadman (enable) source in the cycle.
    pub deadman: SafetyInput,
    /// Longest silence of either topic before it counts as pressed / released (wall clock).
    pub deadline: Duration,
}

/// How often a console publishes its state (the deadline is a few of these).
pub const CONSOLE_PERIOD: Duration = Duration::from_millis(50);

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
    consoles: Vec<Console>,
) -> Result<RunningNode, NodeError> {
    let mut node = r2r::Node::create(ctx.clone(), "procedure", "").ros("create node procedure")?;
    let latched = QosProfile::default().transient_local().keep_last(1);
    let mut services = Vec::new();
    for (name, op) in TRIGGERS {
        let stream = node
            .create_service::<Trigger::Service>(name, QosProfile::services_default())
            .ros(name)?;
        services.push((name, op, stream));
    }
    let mut power = node
        .create_service::<SetBool::Service>("/enable", QosProfile::services_default())
        .ros("/enable")?;
    let mut safety_streams = Vec::new();
    for console in consoles {
        let estop = node
            .subscribe::<Bool>(&format!("/estop/{}", console.name), QosProfile::default())
            .ros(format!("subscribe /estop/{}", console.name))?;
        let deadman = node
            .subscribe::<Bool>(&format!("/deadman/{}", console.name), QosProfile::default())
            .ros(format!("subscribe /deadman/{}", console.name))?;
        safety_streams.push((console, estop, deadman));
    }
    let entry = node
        .subscribe::<PointStamped>("/plan/entry", latched.clone())
        .ros("subscribe /plan/entry")?;
    let target = node
        .subscribe::<PointStamped>("/plan/target", latched.clone())
        .ros("subscribe /plan/target")?;
    let mut detections = node
        .subscribe::<PoseArray>(crate::registration::FIDUCIALS_TOPIC, QosProfile::default())
        .ros("subscribe /registration/fiducials")?;
    let mut belt = node
        .subscribe::<r2r::sensor_msgs::msg::FluidPressure>(crate::wire::RESPIRATION_TOPIC, QosProfile::default())
        .ros("subscribe /respiration")?;
    let publishers = report::Publishers::create(&mut node, latched)?;
    let tip_pub = node
        .create_publisher::<PoseStamped>("/needle/tip", QosProfile::default())
        .ros("/needle/tip")?;
    let spinner = Spinner::start(node)?;

    let model = settings.planner.model().clone();
    let running = Executive::start(settings, motion.clone(), scanner);
    let executive = running.executive.clone();
    let mut tasks = running.tasks;
    tasks.push(tokio::spawn(publishers.clone().run(running.reports)));
    for (name, op, mut stream) in services {
        let executive = executive.clone();
        let publishers = publishers.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(request) = stream.next().await {
                let id = publishers.request(name, op);
                let answer = executive.request(op).await;
                publishers.answer(id, &answer);
                let response = Trigger::Response {
                    success: answer.ok,
                    message: answer.text,
                };
                if let Err(e) = request.respond(response) {
                    tracing::warn!("answering a procedure service failed: {e}");
                }
            }
        }));
    }
    let power_executive = executive.clone();
    let power_publishers = publishers.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(request) = power.next().await {
            let op = Op::Power(request.message.data);
            let id = power_publishers.request("/enable", op);
            let answer = power_executive.request(op).await;
            power_publishers.answer(id, &answer);
            let response = SetBool::Response {
                success: answer.ok,
                message: answer.text,
            };
            if let Err(e) = request.respond(response) {
                tracing::warn!("answering /enable failed: {e}");
            }
        }
    }));
    for (console, estop, deadman) in safety_streams {
        let Console {
            name,
            estop: estop_input,
            deadman: deadman_input,
            deadline,
        } = console;
        tasks.push(tokio::spawn(follow_source(
            format!("/estop/{name}"),
            estop,
            estop_input,
            deadline,
            true,
        )));
        tasks.push(tokio::spawn(follow_source(
            format!("/deadman/{name}"),
            deadman,
            deadman_input,
            deadline,
            false,
        )));
    }
    for (mut stream, is_target) in [(entry, false), (target, true)] {
        let executive = executive.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = stream.next().await {
                if m.header.frame_id != "ct" {
                    tracing::warn!("ignoring a plan point in frame '{}': expected 'ct'", m.header.frame_id);
                    continue;
                }
                let p = Point::xyz(m.point.x, m.point.y, m.point.z);
                if is_target {
                    executive.target(p).await;
                } else {
                    executive.entry(p).await;
                }
            }
        }));
    }
    let belt_executive = executive.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = belt.next().await {
            let t = f64::from(m.header.stamp.sec) + f64::from(m.header.stamp.nanosec) * 1e-9;
            belt_executive.respiration(acus_executive::BeltSample {
                t,
                value: m.fluid_pressure,
            });
        }
    }));
    let registration_executive = executive.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = detections.next().await {
            match crate::registration::centres(&m) {
                Ok(centres) => registration_executive.detections(centres).await,
                Err(e) => tracing::warn!("ignoring {e}"),
            }
        }
    }));
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
    Ok(RunningNode::new(spinner, tasks))
}

/// Carry one console topic to its cycle source. Each message refreshes the source with its level; silence beyond the
/// deadline (wall clock) refreshes it with the safe level (`safe`: pressed for an e-stop, released for a deadman) so
/// that the stop does not wait for the cycle's own deadline, which on the simulated clock spans more wall time. If the
/// subscription ends, nothing refreshes the source any more and the cycle's deadline takes over.
async fn follow_source(
    topic: String,
    mut stream: impl futures::Stream<Item = Bool> + Unpin,
    mut input: SafetyInput,
    deadline: Duration,
    safe: bool,
) {
    let mut silent = false;
    loop {
        match tokio::time::timeout(deadline, stream.next()).await {
            Ok(Some(m)) => {
                if silent {
                    tracing::info!("{topic} is heard again");
                    silent = false;
                }
                input.refresh(m.data);
            }
            Ok(None) => {
                tracing::error!("the {topic} subscription ended: the cycle's deadline stops the robot");
                return;
            }
            Err(_) => {
                if !silent {
                    tracing::error!(
                        "{topic} silent for {} ms: counts as {}",
                        deadline.as_millis(),
                        level(safe)
                    );
                    silent = true;
                }
                input.refresh(safe);
            }
        }
    }
}

fn level(safe: bool) -> &'static str {
    if safe {
        "pressed"
    } else {
        "released"
    }
}
