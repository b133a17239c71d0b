//! One DICOM file's bytes → header checks → HU: the path every imported slice takes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Ok or a typed error; a panic, an abort or an allocation beyond the input's size is a finding.
    let _ = acus_dicom::decode_slice(data, std::path::Path::new("fuzz.dcm"));
});
