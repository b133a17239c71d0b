//! The fiducial frame model: sphere centres in `RobotBase`, read from the robot's URDF.
//!
//! Convention (urdf/positioner.urdf): link `fiducial_frame` hangs off the base through the fixed joint
//! `fiducial_frame_joint`; links `fiducial_0`, `fiducial_1`, … hang off `fiducial_frame` through fixed joints
//! `fiducial_<i>_joint` whose origin is the sphere centre, and each carries a sphere geometry giving its radius.
//! The chain from `fiducial_frame` up to `robot_base` is composed, so the model comes out in `RobotBase`.

use nalgebra::{Isometry3, Translation3, UnitQuaternion};

use super::RegistrationError;
use crate::frames::{FiducialFrame, Point, RobotBase, Transform};

/// Name of the base link the model is expressed in.
pub const BASE_LINK: &str = "robot_base";
/// Name of the link carrying the spheres.
pub const FRAME_LINK: &str = "fiducial_frame";

/// Sphere centres of the registration frame in the robot base, in fiducial index order.
#[derive(Clone, Debug, PartialEq)]
pub struct FiducialModel {
    points: Vec<Point<RobotBase>>,
    radius: f64,
    t_base_frame: Transform<RobotBase, FiducialFrame>,
}

impl FiducialModel {
    /// A model from centres already in the base frame and a common sphere radius (metres).
    pub fn new(points: Vec<Point<RobotBase>>, radius: f64) -> Result<Self, RegistrationError> {
        Self::with_frame(points, radius, Transform::identity())
    }

    fn with_frame(
        points: Vec<Point<RobotBase>>,
        radius: f64,
        t_base_frame: Transform<RobotBase, FiducialFrame>,
    ) -> Result<Self, RegistrationError> {
        if points.len() < 3 {
            return Err(RegistrationError::Model(format!(
                "{} fiducials in the model; at least 3 are needed",
                points.len()
            )));
        }
        if !(radius.is_finite() && radius > 0.0) || points.iter().any(|p| !p.is_finite()) {
            return Err(RegistrationError::Model(format!(
                "invalid radius {radius} m or non-finite centre"
            )));
        }
        for (a, pa) in points.iter().enumerate() {
            for (b, pb) in points.iter().enumerate().skip(a + 1) {
                let d = pa.distance(pb);
                if d < 2.0 * radius {
                    return Err(RegistrationError::Model(format!(
                        "fiducials {a} and {b} are {:.2} mm apart, closer than a sphere diameter",
                        d * 1e3
                    )));
                }
            }
        }
        Ok(Self {
            points,
            radius,
            t_base_frame,
        })
    }

    /// Reads the model from URDF text (parsing only; the caller reads the file).
    pub fn from_urdf_str(urdf: &str) -> Result<Self, RegistrationError> {
        let robot = urdf_rs::read_from_string(urdf).map_err(|e| RegistrationError::Model(format!("URDF: {e}")))?;
        let t_base_frame = chain_to_base(&robot, FRAME_LINK)?;
        let mut spheres: Vec<(usize, Point<FiducialFrame>, f64)> = Vec::new();
        for joint in robot.joints.iter().filter(|j| j.parent.link == FRAME_LINK) {
            let Some(index) = joint
                .child
                .link
                .strip_prefix("fiducial_")
                .and_then(|s| s.parse::<usize>().ok())
            else {
                continue;
            };
            if !matches!(joint.joint_type, urdf_rs::JointType::Fixed) {
                return Err(RegistrationError::Model(format!(
                    "joint {} of fiducial {index} is not fixed",
                    joint.name
                )));
            }
            let [x, y, z] = *joint.origin.xyz;
            let radius = sphere_radius(&robot, &joint.child.link)?;
            spheres.push((index, Point::xyz(x, y, z), radius));
        }
        spheres.sort_by_key(|s| s.0);
        for (expected, s) in spheres.iter().enumerate() {
            if s.0 != expected {
                return Err(RegistrationError::Model(format!(
                    "fiducial indices must run 0..{} without gaps; found fiducial_{} where fiducial_{expected} was expected",
                    spheres.len(),
                    s.0
                )));
            }
        }
        let Some(radius) = spheres.first().map(|s| s.2) else {
            return Err(RegistrationError::Model(format!(
                "no fiducial_<i> links under {FRAME_LINK}"
            )));
        };
        if let Some(s) = spheres.iter().find(|s| (s.2 - radius).abs() > 1e-9) {
            return Err(RegistrationError::Model(format!(
                "fiducial_{} radius {:.3} mm differs from fiducial_0 radius {:.3} mm",
                s.0,
                s.2 * 1e3,
                radius * 1e3
            )));
        }
        let points = spheres.iter().map(|s| t_base_frame.apply(&s.1)).collect();
        Self::with_frame(points, radius, t_base_frame)
    }

