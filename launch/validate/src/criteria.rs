//! Success criteria, declared before the run and written into the report with their verdicts, so the study cannot
//! choose its bar after seeing the figures.

use serde::{Deserialize, Serialize};

use crate::stats::{same_slice, Stats};
use crate::trial::{Outcome, Trial};
use crate::Error;

/// The per-trial figure a criterion is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Euclidean distance tip–target, mm.
    Ed,
    /// Normal distance target–axis, mm.
    Nd,
    /// Signed depth error, mm (a limit on its mean bounds the depth bias).
    DepthError,
    /// |depth error|, mm (a limit on a percentile bounds over- and undershoot alike).
    AbsDepthError,
    /// Angle error, degrees.
    AngleError,
    /// Predicted TRE, mm.
    PredictedTre,
    /// Observed TRE, mm.
    ObservedTre,
}

impl Metric {
    /// Short name for the reports.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Ed => "ED",
            Metric::Nd => "ND",
            Metric::DepthError => "depth error",
            Metric::AbsDepthError => "|depth error|",
            Metric::AngleError => "angle error",
            Metric::PredictedTre => "predicted TRE",
            Metric::ObservedTre => "observed TRE",
        }
    }

    /// The unit of the metric and of a criterion's limit on it.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::AngleError => "°",
            _ => "mm",
        }
    }

    /// The metric's value for one trial, when it has one.
    pub fn of(self, t: &Trial) -> Option<f64> {
        match self {
            Metric::Ed => t.ed_mm,
            Metric::Nd => t.nd_mm,
            Metric::DepthError => t.depth_error_mm,
            Metric::AbsDepthError => t.depth_error_mm.map(f64::abs),
            Metric::AngleError => t.angle_error_deg,
            Metric::PredictedTre => t.predicted_tre_mm,
            Metric::ObservedTre => t.observed_tre_mm,
        }
    }
}

/// Which statistic of the metric is compared with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// Mean.
    Mean,
    /// Sample SD (needs 2 trials).
    Sd,
    /// Median.
    Median,
    /// 95th percentile (see [`Stats::p95`]).
    P95,
    /// Maximum.
    Max,
}

impl Statistic {
    /// Short name for the reports.
    pub fn label(self) -> &'static str {
        match self {
            Statistic::Mean => "mean",
            Statistic::Sd => "SD",
            Statistic::Median => "median",
            Statistic::P95 => "95th percentile",
            Statistic::Max => "maximum",
        }
    }

    fn of(self, s: &Stats) -> Option<f64> {
        match self {
            Statistic::Mean => Some(s.mean),
            Statistic::Sd => s.sd,
            Statistic::Median => Some(s.median),
            Statistic::P95 => Some(s.p95),
            Statistic::Max => Some(s.max),
        }
    }
}

/// "The `statistic` of `metric` over the finished trials of this arm is ≤ `limit`".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SuccessCriterion {
    /// What is measured.
    pub metric: Metric,
    /// Which statistic of it.
    pub statistic: Statistic,
    /// The arm's slice thickness, mm.
    pub slice_mm: f64,
    /// The arm's correction setting.
    pub correction: bool,
    /// The largest passing figure, in the metric's unit ([`Metric::unit`]: mm, or degrees for the angle error).
    pub limit: f64,
}

/// Pass, fail, or nothing to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictResult {
    /// The figure is within the limit.
    Pass,
    /// The figure exceeds the limit.
    Fail,
    /// No finished trial in the arm (or one, for an SD): not a pass.
    NoData,
}

impl VerdictResult {
    /// Upper-case word for the reports.
    pub fn label(self) -> &'static str {
        match self {
            VerdictResult::Pass => "PASS",
            VerdictResult::Fail => "FAIL",
            VerdictResult::NoData => "NO DATA",
        }
    }
}

/// A criterion judged on the trials.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The criterion as declared.
    pub criterion: SuccessCriterion,
    /// Finished trials of the arm with the metric.
    pub n: usize,
    /// The statistic's value; `None` with no data.
    pub figure: Option<f64>,
    /// The judgement.
    pub result: VerdictResult,
}

impl SuccessCriterion {
    /// The criterion in words, e.g. "ED 95th percentile ≤ 1.00 mm (slice 1 mm, correction on)".
    pub fn describe(&self) -> String {
        format!(
            "{} {} ≤ {:.2}{}{} (slice {} mm, correction {})",
            self.metric.label(),
            self.statistic.label(),
            self.limit,
            // SI style: a space before mm, none before the degree sign.
            if self.metric == Metric::AngleError { "" } else { " " },
            self.metric.unit(),
            self.slice_mm,
            if self.correction { "on" } else { "off" }
        )
    }

