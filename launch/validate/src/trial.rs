//! One trial of the study = one CSV row. Flat columns with units in their names (mm, degrees), because the CSV is read
//! by people and spreadsheets; the rest of the project stays in SI.

use serde::{Deserialize, Serialize};

use nalgebra::Vector3;

use crate::measures::{PlannedPath, TipMeasures};
use crate::Error;

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The needle reached its final position and the tip was measured.
    Done,
    /// The controller or the operator stopped the procedure (a guard, a limit, a gate); `reason` says why.
    Stopped,
    /// The trial could not be run to a decision (a crash, a timeout, a broken scan); `reason` says why.
    Failed,
}

impl Outcome {
    /// The lower-case word used in the CSV and the reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Stopped => "stopped",
            Outcome::Failed => "failed",
        }
    }
}

/// One trial: a target reached (or not) at one slice thickness, with or without check-scan correction.
///
/// Points are in the CT frame (DICOM LPS), mm. Metric fields are `None` (an empty cell) when the trial did not finish;
/// a finished trial has every tip metric (ED, ND, depth and angle errors, error vector). FRE and the TRE figures are
/// optional for every trial, because a trial may stop before registration or the world may not know its truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The target's index in the study (the same target appears once per slice thickness and correction arm).
    pub trial: usize,
    /// The seed this trial's world noise was drawn from (re-running with it reproduces the trial).
    pub seed: u64,
    /// CT slice thickness of the planning and check scans, mm.
    pub slice_mm: f64,
    /// `true`: check-scan correction on; `false`: one straight insertion to the planned depth.
    pub correction: bool,
    /// How the trial ended.
    pub outcome: Outcome,
    /// Empty when done; otherwise the operator's sentence of why it stopped or failed.
    pub reason: String,
    /// Planned target, CT LPS x, mm.
    pub target_x_mm: f64,
    /// Planned target, CT LPS y, mm.
    pub target_y_mm: f64,
    /// Planned target, CT LPS z, mm.
    pub target_z_mm: f64,
    /// Planned skin entry, CT LPS x, mm.
    pub entry_x_mm: f64,
    /// Planned skin entry, CT LPS y, mm.
    pub entry_y_mm: f64,
    /// Planned skin entry, CT LPS z, mm.
    pub entry_z_mm: f64,
    /// Planned insertion depth |target − entry|, mm.
    pub depth_mm: f64,
    /// Planned path's angle from vertical (the CT's anterior–posterior axis, LPS y), 0–90°, either direction along
    /// the axis: 0° = a straight-down path. See [`crate::PlannedPath`].
    pub entry_angle_deg: f64,
    /// Euclidean distance tip–target, mm.
    pub ed_mm: Option<f64>,
    /// Normal distance of the target from the needle axis (lateral error), mm.
    pub nd_mm: Option<f64>,
    /// Signed depth error along the needle axis, mm: + = tip beyond the target.
    pub depth_error_mm: Option<f64>,
    /// Angle between the planned entry→target direction and the needle's actual axis, degrees.
    pub angle_error_deg: Option<f64>,
    /// Error vector tip − target, CT LPS x, mm (for the bias).
    pub err_x_mm: Option<f64>,
    /// Error vector tip − target, CT LPS y, mm.
    pub err_y_mm: Option<f64>,
    /// Error vector tip − target, CT LPS z, mm.
    pub err_z_mm: Option<f64>,
    /// Fiducial registration error of the registration used, mm.
    pub fre_mm: Option<f64>,
    /// Target registration error the registration predicted at this target, mm.
    pub predicted_tre_mm: Option<f64>,
    /// Target registration error observed at this target (against the world's truth), mm.
    pub observed_tre_mm: Option<f64>,
    /// Check scans taken (the planning scan not counted).
    pub check_scans: usize,
    /// Simulated procedure time, s.
    pub sim_s: f64,
    /// Wall-clock time the trial took to run, s.
    pub wall_s: f64,
}

impl Trial {
    /// A row with its plan (entry and target in CT LPS, m; the path between them) and nothing measured: done, no
    /// reason, every metric empty, no check scan. Callers fill in what they learn.
    pub fn planned(
        trial: usize,
        seed: u64,
        (slice_mm, correction): (f64, bool),
        (entry, target): (&Vector3<f64>, &Vector3<f64>),
        path: &PlannedPath,
        wall_s: f64,
    ) -> Trial {
        Trial {
            trial,
            seed,
            slice_mm,
            correction,
            outcome: Outcome::Done,
            reason: String::new(),
            target_x_mm: target.x * 1e3,
            target_y_mm: target.y * 1e3,
            target_z_mm: target.z * 1e3,
            entry_x_mm: entry.x * 1e3,
            entry_y_mm: entry.y * 1e3,
            entry_z_mm: entry.z * 1e3,
            depth_mm: path.depth_m * 1e3,
            entry_angle_deg: path.angle_from_vertical_rad.to_degrees(),
            ed_mm: None,
            nd_mm: None,
            depth_error_mm: None,
            angle_error_deg: None,
            err_x_mm: None,
            err_y_mm: None,
            err_z_mm: None,
            fre_mm: None,
            predicted_tre_mm: None,
            observed_tre_mm: None,
            check_scans: 0,
            sim_s: 0.0,
            wall_s,
        }
    }

