//! Errors of the kinematics module: a URDF that does not have the expected structure, and requests the robot cannot reach.
//!
//! Request errors carry numbers only (no strings), so the solver stays allocation-free on the failure path too.

use core::fmt;

use super::{Joint, MIN_AXIS_LENGTH};

/// Which end of a joint's range was crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// The lower limit.
    Lower,
    /// The upper limit.
    Upper,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bound::Lower => "lower",
            Bound::Upper => "upper",
        })
    }
}

/// A request that needs a joint beyond its range: which joint, which limit, by how much, and what might still work.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitViolation {
    /// The joint that would leave its range.
    pub joint: Joint,
    /// The value the request needs (m or rad).
    pub required: f64,
    /// Which limit it crosses.
    pub bound: Bound,
    /// That limit's value (m or rad).
    pub limit: f64,
    /// How far beyond the limit (m or rad, > 0).
    pub excess: f64,
    /// For yaw and pitch: the other (yaw, pitch) pair that gives the same needle direction, which is out of range too
    /// (else it would have been used). `None` for the other joints.
    pub other_branch: Option<(f64, f64)>,
    /// About how far (m) the entry point would have to move sideways, target fixed, to bring this joint into range — set
    /// only when that is a small shift (≤ [`SMALL_ENTRY_SHIFT`](super::SMALL_ENTRY_SHIFT)) a planner could consider;
    /// `None` when no entry shift helps
    /// (insertion depth) or the shift would be large.
    pub entry_shift: Option<f64>,
}

