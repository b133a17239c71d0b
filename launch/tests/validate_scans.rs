//! `acus validate scans` on a phantom study written to disk by the virtual scanner, as a user's scanner would: a
//! planning series and one post-insertion series per target, all of one study and frame of reference, and a plan. The
//! needles are placed by the twin (joint positions aimed a known offset from each target), so the tip errors are known
//! from its truth; the command must recover them from the DICOM files alone. Bad inputs sit in the same study: a
//! series with the needle retracted, one of another frame of reference, a folder that does not exist, a truncated
//! file. pydicom must read every series the study holds (but the deliberately truncated one).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use acus_control::frames::Point;
use acus_control::kinematics::{Joint, JointPositions, NeedleRequest, PositionerModel};
use acus_sim_scanner::{write_series, ScanProtocol, SeriesInfo};
use acus_sim_twin::patient::{Imaging, Patient, PatientConfig};
use acus_validate::{read_trials, Outcome, TipMeasures, REPORT_MD, TRIALS_CSV};
use nalgebra::{Point3, Vector3};

const URDF: &str = include_str!("../../urdf/positioner.urdf");
const MM: f64 = 1e-3;

fn python() -> String {
    let venv = std::env::var("ACUS_VENV")
        .ok()
        .or_else(|| option_env!("ACUS_VENV").map(str::to_string))
        .expect("ACUS_VENV must point at the project venv (launch/setup.sh) holding pydicom and numpy");
    format!("{venv}/bin/python")
}

/// Joint positions with the guide's RCM on `entry` and the tip (by the nominal model) on `aim`, CT, m.
fn pose(config: &PatientConfig, entry: &Vector3<f64>, aim: &Vector3<f64>, inserted: bool) -> JointPositions {
    let model = PositionerModel::from_urdf_str(URDF).unwrap();
    let t_robot_ct = config.t_ct_robot.inverse();
    let mut q = model
        .solve_needle(&NeedleRequest {
            entry: t_robot_ct.apply(&Point::new(Point3::from(*entry))),
            target: t_robot_ct.apply(&Point::new(Point3::from(*aim))),
        })
        .unwrap();
    if !inserted {
        q.set(Joint::Insertion, 0.0);
    }
    q
}

/// One target of the phantom study.
struct Placed {
    name: &'static str,
    entry: Vector3<f64>,
    target: Vector3<f64>,
    /// Where the needle is aimed relative to the target (the tip error before the tissue's own deflection).
    aim_off: Vector3<f64>,
    slice: f64,
}

/// The needle's axis as read off a scan: the chord of the last 20 mm of the true shaft (the length the needle finder
/// fits on slices up to 1.5 mm), from the twin's truth. A curved needle's tangent at the tip differs from it by about
/// κ·10 mm, which is not an error of the analysis.
fn distal_axis(patient: &Patient) -> Vector3<f64> {
    let shaft = patient.needle().unwrap().shaft_polyline(0.03, 0.5 * MM);
    let tip = shaft.last().unwrap().coords.coords;
    let mut walked = 0.0;
    for pair in shaft.windows(2).rev() {
        let (a, b) = (pair[0].coords.coords, pair[1].coords.coords);
        let step = (b - a).norm();
        if walked + step >= 20.0 * MM {
            let back = b + (a - b) * ((20.0 * MM - walked) / step);
            return tip - back;
        }
        walked += step;
    }
    panic!("needle shorter than 20 mm");
}

fn scan_to(patient: &Patient, protocol: &ScanProtocol, dir: &Path, info: &SeriesInfo) {
    let volume = patient.scan(protocol).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    write_series(&volume, dir, info).unwrap();
}

