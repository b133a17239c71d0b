//! The one error type of this crate.

/// Errors of the drive stack (set-up and the non-real-time API; the cycle itself reports faults
/// as [`crate::cycle::Fault`] values, never as errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration file or URDF unusable.
    #[error("drive config: {0}")]
    Config(String),
    /// A field of the drive configuration refused at load, by its path in the file (`drives[2].gear_ratio`).
    #[error("drive config: {field} = {value}: {reason}")]
    ConfigField {
        /// Path of the field in the YAML file.
        field: String,
        /// The value found, as written.
        value: String,
        /// Why it is refused (the accepted range or rule).
        reason: String,
    },
    /// A drive at bring-up does not hold what the drive configuration says (identity or unit objects): it is refused
    /// before OP.
    #[error("drive {axis} ({joint}): {object} is {found}, the configuration expects {expected}")]
    DriveMismatch {
        /// Axis index (line position).
        axis: usize,
        /// Joint the configuration gives this drive.
        joint: String,
        /// The object compared.
        object: crate::cia402::DriveObject,
        /// What the drive holds.
        found: crate::cia402::ObjectValue,
        /// What the configuration implies.
        expected: crate::cia402::ObjectValue,
    },
    /// An object the bring-up must verify could not be read by SDO.
    #[error("drive {axis} ({joint}): reading {object} by SDO failed: {reason}")]
    DriveObjectUnreadable {
        /// Axis index (line position).
        axis: usize,
        /// Joint the configuration gives this drive.
        joint: String,
        /// The object.
        object: crate::cia402::DriveObject,
        /// The master's report.
        reason: String,
    },
    /// The bus did not find the configured number of drives.
    #[error("found {found} EtherCAT SubDevices, configuration expects {expected}")]
    DriveCount {
        /// Found on the bus.
        found: usize,
        /// Configured.
        expected: usize,
    },
    /// A drive's process image does not have the size our PDO mapping gives.
    #[error("drive {axis}: process image {inputs} B in / {outputs} B out, mapping needs {want_in} B / {want_out} B")]
    PdoSize {
        /// Axis index.
        axis: usize,
        /// Input bytes found.
        inputs: usize,
        /// Output bytes found.
        outputs: usize,
        /// Input bytes expected.
        want_in: usize,
        /// Output bytes expected.
        want_out: usize,
    },
    /// The EtherCAT master reported an error.
    #[error("EtherCAT master: {0}")]
    Master(String),
    /// The drives did not all reach OP.
    #[error("drives did not reach OP within {0} cycles")]
    OpTimeout(u32),
    /// A goal outside the joint range.
    #[error("goal {value:.4} for joint {joint} outside its range [{lower:.4}, {upper:.4}]")]
    GoalOutOfRange {
        /// Joint name.
        joint: String,
        /// Requested value, SI.
        value: f64,
        /// Lower limit, SI.
        lower: f64,
        /// Upper limit, SI.
        upper: f64,
    },
    /// Goal vector length differs from the number of axes.
    #[error("goal has {got} values, robot has {expected} axes")]
    GoalLength {
        /// Given.
        got: usize,
        /// Expected.
        expected: usize,
    },
    /// A safety setting out of its range.
    #[error("safety setting {field} = {value} out of range")]
    Settings {
        /// Field name.
        field: &'static str,
        /// Value given.
        value: f64,
    },
    /// A goal that is not a finite number (NaN or infinite): refused before anything moves.
    #[error("goal for joint {joint} is not a finite number ({value})")]
    NonFiniteGoal {
        /// Joint name.
        joint: String,
        /// Value given.
        value: f64,
    },
    /// A goal beyond the procedure's depth limit for that joint.
    #[error("goal {value:.4} for joint {joint} beyond its depth limit {limit:.4}")]
    GoalBeyondDepthLimit {
        /// Joint name.
        joint: String,
        /// Requested value, SI.
        value: f64,
        /// Depth limit in force, SI.
        limit: f64,
    },
    /// A depth limit that is not finite or lies below the joint's lower limit.
    #[error("depth limit {value} for axis {axis} invalid (finite, at least the lower limit {lower:.4})")]
    DepthLimit {
        /// Axis index.
        axis: usize,
        /// Value given.
        value: f64,
        /// Lower joint limit, SI.
        lower: f64,
    },
    /// No such axis.
    #[error("axis {axis} does not exist (robot has {axes})")]
    NoSuchAxis {
        /// Index given.
        axis: usize,
        /// Axes configured.
        axes: usize,
    },
    /// Every safety source slot is taken.
    #[error("all {max} safety source slots are registered")]
    TooManySources {
        /// Slots available.
        max: usize,
    },
    /// A safety source deadline of zero cycles (it could never be fresh).
    #[error("safety source {name}: deadline must be at least one cycle")]
    SourceDeadline {
        /// Source name.
        name: String,
    },
    /// Motion refused: an enable source is released or silent (the cycle holds every axis).
    #[error("motion refused: enable not held")]
    EnableNotHeld,
    /// Shutdown: the drives did not report Switch on disabled / Ready to switch on in time (the cycle thread was
    /// stopped anyway; the drives' own watchdog takes over).
    #[error("shutdown: axis {axis} still {state:?} after {cycles} cycles")]
    ShutdownTimeout {
        /// First axis not disabled.
        axis: usize,
        /// Its last reported state.
        state: crate::cia402::DriveState,
        /// Cycles waited.
        cycles: u64,
    },
    /// The cycle thread could not be started or ended with an error.
    #[error("cycle thread: {0}")]
    Thread(String),
}

impl From<ethercrab::error::Error> for Error {
    fn from(e: ethercrab::error::Error) -> Self {
        Error::Master(e.to_string())
    }
}
