//! Conversions between the control core's typed values and standard ROS 2 messages. Frames keep their names on the wire
//! (`Frame::NAME`: `robot_base`, `ct` — the CT scanner's patient frame, LPS, as in DICOM).

use std::time::{SystemTime, UNIX_EPOCH};

use acus_control::frames::{Frame, Point, Transform};
use acus_control::kinematics::{Joint, JointPositions};
use r2r::builtin_interfaces::msg::Time;
use r2r::geometry_msgs::msg::{Point as PointMsg, Quaternion, Transform as TransformMsg, TransformStamped, Vector3};
use r2r::sensor_msgs::msg::JointState;
use r2r::std_msgs::msg::Header;

/// Wall-clock stamp.
pub fn now() -> Time {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Time {
        sec: since_epoch.as_secs() as i32,
        nanosec: since_epoch.subsec_nanos(),
    }
}

/// Header in `frame_id`, stamped now.
pub fn header(frame_id: &str) -> Header {
    Header {
        stamp: now(),
        frame_id: frame_id.to_owned(),
    }
}

/// A point (metres) as a message.
pub fn point<F: Frame>(p: &Point<F>) -> PointMsg {
    PointMsg {
        x: p.coords.x,
        y: p.coords.y,
        z: p.coords.z,
    }
}

/// `T_a_b` as a TransformStamped with `header.frame_id = a` and `child_frame_id = b` (ROS's convention means the same:
/// the transform maps points from the child frame into the header frame).
pub fn transform_stamped<A: Frame, B: Frame>(t: &Transform<A, B>) -> TransformStamped {
    let iso = t.isometry();
    let (tr, q) = (iso.translation.vector, iso.rotation.quaternion());
    TransformStamped {
        header: header(A::NAME),
        child_frame_id: B::NAME.to_owned(),
        transform: TransformMsg {
            translation: Vector3 {
                x: tr.x,
                y: tr.y,
                z: tr.z,
            },
            rotation: Quaternion {
                x: q.i,
                y: q.j,
                z: q.k,
                w: q.w,
            },
        },
    }
}

/// Joint positions (m, rad) as a JointState with the URDF's joint names.
pub fn joint_state(q: &JointPositions) -> JointState {
    JointState {
        header: header(""),
        name: Joint::ALL.iter().map(|j| j.name().to_owned()).collect(),
        position: Joint::ALL.iter().map(|j| q.get(*j)).collect(),
        velocity: Vec::new(),
        effort: Vec::new(),
    }
}