    /// Sphere centres in the base frame.
    pub fn points(&self) -> &[Point<RobotBase>] {
        &self.points
    }

    /// Number of fiducials.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Always false for a constructed model (at least 3 fiducials); present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Sphere radius, metres.
    pub fn radius(&self) -> f64 {
        self.radius
    }

    /// `T_robot_base_fiducial_frame` as read from the URDF (identity for models built from base-frame points).
    pub fn t_base_frame(&self) -> Transform<RobotBase, FiducialFrame> {
        self.t_base_frame
    }
}

fn pose_to_iso(pose: &urdf_rs::Pose) -> Isometry3<f64> {
    let [x, y, z] = *pose.xyz;
    let [r, p, yaw] = *pose.rpy;
    // URDF rpy is fixed-axis roll about x, then pitch about y, then yaw about z: R = Rz·Ry·Rx, as nalgebra's.
    Isometry3::from_parts(Translation3::new(x, y, z), UnitQuaternion::from_euler_angles(r, p, yaw))
}

/// Composes fixed joints from `link` up to `robot_base`.
fn chain_to_base(robot: &urdf_rs::Robot, link: &str) -> Result<Transform<RobotBase, FiducialFrame>, RegistrationError> {
    let mut iso = Isometry3::identity();
    let mut current = link.to_string();
    for _ in 0..=robot.joints.len() {
        if current == BASE_LINK {
            return Ok(Transform::from_isometry(iso));
        }
        let Some(joint) = robot.joints.iter().find(|j| j.child.link == current) else {
            return Err(RegistrationError::Model(format!(
                "link {current} has no parent joint and is not {BASE_LINK}"
            )));
        };
        if !matches!(joint.joint_type, urdf_rs::JointType::Fixed) {
            return Err(RegistrationError::Model(format!(
                "joint {} between {BASE_LINK} and {link} is not fixed; the frame must be rigid to the base",
                joint.name
            )));
        }
        iso = pose_to_iso(&joint.origin) * iso;
        current = joint.parent.link.clone();
    }
    Err(RegistrationError::Model(format!("joint loop above link {link}")))
}

fn sphere_radius(robot: &urdf_rs::Robot, link: &str) -> Result<f64, RegistrationError> {
    let l = robot
        .links
        .iter()
        .find(|l| l.name == link)
        .ok_or_else(|| RegistrationError::Model(format!("link {link} is referenced by a joint but not defined")))?;
    let geometries = l
        .collision
        .iter()
        .map(|c| &c.geometry)
        .chain(l.visual.iter().map(|v| &v.geometry));
    for g in geometries {
        if let urdf_rs::Geometry::Sphere { radius } = g {
            return Ok(*radius);
        }
    }
    Err(RegistrationError::Model(format!(
        "link {link} has no sphere geometry giving the fiducial radius"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urdf(frame_origin: &str) -> String {
        let mut s = String::from(r#"<robot name="t"><link name="robot_base"/><link name="fiducial_frame"/>"#);
        s += &format!(
            r#"<joint name="fiducial_frame_joint" type="fixed"><parent link="robot_base"/><child link="fiducial_frame"/>{frame_origin}</joint>"#
        );
        for (i, (x, y, z)) in [(0.0, 0.0, 0.0), (70.0, 0.0, 8.0), (0.0, 55.0, 15.0), (85.0, 60.0, 0.0)]
            .iter()
            .enumerate()
        {
            s += &format!(
                r#"<link name="fiducial_{i}"><visual><geometry><sphere radius="0.002"/></geometry></visual></link>
                <joint name="fiducial_{i}_joint" type="fixed"><parent link="fiducial_frame"/><child link="fiducial_{i}"/>
                <origin xyz="{} {} {}"/></joint>"#,
                x / 1e3,
                y / 1e3,
                z / 1e3
            );
        }
        s + "</robot>"
    }

    #[test]
    fn composes_frame_joint() {
        let m =
            FiducialModel::from_urdf_str(&urdf(r#"<origin xyz="0.1 0.2 0.3" rpy="0 0 1.5707963267948966"/>"#)).unwrap();
        assert_eq!(m.len(), 4);
        assert!((m.radius() - 0.002).abs() < 1e-12);
        // F1 = (70, 0, 8) mm rotated 90° about z → (0, 70, 8), then shifted.
        let p = m.points()[1].coords;
        assert!((p - nalgebra::Point3::new(0.1, 0.27, 0.308)).norm() < 1e-9, "{p}");
    }

    #[test]
    fn missing_frame_joint_is_an_error() {
        let text = urdf("").replace("robot_base\"/><child", "somewhere\"/><child");
        let err = FiducialModel::from_urdf_str(&text).unwrap_err();
        assert!(err.to_string().contains("somewhere"), "{err}");
    }
}
