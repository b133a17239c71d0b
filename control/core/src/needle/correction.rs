//! Correcting the next insertion step from the tips seen in the check scans.
//!
//! **Model.** A bevel-tip needle bends towards its bevel: the tip path is a chain of constant-curvature arcs (Webster et
//! al., IJRR 2006). The robot has no roll axis, so the bevel, and with it the bending direction, is fixed in the needle
//! holder: one curvature vector `k = (kx, ky)` in the holder's x–y plane describes the whole insertion. When the guide
//! pivots about the entry with the needle inserted, the tissue holds the tip in place and the tip frame turns with the
//! holder (the assumption of the simulator's default `pivot_heading_transfer = 1`).
//!
//! **Axis error.** The needle does not leave the entry exactly along the guide axis that the forward kinematics and the
//! registration predict: the robot as built points with some error, and the registration maps it with some more. Seen
//! from one check scan this rigid error looks like bending, but it is not: a tilt `t` moves the tip by `t·d`, not
//! `κd²/2`, and it does not grow along the rest of the path. So the fit carries two more pairs of parameters in the first
//! step's holder x–y plane: the tilt `t = (tx, ty)` of the needle's straight direction at the entry from the commanded
//! guide axis, and the lateral offset `o = (ox, oy)` of the entry. Their priors, [`AxisPrior`], are the controller's
//! assumption about its own pointing accuracy (configuration), not a measured value.
//!
//! **Curvature.** For one straight-guided step of length `d` the tip leaves the guide axis sideways by
//! `δ ≈ κ·d²/2 + t·d + o` towards the bevel. The parameters `(k, t, o)` are fitted to every observed tip by Gauss–Newton on
//! `Σ|tip_i − observed_i|²/σ_tip² + Σ|shaft_i − observed shaft_i|²/σ_shaft² + |k|²/σ_κ² + |t|²/σ_t² + |o|²/σ_o²`. The
//! shaft term uses the finder's line fit over the last `L` of the needle, which the model predicts as the chord
//! direction `h·cos(κL/2) − n·sin(κL/2)` (the shaft of a tilted needle lies along the tilt, that of an offset one
//! parallel to the guide, that of a bent one turned by `κ(d − L/2)`). One scan cannot separate the three (tip and shaft
//! fit a family of them), so there the priors share the deflection out, and the re-aim, from the fitted heading, turns
//! by less than a pure-bending model would; the next scans separate them, since bending grows as `d²`, a tilt as `d`
//! and an offset not at all. The prior terms also keep the first, short step — whose deflection is of the order of the
//! localisation error — from producing a wild estimate.
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

use nalgebra::{Point3, Unit, UnitQuaternion, Vector2, Vector3, Vector6};

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
    /// Direction of the shaft behind that tip as the check scan showed it, if measured.
    pub observed_shaft: Option<ObservedShaft>,
}

/// The finder's line fit over the last part of the shaft (`NeedleObservation::direction`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObservedShaft {
    /// Shaft direction towards the tip, CT.
    pub direction: Unit<Vector3<f64>>,
    /// Length of shaft behind the tip the line was fitted over, metres.
    pub length: f64,
    /// 1σ of the direction per axis, rad.
    pub sigma: f64,
}

/// The controller's prior on the rigid error of the needle axis at the entry (module docs, Axis error): how well the
/// robot as built, through the registration, points the needle where its forward kinematics says. Configuration, not
/// measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AxisPrior {
    /// 1σ of each tilt component of the needle's direction from the commanded guide axis, rad.
    pub tilt: f64,
    /// 1σ of each lateral offset component of the needle's entry from the commanded one, metres.
    pub offset: f64,
}

impl Default for AxisPrior {
    /// 0.75° and 0.75 mm: a small positioner's typical pointing accuracy after registration.
    fn default() -> Self {
        Self {
            tilt: 0.75_f64.to_radians(),
            offset: 0.75e-3,
        }
    }
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
    /// Prior on the rigid axis error.
    pub axis_prior: AxisPrior,
}

/// The next step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Correction {
    /// Estimated curvature κ, 1/m.
    pub curvature: f64,
    /// Estimated curvature vector in the holder's x–y plane, 1/m.
    pub curvature_holder: Vector2<f64>,
    /// Estimated tilt of the needle's straight direction at the entry from the first step's guide axis (holder x–y), rad.
    pub axis_tilt: Vector2<f64>,
    /// Estimated lateral offset of the needle's entry (first step's holder x–y), metres.
    pub entry_offset: Vector2<f64>,
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

