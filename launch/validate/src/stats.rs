//! Summary statistics per (slice thickness, correction) arm: the figures published needle robots report (mean ± SD,
//! median, 95th percentile, maximum) and ASTM F2554's bias (mean error vector) and precision (its spread).

use serde::{Deserialize, Serialize};

use crate::criteria::{SuccessCriterion, Verdict};
use crate::trial::{Outcome, Trial};
use crate::Error;

/// Slice thicknesses closer than this are the same arm (they come from one config; this only absorbs text round trips).
pub(crate) const SAME_SLICE_MM: f64 = 1e-6;

pub(crate) fn same_slice(a: f64, b: f64) -> bool {
    (a - b).abs() <= SAME_SLICE_MM
}

/// Statistics of one metric over one arm's finished trials.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); `None` below 2 values, where it is undefined.
    pub sd: Option<f64>,
    /// Median (the 50th percentile, same definition as `p95`).
    pub median: f64,
    /// 95th percentile, linear interpolation between closest ranks (numpy's default, Hyndman–Fan type 7):
    /// at rank h = 0.95·(n − 1) of the sorted values, x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]).
    pub p95: f64,
    /// Largest value.
    pub max: f64,
}

impl Stats {
    /// The statistics of `values`; `None` when there are none. Values are expected finite (trials are validated).
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let sd = (n >= 2).then(|| (sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        Some(Stats {
            n,
            mean,
            sd,
            median: percentile_sorted(&sorted, 0.5)?,
            p95: percentile_sorted(&sorted, 0.95)?,
            max: *sorted.last()?,
        })
    }
}

/// Percentile `p` (0–1) of ascending `sorted` values by linear interpolation between closest ranks (numpy's default).
/// `None` when empty or `p` is outside 0–1.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&p) {
        return None;
    }
    let h = p * (sorted.len() - 1) as f64;
    let lo = h.floor() as usize;
    let x0 = *sorted.get(lo)?;
    Some(match sorted.get(lo + 1) {
        Some(x1) => x0 + (h - lo as f64) * (x1 - x0),
        None => x0,
    })
}

/// How the trials of an arm (or the study) ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Finished and measured.
    pub done: usize,
    /// Stopped by a guard or the operator.
    pub stopped: usize,
    /// Could not be run to a decision.
    pub failed: usize,
}

impl Counts {
    /// Every trial counted.
    pub fn total(&self) -> usize {
        self.done + self.stopped + self.failed
    }

    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Done => self.done += 1,
            Outcome::Stopped => self.stopped += 1,
            Outcome::Failed => self.failed += 1,
        }
    }
}

/// ASTM F2554 positional accuracy of an arm, mm in CT LPS: bias is the mean error vector (tip − target), precision
/// the sample SD of the error about that mean, per axis and radially (√(sx² + sy² + sz²), the RMS distance of the tips
/// from their own mean point).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BiasPrecision {
    /// Trials in the figures.
    pub n: usize,
    /// Mean error vector [x, y, z], mm.
    pub bias_mm: [f64; 3],
    /// |bias|, mm.
    pub bias_norm_mm: f64,
    /// Sample SD per axis [x, y, z], mm; `None` below 2 trials.
    pub precision_mm: Option<[f64; 3]>,
    /// Radial precision, mm; `None` below 2 trials.
    pub precision_radial_mm: Option<f64>,
}

impl BiasPrecision {
    /// Bias and precision of error vectors (mm); `None` when there are none.
    pub fn of(errors: &[[f64; 3]]) -> Option<Self> {
        let axes: Vec<Stats> = (0..3)
            .map(|k| Stats::of(&errors.iter().map(|e| e[k]).collect::<Vec<_>>()))
            .collect::<Option<_>>()?;
        let [x, y, z] = [axes.first()?, axes.get(1)?, axes.get(2)?];
        let bias_mm = [x.mean, y.mean, z.mean];
        let precision_mm = match (x.sd, y.sd, z.sd) {
            (Some(a), Some(b), Some(c)) => Some([a, b, c]),
            _ => None,
        };
        Some(Self {
            n: errors.len(),
            bias_mm,
            bias_norm_mm: bias_mm.iter().map(|v| v * v).sum::<f64>().sqrt(),
            precision_mm,
            precision_radial_mm: precision_mm.map(|p| p.iter().map(|v| v * v).sum::<f64>().sqrt()),
        })
    }
}

