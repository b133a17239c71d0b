//! The robot's description and joint states, as robot_state_publisher offers them to RViz and other tools.
//!
//! `/robot_description` (std_msgs/String) is published once with transient-local durability, so a subscriber that joins
//! later still gets it; `/joint_states` (sensor_msgs/JointState) at a fixed rate from the latest joint positions.

use std::time::Duration;

use acus_control::kinematics::{JointPositions, PositionerModel};
use r2r::sensor_msgs::msg::JointState;
use r2r::std_msgs::msg::String as StringMsg;
use r2r::QosProfile;
use tokio::sync::watch;

use crate::error::RosContext;
use crate::{msg, NodeError, RunningNode, Spinner};

/// Topic of the URDF.
pub const ROBOT_DESCRIPTION_TOPIC: &str = "/robot_description";
/// Topic of the joint states.
pub const JOINT_STATES_TOPIC: &str = "/joint_states";

/// Settings of the robot-state node.
#[derive(Clone, Debug)]
pub struct RobotStateConfig {
    /// The URDF text (read once; the same text the kinematics were built from).
    pub urdf: String,
    /// Joint-state rate.
    pub rate: Duration,
}

/// Start a `robot_state` node: the URDF on `/robot_description` and `joint_positions` on `/joint_states` every
/// `config.rate`. The URDF is checked by building the kinematic model from it first, so a broken file is refused before
/// anything is published.
pub fn start(
    ctx: &r2r::Context,
    config: RobotStateConfig,
    joint_positions: watch::Receiver<JointPositions>,
) -> Result<RunningNode, NodeError> {
    PositionerModel::from_urdf_str(&config.urdf).map_err(|e| NodeError::Description {
        path: "(robot_state config)".into(),
        message: e.to_string(),
    })?;
    let mut node = r2r::Node::create(ctx.clone(), "robot_state", "").ros("create node robot_state")?;
    let description = node
        .create_publisher::<StringMsg>(
            ROBOT_DESCRIPTION_TOPIC,
            QosProfile::default().transient_local().keep_last(1),
        )
        .ros("create publisher /robot_description")?;
    let joint_states = node
        .create_publisher::<JointState>(JOINT_STATES_TOPIC, QosProfile::default())
        .ros("create /joint_states")?;
    description
        .publish(&StringMsg { data: config.urdf })
        .ros("publish /robot_description")?;
    let spinner = Spinner::keep(node);
    let task = tokio::spawn(publish_joint_states(joint_states, joint_positions, config.rate));
    Ok(RunningNode::new(spinner, vec![task]))
}

/// Publish the latest joint positions at `rate` until the sender is gone.
pub async fn publish_joint_states(
    publisher: r2r::Publisher<JointState>,
    joint_positions: watch::Receiver<JointPositions>,
    rate: Duration,
) {
    let mut ticker = tokio::time::interval(rate);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        if joint_positions.has_changed().is_err() {
            return;
        }
        let q = *joint_positions.borrow();
        if let Err(e) = publisher.publish(&msg::joint_state(&q)) {
            tracing::warn!("publishing /joint_states failed: {e}");
        }
    }
}
