//! CT-to-robot registration: fiducial spheres found in a CT volume, matched to the frame model from the URDF,
//! `T_robot_ct` fitted with its fiducial registration error (FRE) and Fitzpatrick's predicted target registration
//! error (TRE), then passed through a quality gate that refuses with the reason and the numbers.
//!
//! ```text
//! CtVolume ─detect_spheres→ Detections ─match_fiducials→ Correspondence ─register→ Registration ─QualityGate→ GatedRegistration
//! ```
//! Everything is pure; DICOM reading lives in `acus-dicom`.

pub mod detect;
pub mod gate;
pub mod matching;
pub mod model;
pub mod rigid;
pub mod volume;

pub use detect::{
    detect_spheres, detect_spheres_seeded, push_bright, BrightVoxels, Detection, DetectionParams, DetectionWorkspace,
    Detections, Rejection,
};
pub use gate::{
    register_and_gate, register_points, register_volume, register_volume_seeded, FiducialFit, GateError,
    GatedRegistration, QualityGate, Refusal, Registration, RegistrationParams,
};
pub use matching::{match_fiducials, Correspondence, MatchParams, Pair};
pub use model::FiducialModel;
pub use rigid::{fit_rigid, fle_from_fre, FiducialConfiguration};
pub use volume::{CtVolume, VolumeGeometry};

/// Everything that can go wrong in registration.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum RegistrationError {
    /// The volume's dimensions or geometry are unusable.
    #[error("invalid volume geometry: {0}")]
    InvalidGeometry(String),
    /// A tuning parameter is out of range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The fiducial frame model (URDF) is unusable.
    #[error("fiducial model: {0}")]
    Model(String),
    /// Too few points for a rigid fit.
    #[error("{found} point pairs; at least {needed} are needed")]
    TooFewPoints {
        /// Pairs given.
        found: usize,
        /// Pairs needed.
        needed: usize,
    },
    /// The point configuration does not determine a transform.
    #[error("degenerate configuration: {0}")]
    Degenerate(String),
    /// More bright blobs passed the filter than the matcher considers.
    #[error(
        "{found} sphere candidates exceed the matcher's limit of {max}; check the threshold and the field of view"
    )]
    TooManyCandidates {
        /// Candidates found.
        found: usize,
        /// Limit.
        max: usize,
    },
    /// No consistent assignment of at least 3 detections to the model.
    #[error(
        "could not match the frame: {detections} sphere candidates, {model} model spheres, best consistent set {best}"
    )]
    NoMatch {
        /// Candidates found.
        detections: usize,
        /// Spheres in the model.
        model: usize,
        /// Size of the largest consistent assignment.
        best: usize,
    },
    /// The quality gate refused the registration.
    #[error("registration refused: {0}")]
    Refused(#[from] Refusal),
}
