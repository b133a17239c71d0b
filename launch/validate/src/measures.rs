//! The tip measures published CT needle robots report, from points in one frame (CT, metres): pure geometry, so the
//! runner and any re-analysis compute them the same way.

use nalgebra::Vector3;

use crate::Error;

/// Where the needle tip ended up relative to the plan, SI (m, rad).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TipMeasures {
    /// Euclidean distance tip–target (ED).
    pub ed_m: f64,
    /// Normal distance of the target from the line through the tip along the needle axis (ND): the lateral error,
    /// the part no further insertion can fix.
    pub nd_m: f64,
    /// Signed distance of the tip past the target along the needle axis: + = beyond the target, − = short of it.
    pub depth_error_m: f64,
    /// Angle between the planned direction (target − entry) and the needle's actual axis, 0–π.
    pub angle_error_rad: f64,
    /// tip − target (for the bias, the mean error vector).
    pub error_m: Vector3<f64>,
}

impl TipMeasures {
    /// Measure a tip. `needle_axis` points the way the needle advances (hub → tip); its length does not matter.
    ///
    /// Fails when a point is not finite, the axis has no length, or entry and target coincide (no planned direction).
    pub fn from_points(
        entry: &Vector3<f64>,
        target: &Vector3<f64>,
        tip: &Vector3<f64>,
        needle_axis: &Vector3<f64>,
    ) -> Result<Self, Error> {
        for (name, v) in [
            ("entry", entry),
            ("target", target),
            ("tip", tip),
            ("needle axis", needle_axis),
        ] {
            if !v.iter().all(|c| c.is_finite()) {
                return Err(Error::Geometry(format!("{name} {:?} is not finite", v.as_slice())));
            }
        }
        let axis = unit(needle_axis, "needle axis direction")?;
        let planned = unit(&(target - entry), "planned direction (target − entry)")?;
        let error = tip - target;
        let depth_error = error.dot(&axis);
        // The target's offset from the axis line through the tip: remove the along-axis part of (target − tip).
        let lateral = -error - axis * (-error).dot(&axis);
        // atan2 of |sin| and cos stays accurate for small angles, where acos of a dot product loses digits.
        let angle = planned.cross(&axis).norm().atan2(planned.dot(&axis));
        Ok(Self {
            ed_m: error.norm(),
            nd_m: lateral.norm(),
            depth_error_m: depth_error,
            angle_error_rad: angle,
            error_m: error,
        })
    }
}

/// The planned path's depth and tilt, for the `depth_mm` and `entry_angle_deg` columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedPath {
    /// |target − entry|, m.
    pub depth_m: f64,
    /// Angle between the path and the CT's vertical (anterior–posterior, LPS y) axis, 0–π/2, either direction:
    /// 0 = straight down. Vertical rather than the scanner axis because it is the tilt an interventionalist names;
    /// the craniocaudal part is readable from the entry and target columns.
    pub angle_from_vertical_rad: f64,
}

impl PlannedPath {
    /// The path from `entry` to `target` (CT LPS, m). Fails when they coincide or are not finite.
    pub fn from_points(entry: &Vector3<f64>, target: &Vector3<f64>) -> Result<Self, Error> {
        let d = target - entry;
        if !d.iter().all(|c| c.is_finite()) {
            return Err(Error::Geometry(format!(
                "planned path {:?} → {:?} is not finite",
                entry.as_slice(),
                target.as_slice()
            )));
        }
        let u = unit(&d, "planned direction (target − entry)")?;
        let vertical = Vector3::y();
        let angle = u.cross(&vertical).norm().atan2(u.dot(&vertical).abs());
        Ok(Self {
            depth_m: d.norm(),
            angle_from_vertical_rad: angle,
        })
    }
}

