//! Pictures for the operator and the procedure record: what each check scan showed and how well the registration fit.
//!
//! Each picture is one self-contained SVG (the CT slice is an embedded PNG data URI; no script, no external
//! reference), so it opens in any browser, travels as one file, and can be archived with the procedure. Everything
//! is pure: the functions take the volume and the points and return a string; [`write_svg`] is the only IO.
//!
//! - [`check_scan_svg`]: an oblique reformat through the planned path and the tip found, with the plan (path,
//!   target) and the findings (target found, needle, tip) drawn over it, a 10 mm scale bar, title and legend. It
//!   returns the [`SlicePlane`] too, the exact CT ↔ SVG mapping the overlays were drawn with.
//! - [`registration_svg`]: fiducials found against the frame model in CT, two orthogonal projections, residuals ×10.

mod check;
mod encode;
mod plane;
mod registration;

pub use check::{check_scan_svg, check_scan_svg_with, CheckRender, CheckView, Picture};
pub use plane::SlicePlane;
pub use registration::{registration_svg, RESIDUAL_EXAGGERATION};

use std::path::Path;

/// Writes an SVG document to `path` through a temporary file in the same folder and a rename, so a reader (or a
/// crash) never sees half a picture.
pub fn write_svg(path: impl AsRef<Path>, svg: &str) -> std::io::Result<()> {
    let path = path.as_ref();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, svg)?;
    std::fs::rename(&tmp, path)
}