/// One arm: a slice thickness with correction on or off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Slice thickness, mm.
    pub slice_mm: f64,
    /// Check-scan correction on.
    pub correction: bool,
    /// How the arm's trials ended.
    pub counts: Counts,
    /// Euclidean distance tip–target, mm (finished trials only, as every metric here).
    pub ed_mm: Option<Stats>,
    /// Normal distance target–axis, mm.
    pub nd_mm: Option<Stats>,
    /// Signed depth error, mm (+ = beyond the target).
    pub depth_error_mm: Option<Stats>,
    /// Angle error, degrees.
    pub angle_error_deg: Option<Stats>,
    /// FRE of the registrations used, mm.
    pub fre_mm: Option<Stats>,
    /// Predicted TRE at the targets, mm.
    pub predicted_tre_mm: Option<Stats>,
    /// Observed TRE at the targets, mm.
    pub observed_tre_mm: Option<Stats>,
    /// Check scans per finished trial.
    pub check_scans: Option<Stats>,
    /// Simulated procedure time per finished trial, s.
    pub sim_s: Option<Stats>,
    /// Bias and precision of the error vectors.
    pub bias_precision: Option<BiasPrecision>,
}

/// The study's figures: overall counts, one entry per arm (ascending slice, correction on first), and the verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Every trial.
    pub counts: Counts,
    /// Per arm.
    pub groups: Vec<GroupSummary>,
    /// One per declared criterion, in declaration order.
    pub verdicts: Vec<Verdict>,
}

/// Validate every trial (failing whole on the first bad one), group them into arms and compute the figures.
pub fn summarize(trials: &[Trial], criteria: &[SuccessCriterion]) -> Result<Summary, Error> {
    for t in trials {
        t.validate()?;
    }
    for (i, c) in criteria.iter().enumerate() {
        c.validate(i)?;
    }
    let mut keys: Vec<(f64, bool)> = Vec::new();
    for t in trials {
        if !keys
            .iter()
            .any(|&(s, c)| same_slice(s, t.slice_mm) && c == t.correction)
        {
            keys.push((t.slice_mm, t.correction));
        }
    }
    keys.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut counts = Counts::default();
    for t in trials {
        counts.add(t.outcome);
    }
    let groups = keys
        .into_iter()
        .map(|(slice_mm, correction)| {
            let arm: Vec<&Trial> = trials
                .iter()
                .filter(|t| same_slice(t.slice_mm, slice_mm) && t.correction == correction)
                .collect();
            group(slice_mm, correction, &arm)
        })
        .collect();
    let verdicts = criteria.iter().map(|c| c.evaluate(trials)).collect();
    Ok(Summary {
        counts,
        groups,
        verdicts,
    })
}

