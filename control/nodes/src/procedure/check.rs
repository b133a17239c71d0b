//! The check scan: find the needle tip in the newest series and work out the correction for the rest of the insertion.
//! IO (reading the series) then pure core algorithms; runs on a blocking thread.

use std::path::Path;

use acus_control::frames::{Ct, Point, RobotBase, Transform};
use acus_control::kinematics::JointPositions;
use acus_control::lesion::{find_lesion, LesionSearch};
use acus_control::needle::{find_needle, plan_correction, CorrectionInput, InsertionStep, NeedleSearch};
use acus_control::planning::{Planner, Replan};
use nalgebra::UnitQuaternion;

/// One insertion step as performed, in the robot frame (mapped to CT when the correction is worked out).
#[derive(Clone, Copy, Debug)]
pub struct PerformedStep {
    /// Holder orientation during the step (forward kinematics), robot base.
    pub holder: UnitQuaternion<f64>,
    /// Needle inserted in the step, m.
    pub length: f64,
    /// Tip found after the step, CT.
    pub observed_tip: Option<Point<Ct>>,
}

/// What a check scan showed and what to do next.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// Tip found, CT.
    pub tip_ct: Point<Ct>,
    /// Tip found, robot base.
    pub tip_robot: Point<RobotBase>,
    /// The target as found again in this scan (the tissue moves it), CT; the previous estimate if it was not found.
    pub target_ct: Point<Ct>,
    /// Why the target was not found again, if it was not.
    pub target_not_found: Option<String>,
    /// Distance of the tip from where it was expected after this step (the plan, or the last correction's model), m; for
    /// the last step of the plan, from the target.
    pub tip_error: f64,
    /// Distance of the tip from the target, m.
    pub to_target: f64,
    /// Where the correction's model expects the tip after the next step, CT.
    pub next_expected_tip: Option<Point<Ct>>,
    /// The correction for the remaining insertion (none when the tip is at the target or the model refuses).
    pub replan: Option<Replan>,
    /// Pivot of the correction, rad.
    pub pivot_angle: f64,
    /// Estimated needle curvature, 1/m.
    pub curvature: f64,
    /// Why there is no correction, if there is none.
    pub no_correction: Option<String>,
}

/// Everything the analysis needs, owned (it moves to a blocking thread).
pub struct CheckInput {
    /// Positioner model (for forward kinematics and re-planning).
    pub planner: Planner,
    /// Registration.
    pub t_robot_ct: Transform<RobotBase, Ct>,
    /// Planned entry, CT.
    pub entry_ct: Point<Ct>,
    /// The latest estimate of the target, CT (planned, then as found on the last check scan).
    pub target_ct: Point<Ct>,
    /// The lesion to find again: radius (m) and contrast to the surrounding tissue (HU); none to aim at `target_ct`.
    pub lesion: Option<(f64, f64)>,
    /// Joint positions during the check scan.
    pub q: JointPositions,
    /// Where the tip is expected now, CT.
    pub expected_tip: Point<Ct>,
    /// True when this was the last step of the active plan (the tip should be on the target).
    pub last_step: bool,
    /// Steps performed so far; the last one is the one just checked.
    pub steps: Vec<PerformedStep>,
    /// Prior on the curvature, 1/m.
    pub curvature_prior: f64,
    /// Stop correcting when the tip is this close to the target, m.
    pub done_within: f64,
    /// Below this remaining depth (m) the needle is not re-aimed, only advanced along its own axis.
    pub min_correction_depth: f64,
}

