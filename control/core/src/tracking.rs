//! The needle tip in the CT from a tracker (NDI Polaris / Aurora) between check scans.
//!
//! The tracker sees two tools: a reference mounted rigidly on the fiducial frame and a tool on the needle hub. The
//! registration gives `T_robot_ct`, the URDF places the frame on the base (`T_base_frame`) and calibration places the
//! reference on the frame (`T_frame_ref`) and the tip in the needle tool (`tip_in_tool`). Then
//!
//! `T_ct_needletool = inv(T_robot_ct) · T_base_frame · T_frame_ref · inv(T_tracker_ref) · T_tracker_needletool`
//!
//! and the tip is `T_ct_needletool · tip_in_tool`. Going through the reference, not a stored camera pose, is what lets
//! the camera be moved (or bumped) after registration: both tools move the same way in the tracker frame and the tip in
//! the CT stays put. All lengths are metres; nothing here does IO.

use crate::frames::{Ct, FiducialFrame, NeedleTool, Point, RobotBase, Tracker, TrackerReference, Transform};

/// Longest calibrated offset accepted (tip from the needle tool's origin, reference from the frame's origin): a needle
/// tool sits on a hub at most a needle's length from the tip, and a reference on the frame itself.
pub const MAX_OFFSET_M: f64 = 1.0;

/// The tracker's calibration, as configured (datasheet or pivot calibration of the lab rig): never measured here.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerCalibration {
    /// The reference tool on the fiducial frame.
    pub t_frame_ref: Transform<FiducialFrame, TrackerReference>,
    /// The needle tip in the needle tool's frame, metres.
    pub tip_in_tool: Point<NeedleTool>,
}

/// A calibration that cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TrackingError {
    /// A value is NaN or infinite.
    #[error("tracker calibration: {0} is not finite")]
    NonFinite(&'static str),
    /// An offset longer than [`MAX_OFFSET_M`] (most likely millimetres given as metres).
    #[error("tracker calibration: {what} is {mm:.1} mm from its tool's origin, more than {max_mm:.0} mm")]
    Offset {
        /// Which offset.
        what: &'static str,
        /// Its length, mm.
        mm: f64,
        /// The limit, mm.
        max_mm: f64,
    },
}

impl TrackerCalibration {
    /// Check once at start-up: finite, offsets within [`MAX_OFFSET_M`].
    pub fn validate(&self) -> Result<(), TrackingError> {
        let iso = self.t_frame_ref.isometry();
        let finite =
            iso.translation.vector.iter().all(|v| v.is_finite()) && iso.rotation.coords.iter().all(|v| v.is_finite());
        if !finite {
            return Err(TrackingError::NonFinite("t_frame_ref"));
        }
        if !self.tip_in_tool.is_finite() {
            return Err(TrackingError::NonFinite("tip_in_tool"));
        }
        for (what, length) in [
            ("t_frame_ref", iso.translation.vector.norm()),
            ("tip_in_tool", self.tip_in_tool.coords.coords.norm()),
        ] {
            if length > MAX_OFFSET_M {
                return Err(TrackingError::Offset {
                    what,
                    mm: length * 1e3,
                    max_mm: MAX_OFFSET_M * 1e3,
                });
            }
        }
        Ok(())
    }
}

/// The reference tool in the CT: fixed between registrations, so composed once per registration, not per frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReferenceInCt {
    t_ct_ref: Transform<Ct, TrackerReference>,
}

impl ReferenceInCt {
    /// `inv(T_robot_ct) · T_base_frame · T_frame_ref`.
    pub fn new(
        t_robot_ct: &Transform<RobotBase, Ct>,
        t_base_frame: &Transform<RobotBase, FiducialFrame>,
        t_frame_ref: &Transform<FiducialFrame, TrackerReference>,
    ) -> Self {
        Self {
            t_ct_ref: t_robot_ct.inverse() * *t_base_frame * *t_frame_ref,
        }
    }

    /// `T_ct_ref`.
    pub fn t_ct_ref(&self) -> Transform<Ct, TrackerReference> {
        self.t_ct_ref
    }

