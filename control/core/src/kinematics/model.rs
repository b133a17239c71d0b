//! The positioner model: geometry derived from the URDF once, at load, and forward kinematics.
//!
//! Why the closed form needs so little: the stage joints come first and are prismatic, so they translate everything
//! after them without rotating it; the yaw and pitch axes both pass through the RCM, so rotating about them never moves the
//! RCM. Hence, with `q = 0` quantities in the base frame (product-of-exponentials form):
//!
//! ```text
//! rcm(q)       = rcm_home + A · (x, y, z)            A = stage axes as columns
//! direction(q) = Rot(yaw_axis, yaw) · Rot(pitch_axis_home, pitch) · needle_home
//! tip(q)       = rcm(q) + (tip_offset + insertion) · direction(q)
//! ```
//!
//! All of `A`, `rcm_home`, the two axes, `needle_home` and `tip_offset` are read from `k`'s evaluation of the URDF at
//! `q = 0`; nothing is duplicated as a constant.

use k::{JointType, Node};
use nalgebra::{Isometry3, Matrix3, Point3, Unit, UnitQuaternion, Vector3};

use super::rcm::RcmSolver;
use super::{Joint, JointPositions, KinematicsError, NeedleState};
use crate::frames::Point;

/// How far (m) the URDF geometry may deviate from the structure the closed form assumes (axes intersecting, needle axis
/// through the RCM): 1 µm, well below what matters clinically and far above float rounding of a hand-written URDF.
const GEOMETRY_TOLERANCE: f64 = 1e-6;

/// True when a deviation (m) is within [`GEOMETRY_TOLERANCE`]; false for NaN, so bad geometry cannot slip through.
fn within_tolerance(deviation: f64) -> bool {
    deviation <= GEOMETRY_TOLERANCE
}

/// A joint's limits as written in the URDF (SI units).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JointLimit {
    /// Lower position limit (m or rad).
    pub lower: f64,
    /// Upper position limit (m or rad).
    pub upper: f64,
    /// Velocity limit (m/s or rad/s).
    pub velocity: f64,
    /// Effort limit (N or N·m).
    pub effort: f64,
}

/// The positioner's kinematic model. Plain data (`Send + Sync`, cheap to clone); build it once with
/// [`PositionerModel::from_urdf_str`].
#[derive(Clone, Debug, PartialEq)]
pub struct PositionerModel {
    pub(super) limits: [JointLimit; 6],
    /// Columns: unit directions of the X, Y, Z stage axes in the base frame.
    pub(super) stage_axes: Matrix3<f64>,
    /// Inverse of `stage_axes`: entry offset → stage joint values.
    pub(super) stage_inverse: Matrix3<f64>,
    /// The RCM in the base frame at q = 0.
    pub(super) rcm_home: Point3<f64>,
    /// Yaw axis direction in the base frame (constant: only prismatic joints precede it).
    pub(super) yaw_axis: Unit<Vector3<f64>>,
    /// Pitch axis direction in the base frame at q = 0.
    pub(super) pitch_axis_home: Unit<Vector3<f64>>,
    /// Needle direction in the base frame at q = 0.
    pub(super) needle_home: Unit<Vector3<f64>>,
    /// Signed distance (m) of the tip beyond the RCM along the needle at insertion 0 (0 for the reference URDF).
    pub(super) tip_offset: f64,
    /// Orientation of the `needle_tip` link at q = 0.
    pub(super) tip_orientation_home: UnitQuaternion<f64>,
    /// The yaw/pitch solver with its request-independent parts precomputed.
    pub(super) rcm: RcmSolver,
}

