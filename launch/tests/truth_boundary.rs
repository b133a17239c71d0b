//! The controller reads no value of the twin's truth: its procedure settings are built from the controller's
//! configuration alone, so changing what the world is (the true needle, the lesion's true attenuation and size, the robot
//! as built, the scanner) changes nothing the controller is told. (The Cargo.toml half of the boundary is
//! tests/tests/truth_boundary.rs.)

use acus_launch::config::SimConfig;
use acus_launch::system::controller_settings;

fn load(world: &str) -> SimConfig {
    SimConfig::load_in(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml").as_ref(),
        Some(world),
    )
    .unwrap()
}

/// What the controller is told, as text (the settings hold a planner with the whole model; its Debug covers it).
fn told(config: &SimConfig) -> String {
    let s = controller_settings(&config.controller).unwrap();
    format!(
        "{:?} {:?} {:?} {:?} {:?} {} {} {} {} {} {} {:?} {:?} {:?}",
        s.planner,
        s.gate,
        s.entry,
        s.target,
        s.lesion,
        s.curvature_prior,
        s.align_speed,
        s.insertion_speed,
        s.done_within,
        s.min_correction_depth,
        s.redirect_depth,
        s.needle,
        s.machine,
        s.axis_prior
    )
}

#[test]
fn changing_the_worlds_truth_changes_nothing_the_controller_is_told() {
    let base = load("realistic");
    let before = told(&base);
    let mut changed = base.clone();
    let w = &mut changed.world;
    w.patient.needle_radius *= 1.5;
    w.patient.lesion_hu += 60.0;
    w.patient.lesion_radius *= 0.8;
    w.patient.tissue.curvature *= 2.0;
    w.robot.origin_position *= 3.0;
    w.frame.sphere_centre *= 3.0;
    w.scanner.noise_hu = 40.0;
    changed.apply_world().unwrap();
    // The world did change (the twin's patient is built from it) …
    assert!((changed.patient.needle_radius - base.patient.needle_radius).abs() > 1e-4);
    assert!((changed.patient.lesion_hu - base.patient.lesion_hu).abs() > 10.0);
    // … and the controller was told exactly the same.
    assert_eq!(changed.controller, base.controller);
    assert_eq!(told(&changed), before);
}

#[test]
fn the_controllers_own_configuration_does_reach_it() {
    let base = load("realistic");
    let before = told(&base);
    let mut changed = base.clone();
    changed.controller.file.needle.diameter = 1.07e-3; // a 19 G needle on the datasheet
    let after = told(&changed);
    assert_ne!(after, before);
    let s = controller_settings(&changed.controller).unwrap();
    assert!((s.needle.radius - 0.535e-3).abs() < 1e-12);
}

/// The operator picks the target with the world's pick error: off the true centre in the realistic world, on it in the
/// ideal one, and the same for the same seed.
#[test]
fn the_picked_target_is_the_lesion_plus_the_pick_error() {
    let (ideal, realistic) = (load("ideal"), load("realistic"));
    assert!(ideal.controller.target.distance(&ideal.patient.lesion) < 1e-12);
    let off = realistic.controller.target.distance(&realistic.patient.lesion);
    println!("pick error {:.3} mm", off * 1e3);
    assert!(off > 0.02e-3 && off < 2.5e-3, "{off}");
    let mut other = load("realistic");
    other.set_seed(realistic.file.seed + 1).unwrap();
    assert!(
        other.controller.target.distance(&realistic.controller.target) > 1e-6,
        "another seed, another pick"
    );
    other.set_seed(realistic.file.seed).unwrap();
    assert!(
        other.controller.target.distance(&realistic.controller.target) < 1e-15,
        "same seed, same pick"
    );
}

#[test]
fn a_world_file_with_an_unknown_field_or_a_bad_value_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/worlds/realistic.yaml")).unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, text.replace("table_sigma: 0.00025", "table_sigma: 0.5")).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml");
    let e = SimConfig::load_in(path.as_ref(), bad.to_str()).unwrap_err();
    assert!(format!("{e:#}").contains("scanner.table_sigma"), "{e:#}");
}
