//! End to end: a seeded synthetic study is written, read back, recomputed, and its reports checked against the figures.

use std::collections::HashMap;
use std::path::Path;

use acus_validate::*;
use nalgebra::{Rotation3, Unit, Vector3};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use rand_xorshift::XorShiftRng;

const SLICES: [f64; 3] = [1.0, 3.0, 5.0];

fn criteria() -> Vec<SuccessCriterion> {
    let ed = |statistic, limit| SuccessCriterion {
        metric: Metric::Ed,
        statistic,
        slice_mm: 1.0,
        correction: true,
        limit,
    };
    vec![
        ed(Statistic::P95, 1.0),
        ed(Statistic::Median, 0.5),
        SuccessCriterion {
            metric: Metric::AngleError,
            statistic: Statistic::Max,
            slice_mm: 5.0,
            correction: false,
            limit: 0.1,
        },
    ]
}

fn info(trials_requested: usize) -> StudyInfo {
    StudyInfo {
        command_line: "acus validate --trials 20 --slices 1,3,5 --seed 7 --out study/".into(),
        seed: 7,
        trials_requested,
        slice_mm: SLICES.to_vec(),
        world: "gel phantom <A> & frame #2".into(),
        noise_model: "frame sphere positions σ 0.05 mm\nneedle deflection 0.3 mm per 100 mm\n```fenced```".into(),
        controller: "registration gate FRE ≤ 1.0 mm; correction when ND > 0.5 mm".into(),
        git_revision: "fa34a19-dirty".into(),
        started: "2025-01-01T10:00:00Z".into(),
        wall_s: 321.5,
        criteria: criteria(),
    }
}

/// 20 targets × 3 slice thicknesses × correction on/off; errors grow with slice thickness and without correction;
/// every 13th trial stops, every 29th fails; some finished trials lack observed TRE or FRE (empty cells).
fn synthetic(seed: u64) -> Vec<Trial> {
    let mut rng = XorShiftRng::seed_from_u64(seed);
    let unit = Normal::new(0.0, 1.0).unwrap();
    let mut trials = Vec::new();
    let mut k = 0usize;
    for &slice_mm in &SLICES {
        for correction in [true, false] {
            for target_i in 0..20 {
                k += 1;
                let entry = Vector3::new(rng.random_range(-0.05..0.05), -0.1, rng.random_range(-0.05..0.05));
                let target = entry + Vector3::new(rng.random_range(-0.03..0.03), rng.random_range(0.04..0.12), 0.0);
                let sigma_mm = 0.15 * slice_mm.sqrt() * if correction { 1.0 } else { 3.0 };
                let error =
                    Vector3::new(unit.sample(&mut rng), unit.sample(&mut rng), unit.sample(&mut rng)) * sigma_mm * 1e-3
                        + Vector3::new(0.1e-3, 0.0, -0.05e-3);
                let planned = target - entry;
                let tilt = Unit::new_normalize(planned.cross(&Vector3::x()));
                let axis = Rotation3::from_axis_angle(&tilt, unit.sample(&mut rng) * 0.01) * planned;
                let m = TipMeasures::from_points(&entry, &target, &(target + error), &axis).unwrap();
                let path = PlannedPath::from_points(&entry, &target).unwrap();
                // Drawn in the fields' order, as the fixture always drew them.
                let fre = 0.2 + 0.1 * rng.random::<f64>();
                let predicted = 0.3 + 0.1 * rng.random::<f64>();
                let observed = (0.3 + 0.15 * unit.sample(&mut rng)).abs();
                let check_scans = if correction { 1 + rng.random_range(0..3) } else { 1 };
                let sim_s = 60.0 + 100.0 * rng.random::<f64>();
                let wall_s = 1.0 + rng.random::<f64>();
                let trial_seed = seed * 1000 + k as u64;
                let mut t = Trial {
                    fre_mm: Some(fre),
                    predicted_tre_mm: Some(predicted),
                    observed_tre_mm: Some(observed),
                    check_scans,
                    sim_s,
                    ..Trial::planned(
                        target_i,
                        trial_seed,
                        (slice_mm, correction),
                        (&entry, &target),
                        &path,
                        wall_s,
                    )
                };
                t.set_measures(&m);
                if k.is_multiple_of(13) {
                    t = Trial {
                        outcome: Outcome::Stopped,
                        reason: format!("depth limit: target {} | 200 mm <b>", k),
                        ..cleared(t)
                    };
                } else if k.is_multiple_of(29) {
                    t = Trial {
                        outcome: Outcome::Failed,
                        reason: "check scan: needle not found in the volume".into(),
                        ..cleared(t)
                    };
                } else if k.is_multiple_of(7) {
                    t.observed_tre_mm = None;
                    t.fre_mm = None;
                }
                trials.push(t);
            }
        }
    }
    trials
}

