//! Every message decoder on its own, past the CRC (which the frame target rarely gets right): the first byte picks the
//! type; with its high bit set the rest is a v2 body (extended header, content, metadata), else bare content.
#![no_main]

use libfuzzer_sys::fuzz_target;

const TYPES: [&str; 6] = ["TRANSFORM", "POINT", "STRING", "STATUS", "IMAGE", "CAPABILITY"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else { return };
    let type_name = TYPES[usize::from(pick & 0x7f) % TYPES.len()];
    if pick & 0x80 == 0 {
        let _ = acus_igtl::message::decode_content(type_name, content);
        return;
    }
    let header = acus_igtl::Header {
        version: 2,
        type_name: type_name.into(),
        device_name: String::new(),
        timestamp: 0,
        body_size: content.len() as u64,
        crc: acus_igtl::crc64(content),
    };
    let _ = acus_igtl::message::decode_body(&header, content);
});
