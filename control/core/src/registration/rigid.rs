//! Least-squares rigid registration of paired points (Arun/Umeyama with the reflection check), fiducial registration
//! error, and Fitzpatrick's predicted target registration error.

use nalgebra::{Isometry3, Matrix3, Point3, SymmetricEigen, Translation3, UnitQuaternion, Vector3};

use super::RegistrationError;
use crate::frames::{Frame, Point, Transform};

/// The rigid transform `T_a_b` minimising Σ |a_i − T·b_i|² over paired points (Umeyama 1991, without scale).
///
/// A reflection (det < 0 from the SVD) is corrected by flipping the smallest singular direction, so the result is always
/// a proper rotation. Fails on fewer than 3 pairs or (nearly) collinear points.
pub fn fit_rigid<A: Frame, B: Frame>(a: &[Point<A>], b: &[Point<B>]) -> Result<Transform<A, B>, RegistrationError> {
    if a.len() != b.len() || a.len() < 3 {
        return Err(RegistrationError::TooFewPoints {
            found: a.len().min(b.len()),
            needed: 3,
        });
    }
    let n = a.len() as f64;
    let ca = a.iter().fold(Vector3::zeros(), |s, p| s + p.coords.coords) / n;
    let cb = b.iter().fold(Vector3::zeros(), |s, p| s + p.coords.coords) / n;
    let mut h = Matrix3::zeros();
    for (pa, pb) in a.iter().zip(b) {
        h += (pb.coords.coords - cb) * (pa.coords.coords - ca).transpose();
    }
    let svd = h.svd(true, true);
    let (Some(u), Some(v_t)) = (svd.u, svd.v_t) else {
        return Err(RegistrationError::Degenerate(
            "SVD of the cross-covariance failed".into(),
        ));
    };
    // Singular values come sorted descending; a rank < 2 cross-covariance means collinear points.
    let s = svd.singular_values;
    let scale = s.iter().cloned().fold(0.0_f64, f64::max);
    let mut sorted = [s[0], s[1], s[2]];
    sorted.sort_by(|x, y| y.total_cmp(x));
    if scale <= 0.0 || sorted[1] < 1e-9 * scale {
        return Err(RegistrationError::Degenerate(format!(
            "points are collinear (singular values {:.3e}, {:.3e}, {:.3e})",
            sorted[0], sorted[1], sorted[2]
        )));
    }
    let v = v_t.transpose();
    let mut d = Matrix3::identity();
    if (v * u.transpose()).determinant() < 0.0 {
        // Flip the direction of the smallest singular value (reflection check).
        let smallest = (0..3).min_by(|&i, &j| s[i].total_cmp(&s[j])).unwrap_or(2);
        d[(smallest, smallest)] = -1.0;
    }
    let r = v * d * u.transpose();
    let rot = UnitQuaternion::from_matrix(&r);
    let t = ca - rot * cb;
    Ok(Transform::from_isometry(Isometry3::from_parts(
        Translation3::from(t),
        rot,
    )))
}

/// Per-fiducial residuals |a_i − T·b_i| in metres.
pub fn residuals<A: Frame, B: Frame>(t: &Transform<A, B>, a: &[Point<A>], b: &[Point<B>]) -> Vec<f64> {
    a.iter().zip(b).map(|(pa, pb)| pa.distance(&t.apply(pb))).collect()
}

/// Root mean square of a list of distances.
pub fn rms(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    (values.iter().map(|v| v * v).sum::<f64>() / values.len() as f64).sqrt()
}

/// FLE estimated from an observed FRE: E[FRE²] = (1 − 2/N)·FLE² (Fitzpatrick et al. 1998, eq. 10), so
/// FLE = FRE·√(N/(N−2)). Returns `None` for N ≤ 2.
pub fn fle_from_fre(fre_rms: f64, n: usize) -> Option<f64> {
    (n > 2).then(|| fre_rms * (n as f64 / (n as f64 - 2.0)).sqrt())
}

/// The principal-axis description of a fiducial configuration that eq. 46 needs.
#[derive(Clone, Debug, PartialEq)]
pub struct FiducialConfiguration {
    centroid: Point3<f64>,
    axes: Matrix3<f64>,
    /// f_k²: mean squared distance of the fiducials from principal axis k.
    f_sq: Vector3<f64>,
    n: usize,
}

