//! Planning: from an entry and a target picked in the CT to the joint goals and insertion steps the robot executes.
//!
//! ```text
//! entry, target (CT) ─T_robot_ct (gated)→ robot base ─solve_needle→ joints at the target
//!   → alignment goal (same stage, yaw, pitch; insertion retracted) + steps (≤ max_step each, within the usable range)
//! ```
//!
//! How depth maps onto the insertion joint (see `kinematics`): the alignment puts the RCM (the needle-guide tip) on the
//! skin entry; the tip lies `tip_offset + insertion` beyond the RCM along the needle (`tip_offset` is 0 for the reference
//! URDF, so insertion 0 puts the tip on the entry). The retracted value is the insertion joint's lower limit; a URDF whose
//! retracted tip would already stick out beyond the guide tip is refused, because aligning would then drag it sideways
//! through the skin. The usable range ends `insertion_margin` below the insertion joint's upper limit.
//!
//! An [`InsertionPlan`] can only come from [`Planner::plan`] (its fields are private), and planning demands a
//! [`GatedRegistration`]: holding a plan proves the registration passed its gate and the target is reachable.

mod bounds;
mod replan;
mod steps;

pub use bounds::{DepthLimit, CORRECTION_DEPTH_MARGIN, MAX_TARGET_DRIFT};
pub use replan::Replan;
pub use steps::InsertionStep;

use nalgebra::{Unit, Vector3};

use crate::frames::{Ct, Point, RobotBase, Transform};
use crate::kinematics::{Joint, JointPositions, KinematicsError, NeedleRequest, PositionerModel};
use crate::registration::{GatedRegistration, QualityGate};

/// Planner settings (SI). Range-checked once by [`Planner::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct PlanningParams {
    /// Longest insertion step (m); every step but the last (and the final approach) has exactly this length.
    pub max_step: f64,
    /// Distance kept below the insertion joint's upper limit (m): the deepest usable insertion is `upper − margin`.
    pub insertion_margin: f64,
    /// Stop this far (m) short of the target for a final check scan, then approach it in a last step; 0 for none.
    pub stop_short: f64,
    /// Shortest entry→target distance accepted (m).
    pub min_depth: f64,
}

impl Default for PlanningParams {
    fn default() -> Self {
        Self {
            max_step: 0.030,
            insertion_margin: 0.005,
            stop_short: 0.0,
            min_depth: 0.005,
        }
    }
}

/// Why a plan (or a re-plan) was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanningError {
    /// A planner setting is out of range.
    #[error("planning parameter {name} = {value_mm:.3} mm is out of range: {rule}")]
    InvalidParams {
        /// The setting.
        name: &'static str,
        /// Its value, mm.
        value_mm: f64,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A point or direction is NaN or infinite.
    #[error("{0} has a non-finite coordinate (NaN or infinity)")]
    NonFinite(&'static str),
    /// The needle direction given to a re-plan is not a direction.
    #[error("needle direction has length {0:.3e}; it must be a non-zero direction")]
    BadDirection(f64),
    /// Entry and target are closer than the shortest insertion planned.
    #[error("entry and target are {depth_mm:.3} mm apart; at least {min_mm:.3} mm are required")]
    TooShort {
        /// Entry→target distance, mm.
        depth_mm: f64,
        /// Required, mm.
        min_mm: f64,
    },
    /// The target lies beyond the usable insertion range.
    #[error(
        "target {depth_mm:.3} mm deep exceeds the usable insertion depth {max_mm:.3} mm (insertion limit {limit_mm:.3} mm \
         minus {margin_mm:.3} mm safety margin) by {excess_mm:.3} mm"
    )]
    TooDeep {
        /// Tip depth the target needs below the entry, mm.
        depth_mm: f64,
        /// Deepest usable tip depth, mm.
        max_mm: f64,
        /// Insertion joint upper limit, mm.
        limit_mm: f64,
        /// Safety margin, mm.
        margin_mm: f64,
        /// By how much, mm.
        excess_mm: f64,
    },
    /// The registration's predicted TRE at this target is above the gate's limit.
    #[error("predicted TRE {tre_mm:.3} mm at the target exceeds the gate's limit {max_mm:.3} mm")]
    PredictedTreTooHigh {
        /// Predicted RMS TRE at the target, mm.
        tre_mm: f64,
        /// Gate limit, mm.
        max_mm: f64,
    },
    /// The robot cannot put the needle on this line (the kinematics says which joint and by how much).
    #[error("target unreachable: {0}")]
    Unreachable(KinematicsError),
    /// At the retracted insertion the tip would stick out beyond the needle-guide tip.
    #[error("the retracted needle tip sticks out {0:.3} mm beyond the needle-guide tip; aligning would drag it through the skin")]
    RetractedTipProtrudes(f64),
    /// A correction would take the tip deeper than the procedure's planned depth plus the correction margin.
    #[error(
        "correction to {depth_mm:.3} mm deep exceeds the planned depth {planned_mm:.3} mm + {margin_mm:.3} mm margin; \
         the procedure holds: retract and plan again on a new scan, or continue on the current plan"
    )]
    DeeperThanPlanned {
        /// Tip depth the correction asks for, mm.
        depth_mm: f64,
        /// The procedure's planned tip depth, mm.
        planned_mm: f64,
        /// Margin allowed beyond it, mm.
        margin_mm: f64,
    },
    /// The target found again in a check scan lies too far from the planned target to be taken as the same lesion.
    #[error(
        "target found {drift_mm:.3} mm from the planned target, more than {max_mm:.3} mm; not taken as the target"
    )]
    TargetDrifted {
        /// Distance from the planned target, mm.
        drift_mm: f64,
        /// Largest accepted, mm.
        max_mm: f64,
    },
    /// A re-plan asks for a depth the needle has already passed.
    #[error("needle is already {current_mm:.3} mm deep, beyond the re-planned depth {goal_mm:.3} mm; retract first")]
    AlreadyPast {
        /// Current tip depth, mm.
        current_mm: f64,
        /// Re-planned tip depth, mm.
        goal_mm: f64,
    },
    /// A redirect's withdrawal depth does not pull the needle back, or takes it out of the skin.
    #[error(
        "a redirect cannot withdraw the tip to {withdraw_mm:.3} mm below the entry with the tip {current_mm:.3} mm deep"
    )]
    BadWithdrawal {
        /// Asked tip depth after the withdrawal, mm.
        withdraw_mm: f64,
        /// Current tip depth, mm.
        current_mm: f64,
    },
}

