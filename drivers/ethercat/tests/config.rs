//! The positioner drive config against the real URDF: joints, ranges, SI ↔ counts, and typed
//! errors naming the problem.

mod common;

use std::path::PathBuf;

use acus_ethercat::config::{DrivesConfig, DrivesFile, JointKind};
use acus_ethercat::Error;

fn urdf() -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../urdf/positioner.urdf")).unwrap()
}

fn yaml() -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../launch/config/positioner_drives.yaml"),
    )
    .unwrap()
}

#[test]
fn positioner_config_resolves_against_the_urdf() {
    let cfg = common::config();
    let names: Vec<&str> = cfg.axes.iter().map(|a| a.joint.as_str()).collect();
    assert_eq!(
        names,
        [
            "x_joint",
            "y_joint",
            "z_joint",
            "yaw_joint",
            "pitch_joint",
            "insertion_joint"
        ]
    );
    let deg = std::f64::consts::PI / 180.0;
    let ranges = [
        (-0.1, 0.1),
        (-0.1, 0.1),
        (0.0, 0.15),
        (-60.0 * deg, 60.0 * deg),
        (-45.0 * deg, 45.0 * deg),
        (0.0, 0.2),
    ];
    for (a, (lo, hi)) in cfg.axes.iter().zip(ranges) {
        assert!(
            (a.lower - lo).abs() < 1e-9 && (a.upper - hi).abs() < 1e-9,
            "{}: [{}, {}]",
            a.joint,
            a.lower,
            a.upper
        );
        assert!(a.mass > 0.0 && a.max_velocity > 0.0, "{}", a.joint);
        // SI ↔ counts round trip within one count across the range.
        for q in [a.lower, 0.5 * (a.lower + a.upper), a.upper] {
            assert!((a.to_si(a.to_counts(q)) - q).abs() <= 0.5 / a.counts_per_unit);
        }
    }
    // Moved mass grows towards the base: X carries everything Y carries, and more.
    assert!(cfg.axes[0].mass > cfg.axes[1].mass && cfg.axes[1].mass > cfg.axes[2].mass);
    assert_eq!(cfg.axes[3].kind, JointKind::Revolute);
    // 20-bit encoder on a 5 mm screw.
    assert!((cfg.axes[0].counts_per_unit - 1_048_576.0 / 0.005).abs() < 1e-6);
    assert!((cfg.cycle_time_s - 0.001).abs() < 1e-12);
}

fn err_of(yaml_text: &str) -> String {
    let file: DrivesFile = serde_yaml::from_str(yaml_text).unwrap();
    match DrivesConfig::from_parts(&file, &urdf()) {
        Err(Error::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn bad_configs_are_typed_errors_with_names_and_numbers() {
    let y = yaml();
    let m = err_of(&y.replacen("joint: x_joint", "joint: w_joint", 1));
    assert!(m.contains("w_joint") && m.contains("not found"), "{m}");
    let m = err_of(&y.replacen("lead_m_per_rev: 0.005             # 5 mm ball screw", "", 1));
    assert!(m.contains("x_joint") && m.contains("lead_m_per_rev"), "{m}");
    let m = err_of(&y.replacen(
        "gear_ratio: 100.0                 # harmonic drive",
        "gear_ratio: 100.0\n    lead_m_per_rev: 0.01",
        1,
    ));
    assert!(m.contains("yaw_joint") && m.contains("0.01"), "{m}");
    let m = err_of(&y.replacen("max_acceleration: 0.5             # m/s²", "max_acceleration: -2.5", 1));
    assert!(m.contains("max_acceleration") && m.contains("-2.5"), "{m}");
    let m = err_of(&y.replacen("cycle_time_s: 0.001", "cycle_time_s: 0.5", 1));
    assert!(m.contains("0.5"), "{m}");
    // A resolution that overflows the 32-bit position: 0.2 m × 2^20 × 1000 / 1e-6 m.
    let m = err_of(&y.replacen("lead_m_per_rev: 0.002", "lead_m_per_rev: 0.000001", 1));
    assert!(m.contains("insertion_joint") && m.contains("32-bit"), "{m}");
    let m = err_of(&y.replacen(
        "homing_offset: 0.0                # m (0x607C)",
        "homing_offset: 0.0\n    position_window: -0.001",
        1,
    ));
    assert!(
        m.contains("x_joint") && m.contains("position window") && m.contains("-0.001"),
        "{m}"
    );
}

#[test]
fn position_window_defaults_to_a_few_encoder_counts_and_can_be_set() {
    let cfg = common::config();
    for a in &cfg.axes {
        let counts = a.position_window * a.counts_per_unit;
        assert!(
            (counts - acus_ethercat::config::DEFAULT_POSITION_WINDOW_COUNTS).abs() < 1e-9,
            "{}: {counts}",
            a.joint
        );
    }
    let y = yaml().replacen(
        "homing_offset: 0.0                # m (0x607C)",
        "homing_offset: 0.0\n    position_window: 0.00001",
        1,
    );
    let file: DrivesFile = serde_yaml::from_str(&y).unwrap();
    let cfg = DrivesConfig::from_parts(&file, &urdf()).unwrap();
    assert_eq!(cfg.axes[0].position_window, 0.00001);
}
