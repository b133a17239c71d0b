//! Correcting the next insertion step from the tips seen in the check scans.
//!
//! **Model.** A bevel-tip needle bends towards its bevel: the tip path is a chain of constant-curvature arcs (Webster et
//! al., IJRR 2006). The robot has no roll axis, so the bevel, and with it the bending direction, is fixed in the needle
//! holder: one curvature vector `k = (kx, ky)` in the holder's x–y plane describes the whole insertion. When the guide
//! pivots about the entry with the needle inserted, the tissue holds the tip in place and the tip frame turns with the
//! holder (the assumption of the simulator's default `pivot_heading_transfer = 1`).
//!
//! **Curvature.** For one straight-guided step of length `d` the tip leaves the guide axis sideways by `δ ≈ κ·d²/2`
//! towards the bevel. With several steps and pivots between them, `k` is instead fitted to every observed tip by
//! Gauss–Newton on `Σ|tip_i(k) − observed_i|²/σ_tip² + |k|²/σ_κ²`: the prior term (`curvature_prior`, the needle's
//! typical κ) keeps the first, short step — whose deflection is of the order of the localisation error — from producing
//! a wild estimate; as the needle goes deeper the deflections grow as `d²` and the data dominate.
//!
//! **Re-aim.** From the observed tip `p` with the modelled heading `h` and bending direction `n`, an arc of curvature κ
//! reaches a point at distance `D` after the arc length `r = 2·asin(κD/2)/κ`, and its chord leaves `p` at the angle
//! `κr/2` from `h` towards `n`. Pivoting the guide by a rotation `R` turns `h` and `n` by `R`, so the tip reaches the
//! target iff `R` takes that chord direction onto `p → target`. Among the rotations that do, the one a guide pivot
//! produces is found by fixed-point iteration on the new guide direction `g'` with `R = rotation_between(g, g')`. The
//! remaining depth is `r`.
//!
//! **Why it converges in a few steps.** Each re-aim removes the error predicted by the model; what is left is the model
//! error over the rest of the insertion (misfit of κ, heading noise, target motion, the robot's pivot twist about the
//! needle which differs from the minimal rotation only to second order), and each later check scan removes most of that
//! again from a shorter remaining path.

use nalgebra::{Matrix2, Point3, Unit, UnitQuaternion, Vector2, Vector3};

use super::NeedleError;
use crate::frames::{Ct, Point};

/// One insertion step as it was performed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InsertionStep {
    /// Orientation of the needle holder in CT during the step (+z: the guide direction): forward kinematics
    /// (`NeedleState::tip_orientation`) rotated by `T_ct_robot`.
    pub holder: UnitQuaternion<f64>,
    /// Needle inserted in this step (arc length), metres.
    pub length: f64,
    /// Tip found in the check scan after the step, if one was taken.
    pub observed_tip: Option<Point<Ct>>,
}

/// What the correction works from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CorrectionInput<'a> {
    /// Skin entry point (the RCM), CT.
    pub entry: Point<Ct>,
    /// Target as seen in the latest check scan (the lesion moves as the needle pushes the tissue), CT.
    pub target: Point<Ct>,
    /// Every step so far, in order; the last must carry an observed tip.
    pub steps: &'a [InsertionStep],
    /// Prior 1σ of each curvature component, 1/m (the needle–tissue pair's typical κ, e.g. 0.6 for 18 G in liver).
    pub curvature_prior: f64,
    /// 1σ of the tip localisation per axis, metres (e.g. 0.2 mm).
    pub tip_sigma: f64,
}

/// The next step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Correction {
    /// Estimated curvature κ, 1/m.
    pub curvature: f64,
    /// Estimated curvature vector in the holder's x–y plane, 1/m.
    pub curvature_holder: Vector2<f64>,
    /// Tip the plan starts from (the last observation), CT.
    pub tip: Point<Ct>,
    /// Modelled tip heading now, before the re-aim.
    pub tip_heading: Unit<Vector3<f64>>,
    /// Re-aimed guide direction (pivot about the entry), CT.
    pub guide_direction: Unit<Vector3<f64>>,
    /// Angle between the current and the re-aimed guide direction, rad.
    pub pivot_angle: f64,
    /// Arc length still to insert to reach the target, metres.
    pub remaining_depth: f64,
    /// RMS distance between the observed tips and the fitted model, metres.
    pub fit_rms: f64,
    /// How far the tip would miss the target after `remaining_depth` without the re-aim, metres.
    pub miss_without_reaim: f64,
    /// Modelled tip heading after the re-aim.
    pub reaimed_heading: Unit<Vector3<f64>>,
    /// Modelled curvature vector (κ times the bending direction) after the re-aim, 1/m, CT.
    pub reaimed_curvature: Vector3<f64>,
}

