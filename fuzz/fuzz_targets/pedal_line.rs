//! Any bytes from the pedal's serial line → the line buffer (bounded lines), the frame parser (checksum, fields) and
//! the sequence follower: what every byte on the enable pedal's wire goes through before it may count as "held".
#![no_main]

use acus_serial::pedal::{parse_line, LineBuffer, SeqFollow};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = LineBuffer::new();
    let mut seq = SeqFollow::default();
    for &b in data {
        if let Some(line) = lines.push(b) {
            // `push` hands over a complete line or why it is not one; a frame is judged against the sequence.
            if let Ok(frame) = line {
                let _ = seq.check(frame.seq);
            }
        }
    }
    // The parser on the raw bytes as one line, too (whatever the buffer would have cut).
    let _ = parse_line(data);
});