impl FiducialConfiguration {
    /// Principal axes of the given fiducial positions (any frame; they must be the frame the target is given in).
    pub fn new<F: Frame>(points: &[Point<F>]) -> Result<Self, RegistrationError> {
        if points.len() < 3 {
            return Err(RegistrationError::TooFewPoints {
                found: points.len(),
                needed: 3,
            });
        }
        let n = points.len() as f64;
        let c = points.iter().fold(Vector3::zeros(), |s, p| s + p.coords.coords) / n;
        let mut cov = Matrix3::zeros();
        for p in points {
            let d = p.coords.coords - c;
            cov += d * d.transpose();
        }
        cov /= n;
        let eig = SymmetricEigen::new(cov);
        let l = eig.eigenvalues;
        // Distance² from axis k averages the variance along the two other axes.
        let f_sq = Vector3::new(l[1] + l[2], l[0] + l[2], l[0] + l[1]);
        if f_sq.iter().any(|&f| f <= 1e-18) {
            return Err(RegistrationError::Degenerate(
                "fiducials are collinear; TRE is unbounded".into(),
            ));
        }
        Ok(Self {
            centroid: Point3::from(c),
            axes: eig.eigenvectors,
            f_sq,
            n: points.len(),
        })
    }

    /// Predicted RMS TRE at `target` for a given FLE (Fitzpatrick, West, Maurer, IEEE TMI 17(5) 1998, eq. 46):
    /// TRE²(r) ≈ FLE²/N · (1 + 1/3 · Σ_k d_k²/f_k²), with d_k the distance of the target from principal axis k.
    pub fn predicted_tre<F: Frame>(&self, target: &Point<F>, fle: f64) -> f64 {
        let r = target.coords - self.centroid;
        let r2 = r.norm_squared();
        let mut sum = 0.0;
        for k in 0..3 {
            let along = r.dot(&self.axes.column(k));
            let d_sq = (r2 - along * along).max(0.0);
            sum += d_sq / self.f_sq[k];
        }
        (fle * fle / self.n as f64 * (1.0 + sum / 3.0)).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{Ct, RobotBase};

    fn cloud() -> Vec<Point<RobotBase>> {
        [
            (0.0, 0.0, 0.0),
            (70.0, 0.0, 8.0),
            (0.0, 55.0, 15.0),
            (85.0, 60.0, 0.0),
            (25.0, 95.0, 30.0),
        ]
        .iter()
        .map(|&(x, y, z)| Point::xyz(x * 1e-3, y * 1e-3, z * 1e-3))
        .collect()
    }

    #[test]
    fn recovers_a_known_transform_exactly() {
        let truth = Transform::<Ct, RobotBase>::from_isometry(Isometry3::from_parts(
            Translation3::new(0.05, -0.3, 0.12),
            UnitQuaternion::from_euler_angles(2.5, -0.7, 1.9),
        ));
        let b = cloud();
        let a: Vec<Point<Ct>> = b.iter().map(|p| truth.apply(p)).collect();
        let t = fit_rigid(&a, &b).unwrap();
        assert!(rms(&residuals(&t, &a, &b)) < 1e-12);
        assert!((t.isometry().rotation.angle_to(&truth.isometry().rotation)).abs() < 1e-10);
    }

    #[test]
    fn mirrored_points_still_give_a_rotation() {
        let b = cloud();
        let a: Vec<Point<Ct>> = b
            .iter()
            .map(|p| Point::xyz(-p.coords.x, p.coords.y, p.coords.z))
            .collect();
        let t = fit_rigid(&a, &b).unwrap();
        let r = t.isometry().rotation.to_rotation_matrix();
        assert!((r.matrix().determinant() - 1.0).abs() < 1e-9);
        // A reflection cannot be fitted: residuals stay large.
        assert!(rms(&residuals(&t, &a, &b)) > 1e-3);
    }

    #[test]
    fn collinear_points_are_refused() {
        let b: Vec<Point<RobotBase>> = (0..4).map(|i| Point::xyz(i as f64 * 0.01, 0.0, 0.0)).collect();
        let a: Vec<Point<Ct>> = b.iter().map(|p| Point::new(p.coords)).collect();
        assert!(matches!(fit_rigid(&a, &b), Err(RegistrationError::Degenerate(_))));
    }

    #[test]
    fn tre_grows_away_from_the_centroid() {
        let cfg = FiducialConfiguration::new(&cloud()).unwrap();
        let near = cfg.predicted_tre(&Point::<RobotBase>::xyz(0.036, 0.042, 0.011), 1e-3);
        let far = cfg.predicted_tre(&Point::<RobotBase>::xyz(0.036, 0.042, 0.211), 1e-3);
        // At the centroid TRE = FLE/√N.
        assert!(
            near < 1.01e-3 / 5f64.sqrt() && near >= 1e-3 / 5f64.sqrt() * 0.99,
            "{near}"
        );
        assert!(far > 2.0 * near);
    }
}
