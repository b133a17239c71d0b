//! The check scan: find the needle tip in the newest series and work out the correction for the rest of the insertion.
//! IO (reading the series) then pure core algorithms; runs on a blocking thread.

use std::path::Path;

use acus_control::frames::{Ct, Point, RobotBase, Transform};
use acus_control::kinematics::JointPositions;
use acus_control::lesion::{find_lesion, LesionSearch};
use acus_control::needle::{
    find_needle, plan_correction, AxisPrior, CorrectionInput, InsertionStep, NeedleSearch, ObservedShaft,
};
use acus_control::planning::{InsertionPlan, Planner, Replan};
use acus_control::registration::CtVolume;
use nalgebra::UnitQuaternion;

/// Why a check scan gave no answer.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CheckScanError {
    /// The scanner did not deliver a series (its reason, for the operator).
    #[error("check scan not acquired: {0}")]
    NotAcquired(String),
    /// No breath-hold could be had for it (respiratory gating).
    #[error("check scan not taken: {0}")]
    Gating(crate::gating::GatingError),
    /// The check scan is not in the planning scan's frame of reference (another study, or the patient moved on the
    /// table and the scanner started a new frame): its coordinates cannot be compared with the plan's.
    #[error(
        "check scan in another frame of reference ({found}, the planning scan's is {planning}): not used; \
         re-register on a new planning scan"
    )]
    FrameOfReference {
        /// The planning scan's Frame of Reference UID.
        planning: String,
        /// The check scan's (or "none").
        found: String,
    },
    /// The series could not be imported.
    #[error("check scan import: {0}")]
    Import(std::sync::Arc<acus_dicom::DicomError>),
    /// The needle was not found where the robot holds it.
    #[error("check scan: {0}")]
    Needle(acus_control::needle::NeedleError),
    /// The analysis thread ended without an answer.
    #[error("check-scan analysis failed: {0}")]
    Analysis(String),
}

/// One insertion step as performed, in the robot frame (mapped to CT when the correction is worked out).
#[derive(Clone, Copy, Debug)]
pub struct PerformedStep {
    /// Holder orientation during the step (forward kinematics), robot base.
    pub holder: UnitQuaternion<f64>,
    /// Needle inserted in the step, m.
    pub length: f64,
    /// Tip found after the step, CT.
    pub observed_tip: Option<Point<Ct>>,
    /// Shaft direction seen with that tip, CT.
    pub observed_shaft: Option<ObservedShaft>,
}

/// The steps as they stand once the needle is withdrawn to the insertion joint value `insertion` (the steps' lengths
/// add up to the insertion joint value): the steps beyond it are undone, the one it ends in is shortened, and that
/// one's observations go (its tip was seen deeper than it now is).
pub fn withdraw_steps(steps: &mut Vec<PerformedStep>, insertion: f64) {
    let mut reached = 0.0;
    let mut keep = 0;
    for step in steps.iter_mut() {
        if reached + step.length <= insertion + 1e-9 {
            reached += step.length;
            keep += 1;
            continue;
        }
        let left = insertion - reached;
        if left > 1e-9 {
            step.length = left;
            step.observed_tip = None;
            step.observed_shaft = None;
            keep += 1;
        }
        break;
    }
    steps.truncate(keep);
}

/// What a check scan showed and what to do next.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// Tip found, CT.
    pub tip_ct: Point<Ct>,
    /// Shaft direction found behind the tip, towards the tip, CT.
    pub direction: nalgebra::Unit<nalgebra::Vector3<f64>>,
    /// The picture of this check scan, if it was written.
    pub picture: Option<std::path::PathBuf>,
    /// Tip found, robot base.
    pub tip_robot: Point<RobotBase>,
    /// Shaft direction behind the tip as the correction uses it (none when it stopped before the correction), CT.
    pub shaft: Option<ObservedShaft>,
    /// The target as found again in this scan (the tissue moves it), CT; the previous estimate if it was not found, or
    /// was found farther than `MAX_TARGET_DRIFT` from the planned target.
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
    /// When no correction of the inserted needle reaches the target (none, a turn beyond the inserted needle's limit,
    /// or a straight finish that would pass the target wide): withdraw and redirect.
    pub redirect: Option<Redirect>,
}

