//! Replays the checked-in fuzz inputs for acus-control's loaders (fuzz/corpus/ and the crash regressions in
//! fuzz/regressions/) through the entry points the fuzz targets drive, so plain `cargo test` checks them without the
//! fuzzer. Each must give Ok or a typed error; a panic fails the test.

use std::path::{Path, PathBuf};

use acus_control::kinematics::PositionerModel;
use acus_control::registration::FiducialModel;

/// Texts of `fuzz/<kind>/<target>/` (dot files and non-UTF-8 inputs, which the targets ignore, skipped), sorted.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| String::from_utf8(std::fs::read(&p).unwrap()).ok().map(|t| (p, t)))
        .collect()
}

#[test]
fn urdf_positioner_corpus_and_regressions_replay_without_panic() {
    let corpus = inputs("corpus", "urdf_positioner");
    assert!(
        corpus.iter().any(|(p, _)| p.ends_with("positioner.urdf")),
        "the robot's URDF seeds the corpus"
    );
    for (path, text) in &corpus {
        let r = PositionerModel::from_urdf_str(text);
        if path.ends_with("positioner.urdf") {
            assert!(r.is_ok(), "{}: {r:?}", path.display());
        }
    }
    for (path, text) in inputs("regressions", "urdf_positioner") {
        let _ = (path, PositionerModel::from_urdf_str(&text));
    }
}

#[test]
fn urdf_fiducials_corpus_and_regressions_replay_without_panic() {
    let corpus = inputs("corpus", "urdf_fiducials");
    assert!(
        corpus.iter().any(|(p, _)| p.ends_with("positioner.urdf")),
        "the robot's URDF seeds the corpus"
    );
    for (path, text) in &corpus {
        let r = FiducialModel::from_urdf_str(text);
        if path.ends_with("positioner.urdf") {
            assert!(r.is_ok(), "{}: {r:?}", path.display());
        }
    }
    for (path, text) in inputs("regressions", "urdf_fiducials") {
        let _ = (path, FiducialModel::from_urdf_str(&text));
    }
}
