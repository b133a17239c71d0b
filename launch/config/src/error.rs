//! What a configuration that cannot be used is refused with. Every variant names the field (its path in the YAML, e.g.
//! `controller.needle.diameter`) so the person editing the file knows which line to fix without reading code.

use acus_sim_twin::world::WorldError;

/// A sim configuration refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The YAML does not match the schema: unknown, duplicate or missing fields, wrong types, and the `start_pose`
    /// joints (unknown, duplicate, missing or out of chain order). serde_yaml's message starts with the field's path.
    #[error("parsing {path}: {message}")]
    Parse {
        /// File (`<text>` when parsed from a string).
        path: String,
        /// serde's message (names the field).
        message: String,
    },
    /// A number is NaN or infinite.
    #[error("{field} = {value} is not finite")]
    NotFinite {
        /// Field path, e.g. `controller.curvature_prior`.
        field: String,
        /// Value.
        value: f64,
    },
    /// A number is outside its range.
    #[error("{field} = {value} outside {range}")]
    OutOfRange {
        /// Field path, e.g. `planning_scan.pixel`.
        field: String,
        /// Value.
        value: f64,
        /// The accepted range with its unit, e.g. `(0, 0.005] m`.
        range: String,
    },
    /// A value that is not a number is unusable (an empty path, a bad console name, a console given twice, …).
    #[error("{field}: {reason}")]
    Invalid {
        /// Field path, e.g. `controller.consoles[1]`.
        field: String,
        /// Why.
        reason: String,
    },
    /// A URDF the file names is not a positioner the controller can drive.
    #[error("{field} ({path}): {message}")]
    Urdf {
        /// `robot` or `controller.urdf`.
        field: &'static str,
        /// The URDF file.
        path: String,
        /// The kinematics loader's message.
        message: String,
    },
    /// The world file is refused (its message names the world's field).
    #[error("world {path}: {error}")]
    World {
        /// The world file.
        path: String,
        /// Why.
        error: WorldError,
    },
    /// The world's needle–tissue parameters are refused by the needle model.
    #[error("world {path}: patient.tissue: {message}")]
    Tissue {
        /// The world file.
        path: String,
        /// The needle model's message (names the parameter).
        message: String,
    },
}

impl ConfigError {
    /// A parse error saying which file it came from (the parser only sees text).
    pub(crate) fn in_file(self, file: &str) -> Self {
        match self {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: file.to_owned(),
                message,
            },
            other => other,
        }
    }
}
