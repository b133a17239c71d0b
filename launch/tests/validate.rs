//! `acus validate sim` end to end: small studies whose trials are whole simulated biopsies, each an `acus sim` process
//! in its own ROS domain (the command leases them with the test harness's lock files, so these tests need no
//! `isolated` wrapper: the test process itself never touches ROS). The study folder is read back the way a user would
//! (trials.csv, summary.json) and checked against the trials' own summary files.

use std::path::Path;
use std::process::{Command, Output};

use acus_validate::{
    read_summary, read_trials, summarize_csv, Outcome, Stats, Summary, VerdictResult, REPORT_HTML, REPORT_MD,
    SUMMARY_JSON, TRIALS_CSV,
};

fn validate(args: &[&str], out: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_acus"))
        .args(["validate", "sim"])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn same_stats(a: &Option<Stats>, b: &Option<Stats>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.n == b.n
                && close(a.mean, b.mean)
                && close(a.median, b.median)
                && close(a.p95, b.p95)
                && close(a.max, b.max)
                && a.sd.is_some() == b.sd.is_some()
                && close(a.sd.unwrap_or(0.0), b.sd.unwrap_or(0.0))
        }
        _ => false,
    }
}

/// summary.json's figures are the CSV's (JSON numbers round-trip to the last bit only mostly: compared to 1e-9).
fn assert_same_summary(json: &Summary, csv: &Summary) {
    assert_eq!(json.counts, csv.counts);
    assert_eq!(json.groups.len(), csv.groups.len());
    for (j, c) in json.groups.iter().zip(&csv.groups) {
        let what = format!("slice {} correction {}", j.slice_mm, j.correction);
        assert!(
            j.slice_mm == c.slice_mm && j.correction == c.correction && j.counts == c.counts,
            "{what}"
        );
        for (a, b) in [
            (&j.ed_mm, &c.ed_mm),
            (&j.nd_mm, &c.nd_mm),
            (&j.depth_error_mm, &c.depth_error_mm),
            (&j.angle_error_deg, &c.angle_error_deg),
            (&j.fre_mm, &c.fre_mm),
            (&j.predicted_tre_mm, &c.predicted_tre_mm),
            (&j.observed_tre_mm, &c.observed_tre_mm),
            (&j.check_scans, &c.check_scans),
            (&j.sim_s, &c.sim_s),
        ] {
            assert!(same_stats(a, b), "{what}: {a:?} vs {b:?}");
        }
    }
    assert_eq!(json.verdicts.len(), csv.verdicts.len());
    for (a, b) in json.verdicts.iter().zip(&csv.verdicts) {
        assert_eq!((a.criterion, a.n, a.result), (b.criterion, b.n, b.result));
        assert!(close(a.figure.unwrap_or(-1.0), b.figure.unwrap_or(-1.0)));
    }
}

fn point(v: &serde_json::Value) -> [f64; 3] {
    let a = v.as_array().expect("a point is an array");
    [0, 1, 2].map(|i| a[i].as_f64().expect("a coordinate"))
}

#[test]
fn a_small_study_writes_its_folder_and_its_figures_recompute_from_the_csv() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let output = validate(
        &["--trials", "4", "--slices", "1,3", "--seed", "3", "--jobs", "2"],
        &out,
    );
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("1 targets × 4 arms = 4 simulated biopsies"), "{stdout}");
    assert!(stdout.contains(&format!("study: {}", out.display())) && stdout.contains("criterion: ED median"));
    for f in [TRIALS_CSV, SUMMARY_JSON, REPORT_MD, REPORT_HTML] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // One target in every arm, with one seed.
    let trials = read_trials(&out.join(TRIALS_CSV)).unwrap();
    let arms: Vec<(f64, bool)> = trials.iter().map(|t| (t.slice_mm, t.correction)).collect();
    assert_eq!(arms, [(1.0, true), (1.0, false), (3.0, true), (3.0, false)]);
    assert!(trials.iter().all(|t| t.trial == 0 && t.seed == trials[0].seed));
    assert!(
        trials.iter().filter(|t| t.outcome == Outcome::Done).count() >= 2,
        "a phantom (still-world) biopsy mostly finishes: {trials:?}"
    );

    let file = read_summary(&out.join(SUMMARY_JSON)).unwrap();
    assert_eq!((file.info.trials_requested, file.info.seed), (4, 3));
    assert_eq!(file.info.slice_mm, [1.0, 3.0]);
    assert!(file.info.world.starts_with("still") && file.info.noise_model.contains("name: still"));
    assert!(file.info.controller.contains("controller:") && !file.info.git_revision.is_empty());
    assert_eq!(
        file.info.criteria.len(),
        2,
        "the default criteria: ED median and p95 at 1 mm"
    );
    assert!(file.info.command_line.contains("validate sim --trials 4"));
    assert_same_summary(
        &file.summary,
        &summarize_csv(&out.join(TRIALS_CSV), &file.info.criteria).unwrap(),
    );

    // Each finished trial's ED is the distance its own summary file gives between the true tip and the true lesion.
    for t in &trials {
        let arm = format!("t000-s{}-{}", t.slice_mm, if t.correction { "on" } else { "off" });
        let trial_dir = out.join("trials").join(&arm);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(trial_dir.join("summary.json")).unwrap()).unwrap();
        assert_eq!(json["seed"].as_u64(), Some(t.seed), "{arm}");
        assert_eq!(json["correction"].as_bool(), Some(t.correction), "{arm}");
        assert!(
            close(json["check_slice_m"].as_f64().unwrap(), t.slice_mm * 1e-3),
            "{arm}"
        );
        assert_eq!(json["outcome"].as_str(), Some(t.outcome.as_str()), "{arm}");
        assert!(
            !trial_dir.join("scans").exists(),
            "{arm}: scans are deleted unless --keep-scans"
        );
        if t.outcome != Outcome::Done {
            assert!(!t.reason.is_empty());
            continue;
        }
        let check = &json["final_check"];
        let (tip, lesion) = (point(&check["true_tip_m"]), point(&check["true_lesion_m"]));
        let ed = (0..3).map(|i| (tip[i] - lesion[i]).powi(2)).sum::<f64>().sqrt() * 1e3;
        let row = t.ed_mm.unwrap();
        assert!(
            close(row, ed),
            "{arm}: ED {row} mm in the CSV, {ed} mm from the trial's truth"
        );
        assert!(
            close(t.target_x_mm, lesion[0] * 1e3) && close(t.target_z_mm, lesion[2] * 1e3),
            "{arm}"
        );
        assert!(t.check_scans >= 1 && t.sim_s > 10.0 && t.wall_s > 0.0, "{t:?}");
    }

    // The report: self-contained HTML with plots; the corrected 1 mm trial's CT picture if it finished.
    let html = std::fs::read_to_string(out.join(REPORT_HTML)).unwrap();
    assert!(!html.to_ascii_lowercase().contains("<script"));
    let pictured = trials[0].outcome == Outcome::Done;
    assert_eq!(html.contains("Trial 0, slice 1 mm: final check scan."), pictured);
    let md = std::fs::read_to_string(out.join(REPORT_MD)).unwrap();
    assert!(md.contains("Target = the lesion centre") && md.contains("### Slice thickness 3 mm"));
}

