//! The tracker's truth in the simulated world: where the camera stands, where the reference tool sits on the frame as
//! manufactured, and where the needle tool sits on the hub of the needle the robot as built holds. It feeds the
//! simulated NDI tracker (acus-sim-serial's `SimNdi`) with `T_tracker_tool` per tool, from the joint positions the
//! encoders report, so the tracker sees the same needle the patient has.
//!
//! What the controller may know is [`TwinTracker::calibration`]: the rig's design values (the reference's mount on the
//! frame, the tip in the needle tool), as a lab would configure them from the drawings or a pivot calibration. The
//! mounts as built differ from those by [`TrackerErrors`], drawn from the world's seed; the camera placement and the
//! as-built mounts never leave sim/.
//!
//! The needle tool is on the hub, so it sees a straight needle: the tracker's truth is the tip of the needle as a rigid
//! body (guide tip + depth along the holder's axis, with the holder's play), which is where the needle is outside
//! tissue. Inside, the tissue model bends it; a hub tool cannot see that (nor can a real one: that takes a sensor in the
//! stylet), and the check scan remains the reference.

use std::sync::Mutex;

use acus_control::frames::{Ct, FiducialFrame, NeedleTool, Point, RobotBase, Tracker, TrackerReference, Transform};
use acus_control::kinematics::JointPositions;
use acus_control::registration::{fit_rigid, FiducialModel};
use acus_control::tracking::TrackerCalibration;
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

use crate::patient::Patient;
use crate::robot::AsBuiltRobot;
use crate::world::{self, FrameErrors, Stream};
use crate::TwinError;

/// Tool order in [`TwinTracker::tool_poses`] (and so the simulated tracker's port handles `0A`, `0B`).
pub const REFERENCE_TOOL: usize = 0;
/// See [`REFERENCE_TOOL`].
pub const NEEDLE_TOOL: usize = 1;

/// How the tool mounts as built differ from the design: zero-mean Gaussian, per axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerErrors {
    /// Position of each mount (reference on the frame, tool on the hub), σ per axis, m.
    pub mount_position: f64,
    /// Orientation of each mount, σ per axis of a small rotation vector, rad.
    pub mount_rotation: f64,
}

impl TrackerErrors {
    /// The mounts exactly as designed.
    pub const NONE: Self = Self {
        mount_position: 0.0,
        mount_rotation: 0.0,
    };

    /// Mounts machined like the frame's sphere seats: the same σ in position, and that σ over a 50 mm dowel base in
    /// orientation (an ideal world's frame gives ideal mounts). The world file has no tracker section; this keeps
    /// one number for the frame's machining.
    pub fn from_frame(frame: &FrameErrors) -> Self {
        Self {
            mount_position: frame.sphere_centre,
            mount_rotation: frame.sphere_centre / 0.05,
        }
    }
}

/// The rig: where the camera stands in the CT room (the world's) and the tools' design mounts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerRig {
    /// The camera in the CT (truth of the world: the controller finds it through the reference).
    pub t_ct_tracker: Transform<Ct, Tracker>,
    /// The reference's design mount on the fiducial frame.
    pub t_frame_ref: Transform<FiducialFrame, TrackerReference>,
    /// The needle tool's design mount: its pose in the needle's frame (origin at the tip, +z along the needle into
    /// the patient), i.e. on the hub 0.25 m behind the tip of the URDF's 0.25 m needle.
    pub t_needle_tool: Isometry3<f64>,
}

impl TrackerRig {
    /// A ceiling-mounted camera `distance` above the middle between the fiducial frame and the robot's guide tip at
    /// the home pose, its optical axis (tracker −z) tilted 15° from the robot's vertical, and the design mounts: the
    /// reference on a 60 mm post over the frame, the needle tool 40 mm off the hub's axis, 10 mm behind the hub.
    pub fn overhead(patient: &Patient, design: &FiducialModel, distance: f64) -> Result<Self, TwinError> {
        let (rcm, _) = patient.robot().frames(&[0.0; 6])?;
        let frame = design.t_base_frame().isometry().translation.vector;
        let middle = (rcm.translation.vector + frame) / 2.0;
        let rotation = UnitQuaternion::from_axis_angle(&Vector3::x_axis(), 15f64.to_radians());
        let position = middle + rotation * Vector3::new(0.0, 0.0, distance);
        let t_base_tracker = Transform::<RobotBase, Tracker>::from_isometry(Isometry3::from_parts(
            Translation3::from(position),
            rotation,
        ));
        let (t_frame_ref, t_needle_tool) = Self::design_mounts();
        Ok(Self {
            t_ct_tracker: patient.config().t_ct_robot * t_base_tracker,
            t_frame_ref,
            t_needle_tool,
        })
    }

