//! Replays the checked-in fuzz inputs (fuzz/corpus/ and the crash regressions in fuzz/regressions/) through the entry
//! points the fuzz targets drive, so plain `cargo test` checks them without the fuzzer. Each must give Ok or a typed
//! error; a panic fails the test.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Files of `fuzz/<kind>/<target>/` (dot files skipped), sorted.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

/// The fixed slices of the dicom_series target (the first three of fuzz/series/).
fn series() -> Vec<Vec<u8>> {
    (0..3)
        .map(|k| std::fs::read(fuzz_dir().join(format!("series/slice_{k}.dcm"))).unwrap())
        .collect()
}

/// What fuzz/fuzz_targets/dicom_series.rs does with one input.
fn series_with(data: &[u8], fixed: &[Vec<u8>]) -> Option<Result<usize, acus_dicom::DicomError>> {
    let (&pick, fuzzed) = data.split_first()?;
    let mut files: Vec<(PathBuf, &[u8])> = fixed
        .iter()
        .enumerate()
        .map(|(i, b)| (PathBuf::from(format!("slice_{i}.dcm")), b.as_slice()))
        .collect();
    if pick & 0x80 != 0 {
        files.push((PathBuf::from("fuzzed.dcm"), fuzzed));
    } else {
        files[usize::from(pick) % fixed.len()].1 = fuzzed;
    }
    Some(acus_dicom::read_ct_buffers(&files, "fuzz", Some(300), Vec::new()).map(|(_, r)| r.slices))
}

#[test]
fn fuzz_series_seeds_are_a_good_series() {
    let fixed = series();
    let files: Vec<(PathBuf, &[u8])> = fixed
        .iter()
        .enumerate()
        .map(|(i, b)| (PathBuf::from(format!("slice_{i}.dcm")), b.as_slice()))
        .collect();
    let (volume, report) = acus_dicom::read_ct_buffers(&files, "seeds", None, Vec::new()).unwrap();
    assert_eq!((volume.dims(), report.slices), ([40, 32, 3], 3));
}

#[test]
fn dicom_slice_corpus_and_regressions_replay_without_panic() {
    let corpus = inputs("corpus", "dicom_slice");
    assert!(!corpus.is_empty(), "the corpus is checked in");
    for (path, bytes) in &corpus {
        let r = acus_dicom::decode_slice(bytes, path);
        // The seeds are real slices from the virtual scanner: they must decode.
        if path.file_name().unwrap().to_string_lossy().starts_with("seed_") {
            assert!(matches!(r, Ok(Some(_))), "{}: {r:?}", path.display());
        }
    }
    for (path, bytes) in inputs("regressions", "dicom_slice") {
        let _ = acus_dicom::decode_slice(&bytes, &path);
    }
}

#[test]
fn dicom_series_corpus_and_regressions_replay_without_panic() {
    let fixed = series();
    let corpus = inputs("corpus", "dicom_series");
    assert!(!corpus.is_empty(), "the corpus is checked in");
    for (path, bytes) in &corpus {
        let r = series_with(bytes, &fixed);
        if path.file_name().unwrap().to_string_lossy().starts_with("seed_") {
            assert!(matches!(r, Some(Ok(3))), "{}: {r:?}", path.display());
        }
    }
    for (_, bytes) in inputs("regressions", "dicom_series") {
        let _ = series_with(&bytes, &fixed);
    }
}

#[test]
fn a_declared_length_beyond_the_file_is_refused_before_parsing() {
    // Found by the fuzzer: an element whose VR bytes were mutated declares 3.2 GB in a 3.7 kB file; dicom-rs would
    // reserve and zero that much before failing to read it.
    let path = fuzz_dir().join("regressions/dicom_slice/oom-declared-length-3GiB.dcm");
    let bytes = std::fs::read(&path).unwrap();
    match acus_dicom::decode_slice(&bytes, &path) {
        Err(acus_dicom::DicomError::LengthBeyondEnd {
            declared,
            remaining,
            tag,
            ..
        }) => {
            assert!(
                declared > 3_000_000_000 && remaining < 4_000,
                "{tag}: {declared} declared, {remaining} left"
            );
        }
        other => panic!("expected LengthBeyondEnd, got {other:?}"),
    }
}

#[test]
fn binary_values_that_are_not_whole_values_are_refused_before_parsing() {
    // Found by the fuzzer (dicom_slice twice, the two differing only in the ignored preamble; dicom_series once): an
    // implicit VR (0000,0000) UL of 122 (65) bytes. dicom-rs reads 30 (16) whole u32s and leaves 2 (1) bytes behind,
    // so its next header starts inside the value and declares 4 294 967 040 bytes: 4 GiB reserved and zeroed, 2.4 s.
    let fixed = series();
    let cases = [
        (
            "regressions/dicom_slice/oom-ul-length-not-whole-values-a.dcm",
            false,
            122,
        ),
        (
            "regressions/dicom_slice/oom-ul-length-not-whole-values-b.dcm",
            false,
            122,
        ),
        (
            "regressions/dicom_series/timeout-ul-length-not-whole-values.bin",
            true,
            65,
        ),
    ];
    for (name, series_input, length) in cases {
        let path = fuzz_dir().join(name);
        let bytes = std::fs::read(&path).unwrap();
        // A dicom_series input is the pick byte, then the file.
        let file = if series_input { &bytes[1..] } else { &bytes[..] };
        match acus_dicom::decode_slice(file, &path) {
            Err(acus_dicom::DicomError::LengthNotMultiple {
                tag, declared, unit, ..
            }) => assert_eq!((tag.as_str(), declared, unit), ("(0000,0000) UL", length, 4), "{name}"),
            other => panic!("{name}: expected LengthNotMultiple, got {other:?}"),
        }
        if series_input {
            let r = series_with(&bytes, &fixed);
            assert!(
                matches!(r, Some(Err(acus_dicom::DicomError::LengthNotMultiple { .. }))),
                "{name}: {r:?}"
            );
        }
    }
}

#[test]
fn the_data_set_is_walked_in_the_syntax_dicom_rs_reads_it_in() {
    // Found by the fuzzer: Transfer Syntax UID bytes "1.2.840.10008.1.2\0\n\0". dicom-rs trims any trailing whitespace
    // and reads implicit VR, where the first element declares 0x07000000 bytes (112 MiB reserved and zeroed, 100 ms);
    // a walk that kept the "\n" took the syntax for explicit VR and read that header as an empty UN.
    let path = fuzz_dir().join("regressions/dicom_slice/oom-ts-uid-trailing-newline.dcm");
    let bytes = std::fs::read(&path).unwrap();
    match acus_dicom::decode_slice(&bytes, &path) {
        Err(acus_dicom::DicomError::LengthBeyondEnd {
            tag,
            declared,
            remaining,
            ..
        }) => {
            assert_eq!((tag.as_str(), declared), ("(0000,0000)", 0x0700_0000));
            assert!(remaining < 512, "{remaining} bytes left");
        }
        other => panic!("expected LengthBeyondEnd, got {other:?}"),
    }
}
