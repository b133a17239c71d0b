//! The patient's breathing under instruction (truth): free breathing ([`Breathing`], Lujan's model) until someone says
//! "hold your breath", then an end-expiration breath-hold whose level repeats only roughly from one hold to the next and
//! creeps while it lasts, until "breathe" (or until the patient cannot hold any longer). The organ moves with the
//! excursion; a belt (a respiratory bellows) reads it with its own gain, lag and noise.
//!
//! The instructions come from outside the twin (the procedure's `/patient/breath_hold`, as a radiographer's or a
//! scanner's breathing commands would), stamped with the simulated time at which the patient hears them.

use nalgebra::Vector3;
use serde::Deserialize;

use crate::breathing::{Breathing, BreathingModel};
use crate::world::{self, Stream};

/// How the patient holds their breath when asked (a world file's `patient.breathing.hold`). SI units.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BreathHoldModel {
    /// σ of each hold's level about the end-expiration anatomy of the planning configuration, m (craniocaudal).
    pub level_sigma: f64,
    /// Largest creep of the level during a hold, m over `drift_span`; each hold's rate is drawn uniformly up to it.
    pub drift_max: f64,
    /// Time over which `drift_max` accrues, s.
    pub drift_span: f64,
    /// Time from the instruction to the settled hold, s (the organ moves to the hold level over it).
    pub reaction: f64,
    /// Mean time the patient can hold, s.
    pub duration: f64,
    /// σ of that time, s.
    pub duration_sigma: f64,
}

impl RespirationModel {
    /// A patient who does not breathe (a phantom, the ideal world): the belt reads a flat 0, every hold is at once.
    pub const STILL: Self = Self {
        free: BreathingModel {
            amplitude: 0.0,
            ap_ratio: 0.0,
            period: 4.0,
            n: 3,
            period_variability: 0.0,
            amplitude_variability: 0.0,
            drift_sigma: 0.0,
            drift_time: 30.0,
            signal_gain: 1.0,
            signal_noise: 0.0,
            signal_lag: 0.0,
            signal_rate: 25.0,
        },
        hold: BreathHoldModel {
            level_sigma: 0.0,
            drift_max: 0.0,
            drift_span: 20.0,
            reaction: 0.1,
            duration: 120.0,
            duration_sigma: 0.0,
        },
    };
}

/// A world file's `patient.breathing`: free breathing and the holds.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RespirationModel {
    /// Free breathing and the belt.
    pub free: BreathingModel,
    /// Breath-holds on instruction.
    pub hold: BreathHoldModel,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Hold {
    /// When the patient heard "hold", s.
    asked: f64,
    /// Excursion when asked, m.
    from: f64,
    /// Level once settled, m.
    level: f64,
    /// Creep, m/s.
    drift_rate: f64,
    /// When the patient breathes again (told to, or out of breath), s.
    end: f64,
}

/// One patient's breathing, drawn from a model and a seed, driven by instructions.
#[derive(Clone, Debug)]
pub struct Respiration {
    model: RespirationModel,
    free: Breathing,
    seed: u64,
    holds: Vec<Hold>,
}

impl Respiration {
    /// Free breathing from `seed`; no hold yet.
    pub fn new(model: &RespirationModel, seed: u64) -> Self {
        Self {
            model: *model,
            free: Breathing::new(&model.free, seed),
            seed,
            holds: Vec::new(),
        }
    }

    /// The patient hears "hold your breath" (`hold`) or "breathe" at simulated time `t` (s). Repeating the instruction
    /// in force changes nothing; an instruction older than the last one is ignored (time runs forward).
    pub fn instruct(&mut self, hold: bool, t: f64) {
        let holding = self.holding(t);
        if let Some(last) = self.holds.last() {
            if t < last.asked {
                return;
            }
        }
        match (hold, holding) {
            (true, false) => {
                let k = self.holds.len() as u64;
                let mut rng = world::rng(self.seed, Stream::BreathHold, k);
                let h = &self.model.hold;
                let level = world::gaussian(&mut rng, h.level_sigma);
                let rate = h.drift_max / h.drift_span.max(1e-3) * (2.0 * world::uniform(&mut rng) - 1.0);
                let duration = (h.duration + world::gaussian(&mut rng, h.duration_sigma)).max(h.reaction + 5.0);
                let from = self.excursion(t);
                self.holds.push(Hold {
                    asked: t,
                    from,
                    level,
                    drift_rate: rate,
                    end: t + duration,
                });
            }
            (false, true) => {
                if let Some(last) = self.holds.last_mut() {
                    last.end = t;
                }
            }
            _ => {}
        }
    }

    /// The patient is holding (or settling into a hold) at `t`.
    pub fn holding(&self, t: f64) -> bool {
        self.holds.last().is_some_and(|h| t >= h.asked && t < h.end)
    }

    /// Number of holds asked for so far.
    pub fn holds(&self) -> usize {
        self.holds.len()
    }

    /// Craniocaudal excursion at `t`, m, positive caudal (inspiration).
    pub fn excursion(&self, t: f64) -> f64 {
        let k = self.holds.partition_point(|h| h.asked <= t);
        let Some(h) = k.checked_sub(1).and_then(|i| self.holds.get(i)) else {
            return self.free.excursion(t);
        };
        if t >= h.end {
            return self.free.excursion(t);
        }
        let reaction = self.model.hold.reaction.max(1e-3);
        let settled = h.level + h.drift_rate * (t - h.asked - reaction).max(0.0);
        let s = ((t - h.asked) / reaction).clamp(0.0, 1.0);
        h.from + (settled - h.from) * s
    }

    /// Tissue displacement at `t`, CT (LPS), m: caudal (−z) and anterior (−y) with the excursion.
    pub fn displacement(&self, t: f64) -> Vector3<f64> {
        let e = self.excursion(t);
        Vector3::new(0.0, -self.model.free.ap_ratio * e, -e)
    }

    /// The belt's sample at `t`: the last one taken at or before `t` (zero-order hold at the belt's rate), with the
    /// belt's lag and noise, in its own units.
    pub fn signal(&self, t: f64) -> f64 {
        let f = &self.model.free;
        let rate = f.signal_rate.max(1.0);
        let k = (t * rate).floor();
        let ts = k / rate;
        let mut rng = world::rng(self.seed, Stream::Belt, k as i64 as u64);
        f.signal_gain * self.excursion(ts - f.signal_lag) + world::gaussian(&mut rng, f.signal_noise)
    }

    /// The belt's sample period, s.
    pub fn sample_period(&self) -> f64 {
        1.0 / self.model.free.signal_rate.max(1.0)
    }
}