/// Withdraw the needle to a shallow depth along its track, re-aim about the entry, insert again.
#[derive(Clone, Debug)]
pub struct Redirect {
    /// The joint goals: withdrawal depth, new axis, steps.
    pub replan: Replan,
    /// Tip depth below the entry it withdraws to, m.
    pub withdraw_depth: f64,
    /// Where the tip is expected after the first step of the redirect, CT.
    pub expected_tip: Point<Ct>,
    /// Why a correction of the inserted needle does not do (for the operator).
    pub why: String,
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
    /// The procedure's plan: every correction stays within its depth + margin, and a target found again is accepted
    /// only near its target (so neither can drift from one check scan to the next).
    pub plan: InsertionPlan,
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
    /// Prior on the rigid error of the needle axis (the robot's pointing accuracy after registration).
    pub axis_prior: AxisPrior,
    /// The needle's datasheet values.
    pub needle: crate::NeedleSpec,
    /// Stop correcting when the tip is this close to the target, m.
    pub done_within: f64,
    /// Below this remaining depth (m) the needle is not re-aimed, only advanced along its own axis.
    pub min_correction_depth: f64,
    /// The planning scan's Frame of Reference UID, when the procedure took that scan: the check scan must share it.
    pub frame_of_reference: Option<String>,
    /// Largest turn of a correction with the needle in (the machine's limit), rad.
    pub max_correction_angle: f64,
    /// Largest tip error that lets the insertion go on (the machine's limit), m.
    pub max_tip_error: f64,
    /// Tip depth below the entry (m) a redirect withdraws to: above the organ, in the subcutaneous tissue.
    pub redirect_depth: f64,
}