impl Correction {
    /// Where the model puts the tip after inserting `length` more along the re-aimed guide: the expected tip (and, with
    /// the entry, the expected axis) for the next check scan.
    pub fn tip_after(&self, length: f64) -> Point<Ct> {
        let (p, _, _) = arc(
            &self.tip.coords.coords,
            &self.reaimed_heading,
            &self.reaimed_curvature,
            length,
        );
        Point::new(Point3::from(p))
    }
}

/// The tip frame at the end of each step for curvature `k` (holder frame), from the entry.
struct Frame {
    p: Vector3<f64>,
    h: Vector3<f64>,
    /// Curvature vector (κ·n), CT.
    kv: Vector3<f64>,
}

fn simulate(entry: &Vector3<f64>, steps: &[InsertionStep], k: &Vector2<f64>) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::with_capacity(steps.len());
    let mut frame = Frame {
        p: *entry,
        h: Vector3::zeros(),
        kv: Vector3::zeros(),
    };
    let mut last: Option<UnitQuaternion<f64>> = None;
    for step in steps {
        match last {
            None => {
                frame.h = step.holder * Vector3::z();
                frame.kv = step.holder * Vector3::new(k.x, k.y, 0.0);
            }
            Some(q) => {
                let turn = step.holder * q.inverse();
                frame.h = turn * frame.h;
                frame.kv = turn * frame.kv;
            }
        }
        last = Some(step.holder);
        let (p, h, kv) = arc(&frame.p, &frame.h, &frame.kv, step.length);
        frame = Frame { p, h, kv };
        out.push(Frame { p, h, kv });
    }
    out
}

/// Exact constant-curvature arc of length `d` from `p` with unit heading `h` and curvature vector `kv` ⊥ `h`.
fn arc(p: &Vector3<f64>, h: &Vector3<f64>, kv: &Vector3<f64>, d: f64) -> (Vector3<f64>, Vector3<f64>, Vector3<f64>) {
    let k = kv.norm();
    if k * d < 1e-12 {
        return (p + h * d + kv * (d * d / 2.0), *h, *kv);
    }
    let n = kv / k;
    let (s, c) = (k * d).sin_cos();
    (
        p + h * (s / k) + n * ((1.0 - c) / k),
        h * c + n * s,
        (n * c - h * s) * k,
    )
}