fn unit(v: &Vector3<f64>, what: &str) -> Result<Vector3<f64>, Error> {
    let n = v.norm();
    // 1 nm: far below any needle geometry, far above rounding of metre-scale coordinates.
    if n.is_finite() && n > 1e-9 {
        Ok(v / n)
    } else {
        Err(Error::Geometry(format!(
            "{what} has length {n:e} m; it needs a direction"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::FRAC_PI_4;

    const MM: f64 = 1e-3;
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12
    }

    #[test]
    fn tip_on_target_along_the_plan_is_zero_everywhere() {
        let entry = Vector3::new(0.0, 0.0, 0.0);
        let target = Vector3::new(0.0, 80.0 * MM, 0.0);
        let m = TipMeasures::from_points(&entry, &target, &target, &Vector3::y()).unwrap();
        assert!(
            close(m.ed_m, 0.0) && close(m.nd_m, 0.0) && close(m.depth_error_m, 0.0) && close(m.angle_error_rad, 0.0)
        );
    }

    #[test]
    fn overshoot_along_the_axis_is_positive_depth_error_and_no_lateral_error() {
        let entry = Vector3::zeros();
        let target = Vector3::new(0.0, 0.0, 100.0 * MM);
        let tip = Vector3::new(0.0, 0.0, 102.0 * MM);
        let m = TipMeasures::from_points(&entry, &target, &tip, &Vector3::new(0.0, 0.0, 5.0)).unwrap();
        assert!(close(m.ed_m, 2.0 * MM), "{m:?}");
        assert!(close(m.depth_error_m, 2.0 * MM));
        assert!(close(m.nd_m, 0.0));
        let short =
            TipMeasures::from_points(&entry, &target, &Vector3::new(0.0, 0.0, 97.0 * MM), &Vector3::z()).unwrap();
        assert!(close(short.depth_error_m, -3.0 * MM));
    }

    #[test]
    fn lateral_offset_is_normal_distance_3_4_5() {
        // Tip 3 mm beside and 4 mm past the target, needle parallel to the plan: ED 5, ND 3, depth +4, angle 0.
        let entry = Vector3::zeros();
        let target = Vector3::new(0.0, 0.0, 100.0 * MM);
        let tip = Vector3::new(3.0 * MM, 0.0, 104.0 * MM);
        let m = TipMeasures::from_points(&entry, &target, &tip, &Vector3::z()).unwrap();
        assert!(
            close(m.ed_m, 5.0 * MM) && close(m.nd_m, 3.0 * MM) && close(m.depth_error_m, 4.0 * MM),
            "{m:?}"
        );
        assert!(close(m.angle_error_rad, 0.0));
        assert!(close(m.error_m.x, 3.0 * MM) && close(m.error_m.z, 4.0 * MM));
    }

    #[test]
    fn tilted_axis_gives_angle_and_splits_the_error() {
        // Planned along z; the needle goes along (1, 0, 1)/√2 (45°). Tip 2 mm along x from the target:
        // depth = 2·cos45° = √2 mm, ND = 2·sin45° = √2 mm.
        let entry = Vector3::zeros();
        let target = Vector3::new(0.0, 0.0, 50.0 * MM);
        let tip = target + Vector3::new(2.0 * MM, 0.0, 0.0);
        let m = TipMeasures::from_points(&entry, &target, &tip, &Vector3::new(1.0, 0.0, 1.0)).unwrap();
        assert!(close(m.angle_error_rad, FRAC_PI_4), "{m:?}");
        assert!(close(m.depth_error_m, 2f64.sqrt() * MM));
        assert!(close(m.nd_m, 2f64.sqrt() * MM));
        assert!(close(m.ed_m, 2.0 * MM));
    }

    #[test]
    fn tiny_angles_are_accurate() {
        let entry = Vector3::zeros();
        let target = Vector3::new(0.0, 0.1, 0.0);
        let axis = Vector3::new(1e-7, 1.0, 0.0);
        let m = TipMeasures::from_points(&entry, &target, &target, &axis).unwrap();
        assert!((m.angle_error_rad - 1e-7).abs() < 1e-15, "{}", m.angle_error_rad);
    }

    #[test]
    fn degenerate_input_is_an_error_not_a_nan() {
        let z = Vector3::zeros();
        let t = Vector3::new(0.0, 0.0, 0.1);
        assert!(matches!(
            TipMeasures::from_points(&z, &t, &t, &z),
            Err(Error::Geometry(_))
        ));
        assert!(matches!(
            TipMeasures::from_points(&t, &t, &t, &Vector3::z()),
            Err(Error::Geometry(_))
        ));
        let nan = Vector3::new(f64::NAN, 0.0, 0.0);
        let e = TipMeasures::from_points(&z, &t, &nan, &Vector3::z()).unwrap_err();
        assert!(e.to_string().contains("tip"), "{e}");
    }

    #[test]
    fn planned_path_depth_and_tilt_from_vertical() {
        let p = PlannedPath::from_points(&Vector3::zeros(), &Vector3::new(0.0, 0.08, 0.0)).unwrap();
        assert!(close(p.depth_m, 0.08) && close(p.angle_from_vertical_rad, 0.0));
        // Upward (−y) counts as vertical too.
        let p = PlannedPath::from_points(&Vector3::zeros(), &Vector3::new(0.0, -0.08, 0.0)).unwrap();
        assert!(close(p.angle_from_vertical_rad, 0.0));
        let p = PlannedPath::from_points(&Vector3::zeros(), &Vector3::new(0.03, 0.03, 0.0)).unwrap();
        assert!(close(p.angle_from_vertical_rad, FRAC_PI_4) && close(p.depth_m, 0.03 * 2f64.sqrt()));
        let p = PlannedPath::from_points(&Vector3::zeros(), &Vector3::new(0.0, 0.0, 0.05)).unwrap();
        assert!(close(p.angle_from_vertical_rad, std::f64::consts::FRAC_PI_2));
    }
}
