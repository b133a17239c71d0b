//! Issue 11: the sim configuration refuses non-finite and out-of-range values, unknown and duplicate fields, and
//! unknown, duplicate, missing or misordered joints, naming the field. One test per class, each on the shipped
//! launch/config/sim.yaml with one line changed (so each would pass the file if its check were missing), plus the shipped
//! files loading and the checks that need the files the sim file names (URDF limits, world, body).

use std::path::{Path, PathBuf};

use acus_launch_config::{ConfigError, Parts, SimConfig, SimFile, WorldModel};

const SIM: &str = include_str!("../sim.yaml");
const URDF: &str = include_str!("../../../urdf/positioner.urdf");
const WORLD: &str = include_str!("../worlds/realistic.yaml");
const POSE: &str =
    "start_pose: { x_joint: 0.0, y_joint: 0.0, z_joint: 0.12, yaw_joint: 0.0, pitch_joint: 0.0, insertion_joint: 0.0 }";

fn sim_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sim.yaml")
}

/// The shipped file with `from` replaced by `to` (which must occur exactly once, so the edit is the one meant).
fn edited(from: &str, to: &str) -> String {
    assert_eq!(SIM.matches(from).count(), 1, "{from:?} in sim.yaml");
    SIM.replace(from, to)
}

/// The error for `text`, as a person reads it.
fn refused(text: &str) -> String {
    match SimFile::from_yaml(text) {
        Ok(f) => panic!("accepted: {f:?}"),
        Err(e) => e.to_string(),
    }
}

fn parts() -> Parts {
    Parts {
        design_urdf: URDF.into(),
        design_path: "positioner.urdf".into(),
        urdf: URDF.into(),
        urdf_path: "positioner.urdf".into(),
        drives_path: "positioner_drives.yaml".into(),
        world: WorldModel::from_yaml(WORLD).unwrap(),
        world_path: "realistic.yaml".into(),
    }
}

#[test]
fn the_shipped_file_loads_in_every_world() {
    for world in ["ideal", "still", "realistic"] {
        let c = SimConfig::load_in(&sim_path(), Some(world)).unwrap();
        assert_eq!(c.world.name, world);
        assert!((c.file.start_pose[2] - 0.12).abs() < 1e-12, "{:?}", c.file.start_pose);
        assert!(c.drives_path.ends_with("positioner_drives.yaml") && c.drives_path.is_file());
    }
    let own = SimConfig::load(&sim_path()).unwrap();
    assert_eq!(own.world.name, "realistic");
}

#[test]
fn a_non_finite_number_is_refused_by_name() {
    let e = refused(&edited("needle: { diameter: 0.00127", "needle: { diameter: .nan"));
    assert!(
        e.contains("controller.needle.diameter") && e.contains("not finite"),
        "{e}"
    );
    let e = refused(&edited("z_joint: 0.12", "z_joint: .inf"));
    assert!(e.contains("start_pose.z_joint") && e.contains("not finite"), "{e}");
    let e = refused(&edited("curvature_prior: 0.6", "curvature_prior: -.inf"));
    assert!(e.contains("controller.curvature_prior"), "{e}");
}