/// A complete plan for one needle: where, which joint goals, which steps. Built only by [`Planner::plan`].
#[derive(Clone, Debug, PartialEq)]
pub struct InsertionPlan {
    entry_ct: Point<Ct>,
    target_ct: Point<Ct>,
    t_robot_ct: Transform<RobotBase, Ct>,
    entry: Point<RobotBase>,
    target: Point<RobotBase>,
    direction: Unit<Vector3<f64>>,
    depth: f64,
    align: JointPositions,
    at_target: JointPositions,
    steps: Vec<InsertionStep>,
    predicted_tre: f64,
}

impl InsertionPlan {
    /// Entry as picked, CT frame.
    pub fn entry_ct(&self) -> Point<Ct> {
        self.entry_ct
    }
    /// Target as picked, CT frame.
    pub fn target_ct(&self) -> Point<Ct> {
        self.target_ct
    }
    /// The registration the plan was made with.
    pub fn t_robot_ct(&self) -> Transform<RobotBase, Ct> {
        self.t_robot_ct
    }
    /// Entry in the robot base: where the RCM goes.
    pub fn entry(&self) -> Point<RobotBase> {
        self.entry
    }
    /// Target in the robot base: where the tip ends.
    pub fn target(&self) -> Point<RobotBase> {
        self.target
    }
    /// Unit needle direction, entry → target, robot base.
    pub fn direction(&self) -> Unit<Vector3<f64>> {
        self.direction
    }
    /// Entry→target distance (m): the total tip depth.
    pub fn depth(&self) -> f64 {
        self.depth
    }
    /// Joint goal of the alignment: RCM on the entry, needle on the line, insertion retracted.
    pub fn align_goal(&self) -> JointPositions {
        self.align
    }
    /// Joint goal with the tip on the target (the last step's goal).
    pub fn target_goal(&self) -> JointPositions {
        self.at_target
    }
    /// The insertion steps, in order.
    pub fn steps(&self) -> &[InsertionStep] {
        &self.steps
    }
    /// Predicted RMS TRE at the target (m), from the registration.
    pub fn predicted_tre(&self) -> f64 {
        self.predicted_tre
    }
}

/// The planner: the positioner model and the settings, checked once.
#[derive(Clone, Debug, PartialEq)]
pub struct Planner {
    model: PositionerModel,
    params: PlanningParams,
    /// Tip distance beyond the RCM at insertion 0 (m), read from the model's forward kinematics.
    tip_offset: f64,
}

