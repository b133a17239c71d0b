//! Sim file YAML text → the checked `acus sim` configuration (acus-launch-config): the parse and range checks, then the
//! resolution with what the file names (the repo's URDF as both URDFs, the realistic world), without the filesystem.
#![no_main]

use std::sync::OnceLock;

use acus_launch_config::{Parts, SimConfig, SimFile, WorldModel};
use libfuzzer_sys::fuzz_target;

const URDF: &str = include_str!("../../urdf/positioner.urdf");
const WORLD: &str = include_str!("../../launch/config/worlds/realistic.yaml");

/// The shipped world, parsed once (it is the same for every input).
fn world() -> &'static WorldModel {
    static WORLD_MODEL: OnceLock<WorldModel> = OnceLock::new();
    WORLD_MODEL.get_or_init(|| WorldModel::from_yaml(WORLD).expect("the shipped world loads"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = SimFile::from_yaml(text) else {
        return;
    };
    let parts = Parts {
        design_urdf: URDF.to_owned(),
        design_path: "positioner.urdf".into(),
        urdf: URDF.to_owned(),
        urdf_path: "positioner.urdf".into(),
        drives_path: file.drives.clone(),
        world: world().clone(),
        world_path: "realistic.yaml".into(),
    };
    if let Ok(mut config) = SimConfig::from_parts(file, parts) {
        // Another seed redraws the world's random parts (tissue, the operator's pick) through the same checks.
        let seed = config.file.seed.wrapping_add(1);
        let _ = config.set_seed(seed);
    }
});
