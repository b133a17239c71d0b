//! acus needle–tissue model for the simulated CT-guided biopsy.
//!
//! A bevel-tip needle pushed into soft tissue does not go straight: the asymmetric cutting force on the bevel bends it, and
//! its tip follows, to a good approximation, an arc of constant curvature κ in the plane of the bevel (Webster, Kim,
//! Cowan, Chirikjian, Okamura, "Nonholonomic modeling of needle steering", IJRR 25(5–6), 2006: the tip is a unicycle-like
//! frame that moves along its heading and turns about the bevel normal at a rate proportional to the insertion speed).
//! The tissue also moves: the target (lesion) is pushed ahead of the needle by a few millimetres.
//!
//! [`NeedleInTissue`] is that model, in the CT (LPS) frame, SI units. Its inputs are what the robot does: the needle-guide
//! pose (the remote centre of motion sits on the skin entry point; the holder's +z is the needle direction; the bevel is
//! fixed in the holder frame because the robot has no roll axis) and insertion increments. Its outputs are the ground truth
//! the virtual CT scanner renders: the tip, the shaft polyline and the displaced target.
//!
//! Pure and deterministic: the same [`TissueModel`] (with its seed) and the same commands give the same needle.
#![deny(missing_docs)]

mod tissue;

pub use tissue::{GuidePose, NeedleInTissue};

/// Parameters of the needle–tissue pair. Lengths in metres, curvature in 1/m, angles in rad.
///
/// The defaults are an 18 G (Ø 1.27 mm) stainless-steel bevel biopsy needle in liver-like soft tissue:
/// - `curvature` 0.6 1/m (radius 1.7 m), i.e. 3 mm lateral tip deflection after 100 mm. Webster et al. (2006) measured
///   radii of the order of 0.2 m for a very flexible nitinol needle in stiff gel; a steel 18 G needle is ~20× stiffer in
///   bending, and ex-vivo and phantom studies of steel bevel needles report lateral deflections of a few mm per 100 mm
///   (Rand et al. 2016: 8–10 mm at 80 mm for the thinner 22 G bevel needles in ballistic gel). κ = 2δ/L² with
///   δ = 2–5 mm at L = 100 mm gives 0.4–1 1/m; 0.6 1/m is in the middle.
/// - `curvature_spread` 0.25: tissue varies from patient to patient; each seeded needle draws its κ from
///   κ·(1 + 0.25·N(0, 1)) (clamped at 0).
/// - `heading_noise` 0.01 rad/√m: a random walk of the tip heading (tissue inhomogeneity), ≈ 3 mrad after 100 mm.
/// - `shift_max` 3 mm, `shift_length` 40 mm: the lesion is dragged ahead of the needle along its heading by
///   `shift_max·(1 − exp(−d/shift_length))` after inserting `d` (saturating: the tissue slips once friction and stiffness
///   balance). A few mm is the order of target motion reported for needle insertion into liver and prostate (e.g.
///   DiMaio & Salcudean 2003); the numbers here are chosen, not fitted.
/// - `pivot_heading_transfer` 1.0: see [`NeedleInTissue::set_guide`].
/// - `skin_drag` 1 mm: how far the guide tip may slide over the skin with the needle in, the skin and the shaft at the
///   entry following it. A robot as built pivots about a point a fraction of a millimetre from its guide tip (its axes
///   miss each other by the machining errors), so a re-aim drags the entry by tenths of a millimetre, which skin takes
///   up; chosen, not measured.
#[derive(Clone, Debug, PartialEq)]
pub struct TissueModel {
    /// Nominal tip-path curvature κ, 1/m (≥ 0).
    pub curvature: f64,
    /// Relative 1σ spread of κ between seeds (≥ 0).
    pub curvature_spread: f64,
    /// Angle of the bevel's bending direction about the needle axis, measured in the holder frame from its +x towards
    /// +y, rad. The bevel is fixed in the holder (no roll axis), so this is set when the needle is mounted.
    pub bevel_angle: f64,
    /// Random-walk intensity of the tip heading, rad/√m (≥ 0; 0 gives exact arcs).
    pub heading_noise: f64,
    /// Saturation value of the target displacement, metres (≥ 0).
    pub shift_max: f64,
    /// Insertion depth over which the target displacement approaches its saturation (e-folding length), metres (> 0).
    pub shift_length: f64,
    /// Fraction of a guide pivot's rotation that the tip heading takes when the guide re-aims with the needle inserted,
    /// in [0, 1].
    pub pivot_heading_transfer: f64,
    /// Farthest the guide tip may slide off the entry with the needle in, the skin following it, metres (≥ 0).
    pub skin_drag: f64,
    /// Largest arc length integrated in one piece, metres (> 0): the spacing of the shaft polyline and of the noise.
    pub step: f64,
    /// Seed of the curvature draw and the heading noise.
    pub seed: u64,
}

impl Default for TissueModel {
    fn default() -> Self {
        Self {
            curvature: 0.6,
            curvature_spread: 0.25,
            bevel_angle: 0.0,
            heading_noise: 0.01,
            shift_max: 3.0e-3,
            shift_length: 0.04,
            pivot_heading_transfer: 1.0,
            skin_drag: 1.0e-3,
            step: 1.0e-3,
            seed: 1,
        }
    }
}

impl TissueModel {
    /// The default tissue with no randomness: κ exactly `curvature`, no heading noise, no target shift. For tests that
    /// compare against closed forms.
    pub fn ideal(curvature: f64) -> Self {
        Self {
            curvature,
            curvature_spread: 0.0,
            heading_noise: 0.0,
            shift_max: 0.0,
            ..Self::default()
        }
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), NeedleError> {
        let checks = [
            ("curvature", self.curvature, self.curvature >= 0.0),
            ("curvature_spread", self.curvature_spread, self.curvature_spread >= 0.0),
            ("bevel_angle", self.bevel_angle, true),
            ("heading_noise", self.heading_noise, self.heading_noise >= 0.0),
            ("shift_max", self.shift_max, self.shift_max >= 0.0),
            ("shift_length", self.shift_length, self.shift_length > 0.0),
            (
                "pivot_heading_transfer",
                self.pivot_heading_transfer,
                (0.0..=1.0).contains(&self.pivot_heading_transfer),
            ),
            ("step", self.step, self.step > 0.0),
            ("skin_drag", self.skin_drag, self.skin_drag >= 0.0),
        ];
        for (name, value, ok) in checks {
            if !value.is_finite() || !ok {
                return Err(NeedleError::InvalidModel { name, value });
            }
        }
        Ok(())
    }
}

/// Everything the needle model refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NeedleError {
    /// A model parameter is out of range or not finite.
    #[error("tissue model parameter {name} = {value} is out of range")]
    InvalidModel {
        /// Parameter name.
        name: &'static str,
        /// Its value (SI units).
        value: f64,
    },
    /// An input is NaN or infinite.
    #[error("{what} is not finite")]
    NotFinite {
        /// Which input.
        what: &'static str,
    },
    /// Insertion only goes forward (retraction is not modelled).
    #[error("insertion increment {increment_mm:.3} mm is negative; the model only advances")]
    NegativeIncrement {
        /// The increment, mm.
        increment_mm: f64,
    },
    /// The guide was moved off the entry point with the needle in tissue.
    #[error("guide moved {moved_mm:.3} mm off the entry point with {depth_mm:.1} mm of needle inserted; only pivots about the entry are possible")]
    EntryMoved {
        /// Distance between the old and new entry, mm.
        moved_mm: f64,
        /// Inserted depth, mm.
        depth_mm: f64,
    },
}
