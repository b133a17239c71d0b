//! The patient's breathing (truth): Lujan's model of organ excursion, e(t) = L(t) + A_k·sin^(2n)(π p), p the phase in
//! cycle k, with each cycle's period and amplitude drawn around the model's, and an end-expiration level L that drifts
//! (Ornstein–Uhlenbeck between cycles, interpolated within one). End-expiration (e ≈ L) is the long, flat phase. The
//! excursion moves tissue caudally (CT −z in LPS) and anteriorly (−y); a belt sensor reads it as gain·e(t − lag) + noise.

use nalgebra::Vector3;
use serde::Deserialize;

use crate::world::{self, Stream};

/// Breathing parameters (a world file's `patient.breathing`). SI units.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BreathingModel {
    /// Craniocaudal excursion from end-expiration to end-inspiration, m.
    pub amplitude: f64,
    /// Anterior excursion per craniocaudal excursion.
    pub ap_ratio: f64,
    /// Mean cycle period, s.
    pub period: f64,
    /// Lujan's shape exponent n (cos^(2n)); larger is a longer flat end-expiration.
    pub n: u32,
    /// Relative σ of each cycle's period.
    pub period_variability: f64,
    /// Relative σ of each cycle's amplitude.
    pub amplitude_variability: f64,
    /// Stationary σ of the end-expiration level's drift, m.
    pub drift_sigma: f64,
    /// Correlation time of the drift, s.
    pub drift_time: f64,
    /// Belt gain, units per metre of excursion.
    pub signal_gain: f64,
    /// Belt noise σ, units.
    pub signal_noise: f64,
    /// Belt lag behind the organ, s.
    pub signal_lag: f64,
    /// Belt sample rate, Hz.
    pub signal_rate: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Cycle {
    start: f64,
    period: f64,
    amplitude: f64,
    level: f64,
}

/// A patient's breathing drawn from a model and a seed: deterministic, total over time.
#[derive(Clone, Debug, PartialEq)]
pub struct Breathing {
    model: BreathingModel,
    seed: u64,
    cycles: Vec<Cycle>,
    span: f64,
}

/// Simulated time the drawn cycles cover; later times repeat it.
const HORIZON: f64 = 4.0 * 3600.0;

impl Breathing {
    /// Draw the cycles of `model` from `seed`. The level starts at 0: the configured anatomy is end-expiration at t = 0.
    pub fn new(model: &BreathingModel, seed: u64) -> Self {
        let mut rng = world::rng(seed, Stream::Breathing, 0);
        let period = model.period.max(0.5);
        let mut cycles = Vec::new();
        let (mut start, mut level) = (0.0, 0.0);
        while start < HORIZON {
            let p = (period * (1.0 + world::gaussian(&mut rng, model.period_variability)))
                .clamp(0.4 * period, 2.5 * period);
            let a = (model.amplitude * (1.0 + world::gaussian(&mut rng, model.amplitude_variability))).max(0.0);
            cycles.push(Cycle {
                start,
                period: p,
                amplitude: a,
                level,
            });
            let decay = (-p / model.drift_time.max(1e-3)).exp();
            level = level * decay + world::gaussian(&mut rng, model.drift_sigma * (1.0 - decay * decay).sqrt());
            start += p;
        }
        Self {
            model: *model,
            seed,
            cycles,
            span: start,
        }
    }

    fn at(&self, t: f64) -> (f64, f64) {
        let t = t.rem_euclid(self.span);
        let k = self.cycles.partition_point(|c| c.start <= t).saturating_sub(1);
        let c = self.cycles[k];
        let next = self.cycles.get(k + 1).map_or(0.0, |n| n.level);
        let p = ((t - c.start) / c.period).clamp(0.0, 1.0);
        let level = c.level + (next - c.level) * p;
        let n = i32::try_from(self.model.n.max(1)).unwrap_or(1);
        (
            level + c.amplitude * (core::f64::consts::PI * p).sin().powi(2 * n),
            level,
        )
    }

    /// Craniocaudal excursion at `t` (s), m, positive caudal (inspiration).
    pub fn excursion(&self, t: f64) -> f64 {
        self.at(t).0
    }

    /// End-expiration level of the cycle at `t`, m.
    pub fn end_expiration(&self, t: f64) -> f64 {
        self.at(t).1
    }

    /// Tissue displacement at `t`, CT (LPS), m.
    pub fn displacement(&self, t: f64) -> Vector3<f64> {
        let e = self.excursion(t);
        Vector3::new(0.0, -self.model.ap_ratio * e, -e)
    }

    /// The belt's sample at `t`: the last sample taken at or before `t` (zero-order hold), arbitrary units.
    pub fn signal(&self, t: f64) -> f64 {
        let rate = self.model.signal_rate.max(1.0);
        let k = (t * rate).floor();
        let ts = k / rate;
        let mut rng = world::rng(self.seed, Stream::Belt, k as i64 as u64);
        self.model.signal_gain * self.excursion(ts - self.model.signal_lag)
            + world::gaussian(&mut rng, self.model.signal_noise)
    }

    /// The belt's samples (time, value) in [from, to).
    pub fn samples(&self, from: f64, to: f64) -> impl Iterator<Item = (f64, f64)> + '_ {
        let rate = self.model.signal_rate.max(1.0);
        let first = (from * rate).ceil() as i64;
        let last = (to * rate).ceil() as i64;
        (first..last).map(move |k| {
            let t = k as f64 / rate;
            (t, self.signal(t))
        })
    }
}