    /// The design mounts of [`TrackerRig::overhead`] (the rig's drawings): the reference on a 60 mm post over the
    /// frame, yawed 0.3 rad; the needle tool 40 mm off the hub's axis, 10 mm behind the hub of the 0.25 m needle.
    pub fn design_mounts() -> (Transform<FiducialFrame, TrackerReference>, Isometry3<f64>) {
        (
            Transform::from_isometry(Isometry3::from_parts(
                Translation3::new(0.04, 0.03, 0.06),
                UnitQuaternion::from_euler_angles(0.0, 0.0, 0.3),
            )),
            Isometry3::from_parts(
                Translation3::new(0.0, 0.04, -0.26),
                UnitQuaternion::from_euler_angles(0.2, -0.1, 0.5),
            ),
        )
    }

    /// The calibration the drawings of [`TrackerRig::design_mounts`] give: what a lab configures (the controller's
    /// configuration states it; a test checks the two agree).
    pub fn design_calibration() -> TrackerCalibration {
        let (t_frame_ref, t_needle_tool) = Self::design_mounts();
        TrackerCalibration {
            t_frame_ref,
            tip_in_tool: Point::new(t_needle_tool.inverse().transform_point(&nalgebra::Point3::origin())),
        }
    }

    /// The design tip in the needle tool (what a lab configures as `tip_in_tool`).
    pub fn tip_in_tool(&self) -> Point<NeedleTool> {
        Point::new(
            self.t_needle_tool
                .inverse()
                .transform_point(&nalgebra::Point3::origin()),
        )
    }
}

/// One moment of the tracker's truth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerSample {
    /// The reference tool as the camera sees it (no noise).
    pub t_tracker_ref: Transform<Tracker, TrackerReference>,
    /// The needle tool as the camera sees it (no noise).
    pub t_tracker_needle: Transform<Tracker, NeedleTool>,
    /// The straight needle's tip, tracker frame.
    pub tip_tracker: Point<Tracker>,
    /// The straight needle's tip, CT.
    pub tip_ct: Point<Ct>,
    /// The straight needle's tip, robot base.
    pub tip_robot: Point<RobotBase>,
}

/// The tracker's view of the twin. Holds its own copy of the robot as built (the patient's is synced at scans only;
/// the tracker follows the encoders continuously), started from the patient's state.
#[derive(Clone, Debug)]
pub struct TwinTracker {
    robot: AsBuiltRobot,
    t_ct_robot: Transform<Ct, RobotBase>,
    t_tracker_robot: Isometry3<f64>,
    t_tracker_ref: Transform<Tracker, TrackerReference>,
    t_needle_tool: Isometry3<f64>,
    rig: TrackerRig,
}

/// A small rigid error: rotation vector and translation, each Gaussian per axis.
fn mount_error(rng: &mut impl rand::Rng, errors: &TrackerErrors) -> Isometry3<f64> {
    let r = world::gaussian_vector(rng, errors.mount_rotation);
    let t = world::gaussian_vector(rng, errors.mount_position);
    Isometry3::from_parts(Translation3::from(t), UnitQuaternion::from_scaled_axis(r))
}

impl TwinTracker {
    /// The tracker of `patient`'s world: `rig` with mounts as built drawn by `errors` from `seed`; the reference sits
    /// on the frame as manufactured, placed by the best rigid fit of the design sphere centres (`design`) to the
    /// manufactured ones (the frame's body is where its spheres are, on average).
    pub fn new(
        patient: &Patient,
        design: &FiducialModel,
        rig: TrackerRig,
        errors: &TrackerErrors,
        seed: u64,
    ) -> Result<Self, TwinError> {
        let t_frame_base = design.t_base_frame().inverse();
        let nominal: Vec<Point<FiducialFrame>> = design.points().iter().map(|p| t_frame_base.apply(p)).collect();
        let built = &patient.frame().centres;
        let t_base_frame = fit_rigid::<RobotBase, FiducialFrame>(built, &nominal)
            .map_err(|e| TwinError::TrackerRig(format!("placing the frame as manufactured: {e}")))?;
        let mut rng = world::rng(seed, Stream::Tracker, 0);
        let t_frame_ref_built = Transform::<FiducialFrame, TrackerReference>::from_isometry(
            rig.t_frame_ref.isometry() * mount_error(&mut rng, errors),
        );
        let t_needle_tool = rig.t_needle_tool * mount_error(&mut rng, errors);
        let t_ct_robot = patient.config().t_ct_robot;
        let t_tracker_robot = rig.t_ct_tracker.inverse() * t_ct_robot;
        Ok(Self {
            robot: patient.robot().clone(),
            t_ct_robot,
            t_tracker_robot: *t_tracker_robot.isometry(),
            t_tracker_ref: t_tracker_robot * t_base_frame * t_frame_ref_built,
            t_needle_tool,
            rig,
        })
    }