/// A check scan is used only in the planning scan's frame of reference (DICOM: scans sharing a Frame of Reference UID
/// share patient coordinates). Nothing to compare when the procedure did not take the planning scan itself.
pub fn same_frame_of_reference(planning: Option<&str>, check: Option<&str>) -> Result<(), CheckScanError> {
    match planning {
        Some(p) if check != Some(p) => Err(CheckScanError::FrameOfReference {
            planning: p.to_owned(),
            found: check.unwrap_or("none").to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Read the series in `dir`, find the needle near the axis the robot holds it on, and plan the correction; then draw the
/// check scan (a slice along the needle with the plan and what was found) beside the series, `<dir>.svg`. A picture that
/// cannot be written is logged, not a fault: the analysis stands without it.
pub fn analyse(dir: &Path, input: &CheckInput) -> Result<CheckResult, CheckScanError> {
    let (volume, series) =
        acus_dicom::read_ct_series(dir).map_err(|e| CheckScanError::Import(std::sync::Arc::new(e)))?;
    same_frame_of_reference(
        input.frame_of_reference.as_deref(),
        series.frame_of_reference_uid.as_deref(),
    )?;
    let mut result = analyse_volume(&volume, input)?;
    let view = acus_pictures::CheckView {
        n: input.steps.len(),
        entry: input.entry_ct,
        target: input.plan.target_ct(),
        target_found: result.target_ct,
        tip_found: result.tip_ct,
        shaft_dir: Some(result.direction),
        to_target_m: result.to_target,
    };
    let path = dir.with_extension("svg");
    match acus_pictures::check_scan_svg(&volume, &view).write_svg(&path) {
        Ok(()) => result.picture = Some(path),
        Err(e) => tracing::warn!("check scan picture {}: {e}", path.display()),
    }
    Ok(result)
}

/// The analysis of a check scan already read.
fn analyse_volume(volume: &CtVolume, input: &CheckInput) -> Result<CheckResult, CheckScanError> {
    let t_ct_robot = input.t_robot_ct.inverse();
    let state = input.planner.model().forward(&input.q);
    let direction_ct = nalgebra::Unit::new_normalize(t_ct_robot.apply_vector(&state.direction));
    let rcm_ct = t_ct_robot.apply(&state.rcm);
    let mut search = NeedleSearch::new(rcm_ct, search_direction(&rcm_ct, &direction_ct, &input.expected_tip));
    search.needle_radius = input.needle.radius;
    search.tip_offset = input.needle.radius / 3.0;
    search.needle_hu = input.needle.hu;
    let seen = find_needle(volume, &search).map_err(CheckScanError::Needle)?;
    let tip_robot = input.t_robot_ct.apply(&seen.tip);
    let (target_ct, target_not_found) = match input.lesion {
        Some((radius, contrast)) => match find_lesion(volume, &LesionSearch::new(input.target_ct, radius, contrast)) {
            Ok(found) => match input.plan.bounded_target(&found.center) {
                Ok(center) => (center, None),
                Err(e) => (input.target_ct, Some(e.to_string())),
            },
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
        direction: seen.direction,
        picture: None,
        tip_robot,
        shaft: None,
        target_ct,
        target_not_found,
        tip_error,
        to_target,
        next_expected_tip: None,
        replan: None,
        pivot_angle: 0.0,
        curvature: 0.0,
        no_correction: None,
        redirect: None,
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
            observed_shaft: s.observed_shaft,
        })
        .collect();
    let tip_sigma = seen.tip_sigma.max(0.1e-3);
    // The line fit's direction: lateral uncertainty `tip_sigma` over its baseline (the finder's shaft direction is good
    // to ≈ 0.3° RMS on 1 mm slices, sim/needle/tests/check_scan.rs).
    let shaft = ObservedShaft {
        direction: seen.direction,
        length: seen.shaft_length,
        sigma: tip_sigma / seen.shaft_length.max(5e-3),
    };
    result.shaft = Some(shaft);
    if let Some(last) = steps.last_mut() {
        last.observed_tip = Some(seen.tip);
        last.observed_shaft = Some(shaft);
    }
    let correction = plan_correction(&CorrectionInput {
        entry: input.entry_ct,
        target: target_ct,
        steps: &steps,
        curvature_prior: input.curvature_prior,
        tip_sigma,
        axis_prior: input.axis_prior,
    });
    if let Ok(c) = &correction {
        tracing::debug!(
            tip_mm = ?(seen.tip.coords.coords * 1e3).as_slice(),
            expected_mm = ?(input.expected_tip.coords.coords * 1e3).as_slice(),
            target_mm = ?(target_ct.coords.coords * 1e3).as_slice(),
            curvature = c.curvature,
            tilt_deg = ?(c.axis_tilt * 180.0 / std::f64::consts::PI).as_slice(),
            offset_mm = ?(c.entry_offset * 1e3).as_slice(),
            pivot_deg = c.pivot_angle.to_degrees(),
            fit_rms_mm = c.fit_rms * 1e3,
            "check-scan correction"
        );
    }
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
            let straight = input.planner.replan_from_direction(
                entry_robot,
                *state.direction,
                insertion + along,
                insertion,
                input.plan.correction_limit(),
            );
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
                input.plan.correction_limit(),
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
    if let Some(why) = redirect_needed(&result, input, &state.direction, &seen.tip, &target_ct) {
        let guide_ct = direction_ct;
        match plan_redirect(input, &seen.tip, &target_ct, &guide_ct, why) {
            Ok(r) => result.redirect = Some(r),
            Err(e) => tracing::warn!("no redirect: {e}"),
        }
    }
    Ok(result)
}

/// Why the needle must be withdrawn and redirected rather than corrected where it stands, if it must: the tip is not
/// at the target and no correction reaches it (there is none, it turns the inserted needle beyond its limit, or it
/// finishes straight along a line that passes the target wider than the tip error allowed).
fn redirect_needed(
    result: &CheckResult,
    input: &CheckInput,
    guide_robot: &nalgebra::Unit<nalgebra::Vector3<f64>>,
    tip: &Point<Ct>,
    target: &Point<Ct>,
) -> Option<String> {
    if result.to_target <= input.done_within.max(0.0) {
        return None;
    }
    let Some(replan) = &result.replan else {
        return Some(
            result
                .no_correction
                .clone()
                .unwrap_or_else(|| "no correction of the inserted needle".to_owned()),
        );
    };
    let turn = replan.direction().angle(guide_robot);
    // Fail closed: a turn or a limit that is not a number asks for the redirect.
    if !turn.partial_cmp(&input.max_correction_angle).is_some_and(|o| o.is_le()) {
        return Some(format!(
            "the correction would turn the inserted needle by {:.1}°, more than {:.1}°",
            turn.to_degrees(),
            input.max_correction_angle.to_degrees()
        ));
    }
    // A straight finish (the needle's own direction, to within the rounding of an angle between unit vectors): the
    // target's distance from the needle's line is what it will miss by.
    if turn < 1e-6 {
        let d = target.coords - tip.coords;
        let along = d.dot(&result.direction);
        let wide = (d - result.direction.into_inner() * along).norm();
        if !wide.partial_cmp(&input.max_tip_error).is_some_and(|o| o.is_le()) {
            return Some(format!(
                "finishing straight would pass the target {:.1} mm wide",
                wide * 1e3
            ));
        }
    }
    None
}

/// The largest aim-off a redirect takes from the pass it follows: a robot's pointing error after registration and an
/// 18 G needle's bend over 100 mm of liver are each under 2°; more is a finding to distrust, not to copy.
const MAX_AIM_OFF: f64 = 5.0 * std::f64::consts::PI / 180.0;

/// A redirect onto the line from the entry to the target, aimed off by the pointing error this pass showed (the
/// rotation from the guide's axis to the chord from the entry to the tip found: the robot's axis error and the
/// needle's bend over a similar depth), capped at [`MAX_AIM_OFF`].
fn plan_redirect(
    input: &CheckInput,
    tip: &Point<Ct>,
    target: &Point<Ct>,
    guide_ct: &nalgebra::Unit<nalgebra::Vector3<f64>>,
    why: String,
) -> Result<Redirect, String> {
    let entry = input.entry_ct;
    let line = target.coords - entry.coords;
    let depth = line.norm();
    let chord = nalgebra::Unit::try_new(tip.coords - entry.coords, 1e-6).ok_or("tip on the entry")?;
    let aim_off = UnitQuaternion::rotation_between_axis(&chord, guide_ct).unwrap_or_else(UnitQuaternion::identity);
    let cap = MAX_AIM_OFF;
    let aim_off = if aim_off.angle() > cap && aim_off.angle() > 0.0 {
        aim_off.powf(cap / aim_off.angle())
    } else {
        aim_off
    };
    let aim = aim_off * line;
    let t_robot_ct = &input.t_robot_ct;
    let insertion = input.q.insertion();
    let tip_depth = (tip.coords - entry.coords).norm();
    let withdraw_depth = input.redirect_depth.min(tip_depth / 2.0);
    let replan = input
        .planner
        .redirect(
            t_robot_ct.apply(&entry),
            t_robot_ct.apply_vector(&aim),
            depth,
            insertion,
            withdraw_depth,
            input.plan.correction_limit(),
        )
        .map_err(|e| e.to_string())?;
    let first = replan.steps().first().map_or(depth, |s| s.tip_depth);
    let expected_tip = Point::new(entry.coords + line.normalize() * first);
    Ok(Redirect {
        replan,
        withdraw_depth,
        expected_tip,
        why,
    })
}

/// Where to look for the needle: along the line from the entry to the tip expected now. After a pivot with the needle
/// inserted the shaft stays where the tissue holds it and only the new part follows the guide, so the needle lies near
/// that line, not on the new guide axis; before any pivot the two coincide. Falls back to the guide axis when the
/// expected tip is too close to the entry or more than 15° off the guide (no sensible line).
fn search_direction(
    rcm: &Point<Ct>,
    guide: &nalgebra::Unit<nalgebra::Vector3<f64>>,
    expected_tip: &Point<Ct>,
) -> nalgebra::Unit<nalgebra::Vector3<f64>> {
    match nalgebra::Unit::try_new(expected_tip.coords - rcm.coords, 1e-9) {
        Some(d) if (expected_tip.coords - rcm.coords).norm() > 5e-3 && d.dot(guide) > 15f64.to_radians().cos() => d,
        _ => *guide,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_withdrawal_undoes_the_steps_beyond_it_and_shortens_the_one_it_ends_in() {
        let seen = Some(Point::<Ct>::xyz(0.0, 0.0, 0.03));
        let step = |length: f64| PerformedStep {
            holder: UnitQuaternion::identity(),
            length,
            observed_tip: seen,
            observed_shaft: None,
        };
        let mut steps = vec![step(0.03), step(0.03), step(0.02)];
        withdraw_steps(&mut steps, 0.045);
        assert_eq!(steps.len(), 2);
        assert!((steps.iter().map(|s| s.length).sum::<f64>() - 0.045).abs() < 1e-12);
        assert!(steps[0].observed_tip.is_some() && steps[1].observed_tip.is_none());
        // Withdrawn exactly to a step's end: that step keeps what was seen at its end.
        let mut steps = vec![step(0.03), step(0.03)];
        withdraw_steps(&mut steps, 0.03);
        assert_eq!(steps.len(), 1);
        assert!(steps[0].observed_tip.is_some());
        // Withdrawn out of the skin: nothing left.
        withdraw_steps(&mut steps, 0.0);
        assert!(steps.is_empty());
    }

    #[test]
    fn the_search_follows_the_expected_tip_after_a_pivot() {
        let rcm = Point::<Ct>::xyz(0.0, 0.0, 0.0);
        let guide = nalgebra::Unit::new_normalize(nalgebra::Vector3::new(0.0, 0.0, 1.0));
        // The needle went 30 mm along +z, the guide then pivoted 5° towards +x and it went 30 mm on: the tip lies 2.6 mm
        // off the first axis and the old shaft up to 2.6 mm off the new one, but both within 1.3 mm of entry → tip.
        let (s, c) = 5f64.to_radians().sin_cos();
        let tip = Point::<Ct>::xyz(0.03 * s, 0.0, 0.03 + 0.03 * c);
        let pivoted = nalgebra::Unit::new_normalize(nalgebra::Vector3::new(s, 0.0, c));
        let d = search_direction(&rcm, &pivoted, &tip);
        assert!((d.into_inner() - (tip.coords - rcm.coords).normalize()).norm() < 1e-12);
        let off = |axis: &nalgebra::Unit<nalgebra::Vector3<f64>>, p: nalgebra::Vector3<f64>| {
            (p - axis.into_inner() * p.dot(axis)).norm()
        };
        let old_tip = nalgebra::Vector3::new(0.0, 0.0, 0.03);
        assert!(off(&d, old_tip) < 1.4e-3 && off(&pivoted, old_tip) > 2.5e-3);
        // Nonsense expectations fall back to the guide.
        let fallback = |p: Point<Ct>| (search_direction(&rcm, &guide, &p).into_inner() - guide.into_inner()).norm();
        assert!(fallback(Point::xyz(0.0, 0.0, 0.002)) < 1e-12);
        assert!(fallback(Point::xyz(0.05, 0.0, 0.05)) < 1e-12);
    }
}
