//! The plan of `acus validate scans`: which targets were attempted, from where, and which post-insertion series shows
//! each. Written by people, so its points are in millimetres (CT patient coordinates, DICOM LPS, as the planning
//! workstation shows them); they are converted to metres once, here.
//!
//! ```yaml
//! # Points: CT patient coordinates (DICOM LPS: +x patient's left, +y posterior, +z head), mm.
//! targets:
//!   - name: liver-1            # unique; names the row in the report
//!     entry: [20.0, -120.0, 10.0]   # planned skin entry
//!     target: [20.0, -30.0, 10.0]   # planned target
//!     series: post/liver-1     # its post-insertion series (a DICOM folder); relative to this file's folder
//! ```

use std::path::{Path, PathBuf};

use nalgebra::Vector3;
use serde::Deserialize;

/// One target of the plan, SI.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedTarget {
    /// Its name in the plan.
    pub name: String,
    /// Planned skin entry, CT LPS, m.
    pub entry: Vector3<f64>,
    /// Planned target, CT LPS, m.
    pub target: Vector3<f64>,
    /// Its post-insertion series folder (resolved against the plan file's folder).
    pub series: PathBuf,
}

/// The plan: its targets in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanPlan {
    /// Targets, in the order the file lists them (the rows' order).
    pub targets: Vec<PlannedTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    targets: Vec<TargetFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    name: String,
    entry: [f64; 3],
    target: [f64; 3],
    series: PathBuf,
}

/// Why a plan cannot be used: always naming the file, and the target and field when there is one.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read (the cause follows in the error chain).
    #[error("plan {path}: cannot be read")]
    Io {
        /// The plan file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not YAML of the plan's shape (the cause, serde's message naming the field and line, follows in the chain).
    #[error("plan {path}: not a valid plan")]
    Yaml {
        /// The plan file.
        path: PathBuf,
        /// Cause.
        source: serde_yaml::Error,
    },
    /// Parsed, but unusable.
    #[error("plan {path}: {problem}")]
    Invalid {
        /// The plan file.
        path: PathBuf,
        /// What is wrong, naming the target and field.
        problem: String,
    },
}

impl ScanPlan {
    /// Read and check a plan file: at least one target, unique non-empty names, finite points, entry ≠ target.
    pub fn load(path: &Path) -> Result<Self, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            Parse::Yaml(source) => PlanError::Yaml {
                path: path.to_path_buf(),
                source,
            },
            Parse::Invalid(problem) => PlanError::Invalid {
                path: path.to_path_buf(),
                problem,
            },
        })
    }

    /// Parse a plan's text; relative series folders are taken from `base`.
    fn parse(text: &str, base: &Path) -> Result<Self, Parse> {
        let file: PlanFile = serde_yaml::from_str(text).map_err(Parse::Yaml)?;
        if file.targets.is_empty() {
            return Err(Parse::Invalid("`targets` is empty; list at least one target".into()));
        }
        let mut targets: Vec<PlannedTarget> = Vec::with_capacity(file.targets.len());
        for (i, t) in file.targets.into_iter().enumerate() {
            let name = t.name.trim().to_owned();
            if name.is_empty() {
                return Err(Parse::Invalid(format!("target {} (from 1) has an empty `name`", i + 1)));
            }
            if targets.iter().any(|o| o.name == name) {
                return Err(Parse::Invalid(format!(
                    "target name `{name}` appears twice; names must be unique"
                )));
            }
            let point = |field: &str, mm: [f64; 3]| {
                if mm.iter().all(|v| v.is_finite()) {
                    Ok(Vector3::from(mm) * 1e-3)
                } else {
                    Err(Parse::Invalid(format!(
                        "target `{name}`: `{field}` {mm:?} mm is not finite"
                    )))
                }
            };
            let entry = point("entry", t.entry)?;
            let target = point("target", t.target)?;
            // 1 mm: closer than that there is no direction to insert along (and no plan anyone would make).
            if (target - entry).norm() < 1e-3 {
                return Err(Parse::Invalid(format!(
                    "target `{name}`: `entry` and `target` are {:.3} mm apart; they must be ≥ 1 mm apart",
                    (target - entry).norm() * 1e3
                )));
            }
            if t.series.as_os_str().is_empty() {
                return Err(Parse::Invalid(format!("target `{name}`: `series` is empty")));
            }
            targets.push(PlannedTarget {
                name,
                entry,
                target,
                series: base.join(t.series),
            });
        }
        Ok(Self { targets })
    }
}

enum Parse {
    Yaml(serde_yaml::Error),
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ScanPlan, String> {
        ScanPlan::parse(text, Path::new("/plans")).map_err(|e| match e {
            Parse::Yaml(e) => e.to_string(),
            Parse::Invalid(s) => s,
        })
    }

    #[test]
    fn a_plan_in_mm_becomes_si_with_series_beside_the_file() {
        let p = parse(
            "targets:\n  - name: a\n    entry: [20, -120, 10]\n    target: [20, -30, 10.5]\n    series: post/a\n  \
             - name: b\n    entry: [0, -120, 0]\n    target: [0, -30, 0]\n    series: /abs/b\n",
        )
        .unwrap();
        assert_eq!(p.targets.len(), 2);
        assert!((p.targets[0].target - Vector3::new(0.02, -0.03, 0.0105)).norm() < 1e-12);
        assert_eq!(p.targets[0].series, Path::new("/plans/post/a"));
        assert_eq!(p.targets[1].series, Path::new("/abs/b"));
    }

    #[test]
    fn bad_plans_name_the_target_and_field() {
        let e = parse("targets: []").unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let two =
            "targets:\n  - {name: a, entry: [0,0,0], target: [0,90,0], series: x}\n  - {name: a, entry: [0,0,0], \
                   target: [0,90,0], series: y}\n";
        assert!(parse(two).unwrap_err().contains("`a` appears twice"));
        let same = "targets:\n  - {name: c, entry: [0,0,0], target: [0,0,0.5], series: x}\n";
        assert!(parse(same).unwrap_err().contains("target `c`"));
        let e = parse("targets:\n  - {name: d, entry: [0,0], target: [0,90,0], series: x}\n").unwrap_err();
        assert!(e.contains("entry") || e.contains("3"), "{e}");
        let e = parse("targets:\n  - {name: d, entry: [0,0,0], target: [0,90,0], series: x, depth: 3}\n").unwrap_err();
        assert!(e.contains("depth"), "{e}");
    }
}
