//! One simulated biopsy's machine-readable result (`acus sim --summary-json FILE`), and the study row made from it.
//!
//! The file is the only thing a trial process hands back to `acus validate sim`, so it carries what a row needs: how it
//! ended, the plan, and the twin's truth at the last check scan (true tip, true needle direction at the tip, true
//! lesion centre). SI (m, rad, s) and CT LPS like the rest of acus; the row converts to the report's mm and degrees.

use std::path::{Path, PathBuf};

use acus_validate::{Outcome, PlannedPath, TipMeasures, Trial};
use anyhow::{Context, Result};
use nalgebra::Vector3;
use serde::{Deserialize, Serialize};

/// Format version of [`TrialFile`]; bumped when a field changes meaning.
pub const TRIAL_FILE_VERSION: u32 = 1;

/// `acus sim --summary-json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialFile {
    /// [`TRIAL_FILE_VERSION`].
    pub version: u32,
    /// Done, stopped (the procedure refused and held: `reason` is its answer) or failed (an error: `reason`).
    pub outcome: Outcome,
    /// Empty when done; otherwise the operator-facing sentence.
    pub reason: String,
    /// The world's name.
    pub world: String,
    /// The run's seed.
    pub seed: u64,
    /// Check-scan correction on.
    pub correction: bool,
    /// Check scans' slice thickness and spacing, m.
    pub check_slice_m: f64,
    /// The operator's skin entry, CT, m.
    pub planned_entry_m: [f64; 3],
    /// The operator's target (the lesion centre as read off the planning scan), CT, m.
    pub planned_target_m: [f64; 3],
    /// |planned target − planned entry|, m (the controller's planned depth: a rigid registration keeps distances).
    pub planned_depth_m: f64,
    /// The world's lesion centre before the needle went in (truth), CT, m.
    pub lesion_at_rest_m: [f64; 3],
    /// The twin's truth at the last check scan; none if no check scan was taken.
    pub final_check: Option<FinalCheck>,
    /// FRE of the registration, m RMS.
    pub fre_m: Option<f64>,
    /// TRE the registration predicted at the target, m.
    pub predicted_tre_m: Option<f64>,
    /// The registration's error at the target against the twin's truth, m.
    pub observed_tre_m: Option<f64>,
    /// Check scans taken.
    pub check_scans: usize,
    /// Simulated procedure time, s.
    pub sim_s: f64,
    /// Wall time of the whole run (start-up included), s.
    pub wall_s: f64,
    /// Of which: starting the system (nodes, drives, DDS discovery) until the operator's first request, s.
    pub startup_s: Option<f64>,
    /// Of which: the procedure, the operator's first request to the last answer, s.
    pub procedure_wall_s: Option<f64>,
}

/// The twin's truth at the last check scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinalCheck {
    /// True needle tip, CT, m.
    pub true_tip_m: [f64; 3],
    /// True needle direction at the tip (unit, hub → tip), CT.
    pub true_axis: [f64; 3],
    /// True lesion centre then (pushed by the needle, moved by breathing), CT, m.
    pub true_lesion_m: [f64; 3],
    /// Tip to target as the check scan measured it, m.
    pub measured_tip_to_target_m: Option<f64>,
    /// The check scan's picture (SVG), if one was written.
    pub picture: Option<PathBuf>,
}

/// What a run is before it starts, from its configuration (overrides and seed applied).
#[derive(Clone, Debug, PartialEq)]
pub struct TrialPlan {
    world: String,
    seed: u64,
    correction: bool,
    check_slice_m: f64,
    entry: [f64; 3],
    target: [f64; 3],
    lesion: [f64; 3],
}

