//! Drive YAML text → the checked drive configuration (acus-ethercat's loader), against the repo's URDF.
#![no_main]

use libfuzzer_sys::fuzz_target;

const URDF: &str = include_str!("../../urdf/positioner.urdf");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = serde_yaml::from_str::<acus_ethercat::config::DrivesFile>(text) {
        let _ = acus_ethercat::config::DrivesConfig::from_parts(&file, URDF);
    }
});
