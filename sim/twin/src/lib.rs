//! The acus simulation twin, composed from its parts: emulated CiA 402 drives built from the robot's own drive
//! configuration (so masses, limits and encoders are the ones the master is configured with), a patient with a needle–tissue
//! model, and the virtual CT scanner that images both. Production code cannot tell the twin from a robot: the drives speak
//! EtherCAT, the scanner writes DICOM.
#![deny(missing_docs)]

pub mod breathing;
pub mod drives;
pub mod patient;
pub mod respiration;
pub mod robot;
pub mod tracker;
pub mod withdrawal;
pub mod world;

/// Errors of the twin.
#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    /// The EtherCAT emulator refused its set-up.
    #[error("EtherCAT emulator: {0}")]
    Ecat(#[from] acus_sim_ecat::Error),
    /// The master side refused its set-up.
    #[error("EtherCAT master: {0}")]
    Master(#[from] acus_ethercat::Error),
    /// The needle–tissue model refused.
    #[error("needle model: {0}")]
    Needle(acus_sim_needle::NeedleError),
    /// The scanner refused.
    #[error("scanner: {0}")]
    Scanner(acus_sim_scanner::ScannerError),
    /// The robot's placement puts a fiducial sphere in the patient: its image would merge with tissue, and a real
    /// frame cannot be there.
    #[error(
        "fiducial {index} of the robot's frame is in the patient (CT {x_mm:.1}, {y_mm:.1}, {z_mm:.1} mm): \
         place the robot (t_ct_robot) so that the frame clears the body"
    )]
    FiducialInBody {
        /// Fiducial index in the URDF's order.
        index: usize,
        /// Sphere centre, CT, mm.
        x_mm: f64,
        /// See `x_mm`.
        y_mm: f64,
        /// See `x_mm`.
        z_mm: f64,
    },
    /// The design URDF cannot be built into the twin's kinematics.
    #[error("robot as built: {0}")]
    Urdf(String),
    /// The tracker's reference cannot be placed on the frame as manufactured.
    #[error("tracker rig: {0}")]
    TrackerRig(String),
    /// One initial position per axis is needed.
    #[error("{got} initial positions for {axes} axes")]
    InitialPositions {
        /// Given.
        got: usize,
        /// Axes configured.
        axes: usize,
    },
}
