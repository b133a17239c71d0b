//! acus validate, the analysis half of a phantom accuracy study: trial rows in, the study folder out
//! (trials.csv, summary.json, report.md and a self-contained report.html with SVG plots and CT pictures).
//!
//! It reports what published CT needle robots report, per slice thickness and with/without check-scan correction:
//! ED, ND, depth and angle errors as mean ± SD, median, 95th percentile and maximum; ASTM F2554 bias and precision;
//! predicted vs observed TRE; and success criteria declared before the run with their verdicts. Units are mm and
//! degrees here because this is a report for people; the measuring helper takes SI like the rest of acus.
//!
//! Pure but for [`write_study`], [`read_trials`], [`summarize_csv`], [`read_summary`] and [`write_atomic`].
#![deny(missing_docs)]

mod criteria;
mod error;
mod measures;
mod plots;
mod report;
mod report_html;
mod report_md;
mod stats;
mod study;
mod trial;
mod write;

pub use criteria::{Metric, Statistic, SuccessCriterion, Verdict, VerdictResult};
pub use error::Error;
pub use measures::{PlannedPath, TipMeasures};
pub use stats::{percentile_sorted, summarize, BiasPrecision, Counts, GroupSummary, Stats, Summary};
pub use study::{StudyInfo, SummaryFile, TargetPicture, SUMMARY_VERSION};
pub use trial::{Outcome, Trial};
pub use write::{
    read_summary, read_trials, summarize_csv, write_atomic, write_study, REPORT_HTML, REPORT_MD, SUMMARY_JSON,
    TRIALS_CSV,
};