    /// What the controller is configured with: the design mounts, not the as-built ones.
    pub fn calibration(&self) -> TrackerCalibration {
        TrackerCalibration {
            t_frame_ref: self.rig.t_frame_ref,
            tip_in_tool: self.rig.tip_in_tool(),
        }
    }

    /// The rig (design mounts and the camera's true placement).
    pub fn rig(&self) -> &TrackerRig {
        &self.rig
    }

    /// The tip in the needle tool as built (truth: what a perfect pivot calibration would find).
    pub fn tip_in_tool_as_built(&self) -> Point<NeedleTool> {
        Point::new(
            self.t_needle_tool
                .inverse()
                .transform_point(&nalgebra::Point3::origin()),
        )
    }

    /// The truth at encoder positions `encoder`; moves this copy's insertion drive through its dead band, as
    /// [`AsBuiltRobot::sync`] does.
    pub fn sample(&mut self, encoder: &JointPositions) -> Result<TrackerSample, TwinError> {
        let guide = self.robot.sync(encoder)?;
        let direction = guide.holder * Vector3::z();
        let tip = guide.entry.coords + direction * guide.depth;
        let t_base_needle = Isometry3::from_parts(Translation3::from(tip.coords), guide.holder);
        let t_tracker_needle = Transform::from_isometry(self.t_tracker_robot * t_base_needle * self.t_needle_tool);
        let tip_base = Point::<RobotBase>::new(tip);
        Ok(TrackerSample {
            t_tracker_ref: self.t_tracker_ref,
            t_tracker_needle,
            tip_tracker: Point::new(self.t_tracker_robot.transform_point(&tip)),
            tip_ct: self.t_ct_robot.apply(&tip_base),
            tip_robot: tip_base,
        })
    }

    /// `T_tracker_tool` per tool ([`REFERENCE_TOOL`], [`NEEDLE_TOOL`]) at `encoder`, as `SimNdi` takes them; a joint
    /// position the kinematics refuse leaves the needle tool unseen.
    pub fn tool_poses(&mut self, encoder: &JointPositions) -> Vec<Option<Isometry3<f64>>> {
        let reference = Some(*self.t_tracker_ref.isometry());
        match self.sample(encoder) {
            Ok(s) => vec![reference, Some(*s.t_tracker_needle.isometry())],
            Err(_) => vec![reference, None],
        }
    }

