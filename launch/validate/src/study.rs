//! What a study is, beyond its trials: how it was run (for the report's configuration section) and the per-target CT
//! pictures the runner made.

use serde::{Deserialize, Serialize};

use crate::criteria::SuccessCriterion;
use crate::stats::Summary;
use crate::Error;

/// How the study was run; written verbatim into summary.json and the reports, so a figure always travels with the
/// world, software and criteria it was measured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyInfo {
    /// The command line as typed.
    pub command_line: String,
    /// The study's master seed.
    pub seed: u64,
    /// Trials (targets) requested.
    pub trials_requested: usize,
    /// Slice thicknesses studied, mm.
    pub slice_mm: Vec<f64>,
    /// The world's name (the phantom / twin configuration).
    pub world: String,
    /// The world's deviations from the nominal model, as text: what the accuracy figures were measured against.
    pub noise_model: String,
    /// The controller's configuration in brief (gates, correction policy, needle), as text.
    pub controller: String,
    /// Software version: the git revision (with a dirty marker if any).
    pub git_revision: String,
    /// When the study started, as the runner formats it.
    pub started: String,
    /// Wall-clock duration of the whole study, s.
    pub wall_s: f64,
    /// Success criteria, declared before the run.
    pub criteria: Vec<SuccessCriterion>,
}

impl StudyInfo {
    /// Refuse what summary.json could not carry back (non-finite numbers) and criteria that cannot be judged.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Info(what));
        if !(self.wall_s.is_finite() && self.wall_s >= 0.0) {
            return bad(format!("`wall_s` is {}; it must be a finite number ≥ 0", self.wall_s));
        }
        if let Some(s) = self.slice_mm.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return bad(format!(
                "`slice_mm` holds {s}; slice thicknesses must be finite and > 0"
            ));
        }
        for (i, c) in self.criteria.iter().enumerate() {
            c.validate(i)?;
        }
        Ok(())
    }
}

/// A ready-made CT picture of one trial's final check scan (a self-contained SVG, as acus-pictures makes them).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPicture {
    /// The trial (target index) it shows.
    pub trial: usize,
    /// The slice thickness of the scan, mm.
    pub slice_mm: f64,
    /// The SVG document; an XML prolog is stripped when embedded.
    pub svg: String,
}

/// The content of summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryFile {
    /// Format version of this file, [`SUMMARY_VERSION`]; bumped when a field changes meaning.
    pub version: u32,
    /// How the study was run.
    pub info: StudyInfo,
    /// The figures and verdicts.
    pub summary: Summary,
}

/// The summary.json format version written by this crate.
pub const SUMMARY_VERSION: u32 = 1;