#[test]
fn a_trial_that_overruns_is_killed_and_the_study_still_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    // 0.2 s: a whole biopsy takes seconds (120 s of procedure on the simulated clock), so both trials overrun.
    let output = validate(
        &["--trials", "2", "--slices", "1", "--timeout", "0.2", "--jobs", "2"],
        &out,
    );
    assert!(output.status.success(), "{output:?}");
    let trials = read_trials(&out.join(TRIALS_CSV)).unwrap();
    assert_eq!(trials.len(), 2);
    for t in &trials {
        assert_eq!(t.outcome, Outcome::Failed);
        assert!(
            t.reason.contains("timed out after 0.2 s and was killed"),
            "{}",
            t.reason
        );
        assert!(t.ed_mm.is_none() && t.depth_mm > 40.0);
    }
    let file = read_summary(&out.join(SUMMARY_JSON)).unwrap();
    assert_eq!(file.summary.counts.failed, 2);
    assert!(file.summary.verdicts.iter().all(|v| v.result == VerdictResult::NoData));
    let md = std::fs::read_to_string(out.join(REPORT_MD)).unwrap();
    assert!(md.contains("timed out after 0.2 s"), "{md}");
}

#[test]
fn bad_options_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (&["--slices", "0"][..], "--slices"),
        (&["--slices", "12"][..], "(0, 10] mm"),
        (&["--criterion", "ed:p99:1:1"][..], "statistic"),
        (&["--jobs", "0"][..], "--jobs 0"),
        (&["--timeout", "0"][..], "--timeout 0 s"),
    ] {
        let out = dir.path().join("never");
        let output = validate(args, &out);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(says), "{args:?}: {stderr}");
        assert!(!out.join(TRIALS_CSV).exists());
    }
}

/// pydicom, an independent reader, reads every series a study writes (kept with `--keep-scans`): each slice decodes,
/// and a trial's scans share one study and one frame of reference, as a scanner keeps them for one patient.
#[test]
fn pydicom_reads_every_series_a_study_writes() {
    const SCRIPT: &str = r#"
import sys, os, glob, pydicom
trials = sorted(glob.glob(os.path.join(sys.argv[1], "trials", "*")))
series = 0
for trial in trials:
    studies, frames = set(), set()
    for d in sorted(glob.glob(os.path.join(trial, "scans", "*"))):
        files = sorted(glob.glob(os.path.join(d, "*.dcm")))
        if not files:
            continue
        uids = set()
        for f in files:
            ds = pydicom.dcmread(f)
            assert ds.Modality == "CT", f
            assert ds.pixel_array.shape == (ds.Rows, ds.Columns), f
            uids.add(ds.SeriesInstanceUID)
            studies.add(ds.StudyInstanceUID)
            frames.add(ds.FrameOfReferenceUID)
        assert len(uids) == 1, d
        series += 1
    assert len(studies) == 1 and len(frames) == 1, (trial, studies, frames)
print(len(trials), series)
"#;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let output = validate(
        &[
            "--trials",
            "2",
            "--slices",
            "1",
            "--seed",
            "5",
            "--jobs",
            "2",
            "--keep-scans",
        ],
        &out,
    );
    assert!(output.status.success(), "{output:?}");
    let venv = std::env::var("ACUS_VENV")
        .ok()
        .or_else(|| option_env!("ACUS_VENV").map(str::to_string))
        .expect("ACUS_VENV must point at the project venv (launch/setup.sh) holding pydicom");
    let read = Command::new(format!("{venv}/bin/python"))
        .args(["-c", SCRIPT])
        .arg(&out)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success(),
        "pydicom: {said}{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let counts: Vec<usize> = said.split_whitespace().map(|n| n.parse().unwrap()).collect();
    // Two trials (one target, with and without correction), each a planning scan and at least one check scan.
    assert_eq!(counts[0], 2, "{said}");
    assert!(counts[1] >= 4, "{said}");
}
