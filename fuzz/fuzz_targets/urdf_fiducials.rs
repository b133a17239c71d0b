//! URDF text → the fiducial frame model (acus-control's registration frame loader).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = acus_control::registration::FiducialModel::from_urdf_str(text);
    }
});