    /// Fill the tip metrics from a measurement in SI (m, rad), converting to the columns' mm and degrees.
    pub fn set_measures(&mut self, m: &TipMeasures) {
        self.ed_mm = Some(m.ed_m * 1e3);
        self.nd_mm = Some(m.nd_m * 1e3);
        self.depth_error_mm = Some(m.depth_error_m * 1e3);
        self.angle_error_deg = Some(m.angle_error_rad.to_degrees());
        self.err_x_mm = Some(m.error_m.x * 1e3);
        self.err_y_mm = Some(m.error_m.y * 1e3);
        self.err_z_mm = Some(m.error_m.z * 1e3);
    }

    /// The row without the tip measures of [`Self::set_measures`] (a trial that stopped before its tip was measured).
    pub fn without_measures(self) -> Trial {
        Trial {
            ed_mm: None,
            nd_mm: None,
            depth_error_mm: None,
            angle_error_deg: None,
            err_x_mm: None,
            err_y_mm: None,
            err_z_mm: None,
            ..self
        }
    }

    /// Check the row before it can enter a statistic: every number finite, distances non-negative, angles in range,
    /// a finished trial has its tip metrics and no reason, a stopped or failed one has a reason.
    pub fn validate(&self) -> Result<(), Error> {
        let t = self.trial;
        let finite = |field: &'static str, value: f64| {
            if value.is_finite() {
                Ok(value)
            } else {
                Err(Error::NotFinite { trial: t, field, value })
            }
        };
        let range = |field: &'static str, value: f64, lo: f64, hi: f64, words: &'static str| {
            let v = finite(field, value)?;
            if v < lo || v > hi {
                Err(Error::OutOfRange {
                    trial: t,
                    field,
                    value: v,
                    range: words,
                })
            } else {
                Ok(())
            }
        };
        const NON_NEG: &str = "≥ 0";
        range("slice_mm", self.slice_mm, f64::MIN_POSITIVE, f64::MAX, "> 0")?;
        for (field, v) in [
            ("target_x_mm", self.target_x_mm),
            ("target_y_mm", self.target_y_mm),
            ("target_z_mm", self.target_z_mm),
            ("entry_x_mm", self.entry_x_mm),
            ("entry_y_mm", self.entry_y_mm),
            ("entry_z_mm", self.entry_z_mm),
        ] {
            finite(field, v)?;
        }
        range("depth_mm", self.depth_mm, 0.0, f64::MAX, NON_NEG)?;
        range("entry_angle_deg", self.entry_angle_deg, 0.0, 90.0, "within 0–90°")?;
        range("sim_s", self.sim_s, 0.0, f64::MAX, NON_NEG)?;
        range("wall_s", self.wall_s, 0.0, f64::MAX, NON_NEG)?;

        for (field, v) in self.optional_fields() {
            let Some(v) = v else { continue };
            match field {
                "ed_mm" | "nd_mm" | "fre_mm" | "predicted_tre_mm" | "observed_tre_mm" => {
                    range(field, v, 0.0, f64::MAX, NON_NEG)?
                }
                "angle_error_deg" => range(field, v, 0.0, 180.0, "within 0–180°")?,
                _ => {
                    finite(field, v)?;
                }
            }
        }

