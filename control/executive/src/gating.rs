//! Respiratory gating: scans and insertion only in a breath-hold whose level, read from a respiratory belt, lies within a
//! window of the level recorded at the last scan. The procedure asks the patient to hold (`Report::BreathHold`), waits
//! for a steady hold in the window, and lets the patient breathe again when the scan or the step is done. A hold that
//! leaves the window, or lasts longer than a patient may be asked to hold, pauses the insertion where it is (the needle
//! is never backed out) until the next hold; a scan or a step that gets no hold in the window after a set number of tries
//! is refused, with the needle held. A paused step resumes in a hold within the window of the level at which the needle
//! stopped, not of the scan's: the robot holds the shaft while the organ moves under the entry, so the needle bends by
//! the organ's excursion over the depth, and a step resumed at another level cuts on along that bend (1 mm at 30 mm deep
//! is 2°). Resumed where it stopped, the bend comes back out.
//!
//! [`HoldJudge`] is the decision, pure; [`Gate`] waits on the belt and talks to the patient.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acus_control::kinematics::JointPositions;
use acus_ethercat::runner::TimeWanted;
use tokio::sync::{mpsc, watch};

use crate::motion::{Motion, MotionError};
use crate::{Report, ScanPurpose, ScanSource};

/// One belt sample as the procedure hears it: time on the sensor's clock (s) and value in the sensor's units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BeltSample {
    /// Time, s.
    pub t: f64,
    /// Value, sensor units.
    pub value: f64,
}

/// Gating settings (the controller's configuration).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GatingSettings {
    /// Belt units per metre of organ excursion (the belt's calibration).
    pub gain: f64,
    /// Half-width of the window about the reference level, m.
    pub window: f64,
    /// How long a hold must be steady before a scan or a step starts, s.
    pub settle: f64,
    /// The longest a patient is asked to hold, s: then the insertion pauses and the patient breathes.
    pub hold_limit: f64,
    /// Free breathing between two holds, s.
    pub recovery: f64,
    /// Holds asked for one scan or step before it is refused.
    pub attempts: u32,
    /// True: check the belt against the window. False: ask for the hold, wait `settle`, go (the breath-hold technique
    /// without the belt, for comparison).
    pub gated: bool,
}

/// Why gating gave no breath-hold.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GatingError {
    /// The belt is silent.
    #[error("respiratory belt silent for {silent_s:.1} s: the scan or step waits for it")]
    NoSignal {
        /// Wall-clock silence, s.
        silent_s: f64,
    },
    /// No hold in the window after every try.
    #[error(
        "no breath-hold within ±{window_mm:.1} mm of the reference after {attempts} tries (last hold {offset_mm:+.1} mm \
         from it): the needle is held; coach the patient and ask again, or, if the patient's holds stay away from \
         that level, retract and plan again on a new scan"
    )]
    NoHold {
        /// Tries made.
        attempts: u32,
        /// Window half-width, mm.
        window_mm: f64,
        /// The last hold's level from the reference, mm (NaN if it never steadied).
        offset_mm: f64,
    },
    /// During an insertion the hold left the window.
    #[error("the breath-hold left the gating window ({offset_mm:+.1} mm from the reference)")]
    LeftWindow {
        /// Level from the reference, mm.
        offset_mm: f64,
    },
    /// During an insertion the hold reached the time a patient is asked to hold.
    #[error("the breath-hold reached its {limit_s:.0} s limit")]
    HoldTooLong {
        /// The limit, s.
        limit_s: f64,
    },
}

/// What a judge decides after a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Not yet: the hold is settling, or is not in the window (yet).
    Wait,
    /// The hold is steady (and in the window, gated): its level, sensor units.
    Open {
        /// Mean belt value over the settle time.
        level: f64,
    },
    /// The hold has lasted `hold_limit`.
    Expired,
    /// The hold is steady outside the window: waiting on it only costs the patient's breath.
    Missed,
}