impl Planner {
    /// Checks the settings against each other and the model's insertion range.
    pub fn new(model: PositionerModel, params: PlanningParams) -> Result<Self, PlanningError> {
        let p = &params;
        let bad = |name, value: f64, rule| {
            Err(PlanningError::InvalidParams {
                name,
                value_mm: value * 1e3,
                rule,
            })
        };
        if !(p.max_step.is_finite() && p.max_step > 0.0) {
            return bad("max_step", p.max_step, "must be > 0");
        }
        if !(p.insertion_margin.is_finite() && p.insertion_margin >= 0.0) {
            return bad("insertion_margin", p.insertion_margin, "must be ≥ 0");
        }
        if !(p.stop_short.is_finite() && p.stop_short >= 0.0 && p.stop_short <= p.max_step) {
            return bad("stop_short", p.stop_short, "must be ≥ 0 and ≤ max_step");
        }
        if !(p.min_depth.is_finite() && p.min_depth >= crate::kinematics::MIN_AXIS_LENGTH && p.min_depth > p.stop_short)
        {
            return bad("min_depth", p.min_depth, "must be ≥ 1 mm and > stop_short");
        }
        let ins = model.limit(Joint::Insertion);
        if ins.upper - p.insertion_margin <= ins.lower {
            return bad(
                "insertion_margin",
                p.insertion_margin,
                "leaves no usable insertion range",
            );
        }
        let home = model.forward(&JointPositions::default());
        let tip_offset = (home.tip.coords - home.rcm.coords).dot(&home.direction);
        let retracted_tip = tip_offset + ins.lower;
        if retracted_tip > 1e-9 {
            return Err(PlanningError::RetractedTipProtrudes(retracted_tip * 1e3));
        }
        Ok(Self {
            model,
            params,
            tip_offset,
        })
    }

    /// The model.
    pub fn model(&self) -> &PositionerModel {
        &self.model
    }

    /// The settings.
    pub fn params(&self) -> &PlanningParams {
        &self.params
    }

    /// Retracted insertion joint value (m): its lower limit.
    pub fn retracted(&self) -> f64 {
        self.model.limit(Joint::Insertion).lower
    }

    /// Deepest usable tip depth below the entry (m): insertion limit minus the margin, plus the tip offset.
    pub fn max_depth(&self) -> f64 {
        self.model.limit(Joint::Insertion).upper - self.params.insertion_margin + self.tip_offset
    }

    /// Plans one needle from an entry and a target picked in the CT. Checks, in order: finite input, depth within
    /// `[min_depth, max_depth]`, predicted TRE at the target within the gate, then the kinematics (direction and stage
    /// limits, with the solver's numbers). Fails whole: no partial plan.
    pub fn plan(
        &self,
        entry: Point<Ct>,
        target: Point<Ct>,
        registration: &GatedRegistration,
        gate: &QualityGate,
    ) -> Result<InsertionPlan, PlanningError> {
        if !entry.is_finite() {
            return Err(PlanningError::NonFinite("entry"));
        }
        if !target.is_finite() {
            return Err(PlanningError::NonFinite("target"));
        }
        let t_robot_ct = registration.t_robot_ct();
        let (entry_r, target_r) = (t_robot_ct.apply(&entry), t_robot_ct.apply(&target));
        let depth = entry_r.distance(&target_r);
        self.check_depth(depth)?;
        let tre = registration.registration().predicted_tre(&target, registration.fle());
        // A NaN TRE or a NaN limit refuses (fails closed): only a comparable TRE at or below the limit passes.
        if !matches!(
            tre.partial_cmp(&gate.max_predicted_tre),
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        ) {
            return Err(PlanningError::PredictedTreTooHigh {
                tre_mm: tre * 1e3,
                max_mm: gate.max_predicted_tre * 1e3,
            });
        }
        let at_target = self
            .model
            .solve_needle(&NeedleRequest {
                entry: entry_r,
                target: target_r,
            })
            .map_err(PlanningError::Unreachable)?;
        let mut align = at_target;
        align.set(Joint::Insertion, self.retracted());
        let steps = self.schedule(self.retracted(), at_target.insertion(), &align);
        Ok(InsertionPlan {
            entry_ct: entry,
            target_ct: target,
            t_robot_ct,
            entry: entry_r,
            target: target_r,
            direction: Unit::new_normalize(target_r.coords - entry_r.coords),
            depth,
            align,
            at_target,
            steps,
            predicted_tre: tre,
        })
    }

    /// Refuses depths outside `[min_depth, max_depth]`, with the numbers.
    fn check_depth(&self, depth: f64) -> Result<(), PlanningError> {
        if depth.is_nan() || depth < self.params.min_depth {
            return Err(PlanningError::TooShort {
                depth_mm: depth * 1e3,
                min_mm: self.params.min_depth * 1e3,
            });
        }
        let max = self.max_depth();
        if depth > max {
            return Err(PlanningError::TooDeep {
                depth_mm: depth * 1e3,
                max_mm: max * 1e3,
                limit_mm: self.model.limit(Joint::Insertion).upper * 1e3,
                margin_mm: self.params.insertion_margin * 1e3,
                excess_mm: (depth - max) * 1e3,
            });
        }
        Ok(())
    }

    fn schedule(&self, start: f64, end: f64, axis: &JointPositions) -> Vec<InsertionStep> {
        steps::schedule(
            start,
            end,
            self.params.max_step,
            self.params.stop_short,
            self.tip_offset,
            axis,
        )
    }
}
