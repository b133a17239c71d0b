//! The insertion schedule: equal steps of at most the configured length, the last one shorter, and optionally a final
//! approach (the stop-short margin) after the final check scan.

use crate::kinematics::JointPositions;

/// Steps whose remainder is below this (m) are merged into the previous step instead of producing a sliver: 1 nm is far
/// below any motion the drives resolve and only guards the `ceil` against rounding (90 mm / 30 mm must be 3 steps, not 4).
const ROUNDING: f64 = 1e-9;

/// One insertion step: advance the needle along its axis to a new depth, then take a check scan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InsertionStep {
    /// Position in the schedule, from 0.
    pub index: usize,
    /// Insertion joint value at the end of the step (m): the value sent to the drive.
    pub insertion: f64,
    /// Depth of the tip beyond the entry along the needle at the end of the step (m).
    pub tip_depth: f64,
    /// Advance of this step (m), > 0 and ≤ the configured step length.
    pub length: f64,
    /// True for the final approach over the stop-short margin, taken only after the check scan short of the target.
    pub final_approach: bool,
    /// The full joint goal of the step: the alignment goal with the insertion joint at `insertion`.
    pub goal: JointPositions,
}

/// Builds the schedule from `start` to `end` (insertion joint values, m) in steps of at most `max_step`; when
/// `stop_short > 0` the schedule first ends `stop_short` before `end` and a last step (the final approach) covers it.
/// `tip_offset` converts insertion joint values into tip depths below the entry. `axis` is the joint vector whose
/// insertion is replaced in each step's goal. The caller has checked `start < end - stop_short`, `max_step > 0` and
/// `stop_short ≤ max_step`.
pub(super) fn schedule(
    start: f64,
    end: f64,
    max_step: f64,
    stop_short: f64,
    tip_offset: f64,
    axis: &JointPositions,
) -> Vec<InsertionStep> {
    let approach_from = end - stop_short;
    let travel = approach_from - start;
    let n = ((travel / max_step) - ROUNDING).ceil().max(1.0) as usize;
    let mut steps = Vec::with_capacity(n + 1);
    let mut previous = start;
    let mut push = |to: f64, final_approach: bool, steps: &mut Vec<InsertionStep>| {
        let mut goal = *axis;
        goal.set(crate::kinematics::Joint::Insertion, to);
        steps.push(InsertionStep {
            index: steps.len(),
            insertion: to,
            tip_depth: to + tip_offset,
            length: to - previous,
            final_approach,
            goal,
        });
        previous = to;
    };
    for i in 1..=n {
        // Full steps from the start, the last one ending exactly on `approach_from` (no accumulated rounding).
        let to = if i == n {
            approach_from
        } else {
            start + max_step * i as f64
        };
        push(to, false, &mut steps);
    }
    if stop_short > 0.0 {
        push(end, true, &mut steps);
    }
    steps
}
