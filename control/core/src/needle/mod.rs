//! The needle in the check scan, and the correction of the next insertion step.
//!
//! After each insertion step the scanner takes a check scan. [`find_needle`] finds the metal near the axis the robot
//! believes the needle is on (its forward kinematics through the registration), fits the shaft and measures the tip
//! with sub-voxel accuracy. [`plan_correction`] fits the needle's curvature and the rigid error of its axis (tilt and
//! offset at the entry) to the tips and shafts seen so far and re-aims the guide about the entry point so that the
//! bevel's arc ends on the target.
//!
//! ```text
//! CtVolume + NeedleSearch ─find_needle→ NeedleObservation ─┐
//! steps so far (holder pose, length, observed tip) + target ─plan_correction→ Correction (guide direction, depth left)
//! ```
//! Pure: no IO, CT (LPS) frame, SI units.

mod background;
pub mod correction;
pub mod locate;

pub use correction::{plan_correction, AxisPrior, Correction, CorrectionInput, InsertionStep, ObservedShaft};
pub use locate::{find_needle, NeedleObservation, NeedleSearch};

/// Everything that can go wrong finding the needle or planning the correction.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NeedleError {
    /// A parameter or input is out of range or not finite.
    #[error("invalid {name}: {value}")]
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// Its value (SI units).
        value: f64,
    },
    /// The expected axis misses the scanned volume.
    #[error("the expected needle axis ({length_mm:.1} mm from the entry) does not pass through the scanned volume")]
    AxisOutsideVolume {
        /// Length of the searched axis, mm.
        length_mm: f64,
    },
    /// Nothing metal-bright near the expected axis.
    #[error(
        "no metal within {radius_mm:.1} mm of the expected needle axis (brightest voxel {peak_hu:.0} HU, metal needs {min_hu:.0} HU)"
    )]
    NoMetal {
        /// Search radius, mm.
        radius_mm: f64,
        /// Brightest voxel in the search cylinder, HU.
        peak_hu: f64,
        /// Least peak that counts as metal, HU.
        min_hu: f64,
    },
    /// The tip is too close to the border of the scan to measure it.
    #[error(
        "needle tip at the edge of the scanned volume: {side} window reaches {outside_mm:.1} mm beyond the volume"
    )]
    TipAtEdge {
        /// Which measurement window left the volume ("tip" beyond the tip, "shaft" behind it).
        side: &'static str,
        /// How far beyond the volume, mm.
        outside_mm: f64,
    },
    /// Too little needle to measure.
    #[error("only {visible_mm:.1} mm of needle visible; {needed_mm:.1} mm of shaft are needed to measure the tip")]
    TooShort {
        /// Visible metal length along the axis, mm.
        visible_mm: f64,
        /// Needed, mm.
        needed_mm: f64,
    },
    /// The metal does not look like a needle (no line, no contrast against tissue).
    #[error("needle fit failed: {0}")]
    Fit(String),
    /// The correction has nothing to work from.
    #[error("correction needs the observed tip after the last step; {steps} steps given, last without an observation")]
    NoObservation {
        /// Steps given.
        steps: usize,
    },
    /// The target cannot be reached on an arc of the estimated curvature from the current tip.
    #[error(
        "target {distance_mm:.1} mm from the tip is beyond reach of an arc of curvature {curvature:.2} 1/m (at most {reach_mm:.1} mm)"
    )]
    Unreachable {
        /// Tip-to-target distance, mm.
        distance_mm: f64,
        /// Estimated curvature, 1/m.
        curvature: f64,
        /// Largest chord of that arc, mm.
        reach_mm: f64,
    },
    /// The target lies behind the tip: the needle would have to come back.
    #[error("target lies {behind_mm:.1} mm behind the tip (angle {angle_deg:.1}° off the heading); retract instead")]
    TargetBehind {
        /// Distance behind the tip along the heading, mm.
        behind_mm: f64,
        /// Angle between the heading and the tip→target line, degrees.
        angle_deg: f64,
    },
}