/// Read the series in `dir`, find the needle near the axis the robot holds it on, and plan the correction.
pub fn analyse(dir: &Path, input: &CheckInput) -> Result<CheckResult, String> {
    let (volume, _) = acus_dicom::read_ct_series(dir).map_err(|e| format!("check scan import: {e}"))?;
    let t_ct_robot = input.t_robot_ct.inverse();
    let state = input.planner.model().forward(&input.q);
    let direction_ct = nalgebra::Unit::new_normalize(t_ct_robot.apply_vector(&state.direction));
    let search = NeedleSearch::new(t_ct_robot.apply(&state.rcm), direction_ct);
    let seen = find_needle(&volume, &search).map_err(|e| format!("check scan: {e}"))?;
    let tip_robot = input.t_robot_ct.apply(&seen.tip);
    let (target_ct, target_not_found) = match input.lesion {
        Some((radius, contrast)) => match find_lesion(&volume, &LesionSearch::new(input.target_ct, radius, contrast)) {
            Ok(found) => (found.center, None),
            Err(e) => (input.target_ct, Some(e.to_string())),
        },
        None => (input.target_ct, None),
    };
    let to_target = seen.tip.distance(&target_ct);
    let tip_error = if input.last_step {
        to_target
    } else {
        seen.tip.distance(&input.expected_tip)
    };
    let mut result = CheckResult {
        tip_ct: seen.tip,
        tip_robot,
        target_ct,
        target_not_found,
        tip_error,
        to_target,
        next_expected_tip: None,
        replan: None,
        pivot_angle: 0.0,
        curvature: 0.0,
        no_correction: None,
    };
    if to_target <= input.done_within {
        result.no_correction = Some(format!("tip {:.2} mm from the target", to_target * 1e3));
        return Ok(result);
    }
    let r_ct_robot = t_ct_robot.isometry().rotation;
    let mut steps: Vec<InsertionStep> = input
        .steps
        .iter()
        .map(|s| InsertionStep {
            holder: r_ct_robot * s.holder,
            length: s.length,
            observed_tip: s.observed_tip,
        })
        .collect();
    if let Some(last) = steps.last_mut() {
        last.observed_tip = Some(seen.tip);
    }
    let correction = plan_correction(&CorrectionInput {
        entry: input.entry_ct,
        target: target_ct,
        steps: &steps,
        curvature_prior: input.curvature_prior,
        tip_sigma: seen.tip_sigma.max(0.1e-3),
    });
    let entry_robot = input.t_robot_ct.apply(&input.entry_ct);
    let insertion = input.q.insertion();
    match correction {
        // Close to the target a re-aim would have to pivot the whole inserted needle by a large angle for a small
        // lateral gain (and sweep the tissue with it): finish straight along the needle instead, to the target's depth.
        Ok(c) if c.remaining_depth < input.min_correction_depth => {
            let along = (target_ct.coords - seen.tip.coords).dot(&seen.direction);
            if along <= 0.2e-3 {
                result.no_correction = Some(format!(
                    "tip at the target's depth ({:.2} mm along the needle)",
                    along * 1e3
                ));
                return Ok(result);
            }
            let straight =
                input
                    .planner
                    .replan_from_direction(entry_robot, *state.direction, insertion + along, insertion);
            match straight {
                Ok(replan) => {
                    result.next_expected_tip = Some(Point::new(seen.tip.coords + seen.direction.into_inner() * along));
                    result.replan = Some(replan);
                    result.no_correction = Some(format!(
                        "{:.1} mm to go: finishing straight along the needle",
                        along * 1e3
                    ));
                }
                Err(e) => result.no_correction = Some(format!("re-plan refused: {e}")),
            }
        }
        Ok(c) => {
            result.pivot_angle = c.pivot_angle;
            result.curvature = c.curvature;
            let direction_robot = input.t_robot_ct.apply_vector(&c.guide_direction.into_inner());
            match input.planner.replan_from_direction(
                entry_robot,
                direction_robot,
                insertion + c.remaining_depth,
                insertion,
            ) {
                Ok(replan) => {
                    result.next_expected_tip = replan.steps().first().map(|step| c.tip_after(step.length));
                    result.replan = Some(replan);
                }
                Err(e) => result.no_correction = Some(format!("re-plan refused: {e}")),
            }
        }
        Err(e) => result.no_correction = Some(format!("correction refused: {e}")),
    }
    Ok(result)
}
