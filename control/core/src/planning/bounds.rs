//! What a check-scan correction may change, held to the plan the operator approved.
//!
//! A correction re-aims the needle at the target as found again in the check scan. Without bounds, each correction
//! would start from the last one's estimate and errors could add up (a mis-found lesion, a tip found on an artefact):
//! the tip could walk deeper than planned through tissue the plan never crossed. So every re-plan is bounded by the
//! planned depth plus [`CORRECTION_DEPTH_MARGIN`] (a [`DepthLimit`] only a plan can give), and a target found again is
//! accepted only within [`MAX_TARGET_DRIFT`] of the *planned* target, never of the last estimate.

use super::{InsertionPlan, PlanningError};
use crate::frames::{Ct, Point};

/// How far (m) a correction may take the tip beyond the planned depth: 5 mm. The lesion found again moves because the
/// needle pushes it ahead of itself (up to ~3 mm in the twin's tissue model, of the order reported for soft-tissue
/// phantoms), and registration and tip-localisation errors add about 1 mm; 5 mm covers these and no more. The cycle's
/// per-procedure insertion limit uses the same figure ([`InsertionPlan::correction_limit`]).
pub const CORRECTION_DEPTH_MARGIN: f64 = 0.005;

/// How far (m) from the planned target a lesion found in a check scan may lie and still be taken as the target: 10 mm,
/// twice the depth margin, enough for the needle's push and breathing-phase differences between scans; farther, the
/// finder has more likely locked onto another structure than followed the lesion.
pub const MAX_TARGET_DRIFT: f64 = 0.010;

/// The deepest tip depth (m below the entry) any re-plan of one procedure may reach: its planned depth plus
/// [`CORRECTION_DEPTH_MARGIN`]. Only [`InsertionPlan::correction_limit`] makes one, so a re-plan cannot be bounded by
/// a number from elsewhere.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthLimit {
    planned: f64,
    margin: f64,
}

impl DepthLimit {
    /// Planned tip depth, m.
    pub fn planned(&self) -> f64 {
        self.planned
    }
    /// Margin allowed beyond it, m.
    pub fn margin(&self) -> f64 {
        self.margin
    }
    /// Deepest tip depth allowed, m.
    pub fn max_depth(&self) -> f64 {
        self.planned + self.margin
    }
    /// Refuses a tip depth beyond the limit (or NaN), naming both depths.
    pub fn check(&self, depth: f64) -> Result<(), PlanningError> {
        // Written so that NaN refuses.
        if depth <= self.max_depth() {
            return Ok(());
        }
        Err(PlanningError::DeeperThanPlanned {
            depth_mm: depth * 1e3,
            planned_mm: self.planned * 1e3,
            margin_mm: self.margin * 1e3,
        })
    }
}

impl InsertionPlan {
    /// The depth bound on every correction of this plan: planned depth + [`CORRECTION_DEPTH_MARGIN`].
    pub fn correction_limit(&self) -> DepthLimit {
        DepthLimit {
            planned: self.depth,
            margin: CORRECTION_DEPTH_MARGIN,
        }
    }

    /// Accepts a target found again in a check scan if it lies within [`MAX_TARGET_DRIFT`] of the planned target
    /// (CT); refuses it (and a non-finite one) otherwise, with the distance.
    pub fn bounded_target(&self, found: &Point<Ct>) -> Result<Point<Ct>, PlanningError> {
        if !found.is_finite() {
            return Err(PlanningError::NonFinite("target found again"));
        }
        let drift = found.distance(&self.target_ct);
        if drift <= MAX_TARGET_DRIFT {
            Ok(*found)
        } else {
            Err(PlanningError::TargetDrifted {
                drift_mm: drift * 1e3,
                max_mm: MAX_TARGET_DRIFT * 1e3,
            })
        }
    }
}