/// Judges one breath-hold from its samples. Pure.
#[derive(Clone, Debug)]
pub struct HoldJudge {
    settings: GatingSettings,
    asked: Option<f64>,
    recent: VecDeque<BeltSample>,
    /// The latest steady level seen, sensor units.
    pub last_level: Option<f64>,
    /// During motion: the last sample within the window, sensor units: about the level at which the needle last cut
    /// tissue (the mean over [`MOTION_AVERAGE`] that stops the motion lags it).
    pub last_good: Option<f64>,
}

impl HoldJudge {
    /// A judge for a hold asked for with the next sample.
    pub fn new(settings: GatingSettings) -> Self {
        Self {
            settings,
            asked: None,
            recent: VecDeque::with_capacity(256),
            last_level: None,
            last_good: None,
        }
    }

    /// Feed a sample; `reference` is the level recorded at the last scan (sensor units), if any.
    pub fn feed(&mut self, s: BeltSample, reference: Option<f64>) -> Verdict {
        let asked = *self.asked.get_or_insert(s.t);
        let g = &self.settings;
        if s.t - asked > g.hold_limit {
            return Verdict::Expired;
        }
        self.recent.push_back(s);
        while self.recent.front().is_some_and(|f| f.t < s.t - g.settle) {
            self.recent.pop_front();
        }
        if s.t - asked < g.settle || self.recent.len() < 2 {
            return Verdict::Wait;
        }
        let n = self.recent.len() as f64;
        let level = self.recent.iter().map(|r| r.value).sum::<f64>() / n;
        let (lo, hi) = self
            .recent
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), r| {
                (l.min(r.value), h.max(r.value))
            });
        let width = g.window * g.gain.abs();
        if !g.gated {
            return Verdict::Open { level };
        }
        // Steady: the level moved less than the window's half-width over the settle time (noise included). Long enough a
        // settle time tells a hold from the flat end-expiration of free breathing (about 1.5 s of a 4 s cycle).
        if hi - lo > width {
            return Verdict::Wait;
        }
        self.last_level = Some(level);
        match reference {
            Some(r) if (level - r).abs() > width => Verdict::Missed,
            _ => Verdict::Open { level },
        }
    }

    /// During motion: the hold is still good after sample `s` (the mean over [`MOTION_AVERAGE`] within the window of
    /// `reference`, and the hold not over its limit). Ungated, only the limit counts.
    pub fn holds(&mut self, s: BeltSample, reference: Option<f64>) -> bool {
        let asked = *self.asked.get_or_insert(s.t);
        let g = &self.settings;
        if s.t - asked > g.hold_limit {
            return false;
        }
        self.recent.push_back(s);
        while self.recent.front().is_some_and(|f| f.t < s.t - MOTION_AVERAGE) {
            self.recent.pop_front();
        }
        let level = self.recent.iter().map(|r| r.value).sum::<f64>() / self.recent.len().max(1) as f64;
        let within = |v: f64| !g.gated || reference.is_none_or(|r| (v - r).abs() <= g.window * g.gain.abs());
        if within(s.value) {
            self.last_good = Some(s.value);
        }
        within(level)
    }
}

/// How long the belt is averaged over during motion, s: two or three samples of a 25 Hz belt. The organ leaves a hold at
/// up to 6 mm/s, so each 0.1 s of averaging lets the needle advance in tissue 0.6 mm further from the level it was aimed
/// at; a bellows' noise (0.1 mm) needs little averaging against a 1 mm window.
const MOTION_AVERAGE: f64 = 0.08;

/// An open gate: the hold the scan or step runs in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hold {
    /// Its level, sensor units.
    pub level: f64,
    /// When it was asked for, s (belt clock).
    pub asked: f64,
}

/// The gate: the belt as heard, the patient's instructions, the reference level.
pub struct Gate {
    settings: GatingSettings,
    belt: watch::Receiver<Option<BeltSample>>,
    reports: mpsc::UnboundedSender<Report>,
    reference: Mutex<Option<f64>>,
    time_wanted: TimeWanted,
}

/// Time is wanted from a simulated clock while this lives (a wait dropped half-way stops asking).
struct Waiting<'a>(&'a TimeWanted);

