//! Typed failures of recording and reading records.

use std::path::PathBuf;

/// A schema that cannot be assembled.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("message type {0:?} is not of the form pkg/msg/Type")]
    BadTypeName(String),
    #[error("AMENT_PREFIX_PATH is unset: no .msg files to build schemas from")]
    NoAmentPrefix,
    #[error("no .msg file for {msg_type} under {prefixes:?}")]
    NotFound { msg_type: String, prefixes: Vec<PathBuf> },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// A record that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("MCAP: {0}")]
    Mcap(#[from] mcap::McapError),
    #[error("schema: {0}")]
    Schema(#[from] SchemaError),
    #[error("topic {topic} was recorded as {recorded}, now written as {written}")]
    TypeChanged {
        topic: String,
        recorded: String,
        written: String,
    },
    #[error("the record is finished; nothing more can be written")]
    Finished,
    #[error("the recorder's lock was poisoned by a panic")]
    Poisoned,
    #[error("ROS: {what}: {source}")]
    Ros { what: String, source: r2r::Error },
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error("{path} is not an MCAP record: {reason}")]
    NotARecord { path: PathBuf, reason: String },
}
