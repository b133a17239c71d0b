//! Re-planning after a check scan: a corrected needle direction about the same entry point.
//!
//! The correction module (`needle`) turns the tip found in a check scan into a new needle direction through the entry
//! and a new total depth. The RCM stays on the entry, so turning yaw/pitch pivots the needle about the skin entry; the
//! insertion joint is held at its current value while it turns, then the remaining steps continue from there.

use nalgebra::{Unit, Vector3};

use super::{DepthLimit, InsertionStep, Planner, PlanningError};
use crate::frames::{Point, RobotBase};
use crate::kinematics::{Joint, JointPositions, NeedleRequest};

/// Below this (m) the needle counts as already at the re-planned depth: no further step.
const AT_DEPTH: f64 = 1e-6;

/// New joint goals after a correction. Built only by [`Planner::replan_from_direction`].
#[derive(Clone, Debug, PartialEq)]
pub struct Replan {
    entry: Point<RobotBase>,
    target: Point<RobotBase>,
    direction: Unit<Vector3<f64>>,
    depth: f64,
    reorient: JointPositions,
    retracted: JointPositions,
    steps: Vec<InsertionStep>,
    withdraw_to: Option<f64>,
}

impl Replan {
    /// Entry (RCM), robot base.
    pub fn entry(&self) -> Point<RobotBase> {
        self.entry
    }
    /// The corrected target: entry + depth · direction.
    pub fn target(&self) -> Point<RobotBase> {
        self.target
    }
    /// Corrected unit needle direction.
    pub fn direction(&self) -> Unit<Vector3<f64>> {
        self.direction
    }
    /// Corrected total tip depth below the entry (m).
    pub fn depth(&self) -> f64 {
        self.depth
    }
    /// Joint goal of the re-orientation: RCM on the entry, new yaw/pitch, insertion held at its current value.
    pub fn reorient_goal(&self) -> JointPositions {
        self.reorient
    }
    /// The same axis with the insertion retracted (the goal of a retraction after this re-plan).
    pub fn retracted_goal(&self) -> JointPositions {
        self.retracted
    }
    /// The remaining steps from the current insertion to the corrected depth (empty when already there).
    pub fn steps(&self) -> &[InsertionStep] {
        &self.steps
    }
    /// For a redirect ([`Planner::redirect`]): the insertion joint value (m) the needle is pulled back to, along its
    /// current axis, before it turns.
    pub fn withdraw_to(&self) -> Option<f64> {
        self.withdraw_to
    }
}

impl Planner {
    /// Joint goals for a corrected needle `direction` (robot base; any length) through `entry` (robot base) reaching a
    /// total tip depth `depth` (m) below the entry, with the insertion joint held at `current_insertion` (m) while
    /// yaw/pitch turn. The remaining steps follow the planner's step length and stop-short margin (the margin is
    /// skipped when the needle is already within it). Refuses a depth beyond the procedure's `limit` (its planned depth
    /// plus margin, from [`InsertionPlan::correction_limit`](super::InsertionPlan::correction_limit)), a depth outside
    /// the usable range, a needle already past the new depth, and anything the kinematics cannot reach (with its
    /// numbers).
    pub fn replan_from_direction(
        &self,
        entry: Point<RobotBase>,
        direction: Vector3<f64>,
        depth: f64,
        current_insertion: f64,
        limit: DepthLimit,
    ) -> Result<Replan, PlanningError> {
        if !entry.is_finite() {
            return Err(PlanningError::NonFinite("entry"));
        }
        if !direction.iter().all(|c| c.is_finite()) {
            return Err(PlanningError::NonFinite("needle direction"));
        }
        if !current_insertion.is_finite() {
            return Err(PlanningError::NonFinite("current insertion"));
        }
        let norm = direction.norm();
        if norm < 1e-9 {
            return Err(PlanningError::BadDirection(norm));
        }
        let direction = Unit::new_normalize(direction);
        self.check_depth(depth)?;
        limit.check(depth)?;
        let target = Point::new(entry.coords + direction.into_inner() * depth);
        let at_target = self
            .model
            .solve_needle(&NeedleRequest { entry, target })
            .map_err(PlanningError::Unreachable)?;
        let end = at_target.insertion();
        let current_depth = current_insertion + self.tip_offset;
        if current_insertion > end + AT_DEPTH {
            return Err(PlanningError::AlreadyPast {
                current_mm: current_depth * 1e3,
                goal_mm: depth * 1e3,
            });
        }
        let ins = self.model.limit(Joint::Insertion);
        let held = current_insertion.clamp(ins.lower, ins.upper);
        let mut reorient = at_target;
        reorient.set(Joint::Insertion, held);
        let mut retracted = at_target;
        retracted.set(Joint::Insertion, self.retracted());
        let steps = if end - held <= AT_DEPTH {
            Vec::new()
        } else {
            let stop_short = if end - self.params.stop_short - held > AT_DEPTH {
                self.params.stop_short
            } else {
                0.0
            };
            super::steps::schedule(held, end, self.params.max_step, stop_short, self.tip_offset, &reorient)
        };
        Ok(Replan {
            entry,
            target,
            direction,
            depth,
            reorient,
            retracted,
            steps,
            withdraw_to: None,
        })
    }

    /// A redirect: the needle pulled back along its track until its tip is `withdraw_depth` (m) below the entry, then
    /// turned about the entry to `direction` and inserted to `depth`, for when no correction of the inserted needle
    /// reaches the target. As [`Self::replan_from_direction`] from the withdrawn insertion; refuses a withdrawal that
    /// would not pull the needle back (`withdraw_depth` at or below the tip) or would take it out of the skin.
    pub fn redirect(
        &self,
        entry: Point<RobotBase>,
        direction: Vector3<f64>,
        depth: f64,
        current_insertion: f64,
        withdraw_depth: f64,
        limit: DepthLimit,
    ) -> Result<Replan, PlanningError> {
        let current_depth = current_insertion + self.tip_offset;
        if !(withdraw_depth.is_finite() && withdraw_depth > 0.0 && withdraw_depth < current_depth - AT_DEPTH) {
            return Err(PlanningError::BadWithdrawal {
                withdraw_mm: withdraw_depth * 1e3,
                current_mm: current_depth * 1e3,
            });
        }
        let withdrawn = withdraw_depth - self.tip_offset;
        let mut replan = self.replan_from_direction(entry, direction, depth, withdrawn, limit)?;
        replan.withdraw_to = Some(replan.reorient.insertion());
        Ok(replan)
    }
}
