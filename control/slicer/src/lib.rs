//! acus ↔ 3D Slicer: the ROS 2 node `slicer_bridge`, which serves OpenIGTLink (acus-igtl) to Slicer and translates
//! between it and the procedure's standard ROS 2 topics and services. It requests; it bypasses nothing: every command is
//! a call of the same service a ROS console would call, so the executive's guards and the cycle's supervisor apply.
//!
//! In (Slicer → ROS):
//! - POINT items named `entry` / `target` (any case; RAS mm) → `/plan/entry`, `/plan/target` (geometry_msgs/PointStamped,
//!   frame `ct`, LPS m, transient local, keep last 1). Other names are refused in a STRING reply.
//! - STRING commands (any device name; see [`commands::COMMANDS`]) → the std_srvs/Trigger service, or `/enable`
//!   (std_srvs/SetBool) for `power on` / `power off`. The reply to that client is a STRING on device `ACK`:
//!   `<command>: ok[: message]`, `<command>: refused: <message>` or `<command>: timeout: ...`. Calls run in their own
//!   tasks, so a slow service never holds up the server loop (the tip keeps streaming while `insert` runs).
//!
//! Out (ROS → Slicer, to every client):
//! - TRANSFORM `NeedleTip`: each `/needle/tip` pose (frame `robot_base`) carried into the CT (`T_robot_ct⁻¹ · pose`) as RAS
//!   mm, once a registration is known.
//! - TRANSFORM `T_robot_ct` (see [`geometry::robot_ct_mm`]) when `/registration/transform` arrives or changes, and to each
//!   new client.
//! - STATUS `Robot` from `/procedure/state` and `/procedure/faults` ([`status`]), on change and to each new client.
//! - IMAGE `planning` / `check-<n>` for each series announced on `/scans` (read off the executor).
//!
//! Connection hold: with [`BridgeConfig::hold`] (an Enable-kind source of the EtherCAT cycle), the source is held while at
//! least one Slicer client is connected, refreshed every 10 ms, asserted the moment a client connects and released the
//! moment the last client's connection closes (not at the next tick): the cycle halts the drives in place within its next period. Resuming is the operator's
//! act: reconnect and send `insert` again.
#![deny(missing_docs)]

mod bridge;
pub mod commands;
pub mod geometry;
pub mod status;

use std::net::SocketAddr;
use std::time::Duration;

use acus_igtl::ServerConfig;
use acus_nodes::RunningNode;

pub use bridge::start;

/// Something held while Slicer is connected: in production the cycle's Enable source
/// ([`acus_ethercat::safety::SafetyInput`]); in tests a recorder.
pub trait ConnectionHold: Send {
    /// Report whether at least one Slicer client is connected (and refresh the heartbeat).
    fn refresh(&mut self, connected: bool);
}

impl ConnectionHold for acus_ethercat::safety::SafetyInput {
    fn refresh(&mut self, connected: bool) {
        acus_ethercat::safety::SafetyInput::refresh(self, connected);
    }
}

/// How the bridge runs.
pub struct BridgeConfig {
    /// The OpenIGTLink server (default 127.0.0.1:18944).
    pub server: ServerConfig,
    /// Held while a client is connected (see the crate docs); `None`: a disconnect pauses nothing.
    pub hold: Option<Box<dyn ConnectionHold>>,
    /// How long a command waits for its service (to appear and to answer) before replying `timeout`.
    pub service_timeout: Duration,
    /// Period of the hold's refresh ([`HOLD_PERIOD`]); the Enable source's deadline must be a few of these.
    pub hold_period: Duration,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            hold: None,
            service_timeout: DEFAULT_SERVICE_TIMEOUT,
            hold_period: HOLD_PERIOD,
        }
    }
}

impl BridgeConfig {
    /// The default configuration holding `hold` (e.g. a [`acus_ethercat::safety::SafetyInput`]) while connected.
    pub fn with_hold(hold: impl ConnectionHold + 'static) -> Self {
        Self {
            hold: Some(Box::new(hold)),
            ..Self::default()
        }
    }
}

/// The longest an operator command waits by default: an insertion step with its check scan takes tens of seconds.
pub const DEFAULT_SERVICE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default period of the connection-hold refresh.
pub const HOLD_PERIOD: Duration = Duration::from_millis(10);

/// The running bridge: the node (stopped when dropped, which also releases the hold) and where it listens.
pub struct Bridge {
    /// The node and its tasks.
    pub node: RunningNode,
    /// The OpenIGTLink address (with the port chosen, if 0 was asked).
    pub local_addr: SocketAddr,
}

/// What can go wrong starting the bridge.
#[derive(Debug, thiserror::Error)]
pub enum SlicerError {
    /// The ROS 2 middleware refused an operation.
    #[error("ROS 2: {context}: {source}")]
    Ros {
        /// What was being done.
        context: String,
        /// r2r's error.
        source: r2r::Error,
    },
    /// The node's spin thread could not start.
    #[error("slicer_bridge: {0}")]
    Node(#[from] acus_nodes::NodeError),
    /// The OpenIGTLink server could not listen.
    #[error("OpenIGTLink server on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why not.
        source: std::io::Error,
    },
}
