//! The registration result and the quality gate in front of it.
//!
//! `GatedRegistration` can only be built by `QualityGate::check`, so code that moves the robot can demand a registration
//! that passed the gate in its signature (a typestate: an unchecked `T_robot_ct` cannot reach motion).

use super::detect::{
    detect_spheres, detect_spheres_seeded, BrightVoxels, Detection, DetectionParams, DetectionWorkspace,
};
use super::matching::{match_fiducials, MatchParams};
use super::model::FiducialModel;
use super::rigid::{fle_from_fre, rms, FiducialConfiguration};
use super::volume::CtVolume;
use super::RegistrationError;
use crate::frames::{Ct, Point, RobotBase, Transform};

/// Parameters of the whole detection-to-transform pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistrationParams {
    /// Sphere detector.
    pub detection: DetectionParams,
    /// Correspondence search.
    pub matching: MatchParams,
}

impl RegistrationParams {
    /// Defaults for a model (sphere radius from the model).
    pub fn for_model(model: &FiducialModel) -> Self {
        Self {
            detection: DetectionParams::for_radius(model.radius()),
            matching: MatchParams::default(),
        }
    }
}

/// One matched fiducial.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FiducialFit {
    /// Index in the model.
    pub model_index: usize,
    /// Detected centre in the CT frame.
    pub detected: Point<Ct>,
    /// |T_robot_ct · detected − model|, metres (the fiducial's FRE).
    pub residual: f64,
}

/// A fitted, not yet gated, registration.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    t_robot_ct: Transform<RobotBase, Ct>,
    fits: Vec<FiducialFit>,
    missing: Vec<usize>,
    unmatched_candidates: usize,
    fre_rms: f64,
    config: FiducialConfiguration,
}

impl Registration {
    /// `T_robot_ct`: maps CT (LPS) points into the robot base.
    pub fn t_robot_ct(&self) -> Transform<RobotBase, Ct> {
        self.t_robot_ct
    }
    /// Matched fiducials with their residuals, by model index.
    pub fn fits(&self) -> &[FiducialFit] {
        &self.fits
    }
    /// Model indices of spheres not found.
    pub fn missing(&self) -> &[usize] {
        &self.missing
    }
    /// Sphere-like candidates that matched no model sphere (bone, contrast, needle...).
    pub fn unmatched_candidates(&self) -> usize {
        self.unmatched_candidates
    }
    /// RMS fiducial registration error, metres.
    pub fn fre_rms(&self) -> f64 {
        self.fre_rms
    }
    /// FLE implied by the FRE (√(N/(N−2))·FRE); `None` with 3 fiducials or fewer.
    pub fn fle_from_fre(&self) -> Option<f64> {
        fle_from_fre(self.fre_rms, self.fits.len())
    }
    /// Predicted RMS TRE at a CT point for a given FLE (Fitzpatrick 1998, eq. 46), metres.
    pub fn predicted_tre(&self, target: &Point<Ct>, fle: f64) -> f64 {
        self.config.predicted_tre(&self.t_robot_ct.apply(target), fle)
    }
}

/// Registers matched points: detections (CT) against the model (robot base).
pub fn register_points(
    model: &FiducialModel,
    detections: &[Point<Ct>],
    matching: &MatchParams,
) -> Result<Registration, RegistrationError> {
    let corr = match_fiducials(model, detections, matching)?;
    let t = corr.t_robot_ct;
    let fits: Vec<FiducialFit> = corr
        .pairs
        .iter()
        .map(|p| {
            let detected = detections[p.detection];
            FiducialFit {
                model_index: p.model,
                detected,
                residual: t.apply(&detected).distance(&model.points()[p.model]),
            }
        })
        .collect();
    let missing = (0..model.len())
        .filter(|i| !fits.iter().any(|f| f.model_index == *i))
        .collect();
    let used: Vec<Point<RobotBase>> = fits.iter().map(|f| model.points()[f.model_index]).collect();
    let fre_rms = rms(&fits.iter().map(|f| f.residual).collect::<Vec<_>>());
    Ok(Registration {
        t_robot_ct: t,
        missing,
        unmatched_candidates: detections.len() - fits.len(),
        fre_rms,
        config: FiducialConfiguration::new(&used)?,
        fits,
    })
}

/// Match `detections` (sphere centres found in a CT, in any order) to the model, fit and pass the gate at `targets`:
/// how a node that hears only the detections (the procedure, in a process of its own) reaches its own registration,
/// independently of the node that found them. A non-finite detection refuses the whole set: it can only come from a
/// corrupt message, and the matcher's distance tests compare false on NaN.
pub fn register_and_gate(
    model: &FiducialModel,
    detections: &[Point<Ct>],
    matching: &MatchParams,
    gate: &QualityGate,
    targets: &[Point<Ct>],
) -> Result<GatedRegistration, RegistrationError> {
    if let Some(i) = detections.iter().position(|p| !p.coords.iter().all(|c| c.is_finite())) {
        return Err(RegistrationError::InvalidParameter(format!(
            "detection {i} is not a finite point"
        )));
    }
    let registration = register_points(model, detections, matching)?;
    gate.check(registration, targets).map_err(RegistrationError::from)
}