    /// Where the tracker is in the CT given the reference's pose in this tracker frame.
    pub fn t_ct_tracker(&self, t_tracker_ref: &Transform<Tracker, TrackerReference>) -> Transform<Ct, Tracker> {
        self.t_ct_ref * t_tracker_ref.inverse()
    }

    /// `T_ct_needletool` from both tools' poses of one tracker frame.
    pub fn t_ct_needle_tool(
        &self,
        t_tracker_ref: &Transform<Tracker, TrackerReference>,
        t_tracker_needle: &Transform<Tracker, NeedleTool>,
    ) -> Transform<Ct, NeedleTool> {
        self.t_ct_tracker(t_tracker_ref) * *t_tracker_needle
    }

    /// The needle tip in the CT from both tools' poses of one tracker frame.
    pub fn needle_tip(
        &self,
        t_tracker_ref: &Transform<Tracker, TrackerReference>,
        t_tracker_needle: &Transform<Tracker, NeedleTool>,
        tip_in_tool: &Point<NeedleTool>,
    ) -> Point<Ct> {
        self.t_ct_needle_tool(t_tracker_ref, t_tracker_needle)
            .apply(tip_in_tool)
    }
}

/// The needle tip in the tracker frame (no registration needed).
pub fn needle_tip_in_tracker(
    t_tracker_needle: &Transform<Tracker, NeedleTool>,
    tip_in_tool: &Point<NeedleTool>,
) -> Point<Tracker> {
    t_tracker_needle.apply(tip_in_tool)
}