impl<'a> Waiting<'a> {
    fn new(t: &'a TimeWanted) -> Self {
        t.set(true);
        Self(t)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// How long the belt may be silent (wall clock) before a wait gives up: a sensor at 25 Hz that says nothing for 2 s is
/// gone.
const BELT_SILENCE: Duration = Duration::from_secs(2);

impl Gate {
    /// A gate on `belt`, telling the patient through `reports`; while it waits it asks the drive clock for time.
    pub fn new(
        settings: GatingSettings,
        belt: watch::Receiver<Option<BeltSample>>,
        reports: mpsc::UnboundedSender<Report>,
        time_wanted: TimeWanted,
    ) -> Arc<Self> {
        Arc::new(Self {
            settings,
            belt,
            reports,
            reference: Mutex::new(None),
            time_wanted,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &GatingSettings {
        &self.settings
    }

    /// The reference level (sensor units), recorded at the last scan.
    pub fn reference(&self) -> Option<f64> {
        self.reference.lock().ok().and_then(|r| *r)
    }

    /// Record the level of the hold a scan was taken in.
    pub fn set_reference(&self, level: f64) {
        if let Ok(mut r) = self.reference.lock() {
            *r = Some(level);
        }
    }

    /// Forget the reference (a new procedure).
    pub fn clear_reference(&self) {
        if let Ok(mut r) = self.reference.lock() {
            *r = None;
        }
    }

    /// Tell the patient to hold (true) or to breathe (false).
    pub fn instruct(&self, hold: bool) {
        let _ = self.reports.send(Report::BreathHold(hold));
    }

    async fn next_sample(&self, belt: &mut watch::Receiver<Option<BeltSample>>) -> Result<BeltSample, GatingError> {
        loop {
            match tokio::time::timeout(BELT_SILENCE, belt.changed()).await {
                Ok(Ok(())) => {
                    if let Some(s) = *belt.borrow_and_update() {
                        if s.t.is_finite() && s.value.is_finite() {
                            return Ok(s);
                        }
                    }
                }
                _ => {
                    return Err(GatingError::NoSignal {
                        silent_s: BELT_SILENCE.as_secs_f64(),
                    })
                }
            }
        }
    }

    /// Ask for holds until one is steady and in the window of the last scan's level; the patient is left holding. After
    /// `attempts` holds without one, the patient breathes and the wait is refused.
    pub async fn hold(&self) -> Result<Hold, GatingError> {
        self.hold_near(self.reference()).await
    }

    /// As [`Self::hold`], in the window of `reference` (sensor units; none: any steady hold).
    pub async fn hold_near(&self, reference: Option<f64>) -> Result<Hold, GatingError> {
        let _waiting = Waiting::new(&self.time_wanted);
        let mut belt = self.belt.clone();
        let mut last_offset = f64::NAN;
        for attempt in 1..=self.settings.attempts.max(1) {
            self.instruct(true);
            let mut judge = HoldJudge::new(self.settings);
            let first = self.next_sample(&mut belt).await?;
            let asked = first.t;
            let mut s = first;
            loop {
                match judge.feed(s, reference) {
                    Verdict::Open { level } => return Ok(Hold { level, asked }),
                    Verdict::Expired | Verdict::Missed => break,
                    Verdict::Wait => {}
                }
                s = self.next_sample(&mut belt).await?;
            }
            if let (Some(level), Some(r)) = (judge.last_level, reference) {
                last_offset = (level - r) / self.settings.gain * 1e3;
            }
            tracing::info!(attempt, "no breath-hold in the gating window: breathe, then hold again");
            self.instruct(false);
            self.recover(&mut belt).await?;
        }
        Err(GatingError::NoHold {
            attempts: self.settings.attempts.max(1),
            window_mm: self.settings.window * 1e3,
            offset_mm: last_offset,
        })
    }

    /// Let the patient breathe for the recovery time (belt clock). The caller asks the clock for time.
    async fn recover(&self, belt: &mut watch::Receiver<Option<BeltSample>>) -> Result<(), GatingError> {
        let start = self.next_sample(belt).await?.t;
        while self.next_sample(belt).await?.t - start < self.settings.recovery {}
        Ok(())
    }

    /// Resolves when the hold `hold` is no longer good for motion (out of the window of `reference`, or over the limit),
    /// with the level at which it was last good (sensor units), if it ever was.
    pub async fn lost(&self, hold: Hold, reference: Option<f64>) -> (GatingError, Option<f64>) {
        let mut belt = self.belt.clone();
        let mut judge = HoldJudge::new(self.settings);
        let _ = judge.holds(
            BeltSample {
                t: hold.asked,
                value: hold.level,
            },
            None,
        );
        loop {
            match self.next_sample(&mut belt).await {
                Ok(s) => {
                    if !judge.holds(s, reference) {
                        if s.t - hold.asked > self.settings.hold_limit {
                            let why = GatingError::HoldTooLong {
                                limit_s: self.settings.hold_limit,
                            };
                            return (why, judge.last_good);
                        }
                        let offset_mm = reference.map_or(f64::NAN, |r| (s.value - r) / self.settings.gain * 1e3);
                        return (GatingError::LeftWindow { offset_mm }, judge.last_good);
                    }
                }
                Err(e) => return (e, judge.last_good),
            }
        }
    }

    /// After the recovery, a new hold; for a paused step.
    pub async fn breathe_and_recover(&self) -> Result<(), GatingError> {
        let _waiting = Waiting::new(&self.time_wanted);
        self.instruct(false);
        let mut belt = self.belt.clone();
        self.recover(&mut belt).await
    }
}

/// A scan in a breath-hold (when gated): the patient holds, the scan is taken once the hold is steady in the window, its
/// level becomes the reference, and the patient breathes again. Without gating, the scan at once.
pub(crate) async fn gated_scan(
    gate: Option<Arc<Gate>>,
    scanner: Arc<dyn ScanSource>,
    purpose: ScanPurpose,
) -> Result<Result<PathBuf, String>, GatingError> {
    let Some(gate) = gate else {
        return Ok(scanner.acquire(purpose).await);
    };
    let _breathe_after = BreatheAfter(&gate);
    let hold = gate.hold().await?;
    let scan = scanner.acquire(purpose).await;
    if scan.is_ok() {
        gate.set_reference(hold.level);
    }
    Ok(scan)
}

/// Tells the patient to breathe when it goes: at the end of a scan or a step in a hold, whichever way it ends (done,
/// refused, or dropped because an e-stop, an abort or a released deadman interrupted it).
struct BreatheAfter<'a>(&'a Gate);

impl Drop for BreatheAfter<'_> {
    fn drop(&mut self) {
        self.0.instruct(false);
    }
}

/// An insertion step in breath-holds: it starts in a steady hold in the window and pauses (braking along the motion,
/// never backing out) when the hold leaves the window or lasts too long, then resumes in the next hold within the window
/// of the level at which it stopped (module docs). A step that pauses more often than the gate has tries ends held, for
/// the operator.
pub(crate) async fn gated_insert(
    gate: Arc<Gate>,
    motion: Motion,
    goal: JointPositions,
    speed: f64,
) -> Result<Result<JointPositions, MotionError>, GatingError> {
    let _breathe_after = BreatheAfter(&gate);
    let mut pauses = 0;
    let mut reference = gate.reference();
    loop {
        let hold = gate.hold_near(reference).await?;
        tokio::select! {
            moved = motion.move_to(goal, speed) => return Ok(moved),
            (why, stopped_at) = gate.lost(hold, reference) => {
                let _ = motion.halt().await;
                reference = stopped_at.or(reference);
                pauses += 1;
                tracing::info!(pauses, "insertion paused: {why}");
                if pauses > gate.settings().attempts {
                    return Err(why);
                }
                gate.breathe_and_recover().await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(gated: bool) -> GatingSettings {
        GatingSettings {
            gain: 25_000.0,
            window: 0.001,
            settle: 2.0,
            hold_limit: 20.0,
            recovery: 6.0,
            attempts: 3,
            gated,
        }
    }

    fn at(t: f64, mm: f64) -> BeltSample {
        BeltSample { t, value: mm * 25.0 }
    }

    #[test]
    fn a_steady_hold_in_the_window_opens_after_the_settle_time_and_not_before() {
        let mut j = HoldJudge::new(settings(true));
        let reference = Some(0.5 * 25.0);
        let mut opened = None;
        for i in 0..100 {
            let t = i as f64 * 0.04;
            if let Verdict::Open { level } = j.feed(at(t, 0.8), reference) {
                opened = Some((t, level));
                break;
            }
        }
        let (t, level) = opened.expect("a hold 0.3 mm from the reference is in a ±1 mm window");
        assert!((2.0..2.1).contains(&t), "opened at {t} s");
        assert!((level / 25.0 - 0.8).abs() < 1e-9);
    }

    #[test]
    fn a_steady_hold_outside_the_window_is_missed_once_settled_and_a_settling_one_expires() {
        let mut j = HoldJudge::new(settings(true));
        let reference = Some(0.0);
        let verdict = (0..1000)
            .map(|i| (i, j.feed(at(i as f64 * 0.04, 1.6), reference)))
            .find(|(_, v)| *v != Verdict::Wait);
        assert_eq!(
            verdict,
            Some((50, Verdict::Missed)),
            "judged once the settle time has passed"
        );
        assert!((j.last_level.unwrap_or(0.0) / 25.0 - 1.6).abs() < 1e-9);
        // A level that never steadies (a slow 3 mm ramp every second) is given up at the hold limit.
        let mut j = HoldJudge::new(settings(true));
        let verdict = (0..1000)
            .map(|i| {
                let t = i as f64 * 0.04;
                (t, j.feed(at(t, 3.0 * (t % 1.0)), reference))
            })
            .find(|(_, v)| *v != Verdict::Wait);
        assert!(
            matches!(verdict, Some((t, Verdict::Expired)) if t > 20.0),
            "{verdict:?}"
        );
    }

    #[test]
    fn free_breathing_never_opens_the_gate() {
        let mut j = HoldJudge::new(settings(true));
        for i in 0..400 {
            let t = i as f64 * 0.04;
            let mm = 12.0 * (core::f64::consts::PI * t / 4.0).sin().powi(6);
            assert!(
                !matches!(j.feed(at(t, mm), Some(0.0)), Verdict::Open { .. }),
                "opened at {t} s"
            );
        }
    }

    #[test]
    fn ungated_goes_after_the_settle_time_whatever_the_level() {
        let mut j = HoldJudge::new(settings(false));
        let v = (0..60)
            .map(|i| j.feed(at(i as f64 * 0.04, 5.0), Some(0.0)))
            .find(|v| *v != Verdict::Wait);
        assert!(matches!(v, Some(Verdict::Open { .. })), "{v:?}");
    }

    #[test]
    fn during_motion_a_drift_out_of_the_window_or_the_limit_ends_the_hold() {
        let mut j = HoldJudge::new(settings(true));
        assert!(j.holds(at(0.0, 0.0), Some(0.0)));
        assert!(j.holds(at(0.5, 0.9), Some(0.0)));
        let mut out = None;
        for i in 0..100 {
            let t = 0.5 + i as f64 * 0.04;
            if !j.holds(at(t, 0.9 + i as f64 * 0.01), Some(0.0)) {
                out = Some(t);
                break;
            }
        }
        let t = out.expect("a drift to 1.9 mm leaves a ±1 mm window");
        assert!(t > 0.6 && t < 1.1, "{t}");
        let mut j = HoldJudge::new(settings(true));
        assert!(j.holds(at(0.0, 0.0), Some(0.0)));
        assert!(j.holds(at(19.9, 0.0), Some(0.0)));
        assert!(!j.holds(at(20.1, 0.0), Some(0.0)));
    }
}
