//! URDF text → the positioner's kinematic model (acus-control's robot loader).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = acus_control::kinematics::PositionerModel::from_urdf_str(text);
    }
});