impl PositionerModel {
    /// Reads the model from URDF text and checks that it has the structure the closed form relies on: joints `x_joint`,
    /// `y_joint`, `z_joint` (prismatic), `yaw_joint`, `pitch_joint` (revolute), `insertion_joint` (prismatic) in that order
    /// from `robot_base` to `needle_tip`; yaw and pitch axes intersecting at the origin of link `rcm`; the needle axis
    /// through that point. Any deviation is a clear error, never a silently wrong solver.
    pub fn from_urdf_str(urdf: &str) -> Result<Self, KinematicsError> {
        let robot = urdf_rs::read_from_string(urdf).map_err(|e| KinematicsError::UrdfParse(e.to_string()))?;
        if let Some(j) = robot.joints.iter().find(|j| j.mimic.is_some()) {
            return Err(KinematicsError::MimicJoint(j.name.clone()));
        }
        for name in ["robot_base", "rcm", "needle_tip"] {
            if !robot.links.iter().any(|l| l.name == name) {
                return Err(KinematicsError::MissingLink(name));
            }
        }
        let mut limits = [JointLimit {
            lower: 0.0,
            upper: 0.0,
            velocity: 0.0,
            effort: 0.0,
        }; 6];
        for joint in Joint::ALL {
            let j = robot
                .joints
                .iter()
                .find(|j| j.name == joint.name())
                .ok_or(KinematicsError::MissingJoint(joint.name()))?;
            let (ok, expected) = match joint {
                Joint::Yaw | Joint::Pitch => (j.joint_type == urdf_rs::JointType::Revolute, "revolute"),
                _ => (j.joint_type == urdf_rs::JointType::Prismatic, "prismatic"),
            };
            if !ok {
                return Err(KinematicsError::WrongJointType {
                    joint,
                    found: format!("{:?}", j.joint_type).to_lowercase(),
                    expected,
                });
            }
            let norm = Vector3::from(*j.axis.xyz).norm();
            if !(norm > 1e-9 && norm.is_finite()) {
                return Err(KinematicsError::BadAxis { joint, norm });
            }
            let l = &j.limit;
            let valid = l.lower.is_finite() && l.upper.is_finite() && l.lower < l.upper && l.velocity > 0.0;
            if !valid {
                return Err(KinematicsError::BadLimits {
                    joint,
                    lower: l.lower,
                    upper: l.upper,
                    velocity: l.velocity,
                });
            }
            if joint.is_revolute() && l.upper - l.lower >= core::f64::consts::TAU {
                return Err(KinematicsError::RangeOverOneTurn {
                    joint,
                    lower: l.lower,
                    upper: l.upper,
                });
            }
            limits[joint.index()] = JointLimit {
                lower: l.lower,
                upper: l.upper,
                velocity: l.velocity,
                effort: l.effort,
            };
        }

        let chain = k::Chain::<f64>::from(&robot);
        let tip = chain
            .find_link("needle_tip")
            .ok_or(KinematicsError::MissingLink("needle_tip"))?;
        check_chain(tip)?;
        chain.set_joint_positions_unchecked(&vec![0.0; chain.dof()]);
        chain.update_transforms();

        // Joint lines at q = 0 in the base frame: the joint frame's origin and its axis rotated into the base.
        let line = |joint: Joint| -> Result<(Point3<f64>, Unit<Vector3<f64>>), KinematicsError> {
            let node = chain
                .find(joint.name())
                .ok_or(KinematicsError::MissingJoint(joint.name()))?;
            let pose = world(node, joint.name())?;
            let joint_type = node.joint().joint_type;
            let axis = match joint_type {
                JointType::Rotational { axis } | JointType::Linear { axis } => axis,
                JointType::Fixed => return Err(KinematicsError::WrongChain(format!("{} fixed", joint.name()))),
            };
            Ok((Point3::from(pose.translation.vector), pose.rotation * axis))
        };
        let (_, ax) = line(Joint::X)?;
        let (_, ay) = line(Joint::Y)?;
        let (_, az) = line(Joint::Z)?;
        let stage_axes = Matrix3::from_columns(&[ax.into_inner(), ay.into_inner(), az.into_inner()]);
        let det = stage_axes.determinant();
        let stage_inverse = match stage_axes.try_inverse() {
            Some(inv) if det.abs() > 1e-3 => inv,
            _ => return Err(KinematicsError::StageAxesDegenerate(det)),
        };

        let (yaw_point, yaw_axis) = line(Joint::Yaw)?;
        let (pitch_point, pitch_axis_home) = line(Joint::Pitch)?;
        let rcm_home = axes_intersection(yaw_point, yaw_axis, pitch_point, pitch_axis_home)?;

        let rcm_node = chain.find_link("rcm").ok_or(KinematicsError::MissingLink("rcm"))?;
        let rcm_link = world(rcm_node, "rcm")?.translation.vector;
        let rcm_offset = (rcm_link - rcm_home.coords).norm();
        if !within_tolerance(rcm_offset) {
            return Err(KinematicsError::RcmLinkOffset(rcm_offset));
        }

        let (_, needle_home) = line(Joint::Insertion)?;
        let tip_pose = world(tip, "needle_tip")?;
        let rel = tip_pose.translation.vector - rcm_home.coords;
        let tip_offset = rel.dot(&needle_home);
        let miss = (rel - needle_home.into_inner() * tip_offset).norm();
        if !within_tolerance(miss) {
            return Err(KinematicsError::NeedleAxisMissesRcm(miss));
        }
        if pitch_axis_home.cross(&needle_home).norm() < 1e-3 {
            return Err(KinematicsError::NeedleAlongPitchAxis);
        }

        let rcm = RcmSolver::new(
            &yaw_axis,
            &pitch_axis_home,
            &needle_home,
            &limits[Joint::Yaw.index()],
            &limits[Joint::Pitch.index()],
        );
        Ok(Self {
            rcm,
            limits,
            stage_axes,
            stage_inverse,
            rcm_home,
            yaw_axis,
            pitch_axis_home,
            needle_home,
            tip_offset,
            tip_orientation_home: tip_pose.rotation,
        })
    }