fn acus(args: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_acus"))
        .args(["validate", "scans"])
        .args(args)
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn validate_scans_recovers_the_known_tip_errors_and_names_each_bad_input() {
    let config = PatientConfig::reference();
    let lesion = config.lesion.coords.coords;
    let imaging = Imaging::noise_only(10.0);
    let work = tempfile::tempdir().unwrap();
    let study_dir = work.path().join("phantom");
    let post = study_dir.join("post");
    // One study and frame of reference, as a scanner keeps them for a phantom on its table.
    let study = SeriesInfo::new("planning", 1);
    let in_study = |description: &str, n: u32| SeriesInfo {
        study_uid: study.study_uid.clone(),
        frame_of_reference_uid: study.frame_of_reference_uid.clone(),
        series_number: n,
        ..SeriesInfo::new(description, u64::from(n))
    };
    let mut written: Vec<PathBuf> = Vec::new();

    // Planning: the phantom and the frame, no needle.
    let planning = study_dir.join("planning");
    let empty = Patient::ideal(config.clone(), URDF).unwrap();
    scan_to(
        &empty,
        &empty.planning_protocol(0.8 * MM, 1.0 * MM, &imaging, 1),
        &planning,
        &study,
    );
    written.push(planning.clone());

    let skin = |p: Vector3<f64>| config.skin_above(&Point::new(Point3::from(p))).coords.coords;
    let v = |x: f64, y: f64, z: f64| Vector3::new(x, y, z) * MM;
    let good = [
        Placed {
            name: "craniocaudal",
            entry: skin(lesion + v(12.0, 0.0, -12.0)),
            target: lesion,
            aim_off: v(1.5, 2.0, 0.0),
            slice: 1.0 * MM,
        },
        Placed {
            name: "tilted",
            entry: skin(lesion + v(-20.0, 0.0, 23.0)),
            target: lesion + v(-5.0, 5.0, 8.0),
            aim_off: v(0.0, -1.0, -1.2),
            slice: 0.625 * MM,
        },
        Placed {
            name: "oblique",
            entry: skin(lesion + v(-9.0, 0.0, -20.0)),
            target: lesion + v(5.0, -5.0, -6.0),
            aim_off: v(-0.8, 0.5, 0.8),
            slice: 1.0 * MM,
        },
    ];

    // Each good target: the needle inserted by the twin to `target + aim_off`, the post-insertion series written, the
    // tip errors computed from the twin's truth (tip, heading at the tip) against the planned target.
    let mut known = Vec::new();
    let mut plan = String::from("# Phantom study of the validate_scans test; points CT LPS mm.\ntargets:\n");
    let mut line = |name: &str, entry: &Vector3<f64>, target: &Vector3<f64>, series: &str| {
        let mm = |p: &Vector3<f64>| format!("[{:.4}, {:.4}, {:.4}]", p.x / MM, p.y / MM, p.z / MM);
        plan.push_str(&format!(
            "  - name: {name}\n    entry: {}\n    target: {}\n    series: post/{series}\n",
            mm(entry),
            mm(target)
        ));
    };
    let mut n = 2;
    let mut protocol_of_first = None;
    for p in &good {
        let mut patient = Patient::ideal(config.clone(), URDF).unwrap();
        let aim = p.target + p.aim_off;
        patient.sync(&pose(&config, &p.entry, &aim, false)).unwrap();
        patient.sync(&pose(&config, &p.entry, &aim, true)).unwrap();
        let tip = patient.tip().unwrap().coords.coords;
        let axis = distal_axis(&patient);
        known.push(TipMeasures::from_points(&p.entry, &p.target, &tip, &axis).unwrap());
        let protocol = patient.check_protocol(0.8 * MM, p.slice, &imaging, n as u64);
        let dir = post.join(p.name);
        scan_to(&patient, &protocol, &dir, &in_study(p.name, n));
        written.push(dir);
        line(p.name, &p.entry, &p.target, p.name);
        protocol_of_first.get_or_insert((protocol, patient));
        n += 1;
    }
    let (protocol, inserted) = protocol_of_first.unwrap();
    let first = &good[0];

    // The needle retracted before the scan: the same scan range, no metal.
    let retracted = post.join("retracted");
    scan_to(&empty, &protocol, &retracted, &in_study("retracted", n));
    written.push(retracted);
    line("retracted", &first.entry, &first.target, "retracted");
    // A series of another study and frame of reference (the phantom was moved and the scanner started over).
    let moved = post.join("moved");
    scan_to(&inserted, &protocol, &moved, &SeriesInfo::new("moved", 99));
    written.push(moved);
    line("moved", &first.entry, &first.target, "moved");
    // A target whose folder was never copied.
    line("never-copied", &first.entry, &first.target, "never-copied");
    // A copy cut short: the good series with its last file truncated.
    let truncated = post.join("truncated");
    std::fs::create_dir_all(&truncated).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(post.join(first.name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in &files {
        std::fs::copy(f, truncated.join(f.file_name().unwrap())).unwrap();
    }
    let last = truncated.join(files.last().unwrap().file_name().unwrap());
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    line("truncated", &first.entry, &first.target, "truncated");
    let plan_path = study_dir.join("plan.yaml");
    std::fs::write(&plan_path, &plan).unwrap();

    let out = work.path().join("report");
    let run = acus(&[
        "--planning".as_ref(),
        planning.as_os_str(),
        "--plan".as_ref(),
        plan_path.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(run.status.success(), "acus validate scans failed");

    let trials = read_trials(&out.join(TRIALS_CSV)).unwrap();
    assert_eq!(trials.len(), 7);
    println!("target          slice   ED known/found   ND known/found   depth known/found   angle known/found (mm, °)");
    for (i, (p, k)) in good.iter().zip(&known).enumerate() {
        let t = &trials[i];
        assert_eq!((t.trial, t.outcome), (i, Outcome::Done), "{}: {}", p.name, t.reason);
        let got = |v: Option<f64>| v.unwrap();
        let (ed, nd, depth, angle) = (
            got(t.ed_mm),
            got(t.nd_mm),
            got(t.depth_error_mm),
            got(t.angle_error_deg),
        );
        println!(
            "{:<15} {:5.3} mm   {:.3} / {:.3}    {:.3} / {:.3}    {:+.3} / {:+.3}      {:.2} / {:.2}",
            p.name,
            t.slice_mm,
            k.ed_m / MM,
            ed,
            k.nd_m / MM,
            nd,
            k.depth_error_m / MM,
            depth,
            k.angle_error_rad.to_degrees(),
            angle
        );
        assert!(
            (t.slice_mm - p.slice / MM).abs() < 1e-6,
            "{}: slice {}",
            p.name,
            t.slice_mm
        );
        assert!(
            (ed - k.ed_m / MM).abs() <= 0.2,
            "{}: ED {ed} mm, known {}",
            p.name,
            k.ed_m / MM
        );
        assert!(
            (nd - k.nd_m / MM).abs() <= 0.2,
            "{}: ND {nd} mm, known {}",
            p.name,
            k.nd_m / MM
        );
        assert!(
            (depth - k.depth_error_m / MM).abs() <= 0.2,
            "{}: depth error {depth} mm, known {}",
            p.name,
            k.depth_error_m / MM
        );
        assert!(
            (angle - k.angle_error_rad.to_degrees()).abs() <= 1.0,
            "{}: angle {angle}°",
            p.name
        );
        assert!(t.fre_mm.is_some() && t.predicted_tre_mm.is_some());
        // The errors are not trivially zero: the aim was off by a known amount.
        assert!(k.ed_m > 1.0 * MM, "{}: known ED {} mm", p.name, k.ed_m / MM);
    }

    let report = std::fs::read_to_string(out.join(REPORT_MD)).unwrap();
    for (row, name, problem) in [
        (3, "retracted", "no needle found"),
        (4, "moved", "another frame of reference"),
        (5, "never-copied", "does not exist"),
        (6, "truncated", "cannot be read"),
    ] {
        let t = &trials[row];
        assert_eq!(t.outcome, Outcome::Failed, "{name}");
        assert!(
            t.reason.contains(&format!("`{name}`")) && t.reason.contains(problem),
            "{name}: {}",
            t.reason
        );
        // report.md escapes markdown's inline syntax (the backticks, the temp folder's underscores).
        let listed = report.lines().any(|l| {
            l.contains(&format!("trial {row} ")) && l.contains(&format!("\\`{name}\\`")) && l.contains(problem)
        });
        assert!(listed, "report.md does not list {name}: {}", t.reason);
    }

    // pydicom reads every series the study holds (the truncated copy is broken on purpose).
    let script = r#"
import sys, glob, pydicom
for d in sys.argv[1:]:
    files = sorted(glob.glob(d + "/*.dcm"))
    assert files, d
    uids = set()
    for f in files:
        ds = pydicom.dcmread(f)
        assert ds.Modality == "CT" and ds.pixel_array.shape == (ds.Rows, ds.Columns), f
        uids.add((ds.StudyInstanceUID, ds.FrameOfReferenceUID))
    assert len(uids) == 1, d
    print(len(files), *uids.pop())
"#;
    let py = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(&written)
        .output()
        .unwrap();
    assert!(py.status.success(), "pydicom: {}", String::from_utf8_lossy(&py.stderr));
    let text = String::from_utf8(py.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), written.len(), "{text}");
    // All in the planning series' study and frame but the moved one (the sixth written).
    for (i, l) in lines.iter().enumerate() {
        let same = l.ends_with(&format!("{} {}", study.study_uid, study.frame_of_reference_uid));
        assert_eq!(same, i != 5, "series {}: {l}", written[i].display());
    }

    // Whole-command errors: nothing written, the message names the file and the problem.
    let bad_plan = study_dir.join("bad-plan.yaml");
    std::fs::write(&bad_plan, plan.replacen("entry:", "entree:", 1)).unwrap();
    let nowhere = work.path().join("not-written");
    let run = acus(&[
        "--planning".as_ref(),
        planning.as_os_str(),
        "--plan".as_ref(),
        bad_plan.as_os_str(),
        "--out".as_ref(),
        nowhere.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("bad-plan.yaml") && err.contains("entree"),
        "{err}"
    );
    assert!(!nowhere.exists());
    // A "planning" series without the frame (a post-insertion slab) cannot be registered.
    let frameless = post.join("retracted");
    let run = acus(&[
        "--planning".as_ref(),
        frameless.as_os_str(),
        "--plan".as_ref(),
        plan_path.as_os_str(),
        "--out".as_ref(),
        nowhere.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("retracted") && err.contains("cannot be registered"),
        "{err}"
    );
    assert!(!nowhere.exists());
}
