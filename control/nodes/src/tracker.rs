//! The tracker node: the NDI tracker (acus-serial's `run_tracker`, reconnecting on its own) following the needle between
//! check scans.
//!
//! - `/tracker/reference`, `/tracker/needle` (geometry_msgs/PoseStamped, frame `tracker`, metres): `T_tracker_tool` of
//!   the reference on the fiducial frame and of the tool on the needle hub, once per tracker frame. A tool the tracker
//!   does not report valid (missing, out of volume, port not enabled) is not published for that frame: silence means
//!   "not seen", never a stale or zero pose. A tool partially out of volume is still valid, and published.
//! - `/registration/transform` (geometry_msgs/TransformStamped `robot_base` ← `ct`, transient local), subscribed: the
//!   accepted registration. Until one has been received there is no tip in the CT.
//! - `/needle/tip_tracked` (geometry_msgs/PointStamped, frame `ct`, metres): the needle tip from both tools of the same
//!   tracker frame, through the reference (`acus_control::tracking`); published only for frames where both tools are
//!   valid, after a registration.
//!
//! All three messages of one frame carry the same stamp (wall clock at receipt). Dropping the [`RunningNode`] stops
//! the tracker cleanly (`TSTOP`) within one reply timeout.

use acus_control::frames::{Ct, Frame, NeedleTool, RobotBase, Tracker, TrackerReference, Transform};
use acus_control::registration::FiducialModel;
use acus_control::tracking::{ReferenceInCt, TrackerCalibration, TrackingError};
use acus_serial::ndi::{run_tracker, NdiConfig, NdiConfigError, NdiEvent, TrackingFrame};
use futures::StreamExt;
use nalgebra::{Isometry3, Quaternion, Translation3, UnitQuaternion};
use r2r::geometry_msgs::msg::{Point as PointMsg, PointStamped, Pose, PoseStamped, TransformStamped};
use r2r::QosProfile;
use tokio::sync::{oneshot, watch};

use crate::error::RosContext;
use crate::{msg, NodeError, RunningNode, Spinner};

/// The reference tool's pose.
pub const REFERENCE_TOPIC: &str = "/tracker/reference";
/// The needle tool's pose.
pub const NEEDLE_TOPIC: &str = "/tracker/needle";
/// The tracked needle tip in the CT.
pub const TIP_TRACKED_TOPIC: &str = "/needle/tip_tracked";
/// The registration the tip needs.
pub const REGISTRATION_TOPIC: &str = "/registration/transform";

/// Settings of the tracker node.
#[derive(Clone, Debug)]
pub struct TrackerNodeConfig {
    /// The tracker's serial line and timing.
    pub ndi: NdiConfig,
    /// Port handle of the reference tool (as the tracker assigns it; the simulated tracker's tool i is `0x0A + i`).
    pub reference_handle: u8,
    /// Port handle of the needle tool.
    pub needle_handle: u8,
    /// The reference's mount on the frame and the tip in the needle tool (configured, never measured here).
    pub calibration: TrackerCalibration,
    /// The fiducial frame (for `T_base_frame`), from the URDF.
    pub model: FiducialModel,
}