    /// The limits of one joint, as written in the URDF.
    pub fn limit(&self, joint: Joint) -> JointLimit {
        self.limits[joint.index()]
    }

    /// The RCM at q = 0, in the base frame.
    pub fn rcm_home(&self) -> Point<crate::frames::RobotBase> {
        Point::new(self.rcm_home)
    }

    /// Forward kinematics: where the RCM and the needle tip are and where the needle points, for any joint vector (limits
    /// are not checked here: the sim and the encoders may report values slightly outside them).
    pub fn forward(&self, q: &JointPositions) -> NeedleState {
        let rcm = self.rcm_home + self.stage_axes * Vector3::new(q.x(), q.y(), q.z());
        let rotation = UnitQuaternion::from_axis_angle(&self.yaw_axis, q.yaw())
            * UnitQuaternion::from_axis_angle(&self.pitch_axis_home, q.pitch());
        let direction = rotation * self.needle_home;
        let tip = rcm + direction.into_inner() * (self.tip_offset + q.insertion());
        NeedleState {
            rcm: Point::new(rcm),
            tip: Point::new(tip),
            direction,
            tip_orientation: rotation * self.tip_orientation_home,
        }
    }
}

/// The movable joints from the root to `needle_tip` must be exactly the six, in order (fixed joints may sit between), and
/// the root link must be `robot_base`.
fn check_chain(tip: &Node<f64>) -> Result<(), KinematicsError> {
    let mut movable: Vec<String> = Vec::new();
    let mut root_link = None;
    for node in tip.iter_ancestors() {
        // Copy out and drop the guard before touching the node again: k's node lock is not re-entrant.
        let (joint_type, name) = {
            let joint = node.joint();
            (joint.joint_type, joint.name.clone())
        };
        if !matches!(joint_type, JointType::Fixed) {
            movable.push(name);
        }
        if node.parent().is_none() {
            root_link = node.link().as_ref().map(|l| l.name.clone());
        }
    }
    movable.reverse();
    let expected = Joint::ALL.map(Joint::name);
    if movable.iter().map(String::as_str).ne(expected.iter().copied()) || root_link.as_deref() != Some("robot_base") {
        let mut found = movable.join(", ");
        if root_link.as_deref() != Some("robot_base") {
            found.push_str(&format!("; root link {:?}", root_link.unwrap_or_default()));
        }
        return Err(KinematicsError::WrongChain(found));
    }
    Ok(())
}

/// A node's world transform after `update_transforms`, with non-finite geometry rejected.
fn world(node: &Node<f64>, name: &'static str) -> Result<Isometry3<f64>, KinematicsError> {
    match node.world_transform() {
        Some(t)
            if t.translation
                .vector
                .iter()
                .chain(t.rotation.coords.iter())
                .all(|c| c.is_finite()) =>
        {
            Ok(t)
        }
        _ => Err(KinematicsError::NonFiniteGeometry(name)),
    }
}

/// The point where two lines meet (midpoint of their closest points), or why they do not meet.
fn axes_intersection(
    p1: Point3<f64>,
    u1: Unit<Vector3<f64>>,
    p2: Point3<f64>,
    u2: Unit<Vector3<f64>>,
) -> Result<Point3<f64>, KinematicsError> {
    let cross = u1.cross(&u2);
    let sin = cross.norm();
    if sin < 1e-3 {
        return Err(KinematicsError::AxesParallel(sin.asin().to_degrees()));
    }
    let w = p1 - p2;
    let b = u1.dot(&u2);
    let (d1, d2) = (u1.dot(&w), u2.dot(&w));
    let den = 1.0 - b * b;
    let s = (b * d2 - d1) / den;
    let t = (d2 - b * d1) / den;
    let c1 = p1 + u1.into_inner() * s;
    let c2 = p2 + u2.into_inner() * t;
    let gap = (c1 - c2).norm();
    if !within_tolerance(gap) {
        return Err(KinematicsError::AxesDoNotIntersect(gap));
    }
    Ok(Point3::from((c1.coords + c2.coords) * 0.5))
}
