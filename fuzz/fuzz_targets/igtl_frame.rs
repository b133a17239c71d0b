//! Any bytes → an OpenIGTLink frame: header, size limit, CRC, extended header and metadata, then the content decoder of
//! whichever type the header names. The path every byte from a Slicer connection takes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Ok or a typed error; a panic, an abort or an allocation beyond the limit is a finding.
    let _ = acus_igtl::message::decode_frame(data, &acus_igtl::Limits::default());
});
