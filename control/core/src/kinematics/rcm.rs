//! The yaw/pitch part of the IK: turn the home needle direction onto a requested direction with two rotations about
//! intersecting axes (Paden–Kahan sub-problem 2), with everything that does not depend on the request precomputed at load.
//!
//! `Rot(w1, yaw) · Rot(w2, pitch) · p = d` ⇔ `z = Rot(w2, pitch) p = Rot(w1, −yaw) d` with
//! `z = α w1 + β w2 ± γ (w1 × w2)`: two candidate `z` (branches). For each, yaw and pitch are the angles that turn `z`
//! onto `d` about `w1` and `p` onto `z` about `w2`, available as unnormalised (sin, cos) pairs from dot and cross products.
//! The fast path tests the limits on those pairs (a rotation and one square root per test, no `atan2`) and takes `atan2`
//! only for the branch it returns.

use nalgebra::{Unit, Vector3};

use super::model::JointLimit;

/// Values this far (m or rad) beyond a limit are rounding, not a violation: they are clamped onto the limit. The
/// resulting error at the tip is far below the solver's 1 µm / 1 µrad contract.
pub(super) const LIMIT_TOLERANCE: f64 = 1e-10;

/// Below this (sin, cos) magnitude the angle is undefined (the vectors it turns lie on its axis; a singularity, e.g. the
/// needle along the yaw axis): any angle gives the same direction to within 2·√r ≤ 1e-10 rad, so the range's middle is used.
const SINGULAR_MAGNITUDE: f64 = 2.5e-21;

/// A revolute range, prepared for testing (sin, cos) pairs against it without `atan2`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Arc {
    lower: f64,
    upper: f64,
    mid: f64,
    cos_mid: f64,
    sin_mid: f64,
    /// cos of the half-width (plus tolerance); an angle fits when cos(angle − mid) ≥ this.
    cos_half: f64,
    /// `cos_half²`, signed like `cos_half`, for the square-root-free test.
    cos_half_sq: f64,
}

impl Arc {
    fn new(limit: &JointLimit) -> Self {
        let mid = 0.5 * (limit.lower + limit.upper);
        let half = (0.5 * (limit.upper - limit.lower) + LIMIT_TOLERANCE).min(core::f64::consts::PI);
        Self {
            lower: limit.lower,
            upper: limit.upper,
            mid,
            cos_mid: mid.cos(),
            sin_mid: mid.sin(),
            cos_half: half.cos(),
            cos_half_sq: half.cos() * half.cos().abs(),
        }
    }

    /// The angle `atan2(s, c)` (any scale) if it lies in the range, else `None`.
    #[inline]
    fn fit(&self, s: f64, c: f64) -> Option<Rel> {
        let r2 = s * s + c * c;
        if r2 <= SINGULAR_MAGNITUDE * SINGULAR_MAGNITUDE {
            return Some(Rel { s: 0.0, c: 1.0 });
        }
        // Relative to the middle of the range: (s', c') = Rot(−mid) (c, s).
        let sr = s * self.cos_mid - c * self.sin_mid;
        let cr = c * self.cos_mid + s * self.sin_mid;
        // cr ≥ r·cos_half without the square root: compare signed squares (cr·|cr| is monotonic in cr).
        (cr * cr.abs() >= r2 * self.cos_half_sq).then_some(Rel { s: sr, c: cr })
    }

    /// The absolute angle of a fitting pair, clamped onto the range (rounding only: `fit` allowed `LIMIT_TOLERANCE`).
    #[inline]
    fn angle(&self, rel: Rel) -> f64 {
        // For ranges narrower than ±90° a fitting pair has c > 0, where atan(s/c) = atan2(s, c) at under half the cost.
        let rel_angle = if self.cos_half > 0.0 {
            (rel.s / rel.c).atan()
        } else {
            rel.s.atan2(rel.c)
        };
        (self.mid + rel_angle).clamp(self.lower, self.upper)
    }
}

/// An angle relative to an arc's middle, as an unnormalised (sin, cos) pair.
#[derive(Clone, Copy)]
struct Rel {
    s: f64,
    c: f64,
}

/// Precomputed Paden–Kahan 2 for the positioner's yaw axis `w1`, home pitch axis `w2` and home needle direction `p`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RcmSolver {
    pub(super) w1: Vector3<f64>,
    pub(super) w2: Vector3<f64>,
    pub(super) p: Vector3<f64>,
    k12: f64,
    inv_den: f64,
    w2p: f64,
    w12: Vector3<f64>,
    inv_w12_sq: f64,
    yaw: Arc,
    pitch: Arc,
    /// True when at most one branch can fit, so the search may stop at the first that does: for the usual RCM geometry
    /// (needle home along the yaw axis, pitch ⊥ yaw) the branches are (yaw, pitch) and (yaw ± π, −pitch), and a yaw range
    /// narrower than π cannot hold both.
    single_branch: bool,
}

