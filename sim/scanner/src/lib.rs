//! acus virtual CT scanner.
//!
//! A [`Scene`] holds solid elements in the CT (LPS) frame — the fiducial frame at a known pose, a phantom body with skin,
//! fat, muscle, lesions and bone, a metal needle — each with a HU value; later elements overwrite earlier ones (painter's
//! order). [`scan`] samples it on a [`ScanProtocol`] grid with partial volume (supersampling of every voxel that a surface
//! crosses, over the pixel in-plane and the slice thickness along z: a box slice-sensitivity profile) and seeded Gaussian
//! noise, giving a `CtVolume`; [`write_series`] writes that as a DICOM CT series (CT Image Storage, explicit VR little
//! endian, int16 pixels, one file per slice).
#![deny(missing_docs)]

mod effects;
mod render;
mod scene;
pub mod study;
mod writer;

pub use effects::Streaks;
pub use render::{scan, ScanProtocol};
pub use scene::{
    Element, Needle, NeedlePath, PhantomBody, Scene, Shape, AIR_HU, FAT_HU, FIDUCIAL_HU, NEEDLE_HU, SOFT_TISSUE_HU,
};
pub use writer::{write_series, SeriesInfo};

/// Errors of the virtual scanner.
#[derive(Debug, thiserror::Error)]
pub enum ScannerError {
    /// The scan protocol is unusable.
    #[error("invalid scan protocol: {0}")]
    InvalidProtocol(String),
    /// The rendered volume was rejected by the volume type.
    #[error("volume: {0}")]
    Volume(#[from] acus_control::registration::RegistrationError),
    /// Building or writing a DICOM object failed.
    #[error("DICOM writing {path}: {message}")]
    Dicom {
        /// File being written.
        path: String,
        /// What failed.
        message: String,
    },
    /// File system error.
    #[error("I/O on {path}: {source}")]
    Io {
        /// Path involved.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}