impl TrialPlan {
    /// The plan of a run of `config`.
    pub fn of(config: &crate::config::SimConfig) -> Self {
        let a = |p: &acus_control::frames::Point<acus_control::frames::Ct>| [p.coords.x, p.coords.y, p.coords.z];
        Self {
            world: config.world.name.clone(),
            seed: config.file.seed,
            correction: config.controller.file.correct_on_check_scans,
            check_slice_m: config.file.check_scan.slice,
            entry: a(&config.controller.entry),
            target: a(&config.controller.target),
            lesion: a(&config.patient.lesion),
        }
    }
}

impl TrialFile {
    /// A run that ended: the figures of its summary and the truth of its last check scan.
    pub fn finished(plan: &TrialPlan, summary: &crate::run::Summary, wall_s: f64) -> Self {
        let last = &summary.last_check;
        let a = |v: &Vector3<f64>| [v.x, v.y, v.z];
        let final_check = match (last.true_tip, last.true_heading) {
            (Some(tip), Some(axis)) => Some(FinalCheck {
                true_tip_m: a(&tip.coords.coords),
                true_axis: a(&axis),
                true_lesion_m: a(&last.true_lesion.coords.coords),
                measured_tip_to_target_m: summary.measured_final_error,
                picture: summary
                    .log
                    .check_scans
                    .last()
                    .and_then(|c| c.get(acus_nodes::wire::PICTURE_KEY))
                    .map(PathBuf::from),
            }),
            _ => None,
        };
        Self {
            outcome: if final_check.is_some() {
                Outcome::Done
            } else {
                Outcome::Failed
            },
            reason: if final_check.is_some() {
                String::new()
            } else {
                "the last check scan has no needle in the twin's truth".into()
            },
            final_check,
            fre_m: summary.fre,
            predicted_tre_m: summary.predicted_tre,
            observed_tre_m: summary.observed_tre,
            check_scans: summary.check_scans,
            sim_s: summary.sim_seconds,
            startup_s: Some(summary.startup_seconds),
            procedure_wall_s: Some(summary.wall_seconds),
            ..Self::unfinished(plan, Outcome::Done, "", wall_s)
        }
    }

    /// The file of a run: its summary, or its error. An error that carries the last refusal's sentence (the operator
    /// stops at the first refusal that matters) is a stop with that sentence; any other error is a failure.
    pub fn from_run(
        plan: &TrialPlan,
        ran: Result<&crate::run::Summary, &anyhow::Error>,
        last_refusal: Option<(String, String)>,
        wall_s: f64,
    ) -> Self {
        match ran {
            Ok(summary) => Self::finished(plan, summary, wall_s),
            Err(e) => {
                let text = format!("{e:#}");
                match last_refusal {
                    Some((service, message)) if !message.is_empty() && text.contains(&message) => {
                        Self::unfinished(plan, Outcome::Stopped, &format!("{service}: {message}"), wall_s)
                    }
                    _ => Self::unfinished(plan, Outcome::Failed, &text, wall_s),
                }
            }
        }
    }

    /// A run that did not end: stopped by a refusal or failed, with the sentence why (on one line).
    pub fn unfinished(plan: &TrialPlan, outcome: Outcome, reason: &str, wall_s: f64) -> Self {
        let depth = (Vector3::from(plan.target) - Vector3::from(plan.entry)).norm();
        Self {
            version: TRIAL_FILE_VERSION,
            outcome,
            reason: reason.split_whitespace().collect::<Vec<_>>().join(" "),
            world: plan.world.clone(),
            seed: plan.seed,
            correction: plan.correction,
            check_slice_m: plan.check_slice_m,
            planned_entry_m: plan.entry,
            planned_target_m: plan.target,
            planned_depth_m: depth,
            lesion_at_rest_m: plan.lesion,
            final_check: None,
            fre_m: None,
            predicted_tre_m: None,
            observed_tre_m: None,
            check_scans: 0,
            sim_s: 0.0,
            wall_s,
            startup_s: None,
            procedure_wall_s: None,
        }
    }