#[test]
fn an_out_of_range_number_is_refused_by_name() {
    // Millimetres where metres belong.
    let e = refused(&edited("pixel: 0.0008", "pixel: 0.8"));
    assert!(e.contains("planning_scan.pixel") && e.contains("outside"), "{e}");
    let e = refused(&edited("insertion_margin: 0.005", "insertion_margin: -0.001"));
    assert!(e.contains("controller.planning.insertion_margin"), "{e}");
    let e = refused(&edited("entry_xz: [0.035, 0.0]", "entry_xz: [35, 0.0]"));
    assert!(e.contains("entry_xz[x]"), "{e}");
    let gate = "controller:\n  registration_gate: { min_fiducials: 2, max_fre_rms: 0.0005, max_fiducial_residual: 0.001, max_predicted_tre: 0.001 }\n";
    let e = refused(&edited("controller:\n", gate));
    assert!(e.contains("controller.registration_gate.min_fiducials"), "{e}");
    // A redirect depth in millimetres, a turn in degrees.
    let e = refused(&edited("redirect: { depth: 0.015", "redirect: { depth: 15"));
    assert!(e.contains("controller.redirect.depth") && e.contains("outside"), "{e}");
    let e = refused(&edited("max_angle: 0.2618", "max_angle: 15"));
    assert!(e.contains("controller.redirect.max_angle"), "{e}");
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    let e = refused(&edited("needle: { diameter:", "needle: { diamter:"));
    assert!(
        e.contains("controller.needle") && e.contains("unknown field `diamter`"),
        "{e}"
    );
    let e = refused(&format!("{SIM}\nrandom_seed: 3\n"));
    assert!(e.contains("unknown field `random_seed`"), "{e}");
}

#[test]
fn a_duplicate_field_is_refused_by_name() {
    let e = refused(&format!("{SIM}\nseed: 2\n"));
    assert!(e.contains("duplicate field `seed`"), "{e}");
}

#[test]
fn an_unknown_joint_is_refused_by_name() {
    let e = refused(&edited("yaw_joint: 0.0", "roll_joint: 0.0"));
    assert!(
        e.contains("start_pose") && e.contains("unknown joint `roll_joint`"),
        "{e}"
    );
}

#[test]
fn a_duplicate_joint_is_refused_by_name() {
    let e = refused(&edited("y_joint: 0.0,", "y_joint: 0.0, x_joint: 0.0,"));
    assert!(
        e.contains("start_pose") && e.contains("joint `x_joint` is given twice"),
        "{e}"
    );
}

#[test]
fn a_missing_joint_is_refused_by_name() {
    let e = refused(&edited(" pitch_joint: 0.0,", ""));
    assert!(
        e.contains("start_pose") && e.contains("joint `pitch_joint` is missing"),
        "{e}"
    );
}

#[test]
fn misordered_joints_are_refused_by_name() {
    let swapped =
        "start_pose: { x_joint: 0.0, z_joint: 0.12, y_joint: 0.0, yaw_joint: 0.0, pitch_joint: 0.0, insertion_joint: 0.0 }";
    let e = refused(&edited(POSE, swapped));
    assert!(
        e.contains("start_pose") && e.contains("`z_joint` is where `y_joint` belongs"),
        "{e}"
    );
    // The bare list of six (the old form) says nothing about which joint is which: refused too.
    let e = refused(&edited(POSE, "start_pose: [0.0, 0.0, 0.12, 0.0, 0.0, 0.0]"));
    assert!(e.contains("start_pose") && e.contains("joint name"), "{e}");
}

#[test]
fn a_start_pose_outside_the_joint_limits_is_refused_by_name() {
    // z is 0–150 mm on the reference robot.
    let file = SimFile::from_yaml(&edited("z_joint: 0.12", "z_joint: 0.2")).unwrap();
    let e = SimConfig::from_parts(file, parts()).unwrap_err().to_string();
    assert!(e.contains("start_pose.z_joint") && e.contains("outside"), "{e}");
    let file = SimFile::from_yaml(SIM).unwrap();
    assert!(SimConfig::from_parts(file, parts()).is_ok());
}

#[test]
fn bad_names_are_refused_by_name() {
    let two = edited("controller:\n", "controller:\n  consoles: [operator, operator]\n");
    let e = refused(&two);
    assert!(e.contains("controller.consoles[1]") && e.contains("twice"), "{e}");
    let upper = edited("controller:\n", "controller:\n  consoles: [Operator]\n");
    assert!(refused(&upper).contains("controller.consoles[0]"));
    let e = refused(&edited("drives: positioner_drives.yaml", "drives: ''"));
    assert!(e.contains("drives") && e.contains("empty"), "{e}");
}

