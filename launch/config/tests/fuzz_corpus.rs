//! Replays the checked-in fuzz inputs of the sim config and world loaders (fuzz/corpus/{sim_config,world_yaml} and any
//! crash regressions in fuzz/regressions/) through the entry points the fuzz targets drive, so plain `cargo test` checks
//! them without the fuzzer. Each must give Ok or a typed error; a panic fails the test.

use std::path::{Path, PathBuf};

use acus_launch_config::{ConfigError, Parts, SimConfig, SimFile, WorldModel};

const URDF: &str = include_str!("../../../urdf/positioner.urdf");
const SIM: &str = include_str!("../sim.yaml");
const WORLD: &str = include_str!("../worlds/realistic.yaml");

/// The UTF-8 files of fuzz/<kind>/<target> (none when the folder does not exist: regressions only appear with a crash).
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| String::from_utf8(std::fs::read(&p).unwrap()).ok().map(|t| (p, t)))
        .collect()
}

fn parts(world: WorldModel) -> Parts {
    Parts {
        design_urdf: URDF.to_owned(),
        design_path: "positioner.urdf".into(),
        urdf: URDF.to_owned(),
        urdf_path: "positioner.urdf".into(),
        drives_path: "positioner_drives.yaml".into(),
        world,
        world_path: "<fuzz>".into(),
    }
}

/// What fuzz/fuzz_targets/sim_config.rs does with one input.
fn sim_config(text: &str) -> Result<SimConfig, ConfigError> {
    let file = SimFile::from_yaml(text)?;
    let mut config = SimConfig::from_parts(file, parts(WorldModel::from_yaml(WORLD).unwrap()))?;
    let seed = config.file.seed.wrapping_add(1);
    config.set_seed(seed)?;
    Ok(config)
}

/// What fuzz/fuzz_targets/world_yaml.rs does with one input.
fn world_yaml(text: &str) -> Result<SimConfig, ConfigError> {
    let world = WorldModel::from_yaml(text).map_err(|error| ConfigError::World {
        path: "<fuzz>".into(),
        error,
    })?;
    SimConfig::from_parts(SimFile::from_yaml(SIM).unwrap(), parts(world))
}

#[test]
fn sim_config_corpus_and_regressions_replay_without_panic() {
    let corpus = inputs("corpus", "sim_config");
    assert!(
        corpus.iter().any(|(p, _)| p.ends_with("sim.yaml")),
        "the shipped sim file seeds the corpus"
    );
    for (path, text) in &corpus {
        let r = sim_config(text);
        assert!(
            r.is_ok(),
            "every seed is a usable file: {}: {:?}",
            path.display(),
            r.err()
        );
    }
    for (_, text) in inputs("regressions", "sim_config") {
        let _ = sim_config(&text);
    }
}

#[test]
fn world_yaml_corpus_and_regressions_replay_without_panic() {
    let corpus = inputs("corpus", "world_yaml");
    assert!(corpus.len() >= 2, "the shipped worlds seed the corpus");
    for (path, text) in &corpus {
        let r = world_yaml(text);
        assert!(
            r.is_ok(),
            "every seed is a usable world: {}: {:?}",
            path.display(),
            r.err()
        );
    }
    for (_, text) in inputs("regressions", "world_yaml") {
        let _ = world_yaml(&text);
    }
}
