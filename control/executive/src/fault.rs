//! The procedure's faults, typed: what latched, in which motion or check scan.

use acus_control::procedure::Motion as Move;

use crate::check::CheckScanError;
use crate::motion::MotionError;

/// A fault the procedure met, with its cause as the part that found it reported it: a motion's latches; a check scan's
/// latches only for another frame of reference (otherwise the step's scan can be taken again).
#[derive(Clone, Debug, thiserror::Error)]
pub enum ExecutiveFault {
    /// A motion ended in an error (a cycle fault, a timeout, the drives disabled).
    #[error("{motion} stopped: {error}")]
    Motion {
        /// The motion.
        motion: Move,
        /// Why it stopped.
        error: MotionError,
    },
    /// A check scan could not be taken or analysed.
    #[error("check scan after step {}: {error}", .step + 1)]
    CheckScan {
        /// Step index (from 0).
        step: usize,
        /// Why.
        error: CheckScanError,
    },
}
