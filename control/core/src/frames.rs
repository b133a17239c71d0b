//! Typed coordinate frames, so that `T_robot_ct` cannot be composed backwards.
//!
//! `Transform<A, B>` is `T_a_b`: it maps points expressed in frame `B` into frame `A`. Composition only type-checks when the
//! inner frames agree (`T_a_b * T_b_c = T_a_c`), and a point carries its frame so it can only be mapped by a transform that
//! takes that frame. All lengths are metres.

use core::fmt;
use core::marker::PhantomData;
use core::ops::Mul;

use nalgebra::{Isometry3, Point3, Vector3};

/// A named coordinate frame (a zero-sized marker type).
pub trait Frame: Copy + Default + fmt::Debug + 'static {
    /// The frame's name as it appears in ROS `frame_id`s and logs.
    const NAME: &'static str;
}

macro_rules! frame {
    ($(#[$doc:meta])* $ty:ident, $name:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $ty;
        impl Frame for $ty {
            const NAME: &'static str = $name;
        }
    };
}

frame!(
    /// DICOM patient coordinates (LPS), as the scanner writes them. 3D Slicer's RAS is converted at its boundary.
    Ct,
    "ct"
);
frame!(
    /// The robot's base: the root link of the URDF; the stage axes are expressed in it.
    RobotBase,
    "robot_base"
);
frame!(
    /// The registration frame of fiducial spheres, fixed to the base; sphere centres are known in it from the URDF.
    FiducialFrame,
    "fiducial_frame"
);

frame!(
    /// The optical / electromagnetic tracker's measurement frame (NDI: the camera or field generator), metres.
    Tracker,
    "tracker"
);
frame!(
    /// The tracked reference tool, mounted rigidly on the fiducial frame: what ties the tracker to the CT.
    TrackerReference,
    "tracker_reference"
);
frame!(
    /// The tracked tool on the needle hub; the tip sits at a calibrated offset in it.
    NeedleTool,
    "needle_tool"
);

/// A rigid transform `T_a_b`: maps points expressed in frame `B` into frame `A`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transform<A: Frame, B: Frame> {
    iso: Isometry3<f64>,
    _frames: PhantomData<(A, B)>,
}

impl<A: Frame, B: Frame> Transform<A, B> {
    /// Wraps an isometry that maps points from `B` into `A`.
    pub fn from_isometry(iso: Isometry3<f64>) -> Self {
        Self {
            iso,
            _frames: PhantomData,
        }
    }

    /// The identity (only meaningful where `A` and `B` coincide physically, e.g. in tests).
    pub fn identity() -> Self {
        Self::from_isometry(Isometry3::identity())
    }

    /// The underlying isometry.
    pub fn isometry(&self) -> &Isometry3<f64> {
        &self.iso
    }

    /// `T_b_a`.
    pub fn inverse(&self) -> Transform<B, A> {
        Transform::from_isometry(self.iso.inverse())
    }

    /// Maps a point from `B` into `A`.
    pub fn apply(&self, p: &Point<B>) -> Point<A> {
        Point::new(self.iso.transform_point(&p.coords))
    }

    /// Rotates a direction from `B` into `A` (no translation).
    pub fn apply_vector(&self, v: &Vector3<f64>) -> Vector3<f64> {
        self.iso.transform_vector(v)
    }
}

impl<A: Frame, B: Frame, C: Frame> Mul<Transform<B, C>> for Transform<A, B> {
    type Output = Transform<A, C>;
    fn mul(self, rhs: Transform<B, C>) -> Transform<A, C> {
        Transform::from_isometry(self.iso * rhs.iso)
    }
}

/// A point in frame `F`, in metres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point<F: Frame> {
    /// Coordinates in metres.
    pub coords: Point3<f64>,
    _frame: PhantomData<F>,
}

impl<F: Frame> Point<F> {
    /// A point from coordinates in metres.
    pub fn new(coords: Point3<f64>) -> Self {
        Self {
            coords,
            _frame: PhantomData,
        }
    }

    /// A point from x, y, z in metres.
    pub fn xyz(x: f64, y: f64, z: f64) -> Self {
        Self::new(Point3::new(x, y, z))
    }

    /// True when every coordinate is finite (no NaN or infinity).
    pub fn is_finite(&self) -> bool {
        self.coords.iter().all(|c| c.is_finite())
    }

    /// Distance to another point of the same frame, in metres.
    pub fn distance(&self, other: &Point<F>) -> f64 {
        (self.coords - other.coords).norm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Translation3, UnitQuaternion};

    #[test]
    fn composition_and_inverse_round_trip() {
        let t_robot_ct = Transform::<RobotBase, Ct>::from_isometry(Isometry3::from_parts(
            Translation3::new(0.1, -0.2, 0.3),
            UnitQuaternion::from_euler_angles(0.1, 0.2, 0.3),
        ));
        let p_ct = Point::<Ct>::xyz(0.01, 0.02, 0.03);
        let back = t_robot_ct.inverse().apply(&t_robot_ct.apply(&p_ct));
        assert!(back.distance(&p_ct) < 1e-12);
        let t_ct_ct = t_robot_ct.inverse() * t_robot_ct;
        assert!(t_ct_ct.apply(&p_ct).distance(&p_ct) < 1e-12);
    }
}
