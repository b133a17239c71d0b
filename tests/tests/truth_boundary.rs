//! The truth boundary of the twin: no crate under control/ or drivers/ depends on a sim crate except as a
//! dev-dependency (tests may image with the virtual scanner; the controller may not read the world's truth).

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
            manifests(&path, out);
        } else if path.file_name().is_some_and(|n| n == "Cargo.toml") {
            out.push(path);
        }
    }
}

/// Dependencies (not dev-dependencies) of a manifest that name a sim crate: `[dependencies]`, `[build-dependencies]`,
/// target-specific tables and `[dependencies.NAME]` sub-tables, by name, `package =` or a path into sim/.
fn sim_dependencies(manifest: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut section = String::new();
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            continue;
        }
        let last = section.rsplit('.').next().unwrap_or("");
        let in_deps = ["dependencies", "build-dependencies"].contains(&last)
            || section.starts_with("dependencies.")
            || section.starts_with("build-dependencies.")
            || section.contains(".dependencies.")
            || section.contains(".build-dependencies.");
        if !in_deps || line.is_empty() {
            continue;
        }
        let names_sim = line.contains("acus-sim") || line.contains("acus_sim") || line.contains("sim/");
        let subtable_is_sim = section.contains("acus-sim");
        if names_sim || subtable_is_sim {
            found.push(format!("[{section}] {line}"));
        }
    }
    found
}

#[test]
fn no_controller_or_driver_crate_depends_on_a_sim_crate() {
    let mut files = Vec::new();
    for dir in ["control", "drivers"] {
        manifests(&repo().join(dir), &mut files);
    }
    assert!(files.len() >= 4, "found only {files:?}");
    let mut offending = Vec::new();
    for f in &files {
        for dep in sim_dependencies(&std::fs::read_to_string(f).unwrap()) {
            offending.push(format!("{}: {dep}", f.display()));
        }
    }
    assert!(
        offending.is_empty(),
        "sim crates in the controller's dependencies:\n{}",
        offending.join("\n")
    );
}

/// The checker itself sees every way a manifest can name a sim crate, and not dev-dependencies.
#[test]
fn the_checker_finds_sim_dependencies_in_every_form() {
    let manifest = r#"
[package]
name = "x"
[dependencies]
nalgebra.workspace = true
acus-sim-twin.workspace = true
[dev-dependencies]
acus-sim-scanner.workspace = true
[target.'cfg(unix)'.dependencies]
world = { path = "../../sim/twin" }
[dependencies.acus-sim-needle]
version = "1"
[build-dependencies]
thing = { package = "acus-sim-ecat", version = "1" }
"#;
    let found = sim_dependencies(manifest);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(found.iter().all(|f| !f.contains("acus-sim-scanner")), "{found:#?}");
}
