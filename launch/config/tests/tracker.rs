//! The `controller.tracker` section of the shipped launch/config/sim.yaml: it states the rig's design calibration (the
//! drawings the twin's tracker rig was built from, before its mounts' errors), and a bad value is refused by field.

use acus_launch_config::{ConfigError, SimFile};
use acus_sim_twin::tracker::TrackerRig;

const SIM: &str = include_str!("../sim.yaml");

#[test]
fn the_shipped_tracker_calibration_is_the_rigs_design() {
    let file = SimFile::from_yaml(SIM).unwrap();
    let tracker = file
        .controller
        .tracker
        .expect("sim.yaml has a controller.tracker section");
    assert_eq!((tracker.reference_handle, tracker.needle_handle), (0x0A, 0x0B));
    let configured = tracker.calibration();
    let design = TrackerRig::design_calibration();
    // The yaml gives the tip to 1 nm; the reference's mount exactly.
    let tip = configured.tip_in_tool.distance(&design.tip_in_tool);
    assert!(tip < 1e-8, "tip_in_tool {tip:e} m from the design");
    let (c, d) = (configured.t_frame_ref.isometry(), design.t_frame_ref.isometry());
    assert!((c.translation.vector - d.translation.vector).norm() < 1e-12);
    assert!(c.rotation.angle_to(&d.rotation) < 1e-12);
}

#[test]
fn a_tracker_value_in_millimetres_is_refused_by_name() {
    let text = SIM.replace(
        "tip_in_tool: [0.006875472, 0.017372751, 0.262394580]",
        "tip_in_tool: [6.875472, 17.372751, 262.394580]",
    );
    assert_ne!(text, SIM, "the line to change is in sim.yaml");
    match SimFile::from_yaml(&text) {
        Err(ConfigError::OutOfRange { field, .. }) => assert_eq!(field, "controller.tracker.tip_in_tool[x]"),
        other => panic!("{other:?}"),
    }
    let text = SIM.replace("needle_handle: 11", "needle_handle: 10");
    assert_ne!(text, SIM);
    match SimFile::from_yaml(&text) {
        Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, "controller.tracker.needle_handle"),
        other => panic!("{other:?}"),
    }
}