    /// A pose function for `SimNdi::start`: at camera time `t` (s) it reads the joint positions from `encoder(t)`
    /// (a watch channel's latest value, or a trajectory in a test) and returns [`TwinTracker::tool_poses`].
    pub fn into_pose_fn(
        self,
        encoder: impl Fn(f64) -> JointPositions + Send + Sync + 'static,
    ) -> impl Fn(f64) -> Vec<Option<Isometry3<f64>>> + Send + Sync + 'static {
        self.into_observed_pose_fn(encoder, |_, _| {})
    }

    /// [`TwinTracker::into_pose_fn`], handing each frame's truth (camera time, sample) to `observe` as well, e.g. for
    /// a composition root that writes the twin's truth on exit.
    pub fn into_observed_pose_fn(
        self,
        encoder: impl Fn(f64) -> JointPositions + Send + Sync + 'static,
        observe: impl Fn(f64, &TrackerSample) + Send + Sync + 'static,
    ) -> impl Fn(f64) -> Vec<Option<Isometry3<f64>>> + Send + Sync + 'static {
        let tracker = Mutex::new(self);
        move |t| {
            let q = encoder(t);
            let mut tracker = tracker.lock().unwrap_or_else(|p| p.into_inner());
            let reference = Some(*tracker.t_tracker_ref.isometry());
            match tracker.sample(&q) {
                Ok(s) => {
                    observe(t, &s);
                    vec![reference, Some(*s.t_tracker_needle.isometry())]
                }
                Err(_) => vec![reference, None],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patient::{FrameAsBuilt, PatientConfig};
    use crate::world::RobotErrors;

    fn urdf() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../urdf/positioner.urdf")).unwrap()
    }

    fn patient(errors: &RobotErrors, sphere: f64, seed: u64) -> (Patient, FiducialModel) {
        let urdf = urdf();
        let design = FiducialModel::from_urdf_str(&urdf).unwrap();
        let robot = AsBuiltRobot::build(&urdf, errors, seed).unwrap();
        let frame = FrameAsBuilt::manufacture(&design, sphere, seed);
        (Patient::new(PatientConfig::reference(), robot, frame).unwrap(), design)
    }

    /// In the ideal world the tip the controller would compute from the true registration and the design calibration
    /// is the twin's tip exactly, and it is where the nominal kinematics put the needle tip.
    #[test]
    fn ideal_world_tip_matches_the_design_chain() {
        let (patient, design) = patient(&RobotErrors::NONE, 0.0, 0);
        let rig = TrackerRig::overhead(&patient, &design, 1.5).unwrap();
        let mut tracker = TwinTracker::new(&patient, &design, rig, &TrackerErrors::NONE, 1).unwrap();
        let cal = tracker.calibration();
        let t_robot_ct = patient.config().t_ct_robot.inverse();
        for q in [
            JointPositions::new(0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
            JointPositions::new(0.03, -0.02, 0.05, 0.3, -0.2, 0.07),
        ] {
            let s = tracker.sample(&q).unwrap();
            let tip = acus_control::tracking::needle_tip_ct(
                &t_robot_ct,
                &design.t_base_frame(),
                &cal,
                &s.t_tracker_ref,
                &s.t_tracker_needle,
            );
            assert!(tip.distance(&s.tip_ct) < 1e-9, "{} m", tip.distance(&s.tip_ct));
            let (_, nominal_tip) = patient.robot().frames(&q.0).unwrap();
            let nominal = patient
                .config()
                .t_ct_robot
                .apply(&Point::new(nominal_tip.translation.vector.into()));
            assert!(nominal.distance(&s.tip_ct) < 1e-9);
            // Both tools in the default NDI volume (z in [-2.4, -0.9] m, |x|, |y| < 0.5 m), away from its faces.
            for p in [s.t_tracker_ref.isometry(), s.t_tracker_needle.isometry()] {
                let v = p.translation.vector;
                assert!(
                    v.x.abs() < 0.45 && v.y.abs() < 0.45 && v.z < -0.95 && v.z > -2.35,
                    "{v}"
                );
            }
        }
    }

    /// A realistic frame and mounts: the as-built values differ from the calibration by about the drawn σ, and the
    /// tip from the design calibration misses the truth by about that much (not more).
    #[test]
    fn as_built_mounts_differ_from_the_calibration() {
        let errors = RobotErrors {
            zero_offset_prismatic: 0.3e-3,
            zero_offset_rotary: 2e-3,
            origin_position: 0.2e-3,
            axis_direction: 1e-3,
            insertion_backlash: 0.1e-3,
            holder_play: 2e-3,
        };
        let (patient, design) = patient(&errors, 1e-4, 42);
        let rig = TrackerRig::overhead(&patient, &design, 1.5).unwrap();
        let drawn = TrackerErrors::from_frame(&FrameErrors { sphere_centre: 1e-4 });
        let mut tracker = TwinTracker::new(&patient, &design, rig, &drawn, 42).unwrap();
        let cal = tracker.calibration();
        let offset = cal.tip_in_tool.distance(&tracker.tip_in_tool_as_built());
        assert!(
            offset > 1e-6 && offset < 2e-3,
            "tip calibration off by {:.3} mm",
            offset * 1e3
        );
        let q = JointPositions::new(0.01, 0.02, 0.03, 0.1, 0.1, 0.05);
        let s = tracker.sample(&q).unwrap();
        let tip = acus_control::tracking::needle_tip_ct(
            &patient.config().t_ct_robot.inverse(),
            &design.t_base_frame(),
            &cal,
            &s.t_tracker_ref,
            &s.t_tracker_needle,
        );
        let miss = tip.distance(&s.tip_ct);
        assert!(miss > 1e-6 && miss < 3e-3, "tip misses by {:.3} mm", miss * 1e3);
        // The same draws every time.
        let again = TwinTracker::new(&patient, &design, rig, &drawn, 42).unwrap();
        assert_eq!(again.tip_in_tool_as_built(), tracker.tip_in_tool_as_built());
    }
}
