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
        Err(e @ Error::ConfigField { .. }) => e.to_string(),
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// The field of a refused file (and the whole error), with the controller's joint order checked.
fn field_of(yaml_text: &str) -> (String, String) {
    let file: DrivesFile = serde_yaml::from_str(yaml_text).unwrap();
    match DrivesConfig::from_parts_in_order(&file, &urdf(), &ORDER) {
        Err(e @ Error::ConfigField { .. }) => {
            let Error::ConfigField { ref field, .. } = e else {
                unreachable!()
            };
            (field.clone(), e.to_string())
        }
        other => panic!("expected a refused field, got {other:?}"),
    }
}

/// The controller's joint order (acus-control `Joint::ALL`: x, y, z, yaw, pitch, insertion).
const ORDER: [&str; 6] = [
    "x_joint",
    "y_joint",
    "z_joint",
    "yaw_joint",
    "pitch_joint",
    "insertion_joint",
];

#[test]
fn the_positioner_file_is_in_the_controllers_joint_order() {
    let file: DrivesFile = serde_yaml::from_str(&yaml()).unwrap();
    let cfg = DrivesConfig::from_parts_in_order(&file, &urdf(), &ORDER).unwrap();
    assert_eq!(cfg.axes.len(), 6);
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../launch/config/positioner_drives.yaml");
    DrivesConfig::load_in_order(&p, &ORDER).unwrap();
}

/// Swap the drive entries of x_joint and y_joint (the whole blocks).
fn swapped_xy(y: &str) -> String {
    let x_at = y.find("  - joint: x_joint").unwrap();
    let y_at = y.find("  - joint: y_joint").unwrap();
    let z_at = y.find("  - joint: z_joint").unwrap();
    format!("{}{}{}{}", &y[..x_at], &y[y_at..z_at], &y[x_at..y_at], &y[z_at..])
}

#[test]
fn unknown_repeated_and_misordered_joints_are_refused_with_the_field() {
    let y = yaml();
    let (f, m) = field_of(&y.replacen("joint: x_joint", "joint: w_joint", 1));
    assert_eq!(f, "drives[0].joint", "{m}");
    assert!(m.contains("w_joint") && m.contains("not found"), "{m}");
    // The same joint twice: refused even without an expected order.
    let (f, m) = field_of(&y.replacen("joint: y_joint", "joint: x_joint", 1));
    assert_eq!(f, "drives[1].joint", "{m}");
    assert!(m.contains("drives[0]"), "{m}");
    let twice = err_of(&y.replacen("joint: y_joint", "joint: x_joint", 1));
    assert!(twice.contains("already"), "{twice}");
    // x and y swapped: every joint known, once each, in another order than the controller's.
    let swapped = swapped_xy(&y);
    let file: DrivesFile = serde_yaml::from_str(&swapped).unwrap();
    assert!(
        DrivesConfig::from_parts(&file, &urdf()).is_ok(),
        "without an order the swap is a valid file"
    );
    let (f, m) = field_of(&swapped);
    assert_eq!(f, "drives[0].joint", "{m}");
    assert!(m.contains("y_joint") && m.contains("x_joint"), "{m}");
    // Fewer drives than the controller's joints.
    let five = &y[..y.find("  - joint: insertion_joint").unwrap()];
    let (f, m) = field_of(five);
    assert_eq!(f, "drives", "{m}");
}

#[test]
fn non_finite_and_out_of_range_values_are_refused_with_the_field() {
    let y = yaml();
    let cases: [(&str, &str, &str); 12] = [
        ("cycle_time_s: 0.001", "cycle_time_s: .nan", "cycle_time_s"),
        ("cycle_time_s: 0.001", "cycle_time_s: .inf", "cycle_time_s"),
        ("cycle_time_s: 0.001", "cycle_time_s: 0.0", "cycle_time_s"),
        (
            "gear_ratio: 100.0                 # harmonic drive",
            "gear_ratio: .nan",
            "drives[3].gear_ratio (yaw_joint)",
        ),
        (
            "gear_ratio: 100.0                 # harmonic drive",
            "gear_ratio: 1.0e9",
            "drives[3].gear_ratio (yaw_joint)",
        ),
        (
            "lead_m_per_rev: 0.005             # 5 mm ball screw",
            "lead_m_per_rev: .inf",
            "drives[0].lead_m_per_rev (x_joint)",
        ),
        (
            "lead_m_per_rev: 0.005             # 5 mm ball screw",
            "lead_m_per_rev: 2.0",
            "drives[0].lead_m_per_rev (x_joint)",
        ),
        (
            "max_acceleration: 0.5             # m/s²",
            "max_acceleration: .inf",
            "drives[0].max_acceleration (x_joint)",
        ),
        (
            "max_acceleration: 0.5             # m/s²",
            "max_acceleration: 1.0e6",
            "drives[0].max_acceleration (x_joint)",
        ),
        (
            "following_error_window: 0.001     # m (0x6065)",
            "following_error_window: .nan",
            "drives[0].following_error_window (x_joint)",
        ),
        (
            "following_error_window: 0.001     # m (0x6065)",
            "following_error_window: 0.5",
            "drives[0].following_error_window (x_joint)",
        ),
        (
            "homing_offset: 0.0                # m (0x607C)",
            "homing_offset: .nan",
            "drives[0].homing_offset (x_joint)",
        ),
    ];
    for (from, to, field) in cases {
        assert!(y.contains(from), "{from}");
        let (f, m) = field_of(&y.replacen(from, to, 1));
        assert_eq!(f, field, "{to}: {m}");
    }
    // A position window wider than the following-error window.
    let (f, m) = field_of(&y.replacen(
        "homing_offset: 0.0                # m (0x607C)",
        "homing_offset: 0.0\n    position_window: 0.01",
        1,
    ));
    assert_eq!(f, "drives[0].position_window (x_joint)", "{m}");
}

#[test]
fn identity_fields_are_optional_and_read_as_numbers() {
    let y = yaml().replacen(
        "homing_offset: 0.0                # m (0x607C)",
        "homing_offset: 0.0\n    vendor_id: 0x00000ACE\n    product_code: 1026",
        1,
    );
    let file: DrivesFile = serde_yaml::from_str(&y).unwrap();
    let cfg = DrivesConfig::from_parts(&file, &urdf()).unwrap();
    assert_eq!(
        (cfg.axes[0].vendor_id, cfg.axes[0].product_code),
        (Some(0xACE), Some(0x402))
    );
    assert_eq!((cfg.axes[1].vendor_id, cfg.axes[1].product_code), (None, None));
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
    assert!((cfg.axes[0].position_window - 0.00001).abs() < 1e-15);
}
