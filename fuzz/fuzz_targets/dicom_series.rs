//! A series of three good slices (the first three seeds in fuzz/series/: three is the fewest that exercises the gap
//! and spacing checks, and keeps an execution under a millisecond) with one replaced by the fuzzed bytes: the consistency,
//! sorting, spacing checks and the volume assembly behind one fuzzed file. The first byte picks the slice replaced;
//! with its high bit set the fuzzed file is added as a fourth instead.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

const SERIES: [&[u8]; 3] = [
    include_bytes!("../series/slice_0.dcm"),
    include_bytes!("../series/slice_1.dcm"),
    include_bytes!("../series/slice_2.dcm"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, fuzzed)) = data.split_first() else {
        return;
    };
    let mut files: Vec<(PathBuf, &[u8])> = SERIES
        .iter()
        .enumerate()
        .map(|(i, b)| (PathBuf::from(format!("slice_{i}.dcm")), *b))
        .collect();
    if pick & 0x80 != 0 {
        files.push((PathBuf::from("fuzzed.dcm"), fuzzed));
    } else {
        files[usize::from(pick) % SERIES.len()].1 = fuzzed;
    }
    let _ = acus_dicom::read_ct_buffers(&files, "fuzz", Some(300), Vec::new());
});