impl RcmSolver {
    /// From the axes in the base frame at q = 0 (the model has checked they are not parallel and `p` is not along `w2`).
    pub(super) fn new(
        yaw_axis: &Unit<Vector3<f64>>,
        pitch_axis: &Unit<Vector3<f64>>,
        needle: &Unit<Vector3<f64>>,
        yaw: &JointLimit,
        pitch: &JointLimit,
    ) -> Self {
        let (w1, w2, p) = (yaw_axis.into_inner(), pitch_axis.into_inner(), needle.into_inner());
        let k12 = w1.dot(&w2);
        let w12 = w1.cross(&w2);
        let usual = w1.cross(&p).norm() < 1e-12 && k12.abs() < 1e-12;
        let single_branch = usual && yaw.upper - yaw.lower < core::f64::consts::PI;
        Self {
            single_branch,
            w1,
            w2,
            p,
            k12,
            inv_den: 1.0 / (k12 * k12 - 1.0),
            w2p: w2.dot(&p),
            w12,
            inv_w12_sq: 1.0 / w12.norm_squared(),
            yaw: Arc::new(yaw),
            pitch: Arc::new(pitch),
        }
    }

    /// The two intermediate vectors `z` (branches ±γ) for unit direction `d`, or the shortfall `γ² < 0` when no yaw/pitch
    /// reaches `d` at all.
    #[inline]
    pub(super) fn candidates(&self, d: &Vector3<f64>) -> Result<[Vector3<f64>; 2], f64> {
        let w1d = self.w1.dot(d);
        let alpha = (self.k12 * self.w2p - w1d) * self.inv_den;
        let beta = (self.k12 * w1d - self.w2p) * self.inv_den;
        // γ²·|w12|² = 1 − α² − β² − 2αβ·k12, written as |w1 × d|² + (w1d² − α² − β² − 2αβ·k12):
        // the first term carries the small tilt near the vertical singularity without cancellation;
        // the second is exactly −β² for orthogonal axes.
        let num =
            self.w1.cross(d).norm_squared() + (w1d * w1d - alpha * alpha - beta * beta - 2.0 * alpha * beta * self.k12);
        let gamma_sq = num * self.inv_w12_sq;
        if gamma_sq < -1e-12 {
            return Err(gamma_sq);
        }
        let gamma = gamma_sq.max(0.0).sqrt();
        let base = self.w1 * alpha + self.w2 * beta;
        Ok([base + self.w12 * gamma, base - self.w12 * gamma])
    }

    /// (sin, cos)·scale of the pitch that turns `p` onto `z` about `w2`.
    #[inline]
    pub(super) fn pitch_sc(&self, z: &Vector3<f64>) -> (f64, f64) {
        (self.w2.dot(&self.p.cross(z)), self.p.dot(z) - self.w2p * self.w2.dot(z))
    }

    /// (sin, cos)·scale of the yaw that turns `z` onto `d` about `w1`.
    #[inline]
    pub(super) fn yaw_sc(&self, z: &Vector3<f64>, d: &Vector3<f64>) -> (f64, f64) {
        (self.w1.dot(&z.cross(d)), z.dot(d) - self.w1.dot(z) * self.w1.dot(d))
    }

    /// The fast path: (yaw, pitch) inside the limits for unit direction `d`, or `None` (then the caller diagnoses).
    /// Where both branches fit, the one with the smaller |yaw| + |pitch| wins.
    #[inline]
    pub(super) fn solve(&self, d: &Vector3<f64>) -> Option<(f64, f64)> {
        let [za, zb] = self.candidates(d).ok()?;
        let fit = |z: &Vector3<f64>| -> Option<(Rel, Rel)> {
            let (ys, yc) = self.yaw_sc(z, d);
            let yaw = self.yaw.fit(ys, yc)?;
            let (ps, pc) = self.pitch_sc(z);
            Some((yaw, self.pitch.fit(ps, pc)?))
        };
        let angles = |(y, p): (Rel, Rel)| (self.yaw.angle(y), self.pitch.angle(p));
        let a = fit(&za);
        if let (Some(a), true) = (a, self.single_branch) {
            return Some(angles(a));
        }
        match (a, fit(&zb)) {
            (Some(a), None) => Some(angles(a)),
            (None, Some(b)) => Some(angles(b)),
            (Some(a), Some(b)) => {
                let (a, b) = (angles(a), angles(b));
                Some(if a.0.abs() + a.1.abs() <= b.0.abs() + b.1.abs() {
                    a
                } else {
                    b
                })
            }
            (None, None) => None,
        }
    }
}
