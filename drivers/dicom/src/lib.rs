//! acus DICOM import: a folder holding one CT series → a `CtVolume` in Hounsfield units with LPS geometry.
//!
//! Slices are read in parallel, checked for consistency (one series, one orientation, one size, CT modality, a
//! supported transfer syntax), sorted by ImagePositionPatient projected on the slice normal, and checked for duplicated
//! or missing slices and non-uniform spacing. Each problem has its own error, with the numbers.
//! Supported: uncompressed (native) pixel data in implicit/explicit VR little endian, explicit VR big endian and deflated
//! explicit VR little endian, 16 bits allocated, one sample per pixel, signed or unsigned. Compressed (encapsulated)
//! syntaxes are refused by name.
#![deny(missing_docs)]

mod lengths;
mod series;
mod slice;

pub use series::{
    first_header, read_ct_buffers, read_ct_files, read_ct_series, read_ct_series_indexed, SeriesReport, MAX_VOXELS,
};
pub use slice::{decode_slice, read_header, read_header_from_bytes, SliceHeader};

/// Everything that can go wrong importing a CT series.
#[derive(Debug, thiserror::Error)]
pub enum DicomError {
    /// File system error.
    #[error("I/O on {path}: {source}")]
    Io {
        /// Path involved.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The folder holds no DICOM image.
    #[error("no DICOM images in {dir} ({skipped} other files skipped)")]
    NoImages {
        /// Folder searched.
        dir: String,
        /// Files that were not DICOM images.
        skipped: usize,
    },
    /// A file could not be parsed as DICOM.
    #[error("cannot parse {path} as DICOM: {message}")]
    Parse {
        /// File.
        path: String,
        /// Parser message.
        message: String,
    },
    /// A required attribute is absent.
    #[error("{path}: missing {attribute}")]
    MissingAttribute {
        /// File.
        path: String,
        /// Attribute keyword.
        attribute: &'static str,
    },
    /// An attribute has an unusable value.
    #[error("{path}: invalid {attribute} {value}")]
    InvalidAttribute {
        /// File.
        path: String,
        /// Attribute keyword.
        attribute: &'static str,
        /// The value found and why it is unusable.
        value: String,
    },
    /// The image is not CT.
    #[error("{path}: modality {modality}, expected CT")]
    NotCt {
        /// File.
        path: String,
        /// Modality found.
        modality: String,
    },
    /// Pixel data in a transfer syntax we do not decode.
    #[error("{path}: unsupported transfer syntax {uid} ({name}); export the series uncompressed")]
    UnsupportedTransferSyntax {
        /// File.
        path: String,
        /// Transfer Syntax UID.
        uid: String,
        /// Its name, if known.
        name: String,
    },
    /// Pixel layout we do not decode.
    #[error("{path}: unsupported pixel format: {detail}")]
    UnsupportedPixelFormat {
        /// File.
        path: String,
        /// What is unsupported.
        detail: String,
    },
    /// The header asks for more pixel data than the file can hold; refused before anything is allocated from it.
    #[error("{path}: {rows}×{columns} pixels need {needed_bytes} bytes of pixel data, more than the file's {file_bytes} bytes can hold")]
    PixelDataTooShort {
        /// File.
        path: String,
        /// Rows in the header.
        rows: usize,
        /// Columns in the header.
        columns: usize,
        /// Bytes the pixel data needs (rows × columns × 2).
        needed_bytes: u64,
        /// Size of the file.
        file_bytes: u64,
    },
    /// An element declares a value longer than the rest of the file (checked before parsing, which would reserve it).
    #[error("{path}: element {tag} declares {declared} bytes but only {remaining} follow")]
    LengthBeyondEnd {
        /// File.
        path: String,
        /// The element's tag, (gggg,eeee).
        tag: String,
        /// Declared value length, bytes.
        declared: u64,
        /// Bytes left in the file after the element's header.
        remaining: u64,
    },
    /// A binary value (US, UL, FD, ...) whose length is not a whole number of its values (checked before parsing:
    /// dicom-rs would read the whole values only and take the rest for the next element's header).
    #[error("{path}: element {tag} declares {declared} bytes, not a whole number of {unit}-byte values")]
    LengthNotMultiple {
        /// File.
        path: String,
        /// The element's tag and the VR it is read with, (gggg,eeee) VR.
        tag: String,
        /// Declared value length, bytes.
        declared: u64,
        /// Bytes per value of its VR.
        unit: u64,
    },
    /// The series would exceed the import's voxel bound.
    #[error("{path}: {columns}×{rows}×{slices} = {voxels} voxels exceed the import's bound of {max} voxels")]
    TooLarge {
        /// Series source.
        path: String,
        /// Columns per slice.
        columns: usize,
        /// Rows per slice.
        rows: usize,
        /// Slices.
        slices: usize,
        /// Voxels asked for.
        voxels: u64,
        /// The bound ([`MAX_VOXELS`]).
        max: u64,
    },
    /// Files from more than one series.
    #[error("mixed series: {count_a} slices of series {series_a} and {count_b} of {series_b} (e.g. {path_b})")]
    MixedSeries {
        /// First series UID.
        series_a: String,
        /// Slices in it.
        count_a: usize,
        /// Another series UID.
        series_b: String,
        /// Slices in it.
        count_b: usize,
        /// A file of the other series.
        path_b: String,
    },
    /// Slices with different orientations.
    #[error("mixed orientation: {path} is tilted {angle_deg:.3}° against the first slice ({first})")]
    MixedOrientation {
        /// Offending file.
        path: String,
        /// First slice's file.
        first: String,
        /// Largest angle between corresponding direction cosines, degrees.
        angle_deg: f64,
    },
    /// Slices of different size or pixel spacing.
    #[error("inconsistent slices: {path} has {detail}")]
    InconsistentSlices {
        /// Offending file.
        path: String,
        /// Difference found.
        detail: String,
    },
    /// Two slices at the same position.
    #[error("duplicated slice at {position_mm:.3} mm along the normal: {path_a} and {path_b}")]
    DuplicateSlice {
        /// Position along the slice normal, mm.
        position_mm: f64,
        /// One file.
        path_a: String,
        /// The other.
        path_b: String,
    },
    /// A gap of a whole number of slice spacings.
    #[error("{missing} slice(s) missing between {from_mm:.3} mm and {to_mm:.3} mm (spacing {spacing_mm:.3} mm)")]
    MissingSlices {
        /// Number of slices missing.
        missing: usize,
        /// Position before the gap, mm.
        from_mm: f64,
        /// Position after the gap, mm.
        to_mm: f64,
        /// Nominal spacing, mm.
        spacing_mm: f64,
    },
    /// Spacing varies.
    #[error("non-uniform slice spacing: {gap_mm:.3} mm between {from_mm:.3} mm and {to_mm:.3} mm, nominal {spacing_mm:.3} mm")]
    NonUniformSpacing {
        /// The odd gap, mm.
        gap_mm: f64,
        /// Position before it, mm.
        from_mm: f64,
        /// Position after it, mm.
        to_mm: f64,
        /// Nominal (median) spacing, mm.
        spacing_mm: f64,
    },
    /// Slice origins do not line up along the normal (gantry tilt or a sheared stack).
    #[error("slice {path} is displaced {offset_mm:.3} mm sideways from the stack axis (gantry tilt is not supported)")]
    ShearedStack {
        /// Offending file.
        path: String,
        /// Sideways offset, mm.
        offset_mm: f64,
    },
    /// The assembled volume was refused by the volume type.
    #[error("volume: {0}")]
    Volume(#[from] acus_control::registration::RegistrationError),
}