/// The whole pipeline on a volume: detect, match, fit. Returns the registration and the detections it used.
pub fn register_volume(
    volume: &CtVolume,
    model: &FiducialModel,
    params: &RegistrationParams,
    ws: &mut DetectionWorkspace,
) -> Result<(Registration, Vec<Detection>), RegistrationError> {
    let found = detect_spheres(volume, &params.detection, ws)?;
    let centres: Vec<Point<Ct>> = found.spheres.iter().map(|d| d.center).collect();
    let reg = register_points(model, &centres, &params.matching)?;
    Ok((reg, found.spheres))
}

/// As [`register_volume`], with the bright voxels already listed (by the importer), skipping the detector's full scan.
pub fn register_volume_seeded(
    volume: &CtVolume,
    bright: &BrightVoxels,
    model: &FiducialModel,
    params: &RegistrationParams,
    ws: &mut DetectionWorkspace,
) -> Result<(Registration, Vec<Detection>), RegistrationError> {
    let found = detect_spheres_seeded(volume, &params.detection, bright, ws)?;
    let centres: Vec<Point<Ct>> = found.spheres.iter().map(|d| d.center).collect();
    let reg = register_points(model, &centres, &params.matching)?;
    Ok((reg, found.spheres))
}

/// Why the gate refused a registration.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Refusal {
    /// The gate itself is misconfigured (a limit NaN, infinite or negative): it refuses everything rather than pass
    /// registrations against a limit that compares false.
    #[error("registration gate misconfigured: {0}")]
    InvalidGate(GateError),
    /// Too few spheres matched.
    #[error("{found} fiducials matched, at least {min} required (missing model spheres {missing:?})")]
    TooFewFiducials {
        /// Matched.
        found: usize,
        /// Required.
        min: usize,
        /// Model indices not found.
        missing: Vec<usize>,
    },
    /// RMS FRE above the limit.
    #[error("FRE {fre_mm:.3} mm RMS exceeds the limit {max_mm:.3} mm")]
    FreTooHigh {
        /// Observed, mm.
        fre_mm: f64,
        /// Limit, mm.
        max_mm: f64,
    },
    /// A single fiducial fits badly (a displaced sphere or a wrong match).
    #[error("fiducial {index} residual {residual_mm:.3} mm exceeds the limit {max_mm:.3} mm")]
    FiducialResidualTooHigh {
        /// Model index.
        index: usize,
        /// Residual, mm.
        residual_mm: f64,
        /// Limit, mm.
        max_mm: f64,
    },
    /// The predicted TRE at a target is above the limit.
    #[error("predicted TRE {tre_mm:.3} mm at target ({x_mm:.1}, {y_mm:.1}, {z_mm:.1}) mm LPS exceeds the limit {max_mm:.3} mm")]
    PredictedTreTooHigh {
        /// Predicted, mm.
        tre_mm: f64,
        /// Limit, mm.
        max_mm: f64,
        /// Target, CT mm.
        x_mm: f64,
        /// Target, CT mm.
        y_mm: f64,
        /// Target, CT mm.
        z_mm: f64,
    },
}

/// A gate limit that is not a usable number.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum GateError {
    /// A length limit is NaN, infinite, negative or zero (a zero limit passes nothing: a configuration error too).
    #[error("{name} = {value_mm} mm; it must be finite and > 0")]
    BadLimit {
        /// The limit's field name.
        name: &'static str,
        /// Its value, mm.
        value_mm: f64,
    },
    /// Fewer than 3 fiducials cannot determine a rigid transform.
    #[error("min_fiducials = {0}; at least 3 are needed for a rigid registration")]
    TooFewFiducials(usize),
}

/// Acceptance thresholds (metres). Build it with [`QualityGate::new`] (range-checked); a gate built field by field is
/// checked again by [`QualityGate::check`], which refuses everything if a limit is unusable.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityGate {
    /// Minimum number of matched spheres.
    pub min_fiducials: usize,
    /// Maximum RMS FRE.
    pub max_fre_rms: f64,
    /// Maximum residual of any single fiducial.
    pub max_fiducial_residual: f64,
    /// Maximum predicted TRE at each target.
    pub max_predicted_tre: f64,
    /// FLE assumed at least (the larger of this and the FRE-implied FLE is used for the TRE prediction), so that a
    /// lucky small FRE cannot talk the prediction down.
    pub nominal_fle: f64,
}

