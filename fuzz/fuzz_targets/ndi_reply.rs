//! Any bytes from the NDI tracker's serial line → the reply splitter, then every reply parser: text replies (OKAY,
//! ERRORxx, RESET, data with CRC), PHSR port handles, TX text tracking frames and BX binary frames (header, header CRC,
//! per-tool poses and status, body CRC). What every byte from a tracker goes through.
#![no_main]

use acus_serial::ndi::reply::{parse_bx, parse_phsr, parse_text, parse_tx, split_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = split_reply(data);
    let _ = parse_bx(data);
    let _ = parse_text(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_phsr(text);
        let _ = parse_tx(text);
    }
});
