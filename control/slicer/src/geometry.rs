//! What the bridge computes between Slicer's world (CT as RAS, mm) and the procedure's (CT as DICOM LPS, metres; the
//! robot base in metres). Pure functions on nalgebra values; the RAS↔LPS and mm↔m steps themselves are
//! acus-igtl's [`acus_igtl::convert`], the one place that converts.

use acus_control::registration::VolumeGeometry;
use acus_igtl::convert::{lps_m_from_ras_mm, m_to_mm, transform_ras_mm};
use acus_igtl::PointItem;
use nalgebra::{Isometry3, Matrix4, Point3, Quaternion, Translation3, UnitQuaternion, Vector4};

/// The plan points Slicer may send, by the name of the POINT item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanPoint {
    /// Skin entry.
    Entry,
    /// Lesion target.
    Target,
}

impl PlanPoint {
    /// Its ROS topic (geometry_msgs/PointStamped, frame `ct`).
    pub fn topic(self) -> &'static str {
        match self {
            PlanPoint::Entry => "/plan/entry",
            PlanPoint::Target => "/plan/target",
        }
    }

    /// Its name in replies.
    pub fn name(self) -> &'static str {
        match self {
            PlanPoint::Entry => "entry",
            PlanPoint::Target => "target",
        }
    }
}

/// A POINT item as a plan point in CT LPS metres. `Err` is the reply text: the name is not `entry`/`target`
/// (case-insensitive), or the position is not finite.
pub fn plan_point(item: &PointItem) -> Result<(PlanPoint, Point3<f64>), String> {
    let which = match item.name.trim().to_lowercase().as_str() {
        "entry" => PlanPoint::Entry,
        "target" => PlanPoint::Target,
        _ => {
            return Err(format!(
                "refused: unknown point '{}' (expected 'entry' or 'target')",
                item.name
            ))
        }
    };
    let p = item.position;
    if !(p.x.is_finite() && p.y.is_finite() && p.z.is_finite()) {
        return Err(format!("refused: {} is not a finite position", which.name()));
    }
    Ok((which, lps_m_from_ras_mm(&p)))
}

/// An isometry from a ROS translation (m) and quaternion (x, y, z, w); `None` if anything is not finite or the
/// quaternion is far from unit length (a message that is not a pose: it is ignored rather than normalised into one).
pub fn isometry(translation: [f64; 3], xyzw: [f64; 4]) -> Option<Isometry3<f64>> {
    if translation.iter().chain(&xyzw).any(|v| !v.is_finite()) {
        return None;
    }
    let q = Quaternion::new(xyzw[3], xyzw[0], xyzw[1], xyzw[2]);
    if (q.norm() - 1.0).abs() > 1e-3 {
        return None;
    }
    Some(Isometry3::from_parts(
        Translation3::new(translation[0], translation[1], translation[2]),
        UnitQuaternion::from_quaternion(q),
    ))
}

/// The needle tip as Slicer shows it: `T_ct_tip = T_robot_ct⁻¹ · T_robot_tip`, as a RAS-mm TRANSFORM matrix.
pub fn tip_ras_mm(t_robot_ct: &Isometry3<f64>, t_robot_tip: &Isometry3<f64>) -> Matrix4<f64> {
    transform_ras_mm(&(t_robot_ct.inverse() * t_robot_tip))
}

/// `T_robot_ct` for Slicer: maps a CT point given as RAS mm to the robot base point in mm (so a Slicer transform node
/// holding it carries RAS-world content into the robot frame).
pub fn robot_ct_mm(t_robot_ct: &Isometry3<f64>) -> Matrix4<f64> {
    let flip = Matrix4::from_diagonal(&Vector4::new(-1.0, -1.0, 1.0, 1.0));
    let mut m = t_robot_ct.to_homogeneous();
    for r in 0..3 {
        m[(r, 3)] = m_to_mm(m[(r, 3)]);
    }
    m * flip
}

/// Whether two registrations differ enough to send again (1 µm, 1 µrad): the registration node republishes the same
/// transform, and a Slicer scene need not hear it twice.
pub fn changed(a: &Isometry3<f64>, b: &Isometry3<f64>) -> bool {
    (a.translation.vector - b.translation.vector).norm() > 1e-6 || a.rotation.angle_to(&b.rotation) > 1e-6
}

/// A volume's IJK → CT LPS (m) matrix: columns are the spacing-scaled index steps, translation the centre of voxel 0.
pub fn ijk_to_lps_m(geometry: &VolumeGeometry) -> Matrix4<f64> {
    let mut m = Matrix4::identity();
    m.fixed_slice_mut::<3, 3>(0, 0)
        .copy_from(&geometry.index_to_ct_matrix());
    m.fixed_slice_mut::<3, 1>(0, 3)
        .copy_from(&geometry.origin.coords.coords);
    m
}