fn cleared(t: Trial) -> Trial {
    Trial {
        observed_tre_mm: None,
        ..t.without_measures()
    }
}

fn picture(trial: usize) -> TargetPicture {
    TargetPicture {
        trial,
        slice_mm: 1.0,
        svg: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\">\
              <text id=\"title\">check scan</text><image id=\"slice\" href=\"data:image/png;base64,AAAA\"/></svg>\n"
            .into(),
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// The cells of report.md's metric tables: (slice heading, metric, correction) → cells after the label columns.
fn md_metric_rows(md: &str) -> HashMap<(String, String, String), Vec<String>> {
    let mut out = HashMap::new();
    let mut slice = String::new();
    for line in md.lines() {
        if let Some(s) = line.strip_prefix("### Slice thickness ") {
            slice = s.trim_end_matches(" mm").to_string();
        } else if line.starts_with("## ") {
            slice.clear();
        } else if !slice.is_empty() && line.starts_with("| ") && !line.starts_with("| metric") {
            let cells: Vec<String> = line
                .trim_start_matches("| ")
                .trim_end_matches(" |")
                .split(" | ")
                .map(str::to_string)
                .collect();
            if cells.len() == 7 {
                out.insert((slice.clone(), cells[0].clone(), cells[1].clone()), cells[2..].to_vec());
            }
        }
    }
    out
}

fn check_stats_cells(cells: &[String], s: &Stats, what: &str) {
    // Printed to 2 decimals: half a unit in the last place, plus rounding slack.
    let tol = 0.005 + 1e-9;
    let num = |c: &str| -> f64 {
        c.parse()
            .unwrap_or_else(|_| panic!("{what}: cell {c:?} is not a number"))
    };
    assert_eq!(cells[0].parse::<usize>().unwrap(), s.n, "{what}: n");
    let (mean, sd) = cells[1]
        .split_once(" ± ")
        .unwrap_or_else(|| panic!("{what}: {:?}", cells[1]));
    assert!(close(num(mean), s.mean, tol), "{what}: mean {mean} vs {}", s.mean);
    match s.sd {
        Some(v) => assert!(close(num(sd), v, tol), "{what}: sd {sd} vs {v}"),
        None => assert_eq!(sd, "—", "{what}"),
    }
    assert!(close(num(&cells[2]), s.median, tol), "{what}: median");
    assert!(close(num(&cells[3]), s.p95, tol), "{what}: p95");
    assert!(close(num(&cells[4]), s.max, tol), "{what}: max");
}

fn assert_stats_close(a: &Option<Stats>, b: &Option<Stats>, what: &str) {
    match (a, b) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            let tol = 1e-9;
            assert_eq!(a.n, b.n, "{what}");
            assert!(close(a.mean, b.mean, tol) && close(a.median, b.median, tol), "{what}");
            assert!(close(a.p95, b.p95, tol) && close(a.max, b.max, tol), "{what}");
            assert_eq!(a.sd.is_some(), b.sd.is_some(), "{what}");
            assert!(close(a.sd.unwrap_or(0.0), b.sd.unwrap_or(0.0), tol), "{what}");
        }
        _ => panic!("{what}: {a:?} vs {b:?}"),
    }
}