impl fmt::Display for LimitViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let j = self.joint;
        write!(
            f,
            "{j} would need {}, beyond its {} limit {} by {}",
            j.show(self.required),
            self.bound,
            j.show(self.limit),
            j.show(self.excess)
        )?;
        if let Some((yaw, pitch)) = self.other_branch {
            write!(
                f,
                "; the other yaw/pitch solution for this needle direction (yaw {}, pitch {}) is out of range too",
                Joint::Yaw.show(yaw),
                Joint::Pitch.show(pitch)
            )?;
        }
        if let Some(shift) = self.entry_shift {
            write!(
                f,
                "; moving the entry about {:.1} mm would bring it into range",
                shift * 1e3
            )?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in the kinematics: loading the model, or solving a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KinematicsError {
    /// The URDF text is not valid URDF XML.
    #[error("URDF does not parse: {0}")]
    UrdfParse(String),
    /// A joint the positioner must have is absent.
    #[error("URDF has no joint named `{0}`")]
    MissingJoint(&'static str),
    /// A link the positioner must have is absent.
    #[error("URDF has no link named `{0}`")]
    MissingLink(&'static str),
    /// A joint has the wrong type.
    #[error("URDF joint `{joint}` is {found}, expected {expected}")]
    WrongJointType {
        /// The joint.
        joint: Joint,
        /// The type found in the URDF.
        found: String,
        /// The type required.
        expected: &'static str,
    },
    /// Mimic joints are not part of this mechanism (and `k` would panic on a dangling one).
    #[error("URDF joint `{0}` is a mimic joint; the positioner has none")]
    MimicJoint(String),
    /// The movable joints from the root to `needle_tip` are not the six expected ones in order.
    #[error(
        "URDF chain from `robot_base` to `needle_tip` has movable joints [{0}]; expected x_joint, y_joint, z_joint, \
         yaw_joint, pitch_joint, insertion_joint in that order"
    )]
    WrongChain(String),
    /// A joint's limits are not a usable range.
    #[error(
        "URDF joint `{joint}`: limits lower {lower}, upper {upper}, velocity {velocity} are not a range with \
         lower < upper and velocity > 0"
    )]
    BadLimits {
        /// The joint.
        joint: Joint,
        /// Lower limit (m or rad).
        lower: f64,
        /// Upper limit (m or rad).
        upper: f64,
        /// Velocity limit (m/s or rad/s).
        velocity: f64,
    },
    /// A movable joint's axis is not a direction.
    #[error("URDF joint `{joint}`: axis has length {norm}; it must be a non-zero direction")]
    BadAxis {
        /// The joint.
        joint: Joint,
        /// Length of the axis vector as written.
        norm: f64,
    },
    /// A number in the URDF geometry is NaN or infinite.
    #[error("URDF geometry contains a non-finite number (in the origin of `{0}` or a joint before it)")]
    NonFiniteGeometry(&'static str),
    /// Revolute limits wider than one turn cannot be told apart by angle.
    #[error("URDF joint `{joint}`: range {lower} .. {upper} rad spans more than one turn")]
    RangeOverOneTurn {
        /// The joint.
        joint: Joint,
        /// Lower limit (rad).
        lower: f64,
        /// Upper limit (rad).
        upper: f64,
    },
    /// The three stage axes do not span space, so the RCM cannot be placed on an arbitrary entry.
    #[error("URDF stage axes x/y/z are degenerate (determinant {0:.3e}); they must span 3-D space")]
    StageAxesDegenerate(f64),
    /// The yaw and pitch axes are (nearly) parallel: no remote centre of motion.
    #[error("URDF yaw and pitch axes are {0:.3}° apart; they must cross (ideally at 90°)")]
    AxesParallel(f64),
    /// The yaw and pitch axes do not meet: no remote centre of motion.
    #[error("URDF yaw and pitch axes miss each other by {:.4} mm; they must intersect (within 1 µm) at the RCM", .0 * 1e3)]
    AxesDoNotIntersect(f64),
    /// The `rcm` link is not where the yaw and pitch axes meet.
    #[error("URDF link `rcm` is {:.4} mm from the yaw/pitch axis intersection; it must sit on it (within 1 µm)", .0 * 1e3)]
    RcmLinkOffset(f64),
    /// The needle (insertion) axis does not pass through the RCM.
    #[error(
        "URDF needle axis (insertion_joint through needle_tip) passes {:.4} mm from the RCM; it must pass through it \
         (within 1 µm)",
        .0 * 1e3
    )]
    NeedleAxisMissesRcm(f64),
    /// The needle direction cannot be turned by yaw and pitch at all (a tilted guide); needs a different URDF geometry.
    #[error("URDF: the needle direction at yaw = pitch = 0 lies along the pitch axis; pitch could not tilt it")]
    NeedleAlongPitchAxis,

    /// A request coordinate is NaN or infinite.
    #[error("{0} has a non-finite coordinate (NaN or infinity)")]
    NonFinite(&'static str),
    /// Entry and target (nearly) coincide, so the needle axis is undefined.
    #[error("entry and target are {:.4} mm apart; the needle axis needs at least {:.1} mm", .0 * 1e3, MIN_AXIS_LENGTH * 1e3)]
    AxisTooShort(f64),
    /// The target is on the guide's side of the entry: the needle would have to point out of the patient.
    #[error(
        "target lies {:.1} mm behind the entry (on the guide's side, against the needle's home direction); the needle \
         only points into the patient, at most {:.1}° from its home direction",
        .behind * 1e3, .max_tilt.to_degrees()
    )]
    TargetBehindEntry {
        /// How far (m) the target lies behind the plane through the entry normal to the home needle direction.
        behind: f64,
        /// The largest tilt (rad) from the home direction the pitch range allows.
        max_tilt: f64,
    },
    /// No yaw/pitch pair can produce the needle direction (only possible for a skewed RCM geometry).
    #[error("no yaw/pitch pair points the needle along the entry→target line (off by {:.2}°)", .0.to_degrees())]
    DirectionUnreachable(f64),
    /// The request needs a joint beyond its limits.
    #[error("{0}")]
    JointLimit(LimitViolation),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_numbers_in_human_units() {
        let v = LimitViolation {
            joint: Joint::Yaw,
            required: 70f64.to_radians(),
            bound: Bound::Upper,
            limit: 60f64.to_radians(),
            excess: 10f64.to_radians(),
            other_branch: Some((-110f64.to_radians(), -20f64.to_radians())),
            entry_shift: Some(0.0042),
        };
        let msg = KinematicsError::JointLimit(v).to_string();
        assert_eq!(
            msg,
            "yaw_joint would need 70.00°, beyond its upper limit 60.00° by 10.00°; the other yaw/pitch solution for this \
             needle direction (yaw -110.00°, pitch -20.00°) is out of range too; moving the entry about 4.2 mm would bring \
             it into range"
        );
        let depth = LimitViolation {
            joint: Joint::Insertion,
            required: 0.2124,
            bound: Bound::Upper,
            limit: 0.2,
            excess: 0.0124,
            other_branch: None,
            entry_shift: None,
        };
        assert_eq!(
            depth.to_string(),
            "insertion_joint would need 212.40 mm, beyond its upper limit 200.00 mm by 12.40 mm"
        );
    }
}