/// Little-endian bytes of HU voxels (i fastest) for an IMAGE.
pub fn pixels_le(hu: &[i16]) -> Vec<u8> {
    hu.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use acus_control::frames::Point;
    use acus_igtl::convert::ras_mm_from_lps_m;
    use nalgebra::Vector3;

    fn item(name: &str, p: [f64; 3]) -> PointItem {
        PointItem {
            name: name.into(),
            group: String::new(),
            rgba: [0; 4],
            position: Point3::new(p[0], p[1], p[2]),
            diameter: 0.0,
            owner: String::new(),
        }
    }

    #[test]
    fn plan_points_are_named_case_insensitively_and_converted_to_lps_metres() {
        let (which, p) = plan_point(&item("Entry", [10.0, 20.0, 30.0])).unwrap();
        assert_eq!(which, PlanPoint::Entry);
        assert!((p - Point3::new(-0.010, -0.020, 0.030)).norm() < 1e-12);
        assert_eq!(plan_point(&item("TARGET", [0.0; 3])).unwrap().0, PlanPoint::Target);
        let e = plan_point(&item("lesion", [0.0; 3])).unwrap_err();
        assert!(e.starts_with("refused:") && e.contains("'lesion'"), "{e}");
        assert!(plan_point(&item("entry", [f64::NAN, 0.0, 0.0])).is_err());
    }

    fn registration() -> Isometry3<f64> {
        Isometry3::from_parts(
            Translation3::new(0.05, -0.3, 0.02),
            UnitQuaternion::from_euler_angles(0.05, -0.1, 1.2),
        )
    }

    #[test]
    fn the_tip_in_ras_mm_is_the_robot_tip_carried_into_ct() {
        let t_robot_ct = registration();
        let t_robot_tip = Isometry3::from_parts(
            Translation3::new(0.01, 0.02, 0.15),
            UnitQuaternion::from_euler_angles(0.3, 0.0, -0.2),
        );
        let m = tip_ras_mm(&t_robot_ct, &t_robot_tip);
        // The tip's position: robot → CT (LPS m) → RAS mm, computed the other way round.
        let tip_ct = t_robot_ct.inverse_transform_point(&Point3::from(t_robot_tip.translation.vector));
        let expect = ras_mm_from_lps_m(&tip_ct);
        assert!((Vector3::new(m[(0, 3)], m[(1, 3)], m[(2, 3)]) - expect.coords).norm() < 1e-9);
        // The needle axis (tip z) in RAS: x and y flip sign.
        let axis_ct = t_robot_ct.inverse_transform_vector(&(t_robot_tip.rotation * Vector3::z()));
        let axis_ras = Vector3::new(-axis_ct.x, -axis_ct.y, axis_ct.z);
        assert!((Vector3::new(m[(0, 2)], m[(1, 2)], m[(2, 2)]) - axis_ras).norm() < 1e-12);
    }

    #[test]
    fn robot_ct_mm_maps_ras_mm_to_robot_mm() {
        let t = registration();
        let p_lps = Point3::new(0.012, -0.034, 0.056);
        let want = t * p_lps;
        let got = robot_ct_mm(&t).transform_point(&ras_mm_from_lps_m(&p_lps));
        assert!((got.coords - want.coords * 1000.0).norm() < 1e-9);
        assert!(!changed(&t, &t));
        assert!(changed(&t, &(Translation3::new(0.0, 0.0, 1e-5) * t)));
    }

    #[test]
    fn poses_from_messages_are_checked() {
        assert!(isometry([0.0; 3], [0.0, 0.0, 0.0, 1.0]).is_some());
        assert!(isometry([0.0; 3], [0.0, 0.0, 0.0, 0.0]).is_none());
        assert!(isometry([f64::INFINITY, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]).is_none());
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let r = isometry([1.0, 2.0, 3.0], [0.0, 0.0, s, s]).unwrap();
        assert!((r * Point3::new(1.0, 0.0, 0.0) - Point3::new(1.0, 3.0, 3.0)).norm() < 1e-12);
    }

    #[test]
    fn the_image_matrix_places_voxels_where_the_volume_does() {
        let g = VolumeGeometry::axial(Point::xyz(0.1, 0.05, -0.02), Vector3::new(0.8e-3, 0.7e-3, 1e-3), 1e-3);
        let m = ijk_to_lps_m(&g);
        let v = Vector3::new(3.0, 4.0, 5.0);
        let want = g.index_to_point(&v).coords;
        assert!((m.transform_point(&Point3::from(v)) - want).norm() < 1e-15);
        assert_eq!(pixels_le(&[-1000, 1]), vec![0x18, 0xfc, 1, 0]);
    }
}