    /// Refuse a criterion that cannot be judged; `index` is its position, for the message.
    pub fn validate(&self, index: usize) -> Result<(), Error> {
        let problem = if !self.limit.is_finite() {
            Some(format!("limit {} is not a finite number", self.limit))
        } else if !(self.slice_mm.is_finite() && self.slice_mm > 0.0) {
            Some(format!("slice thickness {} mm is not a positive number", self.slice_mm))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(Error::Criterion {
                index,
                criterion: self.describe(),
                problem,
            }),
            None => Ok(()),
        }
    }

    /// Judge on `trials`: only finished trials of the criterion's arm count.
    pub fn evaluate(&self, trials: &[Trial]) -> Verdict {
        let values: Vec<f64> = trials
            .iter()
            .filter(|t| {
                t.outcome == Outcome::Done && t.correction == self.correction && same_slice(t.slice_mm, self.slice_mm)
            })
            .filter_map(|t| self.metric.of(t))
            .collect();
        let figure = Stats::of(&values).and_then(|s| self.statistic.of(&s));
        let result = match figure {
            None => VerdictResult::NoData,
            Some(f) if f <= self.limit => VerdictResult::Pass,
            Some(_) => VerdictResult::Fail,
        };
        Verdict {
            criterion: *self,
            n: values.len(),
            figure,
            result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::tests::{done, stopped};

    fn ed(statistic: Statistic, limit: f64) -> SuccessCriterion {
        SuccessCriterion {
            metric: Metric::Ed,
            statistic,
            slice_mm: 1.0,
            correction: true,
            limit,
        }
    }

    #[test]
    fn judges_only_the_arms_finished_trials() {
        let trials = vec![
            done(0, 1.0, true, 0.4),
            done(1, 1.0, true, 0.6),
            done(2, 1.0, false, 9.0),
            done(3, 3.0, true, 9.0),
            stopped(4, 1.0, true, "stop"),
        ];
        let v = ed(Statistic::Median, 0.45).evaluate(&trials);
        assert_eq!((v.n, v.result), (2, VerdictResult::Fail));
        assert!((v.figure.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(
            ed(Statistic::Median, 0.55).evaluate(&trials).result,
            VerdictResult::Pass
        );
        let v = ed(Statistic::Max, 0.6).evaluate(&trials);
        assert_eq!(v.result, VerdictResult::Pass);
        let v = ed(Statistic::P95, 0.5).evaluate(&trials);
        assert_eq!(v.result, VerdictResult::Fail);
    }

    #[test]
    fn no_finished_trial_is_no_data_not_a_pass() {
        let v = ed(Statistic::P95, 1.0).evaluate(&[stopped(0, 1.0, true, "stop")]);
        assert_eq!((v.n, v.figure, v.result), (0, None, VerdictResult::NoData));
        let v = ed(Statistic::Sd, 1.0).evaluate(&[done(0, 1.0, true, 0.3)]);
        assert_eq!(v.result, VerdictResult::NoData);
    }

    #[test]
    fn abs_depth_error_counts_undershoot() {
        let mut t = done(0, 1.0, true, 0.5);
        t.depth_error_mm = Some(-2.0);
        let c = SuccessCriterion {
            metric: Metric::AbsDepthError,
            statistic: Statistic::Max,
            slice_mm: 1.0,
            correction: true,
            limit: 1.0,
        };
        assert_eq!(c.evaluate(&[t]).result, VerdictResult::Fail);
    }

    #[test]
    fn unjudgeable_criteria_are_refused() {
        assert!(matches!(
            ed(Statistic::P95, f64::NAN).validate(3),
            Err(Error::Criterion { index: 3, .. })
        ));
        let mut c = ed(Statistic::P95, 1.0);
        c.slice_mm = 0.0;
        assert!(c.validate(0).is_err());
        assert!(ed(Statistic::P95, 1.0).validate(0).is_ok());
    }

    #[test]
    fn describes_itself_with_unit() {
        assert_eq!(
            ed(Statistic::P95, 1.0).describe(),
            "ED 95th percentile ≤ 1.00 mm (slice 1 mm, correction on)"
        );
    }
}
