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
