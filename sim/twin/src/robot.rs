//! The robot as built: the twin's own kinematics, from the design URDF with every movable joint's origin, axis direction
//! and zero offset perturbed by the world's drawn errors, and the insertion drive's backlash and the needle's play in its
//! holder. The controller keeps the nominal URDF; it sees this robot only through the encoders and the images.
//!
//! The emulated drives report encoder counts of the joint positions the master commanded; the physical joint is the
//! encoder value plus the zero offset, which no encoder can see.

use acus_control::frames::{Point, RobotBase};
use acus_control::kinematics::JointPositions;
use nalgebra::{Isometry3, Unit, UnitQuaternion, Vector3};

use crate::world::{self, RobotErrors, Stream};
use crate::TwinError;

/// The six movable joints in the controller's order.
pub const JOINTS: [&str; 6] = [
    "x_joint",
    "y_joint",
    "z_joint",
    "yaw_joint",
    "pitch_joint",
    "insertion_joint",
];

/// Where the robot holds the needle: guide tip and holder orientation in the base frame, and the physical insertion.
#[derive(Clone, Copy, Debug)]
pub struct GuideState {
    /// Guide tip (RCM link origin), base frame.
    pub entry: Point<RobotBase>,
    /// Needle holder orientation (+z along the needle), base frame, with the needle's play in the holder.
    pub holder: UnitQuaternion<f64>,
    /// Needle length beyond the guide tip, m.
    pub depth: f64,
}

/// The drawn errors of one robot.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnErrors {
    /// Zero offsets, joint units (physical = encoder + offset).
    pub zero_offsets: [f64; 6],
    /// Joint origin position errors, m.
    pub origin: [Vector3<f64>; 6],
    /// Axis directions as built (unit, joint frame).
    pub axes: [Unit<Vector3<f64>>; 6],
    /// Needle tilt in the holder: rotation axis (holder frame) and angle.
    pub play: (Unit<Vector3<f64>>, f64),
}

/// The robot as built. A clone is an independent copy (its own kinematic chain and insertion dead-band state), e.g. for
/// the tracker, which follows the needle between scans without touching the patient's.
#[derive(Clone)]
pub struct AsBuiltRobot {
    chain: k::Chain<f64>,
    errors: DrawnErrors,
    backlash: f64,
    /// Physical insertion drive output (after the dead band), m; none before the first sync.
    insertion_out: Option<f64>,
}

impl std::fmt::Debug for AsBuiltRobot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsBuiltRobot").field("errors", &self.errors).finish()
    }
}

impl AsBuiltRobot {
    /// The robot built from the design `urdf` with errors drawn from `seed` by `errors`' magnitudes.
    pub fn build(urdf: &str, errors: &RobotErrors, seed: u64) -> Result<Self, TwinError> {
        let mut robot = urdf_rs::read_from_string(urdf).map_err(|e| TwinError::Urdf(e.to_string()))?;
        let mut rng = world::rng(seed, Stream::Robot, 0);
        let mut drawn = DrawnErrors {
            zero_offsets: [0.0; 6],
            origin: [Vector3::zeros(); 6],
            axes: [Vector3::z_axis(); 6],
            play: (Vector3::x_axis(), 0.0),
        };
        for (i, name) in JOINTS.iter().enumerate() {
            let joint = robot
                .joints
                .iter_mut()
                .find(|j| j.name == *name)
                .ok_or_else(|| TwinError::Urdf(format!("no joint {name}")))?;
            let revolute = joint.joint_type == urdf_rs::JointType::Revolute;
            let sigma = if revolute {
                errors.zero_offset_rotary
            } else {
                errors.zero_offset_prismatic
            };
            drawn.zero_offsets[i] = world::gaussian(&mut rng, sigma);
            drawn.origin[i] = world::gaussian_vector(&mut rng, errors.origin_position);
            let axis = Unit::new_normalize(Vector3::from(*joint.axis.xyz));
            drawn.axes[i] = world::tilt(&mut rng, &axis, errors.axis_direction);
            let xyz = Vector3::from(*joint.origin.xyz) + drawn.origin[i];
            joint.origin.xyz = urdf_rs::Vec3([xyz.x, xyz.y, xyz.z]);
            let a = drawn.axes[i];
            joint.axis.xyz = urdf_rs::Vec3([a.x, a.y, a.z]);
        }
        let mut play_rng = world::rng(seed, Stream::Play, 0);
        drawn.play = world::play(&mut play_rng, &Vector3::z_axis(), errors.holder_play);
        Ok(Self {
            chain: k::Chain::from(&robot),
            errors: drawn,
            backlash: errors.insertion_backlash,
            insertion_out: None,
        })
    }

    /// The drawn errors.
    pub fn errors(&self) -> &DrawnErrors {
        &self.errors
    }

    /// Guide and needle for the encoder positions `encoder` (what the drives report); moves the insertion drive through
    /// its dead band (output stays put until the motor has taken up the play).
    pub fn sync(&mut self, encoder: &JointPositions) -> Result<GuideState, TwinError> {
        let mut physical = encoder.0;
        for (p, offset) in physical.iter_mut().zip(&self.errors.zero_offsets) {
            *p += offset;
        }
        let half = self.backlash / 2.0;
        let motor = physical[5];
        let out = match self.insertion_out {
            Some(prev) => prev.clamp(motor - half, motor + half),
            None => motor,
        };
        self.insertion_out = Some(out);
        physical[5] = out;
        let (rcm, tip) = self.frames(&physical)?;
        let (axis, angle) = self.errors.play;
        let holder = rcm.rotation * UnitQuaternion::from_axis_angle(&axis, angle);
        let direction = holder * Vector3::z_axis();
        // Retracted (the master commands no insertion): the needle is behind the guide tip whatever the offset.
        let depth = if encoder.insertion() <= 1e-6 {
            0.0
        } else {
            (tip.translation.vector - rcm.translation.vector)
                .dot(&direction)
                .max(0.0)
        };
        Ok(GuideState {
            entry: Point::new(rcm.translation.vector.into()),
            holder,
            depth,
        })
    }

    /// Guide tip (RCM) and needle tip frames in the base frame at physical joint positions `q`, without play.
    pub fn frames(&self, q: &[f64; 6]) -> Result<(Isometry3<f64>, Isometry3<f64>), TwinError> {
        for (name, v) in JOINTS.iter().zip(q) {
            let node = self
                .chain
                .find(name)
                .ok_or_else(|| TwinError::Urdf(format!("no joint {name}")))?;
            node.set_joint_position_unchecked(*v);
        }
        self.chain.update_transforms();
        let world = |link: &str| {
            self.chain
                .find_link(link)
                .and_then(|n| n.world_transform())
                .ok_or_else(|| TwinError::Urdf(format!("no link {link}")))
        };
        Ok((world("rcm")?, world("needle_tip")?))
    }
}