/// Fits the curvature to the observed tips and re-aims the guide so that the tip reaches the target (module docs).
pub fn plan_correction(input: &CorrectionInput<'_>) -> Result<Correction, NeedleError> {
    validate(input)?;
    let steps = input.steps;
    let Some(observed) = steps.last().and_then(|s| s.observed_tip) else {
        return Err(NeedleError::NoObservation { steps: steps.len() });
    };
    let entry = input.entry.coords.coords;
    let observations: Vec<(usize, Vector3<f64>)> = steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.observed_tip.map(|o| (i, o.coords.coords)))
        .collect();

    // Gauss–Newton on k (2 parameters), numeric Jacobian; rows: observations / σ_tip, then k / σ_κ.
    let residuals = |k: &Vector2<f64>| -> Vec<f64> {
        let frames = simulate(&entry, steps, k);
        let mut r: Vec<f64> = Vec::with_capacity(observations.len() * 3 + 2);
        for (i, o) in &observations {
            let d = (frames[*i].p - o) / input.tip_sigma;
            r.extend_from_slice(&[d.x, d.y, d.z]);
        }
        r.push(k.x / input.curvature_prior);
        r.push(k.y / input.curvature_prior);
        r
    };
    let mut k = Vector2::zeros();
    for _ in 0..20 {
        let r0 = residuals(&k);
        let eps = 1e-4;
        let cols: Vec<Vec<f64>> = (0..2)
            .map(|j| {
                let mut kp = k;
                let mut km = k;
                kp[j] += eps;
                km[j] -= eps;
                residuals(&kp)
                    .iter()
                    .zip(residuals(&km))
                    .map(|(a, b)| (a - b) / (2.0 * eps))
                    .collect()
            })
            .collect();
        let mut jtj = Matrix2::zeros();
        let mut jtr = Vector2::zeros();
        for row in 0..r0.len() {
            let g = Vector2::new(cols[0][row], cols[1][row]);
            jtj += g * g.transpose();
            jtr += g * r0[row];
        }
        let Some(delta) = jtj.try_inverse().map(|inv| -(inv * jtr)) else {
            return Err(NeedleError::Fit("curvature fit is singular".into()));
        };
        k += delta;
        if delta.norm() < 1e-10 {
            break;
        }
    }
    let frames = simulate(&entry, steps, &k);
    let fit_rms = (observations
        .iter()
        .map(|(i, o)| (frames[*i].p - o).norm_squared())
        .sum::<f64>()
        / observations.len() as f64)
        .sqrt();
    let now = frames.last().ok_or(NeedleError::NoObservation { steps: 0 })?;
    let (h, kv) = (now.h, now.kv);
    let kappa = kv.norm();

    // Re-aim from the observed tip.
    let p = observed.coords.coords;
    let to_target = input.target.coords.coords - p;
    let distance = to_target.norm();
    let c_new = Unit::try_new(to_target, 1e-9)
        .ok_or_else(|| NeedleError::Fit(format!("tip already on the target ({:.4} mm)", distance * 1e3)))?;
    if c_new.dot(&h) <= 0.0 {
        return Err(NeedleError::TargetBehind {
            behind_mm: -to_target.dot(&h) * 1e3,
            angle_deg: c_new.dot(&h).clamp(-1.0, 1.0).acos().to_degrees(),
        });
    }
    let half_chord = kappa * distance / 2.0;
    if half_chord >= 1.0 {
        return Err(NeedleError::Unreachable {
            distance_mm: distance * 1e3,
            curvature: kappa,
            reach_mm: 2.0 / kappa * 1e3,
        });
    }
    let remaining = if kappa * distance > 1e-12 {
        2.0 * half_chord.asin() / kappa
    } else {
        distance
    };
    let phi = kappa * remaining / 2.0;
    let c_old = if kappa > 0.0 {
        h * phi.cos() + kv / kappa * phi.sin()
    } else {
        h
    };
    let (end_unturned, _, _) = arc(&p, &h, &kv, remaining);

    let guide = steps
        .last()
        .map(|s| s.holder * Vector3::z_axis())
        .ok_or(NeedleError::NoObservation { steps: 0 })?;
    let between = |a: &Vector3<f64>, b: &Vector3<f64>| {
        UnitQuaternion::rotation_between(a, b).unwrap_or_else(UnitQuaternion::identity)
    };
    let mut g_new = between(&c_old, &c_new) * guide.into_inner();
    for _ in 0..50 {
        let c = between(&guide, &g_new) * c_old;
        let err = between(&c, &c_new);
        g_new = err * g_new;
        if err.angle() < 1e-13 {
            break;
        }
    }
    let guide_direction = Unit::new_normalize(g_new);
    let pivot = between(&guide, &guide_direction);
    Ok(Correction {
        curvature: kappa,
        curvature_holder: k,
        tip: Point::new(Point3::from(p)),
        tip_heading: Unit::new_normalize(h),
        guide_direction,
        pivot_angle: guide.dot(&guide_direction).clamp(-1.0, 1.0).acos(),
        remaining_depth: remaining,
        fit_rms,
        miss_without_reaim: (end_unturned - input.target.coords.coords).norm(),
        reaimed_heading: Unit::new_normalize(pivot * h),
        reaimed_curvature: pivot * kv,
    })
}

fn validate(input: &CorrectionInput<'_>) -> Result<(), NeedleError> {
    if !input.entry.is_finite() || !input.target.is_finite() {
        return Err(NeedleError::InvalidParameter {
            name: "entry or target",
            value: f64::NAN,
        });
    }
    for (name, value) in [
        ("curvature_prior", input.curvature_prior),
        ("tip_sigma", input.tip_sigma),
    ] {
        if !(value.is_finite() && value > 0.0) {
            return Err(NeedleError::InvalidParameter { name, value });
        }
    }
    for step in input.steps {
        if !(step.length.is_finite() && step.length >= 0.0) {
            return Err(NeedleError::InvalidParameter {
                name: "step length",
                value: step.length,
            });
        }
        if !step.holder.coords.iter().all(|c| c.is_finite()) {
            return Err(NeedleError::InvalidParameter {
                name: "holder orientation",
                value: f64::NAN,
            });
        }
        if step.observed_tip.is_some_and(|t| !t.is_finite()) {
            return Err(NeedleError::InvalidParameter {
                name: "observed tip",
                value: f64::NAN,
            });
        }
    }
    Ok(())
}
