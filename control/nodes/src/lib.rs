//! acus ROS 2 nodes: thin r2r adapters between ROS 2 Jazzy (standard messages, real DDS) and the pure control core.
//!
//! Each node is built the same way (habit 7 of ../shared/DESIGN.md): create every endpoint on an [`r2r::Node`], then hand the
//! node to a [`Spinner`] that owns it on its own thread, and serve the endpoints' streams from tokio tasks. Nothing here
//! holds the node behind a lock, and no service handler ever waits on the EtherCAT cycle.
#![deny(missing_docs)]

mod error;
/// The motion supervisor (acus-executive), re-exported for the nodes' users.
pub use acus_executive::motion;
pub mod msg;
mod node;
pub mod procedure;
pub mod registration;
pub mod robot_description;
mod spin;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tracker;
pub mod wire;

pub use error::NodeError;
pub use node::RunningNode;
pub use spin::Spinner;
