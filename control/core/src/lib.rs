//! acus control core: the pure algorithms of a CT-guided needle positioner.
//!
//! Everything here is free of IO (no files, sockets, ROS or buses), works in SI units (m, rad, s) and names transforms
//! `T_a_b` (maps points from frame b into frame a). Adapters in `drivers/`, `control/nodes` and `launch/` do the IO.
#![deny(missing_docs)]

pub mod frames;
pub mod kinematics;
pub mod lesion;
pub mod needle;
pub mod planning;
pub mod procedure;
pub mod registration;
pub mod tracking;