#[test]
fn written_study_reads_back_and_its_reports_show_the_recomputed_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let trials = synthetic(7);
    assert!(
        trials.iter().any(|t| t.outcome == Outcome::Stopped) && trials.iter().any(|t| t.outcome == Outcome::Failed)
    );
    let pictures = vec![picture(0), picture(1)];
    let written = write_study(&out, &info(20), &trials, &pictures).unwrap();

    let back = read_trials(&out.join(TRIALS_CSV)).unwrap();
    assert_eq!(back.len(), trials.len());
    for (a, b) in back.iter().zip(&trials) {
        assert_eq!(
            (a.trial, a.seed, a.outcome, &a.reason, a.correction),
            (b.trial, b.seed, b.outcome, &b.reason, b.correction)
        );
        assert_eq!(a.observed_tre_mm.is_some(), b.observed_tre_mm.is_some());
        assert!(close(a.ed_mm.unwrap_or(-1.0), b.ed_mm.unwrap_or(-1.0), 1e-12));
    }

    let recomputed = summarize_csv(&out.join(TRIALS_CSV), &info(20).criteria).unwrap();
    let file = read_summary(&out.join(SUMMARY_JSON)).unwrap();
    assert_eq!(file.version, SUMMARY_VERSION);
    assert_eq!(file.info, info(20));
    let json = &file.summary;
    assert_eq!(json.counts, recomputed.counts);
    assert_eq!(json.counts, written.counts);
    assert_eq!(json.groups.len(), 6);
    for (j, r) in json.groups.iter().zip(&recomputed.groups) {
        let what = format!("slice {} correction {}", j.slice_mm, j.correction);
        assert!(
            close(j.slice_mm, r.slice_mm, 1e-12) && j.correction == r.correction,
            "{what}"
        );
        assert_eq!(j.counts, r.counts, "{what}");
        assert_stats_close(&j.ed_mm, &r.ed_mm, &what);
        assert_stats_close(&j.nd_mm, &r.nd_mm, &what);
        assert_stats_close(&j.depth_error_mm, &r.depth_error_mm, &what);
        assert_stats_close(&j.angle_error_deg, &r.angle_error_deg, &what);
        assert_stats_close(&j.predicted_tre_mm, &r.predicted_tre_mm, &what);
        assert_stats_close(&j.observed_tre_mm, &r.observed_tre_mm, &what);
        let (jb, rb) = (j.bias_precision.unwrap(), r.bias_precision.unwrap());
        assert!((0..3).all(|k| close(jb.bias_mm[k], rb.bias_mm[k], 1e-9)), "{what}");
        assert!(
            close(jb.precision_radial_mm.unwrap(), rb.precision_radial_mm.unwrap(), 1e-9),
            "{what}"
        );
    }
    assert_eq!(json.verdicts.len(), 3);
    for (j, r) in json.verdicts.iter().zip(&recomputed.verdicts) {
        assert_eq!((j.result, j.n), (r.result, r.n));
    }
    // Errors are larger without correction, in this world (a sanity check on the generator, not the crate).
    assert!(json.groups[0].ed_mm.unwrap().mean < json.groups[1].ed_mm.unwrap().mean);

    let md = std::fs::read_to_string(out.join(REPORT_MD)).unwrap();
    let rows = md_metric_rows(&md);
    let mut checked = 0;
    for g in &json.groups {
        let arm = if g.correction { "on" } else { "off" };
        for (label, st) in [
            ("ED (mm)", g.ed_mm),
            ("ND (mm)", g.nd_mm),
            ("depth error (mm)", g.depth_error_mm),
            ("angle error (°)", g.angle_error_deg),
            ("predicted TRE (mm)", g.predicted_tre_mm),
            ("observed TRE (mm)", g.observed_tre_mm),
        ] {
            let key = (format!("{}", g.slice_mm), label.to_string(), arm.to_string());
            let cells = rows.get(&key).unwrap_or_else(|| panic!("report.md has no row {key:?}"));
            check_stats_cells(cells, &st.unwrap(), &format!("{key:?}"));
            checked += 1;
        }
    }
    assert_eq!(checked, 36);
    for v in &json.verdicts {
        let row = md
            .lines()
            .find(|l| l.contains(&format!("| {} |", v.criterion.describe())))
            .expect("criterion row");
        assert!(row.contains(v.result.label()), "{row}");
        assert!(row.contains(&format!("{:.2}", v.figure.unwrap())), "{row}");
    }
    for t in trials.iter().filter(|t| t.outcome != Outcome::Done) {
        assert!(
            md.contains(&format!("trial {} (seed {},", t.trial, t.seed)),
            "unfinished trial {} not listed",
            t.seed
        );
    }
    assert!(md.contains("fa34a19-dirty") && md.contains("needle deflection 0.3 mm per 100 mm"));
    assert!(md.contains("\\<b\\>"), "reasons are escaped in markdown");

    let html = std::fs::read_to_string(out.join(REPORT_HTML)).unwrap();
    assert_self_contained(&html);
    assert_eq!(
        html.matches("<svg").count(),
        5 + pictures.len(),
        "one <svg> per plot and per picture"
    );
    assert!(!html.contains("<?xml"), "pictures' XML prologs are stripped");
    assert!(html.contains("gel phantom &lt;A&gt; &amp; frame #2") && html.contains("&lt;b&gt;"));
    assert!(html.contains("id=\"p0-title\"") && html.contains("id=\"p1-title\""));
    for v in &json.verdicts {
        assert!(html.contains(&format!("<td>{}</td>", v.result.label())));
    }
    // No temp files left behind.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "no script");
    assert!(
        !lower.contains("<link") && !lower.contains("src="),
        "no external resources"
    );
    for scheme in ["http://", "https://"] {
        for (at, _) in lower.match_indices(scheme) {
            let before = &lower[..at];
            assert!(
                before.ends_with("xmlns=\"") || before.ends_with("xmlns:xlink=\""),
                "external reference at {at}: {}",
                &html[at.saturating_sub(40)..at + 40]
            );
        }
    }
}