fn group(slice_mm: f64, correction: bool, arm: &[&Trial]) -> GroupSummary {
    let mut counts = Counts::default();
    for t in arm {
        counts.add(t.outcome);
    }
    let done: Vec<&Trial> = arm.iter().copied().filter(|t| t.outcome == Outcome::Done).collect();
    let stat = |f: fn(&Trial) -> Option<f64>| Stats::of(&done.iter().filter_map(|t| f(t)).collect::<Vec<_>>());
    let errors: Vec<[f64; 3]> = done
        .iter()
        .filter_map(|t| Some([t.err_x_mm?, t.err_y_mm?, t.err_z_mm?]))
        .collect();
    GroupSummary {
        slice_mm,
        correction,
        counts,
        ed_mm: stat(|t| t.ed_mm),
        nd_mm: stat(|t| t.nd_mm),
        depth_error_mm: stat(|t| t.depth_error_mm),
        angle_error_deg: stat(|t| t.angle_error_deg),
        fre_mm: stat(|t| t.fre_mm),
        predicted_tre_mm: stat(|t| t.predicted_tre_mm),
        observed_tre_mm: stat(|t| t.observed_tre_mm),
        check_scans: stat(|t| Some(t.check_scans as f64)),
        sim_s: stat(|t| Some(t.sim_s)),
        bias_precision: BiasPrecision::of(&errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::tests::{done, stopped};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12
    }

    #[test]
    fn stats_match_numpy_by_hand() {
        // numpy: mean 2.5, std(ddof=1) 1.2909944, median 2.5, percentile(95) = 3.85, max 4.
        let s = Stats::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.n, 4);
        assert!(
            close(s.mean, 2.5) && close(s.median, 2.5) && close(s.p95, 3.85) && close(s.max, 4.0),
            "{s:?}"
        );
        assert!((s.sd.unwrap() - 1.290_994_448_735_805_6).abs() < 1e-12);
        // Odd count: median is the middle value; p95 of 0..=10 is 9.5.
        let s = Stats::of(&(0..=10).map(f64::from).collect::<Vec<_>>()).unwrap();
        assert!(close(s.median, 5.0) && close(s.p95, 9.5), "{s:?}");
    }

    #[test]
    fn one_value_has_no_sd_and_none_has_no_stats() {
        let s = Stats::of(&[0.7]).unwrap();
        assert!(s.sd.is_none() && close(s.median, 0.7) && close(s.p95, 0.7) && close(s.max, 0.7));
        assert!(Stats::of(&[]).is_none());
        assert!(percentile_sorted(&[1.0], 1.5).is_none());
    }

    #[test]
    fn bias_is_the_mean_error_vector_and_precision_its_spread() {
        let b = BiasPrecision::of(&[[1.0, 0.0, 2.0], [3.0, 0.0, 2.0]]).unwrap();
        assert!(close(b.bias_mm[0], 2.0) && close(b.bias_mm[2], 2.0) && close(b.bias_norm_mm, 8f64.sqrt()));
        let p = b.precision_mm.unwrap();
        assert!(close(p[0], 2f64.sqrt()) && close(p[1], 0.0) && close(b.precision_radial_mm.unwrap(), 2f64.sqrt()));
    }

    #[test]
    fn groups_by_arm_count_every_outcome_and_use_only_done_trials() {
        let mut s = stopped(3, 1.0, true, "registration gate: FRE 1.9 mm > 1.0 mm");
        s.ed_mm = Some(50.0); // a stopped trial's number must not enter the stats
        let trials = vec![
            done(0, 3.0, true, 1.0),
            done(1, 1.0, true, 0.5),
            done(2, 1.0, true, 0.7),
            s,
            done(0, 1.0, false, 2.0),
        ];
        let sum = summarize(&trials, &[]).unwrap();
        assert_eq!(
            sum.counts,
            Counts {
                done: 4,
                stopped: 1,
                failed: 0
            }
        );
        let keys: Vec<(f64, bool)> = sum.groups.iter().map(|g| (g.slice_mm, g.correction)).collect();
        assert_eq!(keys, vec![(1.0, true), (1.0, false), (3.0, true)]);
        let g = &sum.groups[0];
        assert_eq!(
            g.counts,
            Counts {
                done: 2,
                stopped: 1,
                failed: 0
            }
        );
        let ed = g.ed_mm.unwrap();
        assert_eq!(ed.n, 2);
        assert!(close(ed.mean, 0.6) && close(ed.max, 0.7));
    }

    #[test]
    fn summarize_refuses_a_bad_row() {
        let mut t = done(9, 1.0, true, 0.5);
        t.depth_error_mm = Some(f64::NAN);
        assert!(matches!(
            summarize(&[t], &[]),
            Err(Error::NotFinite {
                trial: 9,
                field: "depth_error_mm",
                ..
            })
        ));
    }
}