impl Default for QualityGate {
    fn default() -> Self {
        Self {
            min_fiducials: 6,
            max_fre_rms: 0.5e-3,
            max_fiducial_residual: 1.0e-3,
            max_predicted_tre: 1.0e-3,
            nominal_fle: 0.2e-3,
        }
    }
}

/// A registration that passed the gate, with the FLE and worst predicted TRE it was judged on.
#[derive(Clone, Debug, PartialEq)]
pub struct GatedRegistration {
    registration: Registration,
    fle: f64,
    worst_predicted_tre: f64,
}

impl GatedRegistration {
    /// The registration.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }
    /// `T_robot_ct`.
    pub fn t_robot_ct(&self) -> Transform<RobotBase, Ct> {
        self.registration.t_robot_ct
    }
    /// FLE used for the TRE prediction, metres.
    pub fn fle(&self) -> f64 {
        self.fle
    }
    /// Largest predicted TRE over the targets checked, metres.
    pub fn worst_predicted_tre(&self) -> f64 {
        self.worst_predicted_tre
    }
}

/// `value ≤ limit`, false when either is NaN: every gate comparison fails closed.
fn within(value: f64, limit: f64) -> bool {
    value <= limit
}

impl QualityGate {
    /// A gate from its limits (metres), each checked finite and > 0, and `min_fiducials` ≥ 3.
    pub fn new(
        min_fiducials: usize,
        max_fre_rms: f64,
        max_fiducial_residual: f64,
        max_predicted_tre: f64,
        nominal_fle: f64,
    ) -> Result<Self, GateError> {
        let gate = Self {
            min_fiducials,
            max_fre_rms,
            max_fiducial_residual,
            max_predicted_tre,
            nominal_fle,
        };
        gate.validate()?;
        Ok(gate)
    }

    /// Checks every limit: finite and > 0 (metres), `min_fiducials` ≥ 3.
    pub fn validate(&self) -> Result<(), GateError> {
        if self.min_fiducials < 3 {
            return Err(GateError::TooFewFiducials(self.min_fiducials));
        }
        for (name, v) in [
            ("max_fre_rms", self.max_fre_rms),
            ("max_fiducial_residual", self.max_fiducial_residual),
            ("max_predicted_tre", self.max_predicted_tre),
            ("nominal_fle", self.nominal_fle),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(GateError::BadLimit {
                    name,
                    value_mm: v * 1e3,
                });
            }
        }
        Ok(())
    }

    /// Checks a registration against the thresholds, predicting TRE at each target (the planned target(s), or the
    /// region of interest if none is planned yet). The first failed check is reported. A gate whose limits do not
    /// [`validate`](Self::validate) refuses every registration, and a NaN FRE, residual or TRE fails its check.
    pub fn check(&self, registration: Registration, targets: &[Point<Ct>]) -> Result<GatedRegistration, Refusal> {
        self.validate().map_err(Refusal::InvalidGate)?;
        let found = registration.fits.len();
        if found < self.min_fiducials.max(3) {
            return Err(Refusal::TooFewFiducials {
                found,
                min: self.min_fiducials.max(3),
                missing: registration.missing.clone(),
            });
        }
        if !within(registration.fre_rms, self.max_fre_rms) {
            return Err(Refusal::FreTooHigh {
                fre_mm: registration.fre_rms * 1e3,
                max_mm: self.max_fre_rms * 1e3,
            });
        }
        if let Some(f) = registration
            .fits
            .iter()
            .find(|f| !within(f.residual, self.max_fiducial_residual))
        {
            return Err(Refusal::FiducialResidualTooHigh {
                index: f.model_index,
                residual_mm: f.residual * 1e3,
                max_mm: self.max_fiducial_residual * 1e3,
            });
        }
        let fle = registration.fle_from_fre().unwrap_or(0.0).max(self.nominal_fle);
        let mut worst = 0.0_f64;
        for t in targets {
            // A non-finite target has no TRE (the prediction's `max(0.0)` would swallow its NaN): it refuses.
            let tre = if t.is_finite() {
                registration.predicted_tre(t, fle)
            } else {
                f64::NAN
            };
            // NaN (a degenerate configuration) must refuse too.
            if !within(tre, self.max_predicted_tre) {
                return Err(Refusal::PredictedTreTooHigh {
                    tre_mm: tre * 1e3,
                    max_mm: self.max_predicted_tre * 1e3,
                    x_mm: t.coords.x * 1e3,
                    y_mm: t.coords.y * 1e3,
                    z_mm: t.coords.z * 1e3,
                });
            }
            worst = worst.max(tre);
        }
        Ok(GatedRegistration {
            registration,
            fle,
            worst_predicted_tre: worst,
        })
    }
}