#[test]
fn an_entry_off_the_body_is_refused_by_name() {
    // Inside the CT's reach, but beyond the abdomen's side (it is 0.34 m wide).
    let file = SimFile::from_yaml(&edited("entry_xz: [0.035, 0.0]", "entry_xz: [0.2, 0.0]")).unwrap();
    let e = SimConfig::from_parts(file, parts()).unwrap_err().to_string();
    assert!(e.contains("entry_xz[x]") && e.contains("body"), "{e}");
}

#[test]
fn a_urdf_that_is_no_positioner_is_refused_by_field() {
    let file = SimFile::from_yaml(SIM).unwrap();
    let bad = Parts {
        urdf: URDF.replace("\"insertion_joint\"", "\"needle_joint\""),
        ..parts()
    };
    let e = SimConfig::from_parts(file, bad).unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Urdf {
                field: "controller.urdf",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("insertion_joint"), "{e}");
}

#[test]
fn files_are_read_relative_to_the_sim_file_and_a_bad_world_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let urdf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../urdf/positioner.urdf");
    let sim = SIM.replace("../../urdf/positioner.urdf", urdf.to_str().unwrap());
    std::fs::write(
        dir.path().join("sim.yaml"),
        sim.replace("world: realistic", "world: mine.yaml"),
    )
    .unwrap();
    // The world named by the file, relative to it: a typo'd value there is named with the world's field.
    std::fs::write(
        dir.path().join("mine.yaml"),
        WORLD.replace("table_sigma: 0.00025", "table_sigma: 0.5"),
    )
    .unwrap();
    let e = SimConfig::load(&dir.path().join("sim.yaml")).unwrap_err().to_string();
    assert!(e.contains("mine.yaml") && e.contains("scanner.table_sigma"), "{e}");
    // A parse error names the sim file and the field.
    std::fs::write(dir.path().join("bad.yaml"), sim.replace("seed: 1", "seed: one")).unwrap();
    let e = SimConfig::load(&dir.path().join("bad.yaml")).unwrap_err().to_string();
    assert!(e.contains("bad.yaml") && e.contains("seed"), "{e}");
    // A file that is not there is named.
    let e = SimConfig::load(&dir.path().join("none.yaml")).unwrap_err().to_string();
    assert!(e.contains("none.yaml"), "{e}");
}

#[test]
fn a_bad_respiration_section_is_refused_by_name() {
    // Millimetres where metres belong.
    let e = refused(&edited("    window: 0.001\n", "    window: 1.0\n"));
    assert!(
        e.contains("controller.respiration.window") && e.contains("outside"),
        "{e}"
    );
    let e = refused(&edited("    settle: 2.0\n", "    settle: .nan\n"));
    assert!(
        e.contains("controller.respiration.settle") && e.contains("not finite"),
        "{e}"
    );
    // A hold cannot settle for longer than a patient is asked to hold.
    let e = refused(&edited("    hold_limit: 20.0\n", "    hold_limit: 2.0\n"));
    assert!(e.contains("controller.respiration.settle"), "{e}");
    let e = refused(&edited("    attempts: 10\n", "    attempts: 0\n"));
    assert!(e.contains("controller.respiration.attempts"), "{e}");
    let e = refused(&edited("    gated: true\n", "    gated: true\n    gate: 1\n"));
    assert!(e.contains("unknown field `gate`"), "{e}");
}

#[test]
fn a_bad_breathing_section_of_a_world_is_refused_by_name() {
    let world = include_str!("../worlds/realistic.yaml");
    let e = WorldModel::from_yaml(&world.replace("level_sigma: 0.0015", "level_sigma: 1.5"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("patient.breathing.hold.level_sigma"), "{e}");
    let e = WorldModel::from_yaml(&world.replace("amplitude: 0.012", "amplitude: .nan"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("patient.breathing.free.amplitude"), "{e}");
}
