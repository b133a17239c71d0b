//! The one error type of this crate.

/// Errors of the drive stack (set-up and the non-real-time API; the cycle itself reports faults
/// as [`crate::cycle::Fault`] values, never as errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration file or URDF unusable.
    #[error("drive config: {0}")]
    Config(String),
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
    /// The cycle thread could not be started or ended with an error.
    #[error("cycle thread: {0}")]
    Thread(String),
}

impl From<ethercrab::error::Error> for Error {
    fn from(e: ethercrab::error::Error) -> Self {
        Error::Master(e.to_string())
    }
}