    /// Write the file whole (temp file and rename), so a reader never sees half of it.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(self).context("serialising the trial summary")?;
        json.push(b'\n');
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        acus_validate::write_atomic(path, &json).with_context(|| format!("writing {}", path.display()))
    }

    /// Read one.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file: Self = serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        if file.version != TRIAL_FILE_VERSION {
            anyhow::bail!(
                "{}: version {}, this acus reads version {TRIAL_FILE_VERSION}",
                path.display(),
                file.version
            );
        }
        Ok(file)
    }

    /// The study row: target `trial` of the design, seen in the arm `slice_mm`/`correction`, that took `wall_s` (the
    /// runner's own measure, process start-up included).
    ///
    /// The target the tip is measured against is the lesion centre, the twin's truth at the last check scan (the
    /// needle pushes it and breathing moves it; the biopsy must hit it where it is), so ED, ND, depth error and the
    /// error vector say how far the tip is from the lesion; the row's target columns hold that point, and its depth and
    /// entry angle are those of the path from the planned entry to it. The angle error is against the line the
    /// controller planned (planned entry → planned target). A trial that did not finish keeps the lesion at rest.
    pub fn to_trial(&self, trial: usize, slice_mm: f64, wall_s: f64) -> Result<Trial> {
        let v = |a: &[f64; 3]| Vector3::new(a[0], a[1], a[2]);
        let entry = v(&self.planned_entry_m);
        let done = self.outcome == Outcome::Done;
        let check = self.final_check.as_ref().filter(|_| done);
        let target = check.map_or_else(|| v(&self.lesion_at_rest_m), |c| v(&c.true_lesion_m));
        let path = PlannedPath::from_points(&entry, &target).context("the trial's planned path")?;
        let mm = |m: Option<f64>| m.map(|m| m * 1e3);
        let mut row = Trial {
            outcome: self.outcome,
            reason: self.reason.clone(),
            fre_mm: mm(self.fre_m),
            predicted_tre_mm: mm(self.predicted_tre_m),
            observed_tre_mm: mm(self.observed_tre_m),
            check_scans: self.check_scans,
            sim_s: self.sim_s,
            ..Trial::planned(
                trial,
                self.seed,
                (slice_mm, self.correction),
                (&entry, &target),
                &path,
                wall_s,
            )
        };
        if done {
            let c = self
                .final_check
                .as_ref()
                .context("a finished trial without the truth of its last check scan")?;
            let (tip, axis) = (v(&c.true_tip_m), v(&c.true_axis));
            let m = TipMeasures::from_points(&entry, &target, &tip, &axis).context("measuring the tip")?;
            let planned = TipMeasures::from_points(&entry, &v(&self.planned_target_m), &tip, &axis)
                .context("measuring the angle to the planned line")?;
            row.set_measures(&m);
            row.angle_error_deg = Some(planned.angle_error_rad.to_degrees());
        }
        row.validate().context("the trial row")?;
        Ok(row)
    }
}