        match self.outcome {
            Outcome::Done => {
                if !self.reason.trim().is_empty() {
                    return Err(Error::Reason {
                        trial: t,
                        outcome: "done",
                        problem: "has a reason; only a stop has one",
                    });
                }
                for (field, v) in self.optional_fields().into_iter().take(Self::TIP_FIELDS) {
                    if v.is_none() {
                        return Err(Error::MissingMetric { trial: t, field });
                    }
                }
            }
            o => {
                if self.reason.trim().is_empty() {
                    return Err(Error::Reason {
                        trial: t,
                        outcome: o.as_str(),
                        problem: "has no reason; say why it stopped",
                    });
                }
            }
        }
        Ok(())
    }

    /// How many of [`Self::optional_fields`] (from the front) every finished trial must have.
    const TIP_FIELDS: usize = 7;

    /// The optional metric columns with their names, tip metrics first.
    fn optional_fields(&self) -> [(&'static str, Option<f64>); 10] {
        [
            ("ed_mm", self.ed_mm),
            ("nd_mm", self.nd_mm),
            ("depth_error_mm", self.depth_error_mm),
            ("angle_error_deg", self.angle_error_deg),
            ("err_x_mm", self.err_x_mm),
            ("err_y_mm", self.err_y_mm),
            ("err_z_mm", self.err_z_mm),
            ("fre_mm", self.fre_mm),
            ("predicted_tre_mm", self.predicted_tre_mm),
            ("observed_tre_mm", self.observed_tre_mm),
        ]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A finished trial with plausible numbers.
    pub(crate) fn done(trial: usize, slice_mm: f64, correction: bool, ed: f64) -> Trial {
        Trial {
            trial,
            seed: 1000 + trial as u64,
            slice_mm,
            correction,
            outcome: Outcome::Done,
            reason: String::new(),
            target_x_mm: 10.0,
            target_y_mm: 80.0,
            target_z_mm: -5.0,
            entry_x_mm: 0.0,
            entry_y_mm: 0.0,
            entry_z_mm: 0.0,
            depth_mm: 80.8,
            entry_angle_deg: 8.0,
            ed_mm: Some(ed),
            nd_mm: Some(ed * 0.8),
            depth_error_mm: Some(ed * 0.6),
            angle_error_deg: Some(0.5),
            err_x_mm: Some(ed * 0.6),
            err_y_mm: Some(ed * 0.8),
            err_z_mm: Some(0.0),
            fre_mm: Some(0.3),
            predicted_tre_mm: Some(0.4),
            observed_tre_mm: Some(0.35),
            check_scans: 2,
            sim_s: 120.0,
            wall_s: 3.0,
        }
    }

    /// A trial that stopped, with empty metric cells.
    pub(crate) fn stopped(trial: usize, slice_mm: f64, correction: bool, reason: &str) -> Trial {
        Trial {
            outcome: Outcome::Stopped,
            reason: reason.into(),
            predicted_tre_mm: None,
            observed_tre_mm: None,
            ..done(trial, slice_mm, correction, 0.0).without_measures()
        }
    }

    #[test]
    fn plausible_rows_pass() {
        assert!(done(0, 1.0, true, 0.7).validate().is_ok());
        assert!(stopped(1, 1.0, true, "target beyond the insertion range")
            .validate()
            .is_ok());
    }

    #[test]
    fn nan_and_infinite_metrics_are_refused_naming_the_field() {
        let mut t = done(4, 1.0, true, 0.7);
        t.nd_mm = Some(f64::NAN);
        let e = t.validate().unwrap_err();
        assert!(
            matches!(
                e,
                Error::NotFinite {
                    trial: 4,
                    field: "nd_mm",
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("`nd_mm`") && e.to_string().contains("finite"),
            "{e}"
        );

        let mut t = done(5, 1.0, true, 0.7);
        t.err_z_mm = Some(f64::INFINITY);
        assert!(matches!(t.validate(), Err(Error::NotFinite { field: "err_z_mm", .. })));

        let mut t = done(6, 1.0, true, 0.7);
        t.slice_mm = f64::NEG_INFINITY;
        assert!(matches!(t.validate(), Err(Error::NotFinite { field: "slice_mm", .. })));

        let mut t = stopped(7, 1.0, true, "why");
        t.wall_s = f64::NAN;
        assert!(matches!(t.validate(), Err(Error::NotFinite { field: "wall_s", .. })));
    }

    #[test]
    fn inconsistent_rows_are_refused() {
        let mut t = done(1, 1.0, true, 0.7);
        t.ed_mm = None;
        assert!(matches!(t.validate(), Err(Error::MissingMetric { field: "ed_mm", .. })));
        let mut t = done(1, 1.0, true, 0.7);
        t.ed_mm = Some(-0.1);
        assert!(matches!(t.validate(), Err(Error::OutOfRange { field: "ed_mm", .. })));
        let mut t = done(1, 1.0, true, 0.7);
        t.reason = "x".into();
        assert!(matches!(t.validate(), Err(Error::Reason { .. })));
        assert!(matches!(
            stopped(1, 1.0, true, " ").validate(),
            Err(Error::Reason { outcome: "stopped", .. })
        ));
        let mut t = done(1, 1.0, true, 0.7);
        t.slice_mm = 0.0;
        assert!(matches!(t.validate(), Err(Error::OutOfRange { field: "slice_mm", .. })));
    }

    #[test]
    fn set_measures_converts_to_mm_and_degrees() {
        let mut t = stopped(0, 1.0, true, "x");
        let m = TipMeasures {
            ed_m: 1e-3,
            nd_m: 0.5e-3,
            depth_error_m: -0.25e-3,
            angle_error_rad: std::f64::consts::PI / 180.0,
            error_m: nalgebra::Vector3::new(1e-3, -2e-3, 3e-3),
        };
        t.set_measures(&m);
        assert!((t.ed_mm.unwrap_or(f64::NAN) - 1.0).abs() < 1e-12);
        assert!((t.depth_error_mm.unwrap_or(f64::NAN) + 0.25).abs() < 1e-12);
        assert!((t.angle_error_deg.unwrap_or(f64::NAN) - 1.0).abs() < 1e-12);
        assert!((t.err_y_mm.unwrap_or(f64::NAN) + 2.0).abs() < 1e-12);
    }
}