#[test]
fn a_study_where_nothing_finished_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let trials: Vec<Trial> = synthetic(3)
        .into_iter()
        .take(4)
        .map(|t| Trial {
            outcome: Outcome::Stopped,
            reason: "registration gate: FRE 1.4 mm > 1.0 mm".into(),
            ..cleared(t)
        })
        .collect();
    let s = write_study(dir.path(), &info(4), &trials, &[]).unwrap();
    assert_eq!(
        s.counts,
        Counts {
            done: 0,
            stopped: 4,
            failed: 0
        }
    );
    assert!(s.verdicts.iter().all(|v| v.result == VerdictResult::NoData));
    let md = std::fs::read_to_string(dir.path().join(REPORT_MD)).unwrap();
    assert!(md.contains("No trial finished: there are no accuracy figures."), "{md}");
    assert!(md.contains("NO DATA") && md.contains("registration gate"));
    let html = std::fs::read_to_string(dir.path().join(REPORT_HTML)).unwrap();
    assert!(!html.contains("<svg") && html.contains("No plots: no trial finished."));
    assert_self_contained(&html);

    // No trials at all.
    let empty = dir.path().join("empty");
    let s = write_study(&empty, &info(0), &[], &[]).unwrap();
    assert!(s.groups.is_empty());
    assert!(std::fs::read_to_string(empty.join(REPORT_MD))
        .unwrap()
        .contains("No trial finished"));
    assert!(read_trials(&empty.join(TRIALS_CSV)).unwrap().is_empty());
}

#[test]
fn a_non_finite_metric_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let mut trials = synthetic(5);
    let i = trials.iter().position(|t| t.outcome == Outcome::Done).unwrap();
    trials[i].angle_error_deg = Some(f64::NAN);
    let e = write_study(&out, &info(20), &trials, &[]).unwrap_err();
    assert!(e.to_string().contains("`angle_error_deg`"), "{e}");
    assert!(!out.exists());
}

#[test]
fn a_bad_cell_in_trials_csv_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let trials = synthetic(9);
    write_study(dir.path(), &info(20), &trials, &[]).unwrap();
    let path = dir.path().join(TRIALS_CSV);
    let text = std::fs::read_to_string(&path).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "nd_mm").unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Line 3 of the file = the second trial, a finished one.
    assert_eq!(trials[1].outcome, Outcome::Done);
    let mut cells: Vec<String> = lines[2].split(',').map(str::to_string).collect();
    cells[col] = "inf".into();
    lines[2] = cells.join(",");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let e = read_trials(&path).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Row { line: 3, .. }), "{msg}");
    assert!(msg.contains("trials.csv") && msg.contains("`nd_mm`"), "{msg}");
    assert!(matches!(
        read_trials(Path::new("/nonexistent/trials.csv")),
        Err(Error::Csv { .. })
    ));
}

#[test]
fn the_same_seed_writes_the_same_folder() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_study(a.path(), &info(20), &synthetic(11), &[picture(3)]).unwrap();
    write_study(b.path(), &info(20), &synthetic(11), &[picture(3)]).unwrap();
    for f in [TRIALS_CSV, SUMMARY_JSON, REPORT_MD, REPORT_HTML] {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f}"
        );
    }
}
