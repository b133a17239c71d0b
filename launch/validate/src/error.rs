//! The crate's one error type: every variant names the trial, field or file it is about, so a study that fails to write
//! says where without a debugger.

use std::path::PathBuf;

/// Why a trial, a criterion, a measurement or a study folder was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A number that must be finite is NaN or infinite (a broken measurement must not become a statistic).
    #[error("trial {trial}: `{field}` is {value}; it must be a finite number")]
    NotFinite {
        /// The trial's index (`Trial::trial`).
        trial: usize,
        /// The CSV column.
        field: &'static str,
        /// The value refused.
        value: f64,
    },
    /// A finite number outside the range its meaning allows (a distance below zero, an angle above 180°).
    #[error("trial {trial}: `{field}` is {value}; it must be {range}")]
    OutOfRange {
        /// The trial's index.
        trial: usize,
        /// The CSV column.
        field: &'static str,
        /// The value refused.
        value: f64,
        /// The allowed range, in words.
        range: &'static str,
    },
    /// A finished trial without one of the measurements every finished trial has.
    #[error("trial {trial}: outcome is done but `{field}` is empty; a finished trial has every tip measurement")]
    MissingMetric {
        /// The trial's index.
        trial: usize,
        /// The empty CSV column.
        field: &'static str,
    },
    /// The reason column disagrees with the outcome: a stop needs the operator's sentence, a finished trial has none.
    #[error("trial {trial}: outcome {outcome} {problem}")]
    Reason {
        /// The trial's index.
        trial: usize,
        /// The outcome, lower-case.
        outcome: &'static str,
        /// What is wrong, in words.
        problem: &'static str,
    },
    /// A success criterion that cannot be judged (limit not finite, slice thickness not positive).
    #[error("success criterion {index} ({criterion}): {problem}")]
    Criterion {
        /// Position in `StudyInfo::criteria`, from 0.
        index: usize,
        /// The criterion in words.
        criterion: String,
        /// What is wrong.
        problem: String,
    },
    /// Study information that summary.json could not carry or the report could not state.
    #[error("study info: {0}")]
    Info(String),
    /// Degenerate geometry for a tip measurement (the direction it needs has no length, or a point is not finite).
    #[error("tip measurement: {0}")]
    Geometry(String),
    /// A CT picture that would break the report's promise of a self-contained file without scripts.
    #[error("CT picture {index} (trial {trial}): {problem}")]
    Picture {
        /// Position in the pictures given, from 0.
        index: usize,
        /// The trial it belongs to.
        trial: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// A row of a trials CSV that parsed but failed validation.
    #[error("{}, line {line}: {source}", path.display())]
    Row {
        /// The CSV file.
        path: PathBuf,
        /// The line in the file (1 = the header).
        line: u64,
        /// What is wrong with the row.
        source: Box<Error>,
    },
    /// Reading or writing a file or folder.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// CSV syntax or a cell that does not parse into its column's type (the csv error carries line and field).
    #[error("{}: {source}", path.display())]
    Csv {
        /// The CSV file (or the file being written).
        path: PathBuf,
        /// The csv crate's error.
        source: csv::Error,
    },
    /// JSON encoding or decoding.
    #[error("{}: {source}", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// A plot that plotters could not draw.
    #[error("plot `{plot}`: {message}")]
    Plot {
        /// Which plot.
        plot: &'static str,
        /// plotters' error, as text (its type is generic over the backend).
        message: String,
    },
}