/// A row for a trial that left no usable file (a crash, a time-out): failed, with `reason`, at the design's lesion and
/// entry (m, CT).
pub fn failed_row(
    trial: usize,
    seed: u64,
    (slice_mm, correction): (f64, bool),
    (entry, lesion): (Vector3<f64>, Vector3<f64>),
    reason: &str,
    wall_s: f64,
) -> Result<Trial> {
    let path = PlannedPath::from_points(&entry, &lesion).context("the trial's planned path")?;
    let reason = if reason.trim().is_empty() {
        "the trial process ended without a word".to_owned()
    } else {
        reason.trim().to_owned()
    };
    let row = Trial {
        outcome: Outcome::Failed,
        reason,
        ..Trial::planned(trial, seed, (slice_mm, correction), (&entry, &lesion), &path, wall_s)
    };
    row.validate().context("the trial row")?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done_file() -> TrialFile {
        TrialFile {
            version: TRIAL_FILE_VERSION,
            outcome: Outcome::Done,
            reason: String::new(),
            world: "realistic".into(),
            seed: 9,
            correction: true,
            check_slice_m: 0.001,
            planned_entry_m: [0.0, -0.1, 0.0],
            planned_target_m: [0.0, -0.02, 0.0],
            planned_depth_m: 0.08,
            lesion_at_rest_m: [0.0, -0.0205, 0.0],
            final_check: Some(FinalCheck {
                // 0.3 mm beside and 0.4 mm beyond the lesion, the needle along the plan: ED 0.5, ND 0.3, depth +0.4.
                true_tip_m: [0.0003, -0.0196, 0.0],
                true_axis: [0.0, 1.0, 0.0],
                true_lesion_m: [0.0, -0.02, 0.0],
                measured_tip_to_target_m: Some(0.00045),
                picture: None,
            }),
            fre_m: Some(0.00016),
            predicted_tre_m: Some(0.00026),
            observed_tre_m: Some(0.00037),
            check_scans: 4,
            sim_s: 120.0,
            wall_s: 2.9,
            startup_s: Some(0.3),
            procedure_wall_s: Some(2.4),
        }
    }

    #[test]
    fn a_finished_trial_measures_the_tip_against_the_true_lesion() {
        let row = done_file().to_trial(3, 1.0, 3.5).unwrap();
        let close = |a: Option<f64>, b: f64| (a.unwrap_or(f64::NAN) - b).abs() < 1e-9;
        assert!(
            close(row.ed_mm, 0.5) && close(row.nd_mm, 0.3) && close(row.depth_error_mm, 0.4),
            "{row:?}"
        );
        assert!(close(row.angle_error_deg, 0.0) && close(row.fre_mm, 0.16));
        assert!((row.depth_mm - 80.0).abs() < 1e-9 && row.entry_angle_deg.abs() < 1e-9);
        assert_eq!((row.trial, row.seed, row.check_scans, row.wall_s), (3, 9, 4, 3.5));
    }

    #[test]
    fn the_angle_error_is_against_the_planned_line() {
        let mut f = done_file();
        // The operator picked 1 mm aside at 80 mm: the straight needle is 0.716° off the planned line.
        f.planned_target_m = [0.001, -0.02, 0.0];
        let row = f.to_trial(0, 1.0, 1.0).unwrap();
        let expected = (0.001f64).atan2(0.08).to_degrees();
        assert!((row.angle_error_deg.unwrap() - expected).abs() < 1e-9);
    }

    #[test]
    fn a_stop_keeps_its_reason_and_no_tip_figures() {
        let mut f = done_file();
        f.outcome = Outcome::Stopped;
        f.reason = "/insert_step: refused: the lesion was not found".into();
        let row = f.to_trial(1, 3.0, 2.0).unwrap();
        assert_eq!(row.outcome, Outcome::Stopped);
        assert!(row.ed_mm.is_none() && row.angle_error_deg.is_none());
        assert!((row.target_y_mm + 20.5).abs() < 1e-9, "the lesion at rest: {row:?}");

        let mut f = done_file();
        f.final_check = None;
        assert!(f.to_trial(1, 1.0, 1.0).is_err(), "done without truth is no row");
    }

    #[test]
    fn the_file_round_trips_and_refuses_another_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t/summary.json");
        done_file().write(&path).unwrap();
        assert_eq!(TrialFile::read(&path).unwrap(), done_file());
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"version\": 1", "\"version\": 99");
        std::fs::write(&path, text).unwrap();
        assert!(TrialFile::read(&path).unwrap_err().to_string().contains("version 99"));
    }

    #[test]
    fn a_crash_is_a_failed_row_with_the_reason() {
        let row = failed_row(
            2,
            5,
            (5.0, false),
            (Vector3::new(0.0, -0.1, 0.0), Vector3::new(0.0, -0.03, 0.0)),
            "  ",
            120.0,
        )
        .unwrap();
        assert_eq!(row.outcome, Outcome::Failed);
        assert!(!row.reason.is_empty() && (row.depth_mm - 70.0).abs() < 1e-9);
    }
}