/// The tip frame at the end of each step for the parameters `θ = (kx, ky, tx, ty, ox, oy)` (curvature, axis tilt, entry
/// offset; first holder frame), from the entry.
struct Frame {
    p: Vector3<f64>,
    h: Vector3<f64>,
    /// Curvature vector (κ·n), CT.
    kv: Vector3<f64>,
}

fn simulate(entry: &Vector3<f64>, steps: &[InsertionStep], theta: &Vector6<f64>) -> Vec<Frame> {
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
                // The rotation vector (−ty, tx, 0) takes +z to ≈ (tx, ty, 1).
                let tilt = UnitQuaternion::from_scaled_axis(step.holder * Vector3::new(-theta[3], theta[2], 0.0));
                frame.p = entry + step.holder * Vector3::new(theta[4], theta[5], 0.0);
                frame.h = tilt * (step.holder * Vector3::z());
                frame.kv = tilt * (step.holder * Vector3::new(theta[0], theta[1], 0.0));
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

    let depth_after: Vec<f64> = steps
        .iter()
        .scan(0.0, |depth, s| {
            *depth += s.length;
            Some(*depth)
        })
        .collect();
    let prior = Vector6::new(
        input.curvature_prior,
        input.curvature_prior,
        input.axis_prior.tilt,
        input.axis_prior.tilt,
        input.axis_prior.offset,
        input.axis_prior.offset,
    );

    // Gauss–Newton on θ = (k, t, o) (6 parameters), numeric Jacobian; rows: observed tips / σ_tip, observed shafts /
    // σ_shaft, then θ / prior.
    let residuals = |theta: &Vector6<f64>| -> Vec<f64> {
        let frames = simulate(&entry, steps, theta);
        let mut r: Vec<f64> = Vec::with_capacity(steps.len() * 6 + 6);
        for (i, step) in steps.iter().enumerate() {
            let f = &frames[i];
            if let Some(o) = step.observed_tip {
                let d = (f.p - o.coords.coords) / input.tip_sigma;
                r.extend_from_slice(&[d.x, d.y, d.z]);
            }
            if let Some(shaft) = step.observed_shaft {
                let half = f.kv.norm() * shaft.length.min(depth_after[i]) / 2.0;
                let n = f.kv.try_normalize(1e-15).unwrap_or_else(Vector3::zeros);
                let chord = f.h * half.cos() - n * half.sin();
                let d = (chord - shaft.direction.into_inner()) / shaft.sigma;
                r.extend_from_slice(&[d.x, d.y, d.z]);
            }
        }
        r.extend(theta.component_div(&prior).iter());
        r
    };
    let eps = prior * 1e-4;
    let mut theta = Vector6::zeros();
    for _ in 0..20 {
        let r0 = residuals(&theta);
        let cols: Vec<Vec<f64>> = (0..6)
            .map(|j| {
                let mut tp = theta;
                let mut tm = theta;
                tp[j] += eps[j];
                tm[j] -= eps[j];
                residuals(&tp)
                    .iter()
                    .zip(residuals(&tm))
                    .map(|(a, b)| (a - b) / (2.0 * eps[j]))
                    .collect()
            })
            .collect();
        let mut jtj = nalgebra::Matrix6::zeros();
        let mut jtr = Vector6::zeros();
        for row in 0..r0.len() {
            let g = Vector6::from_fn(|j, _| cols[j][row]);
            jtj += g * g.transpose();
            jtr += g * r0[row];
        }
        let Some(delta) = jtj.try_inverse().map(|inv| -(inv * jtr)) else {
            return Err(NeedleError::Fit("curvature and axis fit is singular".into()));
        };
        theta += delta;
        if delta.component_div(&prior).norm() < 1e-9 {
            break;
        }
    }
    let k = Vector2::new(theta[0], theta[1]);
    let frames = simulate(&entry, steps, &theta);
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
        axis_tilt: Vector2::new(theta[2], theta[3]),
        entry_offset: Vector2::new(theta[4], theta[5]),
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
        ("axis_prior.tilt", input.axis_prior.tilt),
        ("axis_prior.offset", input.axis_prior.offset),
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
        if step.observed_shaft.is_some_and(|o| {
            !(o.direction.iter().all(|c| c.is_finite())
                && o.length.is_finite()
                && o.length > 0.0
                && o.sigma.is_finite()
                && o.sigma > 0.0)
        }) {
            return Err(NeedleError::InvalidParameter {
                name: "observed shaft",
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