/// The needle tip in the CT in one call (see the module docs); [`ReferenceInCt`] composes the fixed part once.
pub fn needle_tip_ct(
    t_robot_ct: &Transform<RobotBase, Ct>,
    t_base_frame: &Transform<RobotBase, FiducialFrame>,
    calibration: &TrackerCalibration,
    t_tracker_ref: &Transform<Tracker, TrackerReference>,
    t_tracker_needle: &Transform<Tracker, NeedleTool>,
) -> Point<Ct> {
    ReferenceInCt::new(t_robot_ct, t_base_frame, &calibration.t_frame_ref).needle_tip(
        t_tracker_ref,
        t_tracker_needle,
        &calibration.tip_in_tool,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

    fn iso(t: [f64; 3], rpy: [f64; 3]) -> Isometry3<f64> {
        Isometry3::from_parts(
            Translation3::new(t[0], t[1], t[2]),
            UnitQuaternion::from_euler_angles(rpy[0], rpy[1], rpy[2]),
        )
    }

    /// A world laid out in the CT: robot, frame, reference, camera and needle tool, each at a tilted pose.
    struct World {
        t_robot_ct: Transform<RobotBase, Ct>,
        t_base_frame: Transform<RobotBase, FiducialFrame>,
        calibration: TrackerCalibration,
        t_ct_tracker: Transform<Ct, Tracker>,
        t_ct_needle: Transform<Ct, NeedleTool>,
    }

    impl World {
        fn new() -> Self {
            Self {
                t_robot_ct: Transform::from_isometry(iso([0.1, -0.33, 0.02], [1.2, -0.4, 2.9])),
                t_base_frame: Transform::from_isometry(iso([-0.25, 0.25, 0.15], [0.0, 0.02, -0.1])),
                calibration: TrackerCalibration {
                    t_frame_ref: Transform::from_isometry(iso([0.04, 0.03, 0.05], [0.3, 0.5, -0.7])),
                    tip_in_tool: Point::xyz(0.012, -0.03, 0.251),
                },
                t_ct_tracker: Transform::from_isometry(iso([0.05, -1.4, -0.2], [1.9, 0.2, -0.3])),
                t_ct_needle: Transform::from_isometry(iso([0.03, -0.1, 0.01], [-0.6, 0.8, 0.25])),
            }
        }

        /// The two tool poses the tracker would report.
        fn seen(&self) -> (Transform<Tracker, TrackerReference>, Transform<Tracker, NeedleTool>) {
            let t_ct_ref = self.t_robot_ct.inverse() * self.t_base_frame * self.calibration.t_frame_ref;
            let t_tracker_ct = self.t_ct_tracker.inverse();
            (t_tracker_ct * t_ct_ref, t_tracker_ct * self.t_ct_needle)
        }
    }

    #[test]
    fn tip_round_trips_through_the_tracker() {
        let w = World::new();
        let (r, n) = w.seen();
        let tip = needle_tip_ct(&w.t_robot_ct, &w.t_base_frame, &w.calibration, &r, &n);
        let truth = w.t_ct_needle.apply(&w.calibration.tip_in_tool);
        assert!(tip.distance(&truth) < 1e-9, "{} m off", tip.distance(&truth));
        let reference = ReferenceInCt::new(&w.t_robot_ct, &w.t_base_frame, &w.calibration.t_frame_ref);
        let camera = reference.t_ct_tracker(&r);
        let p = Point::<Tracker>::xyz(0.3, -0.2, -1.1);
        assert!(camera.apply(&p).distance(&w.t_ct_tracker.apply(&p)) < 1e-9);
        let in_tracker = needle_tip_in_tracker(&n, &w.calibration.tip_in_tool);
        assert!(w.t_ct_tracker.apply(&in_tracker).distance(&truth) < 1e-9);
    }

    #[test]
    fn moving_the_camera_leaves_the_tip_in_place() {
        let w = World::new();
        let (r, n) = w.seen();
        let bump = Transform::<Tracker, Tracker>::from_isometry(iso([0.07, -0.02, 0.1], [0.05, -0.08, 0.3]));
        let moved = needle_tip_ct(&w.t_robot_ct, &w.t_base_frame, &w.calibration, &(bump * r), &(bump * n));
        let still = needle_tip_ct(&w.t_robot_ct, &w.t_base_frame, &w.calibration, &r, &n);
        assert!(moved.distance(&still) < 1e-9);
        // Only the needle moving moves the tip, by as much as the needle moved.
        let shift = Transform::<Tracker, Tracker>::from_isometry(iso([0.0, 0.0, 0.01], [0.0, 0.0, 0.0]));
        let pushed = needle_tip_ct(&w.t_robot_ct, &w.t_base_frame, &w.calibration, &r, &(shift * n));
        assert!((pushed.distance(&still) - 0.01).abs() < 1e-9);
    }

    /// With every rotation the identity the chain is a sum of offsets, written out by hand: catches a transform composed
    /// backwards that a round trip through the same code would not.
    #[test]
    fn translations_only_add_up_by_hand() {
        let t = |x: f64, y: f64, z: f64| Isometry3::from_parts(Translation3::new(x, y, z), UnitQuaternion::identity());
        let t_robot_ct = Transform::<RobotBase, Ct>::from_isometry(t(0.1, 0.0, 0.0)); // CT origin at robot x = 0.1
        let t_base_frame = Transform::from_isometry(t(0.0, 0.2, 0.0));
        let calibration = TrackerCalibration {
            t_frame_ref: Transform::from_isometry(t(0.0, 0.0, 0.03)),
            tip_in_tool: Point::xyz(0.0, 0.0, 0.25),
        };
        let r = Transform::from_isometry(t(0.0, 0.0, -1.5));
        let n = Transform::from_isometry(t(0.1, 0.05, -1.2));
        let tip = needle_tip_ct(&t_robot_ct, &t_base_frame, &calibration, &r, &n);
        // Reference in CT: (-0.1, 0.2, 0.03); needle tool 0.1, 0.05, 0.3 from it; tip 0.25 further in z.
        let want = Vector3::new(-0.1 + 0.1, 0.2 + 0.05, 0.03 + 0.3 + 0.25);
        assert!((tip.coords.coords - want).norm() < 1e-12, "{tip:?}");
    }

    #[test]
    fn bad_calibrations_are_named() {
        let good = World::new().calibration;
        assert_eq!(good.validate(), Ok(()));
        let mm_as_m = TrackerCalibration {
            tip_in_tool: Point::xyz(0.0, 0.0, 251.0),
            ..good
        };
        let e = mm_as_m.validate().unwrap_err();
        assert!(e.to_string().contains("tip_in_tool is 251000.0 mm"), "{e}");
        let nan = TrackerCalibration {
            tip_in_tool: Point::xyz(f64::NAN, 0.0, 0.0),
            ..good
        };
        assert_eq!(nan.validate(), Err(TrackingError::NonFinite("tip_in_tool")));
    }
}
