//! Correspondence between detected blobs and the frame model, by inter-point distances.
//!
//! Every detection triple whose three pairwise distances match a model triple (within a tolerance) proposes a rigid
//! transform; the proposal that brings most model spheres within the tolerance of a detection wins (ties: smallest
//! residual). Distances are invariant to the unknown pose, so the search needs no initial guess, tolerates missing
//! spheres and ignores spurious blobs (bone, contrast, the needle) that fit no triple. The best assignment is then
//! refined with all its inliers.

use super::model::FiducialModel;
use super::rigid::fit_rigid;
use super::RegistrationError;
use crate::frames::{Ct, Point, RobotBase, Transform};

/// Tuning of the matcher. Lengths in metres.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchParams {
    /// Largest accepted difference between a detected and a model distance, and largest distance of a detection from
    /// its predicted model sphere. Thick slices bias centroids along z by up to ~1 mm, hence the 2.5 mm default.
    pub tolerance: f64,
    /// Upper bound on candidates considered (the search is cubic in them).
    pub max_candidates: usize,
}

impl Default for MatchParams {
    fn default() -> Self {
        Self {
            tolerance: 2.5e-3,
            max_candidates: 40,
        }
    }
}

/// One model sphere paired with one detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    /// Index into the model's fiducials.
    pub model: usize,
    /// Index into the detections.
    pub detection: usize,
}

/// The assignment and the transform it gives.
#[derive(Clone, Debug, PartialEq)]
pub struct Correspondence {
    /// Pairs sorted by model index.
    pub pairs: Vec<Pair>,
    /// `T_robot_ct` fitted to all pairs.
    pub t_robot_ct: Transform<RobotBase, Ct>,
}

/// Matches detections to the model. Fails if fewer than 3 spheres can be paired.
pub fn match_fiducials(
    model: &FiducialModel,
    detections: &[Point<Ct>],
    params: &MatchParams,
) -> Result<Correspondence, RegistrationError> {
    let m = model.points();
    let n = detections.len();
    if n > params.max_candidates {
        return Err(RegistrationError::TooManyCandidates {
            found: n,
            max: params.max_candidates,
        });
    }
    if n < 3 {
        return Err(RegistrationError::NoMatch {
            detections: n,
            model: m.len(),
            best: 0,
        });
    }
    let tol = params.tolerance;
    let dm = |a: usize, b: usize| m[a].distance(&m[b]);
    let dd = |i: usize, j: usize| detections[i].distance(&detections[j]);
    let mut best: Option<(usize, f64, Vec<Pair>)> = None;
    for i in 0..n {
        for j in i + 1..n {
            let dij = dd(i, j);
            for k in j + 1..n {
                let (dik, djk) = (dd(i, k), dd(j, k));
                for a in 0..m.len() {
                    for b in (0..m.len()).filter(|&b| b != a) {
                        if (dij - dm(a, b)).abs() > tol {
                            continue;
                        }
                        for c in (0..m.len()).filter(|&c| c != a && c != b) {
                            if (dik - dm(a, c)).abs() > tol || (djk - dm(b, c)).abs() > tol {
                                continue;
                            }
                            let Ok(t_ct_robot) =
                                fit_rigid(&[detections[i], detections[j], detections[k]], &[m[a], m[b], m[c]])
                            else {
                                continue;
                            };
                            let (pairs, sq) = assign(&t_ct_robot, m, detections, tol);
                            let better = match &best {
                                None => true,
                                Some((count, err, _)) => pairs.len() > *count || (pairs.len() == *count && sq < *err),
                            };
                            if better {
                                best = Some((pairs.len(), sq, pairs));
                            }
                        }
                    }
                }
            }
        }
    }
    let Some((count, _, pairs)) = best else {
        return Err(RegistrationError::NoMatch {
            detections: n,
            model: m.len(),
            best: 0,
        });
    };
    if count < 3 {
        return Err(RegistrationError::NoMatch {
            detections: n,
            model: m.len(),
            best: count,
        });
    }
    // Refine with all inliers, then re-assign once with the better transform.
    let refit = |pairs: &[Pair]| {
        let a: Vec<Point<Ct>> = pairs.iter().map(|p| detections[p.detection]).collect();
        let b: Vec<Point<RobotBase>> = pairs.iter().map(|p| m[p.model]).collect();
        fit_rigid(&a, &b)
    };
    let t = refit(&pairs)?;
    let (pairs2, _) = assign(&t, m, detections, tol);
    let pairs = if pairs2.len() >= pairs.len() { pairs2 } else { pairs };
    let t_ct_robot = refit(&pairs)?;
    Ok(Correspondence {
        pairs,
        t_robot_ct: t_ct_robot.inverse(),
    })
}

/// Pairs each model sphere with the nearest unused detection within `tol` of its predicted position.
fn assign(
    t_ct_robot: &Transform<Ct, RobotBase>,
    m: &[Point<RobotBase>],
    detections: &[Point<Ct>],
    tol: f64,
) -> (Vec<Pair>, f64) {
    let mut pairs = Vec::with_capacity(m.len());
    let mut sq = 0.0;
    for (a, pm) in m.iter().enumerate() {
        let predicted = t_ct_robot.apply(pm);
        let nearest = detections
            .iter()
            .enumerate()
            .filter(|(i, _)| !pairs.iter().any(|p: &Pair| p.detection == *i))
            .map(|(i, d)| (i, d.distance(&predicted)))
            .filter(|(_, d)| *d <= tol)
            .min_by(|x, y| x.1.total_cmp(&y.1));
        if let Some((i, d)) = nearest {
            pairs.push(Pair { model: a, detection: i });
            sq += d * d;
        }
    }
    (pairs, sq)
}
