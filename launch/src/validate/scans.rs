//! `acus validate scans`: the accuracy analysis of `acus validate sim` on scans of the user's own phantom. A planning
//! series, one post-insertion series per target and the plan (entry and target per target) in; the frame registered,
//! the needle found in each post-insertion series, ED, ND, depth and angle errors per target out, in the same study
//! folder (trials.csv, summary.json, report.md, report.html).
//!
//! Only the controller's own algorithms run (the fiducial detector and matcher, the needle finder), ROS-free, on the
//! files as the scanner wrote them: the figures are what acus would have measured on those scans.
//!
//! A target whose series is missing, unreadable, of another frame of reference or without a needle is a failed row
//! with its reason, and the study goes on; a plan or planning series that cannot be used stops the command before
//! anything is written.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use acus_control::frames::{Ct, Point};
use acus_control::needle::{find_needle, NeedleSearch};
use acus_control::registration::{
    register_volume, CtVolume, DetectionWorkspace, FiducialModel, QualityGate, Registration, RegistrationParams,
};
use acus_validate::{Outcome, PlannedPath, StudyInfo, SuccessCriterion, TargetPicture, TipMeasures, Trial};
use anyhow::{bail, Context, Result};
use nalgebra::{Unit, Vector3};

use super::info;
use super::scans_plan::{PlannedTarget, ScanPlan};

/// `acus validate scans` options. Lengths in mm and HU, as a user reads them off a needle's datasheet.
#[derive(clap::Args, Clone, Debug)]
pub struct ScansStudyArgs {
    /// The planning CT series (a DICOM folder), showing the robot's fiducial frame.
    #[arg(long, value_name = "DIR")]
    pub planning: PathBuf,
    /// The plan (YAML, points in CT LPS mm): per target its name, entry, target and post-insertion series folder.
    #[arg(long, value_name = "PLAN.yaml")]
    pub plan: PathBuf,
    /// Study folder to write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The robot's URDF: its fiducial spheres are the frame model registered on the planning series.
    #[arg(long, value_name = "FILE", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../urdf/positioner.urdf"))]
    pub urdf: PathBuf,
    /// Needle shaft radius, mm (18 G: 0.635).
    #[arg(long, value_name = "MM", default_value_t = 0.635)]
    pub needle_radius: f64,
    /// The needle's metal as the scanner reports it, HU.
    #[arg(long, value_name = "HU", default_value_t = 3000.0)]
    pub needle_hu: f64,
    /// Metal farther than this from the planned entry→target line is not looked at, mm.
    #[arg(long, value_name = "MM", default_value_t = 5.0)]
    pub search_radius: f64,
    /// The needles were inserted straight to the planned depth, without check-scan correction: the rows go in the
    /// report's correction-off arm (by default, the on arm: the final position after whatever the procedure did).
    #[arg(long)]
    pub straight: bool,
    /// A success criterion, declared before the run, as for `acus validate sim` (METRIC:STATISTIC:LIMIT:SLICE_MM[:on|off]);
    /// repeat for more. None by default.
    #[arg(long = "criterion", value_name = "CRITERION", value_parser = info::parse_criterion)]
    pub criteria: Vec<SuccessCriterion>,
}

/// The planning series registered: what every row shares.
struct Planning {
    registration: Registration,
    /// FLE for the TRE prediction: the larger of the gate's nominal FLE and the FRE-implied one, as the procedure's
    /// quality gate takes it (a lucky small FRE cannot talk the prediction down).
    fle: f64,
    frame_of_reference: Option<String>,
    /// Slice thickness, m (for rows whose own series gave none).
    slice: f64,
}

/// One target measured.
struct Measured {
    measures: TipMeasures,
    slice: f64,
    picture: String,
}

