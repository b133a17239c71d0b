//! Kinematics of the needle positioner: a model read from the URDF, forward kinematics and a closed-form needle IK.
//!
//! The robot is a Cartesian stage (X, Y, Z) carrying a remote-centre-of-motion module (yaw, pitch, whose axes meet at the
//! needle-guide tip, the RCM) and an insertion axis along the needle. The URDF (`urdf/positioner.urdf`) is the only place
//! its geometry lives: [`PositionerModel::from_urdf_str`] parses it with `k`, checks the structure the closed form relies
//! on (joint names, order and types; yaw and pitch axes intersect; the needle axis passes through their intersection) and
//! keeps the few derived vectors the solver needs.
//!
//! The clinical request is "needle through this skin entry point to this target" ([`NeedleRequest`]).
//! [`PositionerModel::solve_needle`] puts the RCM on the entry, the needle axis on the entry→target line and the insertion
//! depth on the target, in closed form (no iteration, no allocation), or says which joint limit stops it and by how much.
//!
//! ```
//! use acus_control::frames::Point;
//! use acus_control::kinematics::{NeedleRequest, PositionerModel};
//! let urdf = include_str!("../../../../urdf/positioner.urdf");
//! let model = PositionerModel::from_urdf_str(urdf).unwrap();
//! let request = NeedleRequest {
//!     entry: Point::xyz(0.02, 0.30, 0.22),
//!     target: Point::xyz(0.03, 0.33, 0.14),
//! };
//! let q = model.solve_needle(&request).unwrap();
//! let state = model.forward(&q);
//! assert!(state.tip.distance(&request.target) < 1e-9);
//! assert!(state.rcm.distance(&request.entry) < 1e-9);
//! ```

mod error;
mod ik;
mod model;
mod rcm;

pub use error::{Bound, KinematicsError, LimitViolation};
pub use ik::{MIN_AXIS_LENGTH, SMALL_ENTRY_SHIFT};
pub use model::{JointLimit, PositionerModel};

use core::fmt;

use nalgebra::{Unit, UnitQuaternion, Vector3};

use crate::frames::{Point, RobotBase};

/// The six active joints, in chain order from the base to the needle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Joint {
    /// Stage X, prismatic (m).
    X,
    /// Stage Y, prismatic (m).
    Y,
    /// Stage Z, prismatic (m).
    Z,
    /// RCM yaw, revolute (rad).
    Yaw,
    /// RCM pitch, revolute (rad).
    Pitch,
    /// Needle insertion, prismatic (m): distance of the tip beyond the RCM along the needle.
    Insertion,
}

impl Joint {
    /// All joints in chain order (the order of [`JointPositions`]).
    pub const ALL: [Joint; 6] = [Joint::X, Joint::Y, Joint::Z, Joint::Yaw, Joint::Pitch, Joint::Insertion];

    /// The joint's name in the URDF and in `/joint_states`.
    pub const fn name(self) -> &'static str {
        match self {
            Joint::X => "x_joint",
            Joint::Y => "y_joint",
            Joint::Z => "z_joint",
            Joint::Yaw => "yaw_joint",
            Joint::Pitch => "pitch_joint",
            Joint::Insertion => "insertion_joint",
        }
    }

    /// Index in [`JointPositions`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// True for the revolute joints (yaw, pitch): values in rad, shown in degrees.
    pub const fn is_revolute(self) -> bool {
        matches!(self, Joint::Yaw | Joint::Pitch)
    }

    /// Formats a value of this joint at the human edge: mm for prismatic joints, degrees for revolute ones.
    pub(crate) fn show(self, value: f64) -> Shown {
        Shown { joint: self, value }
    }
}

impl fmt::Display for Joint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A joint value shown in the unit a person reads (mm or degrees).
pub(crate) struct Shown {
    joint: Joint,
    value: f64,
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.joint.is_revolute() {
            write!(f, "{:.2}°", self.value.to_degrees())
        } else {
            write!(f, "{:.2} mm", self.value * 1e3)
        }
    }
}

/// A joint vector in chain order, SI units (m for X, Y, Z, insertion; rad for yaw, pitch).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct JointPositions(pub [f64; 6]);

impl JointPositions {
    /// From the six values in chain order.
    pub const fn new(x: f64, y: f64, z: f64, yaw: f64, pitch: f64, insertion: f64) -> Self {
        Self([x, y, z, yaw, pitch, insertion])
    }
    /// Stage X (m).
    pub const fn x(&self) -> f64 {
        self.0[0]
    }
    /// Stage Y (m).
    pub const fn y(&self) -> f64 {
        self.0[1]
    }
    /// Stage Z (m).
    pub const fn z(&self) -> f64 {
        self.0[2]
    }
    /// RCM yaw (rad).
    pub const fn yaw(&self) -> f64 {
        self.0[3]
    }
    /// RCM pitch (rad).
    pub const fn pitch(&self) -> f64 {
        self.0[4]
    }
    /// Insertion (m): the tip's distance beyond the RCM along the needle.
    pub const fn insertion(&self) -> f64 {
        self.0[5]
    }
    /// The value of one joint.
    pub const fn get(&self, joint: Joint) -> f64 {
        self.0[joint.index()]
    }
    /// Sets the value of one joint.
    pub fn set(&mut self, joint: Joint, value: f64) {
        self.0[joint.index()] = value;
    }
}

/// The clinical request: the needle enters the skin at `entry` and its tip stops at `target`, both in the robot base frame
/// (the planner maps them from CT through `T_robot_ct`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NeedleRequest {
    /// Skin entry point: the RCM (needle-guide tip) is placed here.
    pub entry: Point<RobotBase>,
    /// Target: the needle tip ends here.
    pub target: Point<RobotBase>,
}

/// Forward kinematics of one joint vector, in the robot base frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NeedleState {
    /// The remote centre of motion (needle-guide tip).
    pub rcm: Point<RobotBase>,
    /// The needle tip.
    pub tip: Point<RobotBase>,
    /// Unit needle direction (from the guide into the patient).
    pub direction: Unit<Vector3<f64>>,
    /// Orientation of the `needle_tip` link (its +z is `direction`), e.g. for a `PoseStamped`.
    pub tip_orientation: UnitQuaternion<f64>,
}