/// Why the tracker node did not start.
#[derive(Debug, thiserror::Error)]
pub enum TrackerStartError {
    /// The serial settings cannot work.
    #[error("tracker serial settings: {0}")]
    Ndi(#[from] NdiConfigError),
    /// The calibration cannot be used.
    #[error(transparent)]
    Calibration(#[from] TrackingError),
    /// Both tools on one handle.
    #[error("reference and needle tools both on port handle {0:02X}")]
    SameHandle(u8),
    /// ROS refused an endpoint.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// Start the `tracker` node (see the module docs). Must be called inside a tokio runtime.
pub fn start(ctx: &r2r::Context, config: TrackerNodeConfig) -> Result<RunningNode, TrackerStartError> {
    config.ndi.validate()?;
    config.calibration.validate()?;
    if config.reference_handle == config.needle_handle {
        return Err(TrackerStartError::SameHandle(config.needle_handle));
    }
    let mut node = r2r::Node::create(ctx.clone(), "tracker", "").ros("create node tracker")?;
    let reference = node
        .create_publisher::<PoseStamped>(REFERENCE_TOPIC, QosProfile::default())
        .ros("create publisher /tracker/reference")?;
    let needle = node
        .create_publisher::<PoseStamped>(NEEDLE_TOPIC, QosProfile::default())
        .ros("create publisher /tracker/needle")?;
    let tip = node
        .create_publisher::<PointStamped>(TIP_TRACKED_TOPIC, QosProfile::default())
        .ros("create publisher /needle/tip_tracked")?;
    let mut registrations = node
        .subscribe::<TransformStamped>(REGISTRATION_TOPIC, QosProfile::default().transient_local().keep_last(1))
        .ros("subscribe /registration/transform")?;
    let spinner = Spinner::start(node)?;

    // The reference in the CT, recomposed once per registration (not per frame).
    let (reg_tx, reg_rx) = watch::channel::<Option<ReferenceInCt>>(None);
    let (t_base_frame, t_frame_ref) = (config.model.t_base_frame(), config.calibration.t_frame_ref);
    let registration_task = tokio::spawn(async move {
        while let Some(m) = registrations.next().await {
            match registration(&m) {
                Some(t_robot_ct) => {
                    reg_tx.send_replace(Some(ReferenceInCt::new(&t_robot_ct, &t_base_frame, &t_frame_ref)));
                }
                None => tracing::warn!(
                    "ignoring {REGISTRATION_TOPIC} '{}' <- '{}': expected robot_base <- ct with a unit rotation",
                    m.header.frame_id,
                    m.child_frame_id
                ),
            }
        }
    });

    // run_tracker is not one of the node's tasks: aborting it would skip TSTOP. The guard is; when the node drops, the
    // guard's abort drops its sender, which is the tracker's stop signal.
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let guard = tokio::spawn(async move {
        let _stop_tx = stop_tx;
        std::future::pending::<()>().await;
    });
    let publishers = Publishers { reference, needle, tip };
    let (handles, tip_in_tool) = (
        (config.reference_handle, config.needle_handle),
        config.calibration.tip_in_tool,
    );
    let mut connected = false;
    tokio::spawn(run_tracker(
        config.ndi,
        async move {
            let _ = stop_rx.await;
        },
        move |event| match event {
            NdiEvent::Frame(frame) => {
                let registered = *reg_rx.borrow();
                publishers.frame(&frame, handles, registered.as_ref(), &tip_in_tool);
            }
            NdiEvent::Connected { handles: seen } => {
                connected = true;
                for h in [handles.0, handles.1].into_iter().filter(|h| !seen.contains(h)) {
                    tracing::warn!("tracker: no enabled tool on configured port handle {h:02X} (enabled: {seen:02X?})");
                }
                tracing::info!("tracker tracking handles {seen:02X?}");
            }
            NdiEvent::Fault(e) => tracing::debug!("tracker: damaged reply: {e}"),
            NdiEvent::Disconnected(e) if connected => {
                connected = false;
                tracing::warn!("tracker link lost, reconnecting: {e}");
            }
            NdiEvent::Disconnected(e) => tracing::debug!("tracker not reachable yet: {e}"),
        },
    ));
    Ok(RunningNode::new(spinner, vec![registration_task, guard]))
}

/// `T_robot_ct` from a TransformStamped, if it names `robot_base` ← `ct` and carries a unit quaternion.
fn registration(m: &TransformStamped) -> Option<Transform<RobotBase, Ct>> {
    if m.header.frame_id != RobotBase::NAME || m.child_frame_id != Ct::NAME {
        return None;
    }
    let (t, r) = (&m.transform.translation, &m.transform.rotation);
    let q = Quaternion::new(r.w, r.x, r.y, r.z);
    let finite = [t.x, t.y, t.z, r.x, r.y, r.z, r.w].iter().all(|v| v.is_finite());
    if !finite || (q.norm() - 1.0).abs() > 1e-6 {
        return None;
    }
    Some(Transform::from_isometry(Isometry3::from_parts(
        Translation3::new(t.x, t.y, t.z),
        UnitQuaternion::from_quaternion(q),
    )))
}

struct Publishers {
    reference: r2r::Publisher<PoseStamped>,
    needle: r2r::Publisher<PoseStamped>,
    tip: r2r::Publisher<PointStamped>,
}

impl Publishers {
    /// Publish what this frame holds: each valid tool's pose, and the tip when both are valid and registered.
    fn frame(
        &self,
        frame: &TrackingFrame,
        (reference, needle): (u8, u8),
        registered: Option<&ReferenceInCt>,
        tip_in_tool: &acus_control::frames::Point<NeedleTool>,
    ) {
        let pose_of = |handle: u8| frame.tools.iter().find(|t| t.handle == handle).and_then(|t| t.pose);
        let (r, n) = (pose_of(reference), pose_of(needle));
        let header = msg::header(Tracker::NAME);
        for (publisher, pose, topic) in [(&self.reference, r, REFERENCE_TOPIC), (&self.needle, n, NEEDLE_TOPIC)] {
            if let Some(pose) = pose {
                let m = PoseStamped {
                    header: header.clone(),
                    pose: pose_msg(&pose),
                };
                if let Err(e) = publisher.publish(&m) {
                    tracing::warn!("publishing {topic} failed: {e}");
                }
            }
        }
        if let (Some(r), Some(n), Some(registered)) = (r, n, registered) {
            let tip = registered.needle_tip(
                &Transform::<Tracker, TrackerReference>::from_isometry(r),
                &Transform::<Tracker, NeedleTool>::from_isometry(n),
                tip_in_tool,
            );
            let m = PointStamped {
                header: r2r::std_msgs::msg::Header {
                    stamp: header.stamp,
                    frame_id: Ct::NAME.to_owned(),
                },
                point: msg::point(&tip),
            };
            if let Err(e) = self.tip.publish(&m) {
                tracing::warn!("publishing {TIP_TRACKED_TOPIC} failed: {e}");
            }
        }
    }
}

fn pose_msg(iso: &Isometry3<f64>) -> Pose {
    let (t, q) = (iso.translation.vector, iso.rotation.quaternion());
    Pose {
        position: PointMsg { x: t.x, y: t.y, z: t.z },
        orientation: r2r::geometry_msgs::msg::Quaternion {
            x: q.i,
            y: q.j,
            z: q.k,
            w: q.w,
        },
    }
}