/// Run the analysis and write the study folder; print where it is, the figures and what failed.
pub fn run_scans_study(args: &ScansStudyArgs) -> Result<()> {
    let started_at = SystemTime::now();
    let started = Instant::now();
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(anyhow::anyhow!("--{name} {v}: give a finite number > 0"))
        }
    };
    positive("needle-radius", args.needle_radius)?;
    positive("search-radius", args.search_radius)?;
    if !args.needle_hu.is_finite() {
        bail!("--needle-hu {}: give a finite number", args.needle_hu);
    }

    let plan = ScanPlan::load(&args.plan)?;
    let urdf =
        std::fs::read_to_string(&args.urdf).with_context(|| format!("reading the URDF {}", args.urdf.display()))?;
    let model = FiducialModel::from_urdf_str(&urdf)
        .with_context(|| format!("URDF {}: no usable fiducial frame", args.urdf.display()))?;
    let planning = register_planning(&args.planning, &model)?;

    let correction = !args.straight;
    let mut trials = Vec::new();
    let mut pictures = Vec::new();
    for (index, t) in plan.targets.iter().enumerate() {
        let t0 = Instant::now();
        let measured = measure(t, &planning, args);
        let wall_s = t0.elapsed().as_secs_f64();
        let (trial, picture) = row(index, t, &planning, correction, measured, wall_s)?;
        match (&trial.outcome, trial.ed_mm) {
            (Outcome::Done, Some(ed)) => println!("target {index} `{}`: ED {ed:.2} mm", t.name),
            _ => println!("target {index} `{}`: failed: {}", t.name, trial.reason),
        }
        trials.push(trial);
        pictures.extend(picture);
    }

    let mut slice_mm: Vec<f64> = Vec::new();
    for t in &trials {
        if !slice_mm.contains(&t.slice_mm) {
            slice_mm.push(t.slice_mm);
        }
    }
    slice_mm.sort_by(f64::total_cmp);
    let study = StudyInfo {
        command_line: info::command_line(),
        seed: 0,
        trials_requested: plan.targets.len(),
        slice_mm,
        world: format!(
            "phantom scans: planning series {}, plan {}",
            args.planning.display(),
            args.plan.display()
        ),
        noise_model: scans_text(&plan, &planning, args),
        controller: analysis_text(args, &model, &planning),
        git_revision: info::git_revision(Path::new(env!("CARGO_MANIFEST_DIR"))),
        started: info::utc(started_at),
        wall_s: started.elapsed().as_secs_f64(),
        criteria: args.criteria.clone(),
    };
    let summary = acus_validate::write_study(&args.out, &study, &trials, &pictures)
        .with_context(|| format!("writing the study folder {}", args.out.display()))?;
    println!("\n{}", info::table(&summary));
    let failed = trials.iter().filter(|t| t.outcome != Outcome::Done).count();
    println!(
        "{} of {} targets measured, {failed} failed (reasons in report.md); study: {} (report.html, report.md, \
         trials.csv, summary.json)",
        trials.len() - failed,
        trials.len(),
        args.out.display()
    );
    Ok(())
}

/// Read the planning series and register the frame on it; any failure stops the study (no row could be trusted).
fn register_planning(dir: &Path, model: &FiducialModel) -> Result<Planning> {
    let (volume, series) = acus_dicom::read_ct_series(dir)
        .with_context(|| format!("planning series {}: cannot be read", dir.display()))?;
    let (registration, _) = register_volume(
        &volume,
        model,
        &RegistrationParams::for_model(model),
        &mut DetectionWorkspace::default(),
    )
    .with_context(|| {
        format!(
            "planning series {}: the fiducial frame cannot be registered",
            dir.display()
        )
    })?;
    let fle = registration
        .fle_from_fre()
        .unwrap_or(0.0)
        .max(QualityGate::default().nominal_fle);
    Ok(Planning {
        registration,
        fle,
        frame_of_reference: series.frame_of_reference_uid,
        slice: volume.geometry().slice_thickness,
    })
}

