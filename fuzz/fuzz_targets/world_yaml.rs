//! World file YAML text → the checked world (acus-sim-twin's `WorldModel::from_yaml`: parse and range checks), then the
//! shipped sim file resolved in it (the patient's truth, the needle–tissue model's checks, the operator's pick), without
//! the filesystem.
#![no_main]

use std::sync::OnceLock;

use acus_launch_config::{Parts, SimConfig, SimFile, WorldModel};
use libfuzzer_sys::fuzz_target;

const URDF: &str = include_str!("../../urdf/positioner.urdf");
const SIM: &str = include_str!("../../launch/config/sim.yaml");

/// The shipped sim file, parsed once (it is the same for every input).
fn sim() -> &'static SimFile {
    static SIM_FILE: OnceLock<SimFile> = OnceLock::new();
    SIM_FILE.get_or_init(|| SimFile::from_yaml(SIM).expect("the shipped sim file loads"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(world) = WorldModel::from_yaml(text) else {
        return;
    };
    let parts = Parts {
        design_urdf: URDF.to_owned(),
        design_path: "positioner.urdf".into(),
        urdf: URDF.to_owned(),
        urdf_path: "positioner.urdf".into(),
        drives_path: "positioner_drives.yaml".into(),
        world,
        world_path: "<fuzz>".into(),
    };
    let _ = SimConfig::from_parts(sim().clone(), parts);
});
