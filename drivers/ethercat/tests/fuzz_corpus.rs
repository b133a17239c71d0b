//! Replays the checked-in fuzz inputs for the drive YAML loader (fuzz/corpus/drives_yaml and the crash regressions in
//! fuzz/regressions/drives_yaml) through the entry point the fuzz target drives, so plain `cargo test` checks them
//! without the fuzzer. Each must give Ok or a typed error; a panic fails the test.

use std::path::{Path, PathBuf};

use acus_ethercat::config::{DrivesConfig, DrivesFile};

const URDF: &str = include_str!("../../../urdf/positioner.urdf");

fn inputs(kind: &str) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("drives_yaml");
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

/// What fuzz/fuzz_targets/drives_yaml.rs does with one input.
fn load(text: &str) -> Option<Result<DrivesConfig, acus_ethercat::Error>> {
    let file = serde_yaml::from_str::<DrivesFile>(text).ok()?;
    Some(DrivesConfig::from_parts(&file, URDF))
}

#[test]
fn drives_yaml_corpus_and_regressions_replay_without_panic() {
    let corpus = inputs("corpus");
    assert!(
        corpus.iter().any(|(p, _)| p.ends_with("positioner_drives.yaml")),
        "the repo's drive file seeds the corpus"
    );
    for (path, text) in &corpus {
        let r = load(text);
        if path.ends_with("positioner_drives.yaml") {
            assert!(matches!(r, Some(Ok(_))), "{}: {r:?}", path.display());
        }
    }
    for (_, text) in inputs("regressions") {
        let _ = load(&text);
    }
}