/// Find the needle of target `t` in its post-insertion series and measure it; the error is the row's reason.
fn measure(t: &PlannedTarget, planning: &Planning, args: &ScansStudyArgs) -> Result<Measured, String> {
    let dir = &t.series;
    if !dir.is_dir() {
        return Err(format!(
            "its post-insertion series folder {} does not exist (or is not a folder)",
            dir.display()
        ));
    }
    // The identity first, from one header: a series of another frame of reference is refused without reading it.
    let header = acus_dicom::first_header(dir)
        .map_err(|e| format!("its post-insertion series {} cannot be read: {e}", dir.display()))?;
    same_frame(
        planning.frame_of_reference.as_deref(),
        header.frame_of_reference_uid.as_deref(),
    )
    .map_err(|e| format!("its post-insertion series {}: {e}", dir.display()))?;
    let (volume, series) = acus_dicom::read_ct_series(dir).map_err(|e| {
        format!(
            "its post-insertion series {} cannot be read (malformed DICOM): {e}",
            dir.display()
        )
    })?;
    // Every slice, not just the first, must be in the planning frame; the reader checks the slices agree with the first.
    same_frame(
        planning.frame_of_reference.as_deref(),
        series.frame_of_reference_uid.as_deref(),
    )
    .map_err(|e| format!("its post-insertion series {}: {e}", dir.display()))?;
    let (entry, target) = (t.entry, t.target);
    let direction = Unit::try_new(target - entry, 1e-9).ok_or("entry and target coincide")?;
    let mut search = NeedleSearch::new(Point::new(nalgebra::Point3::from(entry)), direction);
    search.needle_radius = args.needle_radius * 1e-3;
    search.tip_offset = search.needle_radius / 3.0;
    search.needle_hu = args.needle_hu;
    search.search_radius = args.search_radius * 1e-3;
    // The whole planned path and a margin past the target: a needle that overshot is still found.
    search.max_depth = search.max_depth.max((target - entry).norm() + 0.03);
    let seen = find_needle(&volume, &search).map_err(|e| {
        format!(
            "no needle found within {} mm of the planned path in {}: {e}",
            args.search_radius,
            dir.display()
        )
    })?;
    let tip = seen.tip.coords.coords;
    let measures = TipMeasures::from_points(&entry, &target, &tip, &seen.direction.into_inner())
        .map_err(|e| format!("the needle found cannot be measured: {e}"))?;
    let picture = picture(&volume, t, &seen.tip, seen.direction, measures.ed_m);
    Ok(Measured {
        measures,
        slice: volume.geometry().slice_thickness,
        picture,
    })
}

/// Scans of one Frame of Reference UID share patient coordinates; others cannot be compared with the plan. A planning
/// series without one gives nothing to compare (accepted, as the procedure does).
fn same_frame(planning: Option<&str>, post: Option<&str>) -> Result<(), String> {
    match planning {
        Some(p) if post != Some(p) => Err(format!(
            "another frame of reference ({}; the planning series' is {p}): its coordinates are not the plan's",
            post.unwrap_or("none")
        )),
        _ => Ok(()),
    }
}

/// The slice along the planned path through the tip found, as the check scan draws it.
fn picture(volume: &CtVolume, t: &PlannedTarget, tip: &Point<Ct>, dir: Unit<Vector3<f64>>, ed: f64) -> String {
    let target = Point::new(nalgebra::Point3::from(t.target));
    let view = acus_pictures::CheckView {
        n: 1,
        entry: Point::new(nalgebra::Point3::from(t.entry)),
        target,
        target_found: target,
        tip_found: *tip,
        shaft_dir: Some(dir),
        to_target_m: ed,
    };
    acus_pictures::check_scan_svg(volume, &view).svg
}

/// The row of target `index` (and its picture when it was measured).
fn row(
    index: usize,
    t: &PlannedTarget,
    planning: &Planning,
    correction: bool,
    measured: Result<Measured, String>,
    wall_s: f64,
) -> Result<(Trial, Option<TargetPicture>)> {
    let path = PlannedPath::from_points(&t.entry, &t.target)
        .with_context(|| format!("target `{}`: its planned path", t.name))?;
    let target_ct = Point::new(nalgebra::Point3::from(t.target));
    let reg = &planning.registration;
    let mut trial = Trial {
        fre_mm: Some(reg.fre_rms() * 1e3),
        predicted_tre_mm: Some(reg.predicted_tre(&target_ct, planning.fle) * 1e3),
        // The phantom's truth is not known from scans: no observed TRE.
        ..Trial::planned(
            index,
            0,
            (planning.slice * 1e3, correction),
            (&t.entry, &t.target),
            &path,
            wall_s,
        )
    };
    let picture = match measured {
        Ok(m) => {
            trial.set_measures(&m.measures);
            trial.slice_mm = m.slice * 1e3;
            trial.check_scans = 1;
            Some(TargetPicture {
                trial: index,
                slice_mm: trial.slice_mm,
                svg: m.picture,
            })
        }
        Err(reason) => {
            trial.outcome = Outcome::Failed;
            trial.reason = format!("target `{}`: {reason}", t.name);
            None
        }
    };
    Ok((trial, picture))
}

/// The report's "world" section: what was measured, from which files, and what the columns mean here.
fn scans_text(plan: &ScanPlan, planning: &Planning, args: &ScansStudyArgs) -> String {
    let mut s = format!(
        "# acus validate scans: the user's phantom, scanned. No world truth: ED, ND, depth and angle errors are the\n\
         # needle found in each post-insertion series against the plan's target, along the needle's axis as found;\n\
         # observed TRE is empty. FRE and predicted TRE come from registering the frame on the planning series\n\
         # {} (Frame of Reference UID {}).\n\
         # slice_mm = the post-insertion series' slice thickness (the planning series' for a row whose series gave\n\
         # none). correction = {}: {}\n\
         # Targets (trial = row):\n",
        args.planning.display(),
        planning.frame_of_reference.as_deref().unwrap_or("none"),
        !args.straight,
        if args.straight {
            "the needles went straight to the planned depth (--straight), the comparison arm of `validate sim`."
        } else {
            "not known from scans; the final position after whatever the user's procedure did, counted in the\n\
             # correction-on arm (give --straight for straight insertions)."
        },
    );
    for (i, t) in plan.targets.iter().enumerate() {
        s.push_str(&format!("#   {i}: `{}`, series {}\n", t.name, t.series.display()));
    }
    s
}

/// The report's "controller" section: the registration and the needle search as run.
fn analysis_text(args: &ScansStudyArgs, model: &FiducialModel, planning: &Planning) -> String {
    let reg = &planning.registration;
    format!(
        "# Frame model: {} ({} spheres, radius {:.2} mm); {} matched on the planning series, {} missing, FRE {:.3} mm RMS;\n\
         # predicted TRE with FLE {:.3} mm (the larger of the FRE-implied FLE and the gate's nominal one).\n\
         # Needle search: along the planned entry→target line, within {} mm of it; needle radius {} mm, {} HU.\n",
        args.urdf.display(),
        model.len(),
        model.radius() * 1e3,
        reg.fits().len(),
        reg.missing().len(),
        reg.fre_rms() * 1e3,
        planning.fle * 1e3,
        args.search_radius,
        args.needle_radius,
        args.needle_hu,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_insertion_series_must_share_the_planning_frame() {
        assert!(same_frame(Some("1.2"), Some("1.2")).is_ok());
        let e = same_frame(Some("1.2"), Some("1.3")).unwrap_err();
        assert!(
            e.contains("another frame of reference (1.3") && e.contains("1.2"),
            "{e}"
        );
        assert!(same_frame(Some("1.2"), None).unwrap_err().contains("(none"));
        assert!(same_frame(None, Some("1.3")).is_ok());
    }
}
