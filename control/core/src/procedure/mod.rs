//! The procedure state machine of a CT-guided needle placement, pure and event-driven.
//!
//! ```text
//! Idle ─ScanAcquired→ Registering ─Registered→ Planning ─Planned→ ReadyToAlign ─AlignRequested→ Aligning ─Aligned→
//! ReadyToInsert(k) ─InsertStepRequested→ Inserting(k) ─StepDone→ Checking(k) ─CheckScanAnalysed→ ReadyToInsert(k+1)
//!   … last step checked → ReadyToConfirm ─ConfirmRequested→ Confirmed ─RetractRequested→ Retracting ─Retracted→ Done
//! Checking(k) ─CheckScanFailed→ CheckFailed(k) ─InsertStepRequested→ Checking(k), the scan taken again (or retract)
//! Checking(k) with the tip off the path → NeedsCorrection ─Replanned→ Reorienting ─Aligned→ ReadyToInsert(k+1), the
//!   first of the correction's steps (k counts the steps of the whole procedure, across corrections)
//!   (a correction must pivot about the planned entry, hold the insertion where the needle stands and, with the needle
//!   in, turn at most `max_correction_angle`)
//! NeedsCorrection ─Replanned(a redirect)→ Withdrawing ─Withdrawn→ Reorienting ─Aligned→ ReadyToInsert(k+1): when no
//!   correction the inserted needle can make reaches the target (a turn beyond `max_correction_angle`, a tip past the
//!   target's depth), the needle is pulled back along its own track to a shallow depth and re-aimed from there (at most
//!   `max_redirect_angle`), as a radiologist withdraws to the subcutaneous tissue and redirects
//! any motion + enable released / e-stop / fault → Hold or QuickStop, Paused (the interrupted motion is remembered)
//! AbortRequested → Aborted (retract still possible)
//! ```
//!
//! [`Procedure::handle`] takes one [`Event`] (an operator request, a report from the robot or the image pipeline, or a
//! safety input) and returns the [`Action`]s the robot must take, or a [`Rejection`] saying why not, with the numbers.
//! It never does IO; the nodes do the motion, the scans and the logging.
//!
//! Why an enum and not typestates: the events arrive at run time from ROS callbacks in any order, so the state has to be
//! a value one owner matches on; a typestate would only move the run-time check into the caller. Wrong calls are made
//! hard in other ways: (1) the facts that unlock motion are types only the gates can build: [`Event::Registered`] carries
//! a [`GatedRegistration`] (only `QualityGate::check` makes one) and [`Event::Planned`] an [`InsertionPlan`] (only
//! `Planner::plan` makes one), so "align without a passed gate / a reachable target" cannot even be expressed; (2) every
//! motion [`Action`] is produced in one place, behind the interlock check ([`Interlocks::motion_allowed`]), which a
//! property test drives with random event sequences; (3) a rejected event changes nothing (the machine fails whole).
//!
//! After a safety stop the machine never moves by itself: re-pressing the enable, releasing the e-stop or resetting a
//! fault only clears the condition; the operator must request the interrupted motion again. Every motion is an absolute
//! joint goal, so the motion layer plans it from the measured position (the EtherCAT cycle restarts its interpolator from
//! the actual positions after a halt), never from where the interrupted trajectory was.

mod interlock;
mod machine;

pub use interlock::Interlocks;
pub use machine::{Procedure, ProcedureConfig};

use core::fmt;

use crate::kinematics::JointPositions;
use crate::planning::{InsertionPlan, PlanningError, Replan};
use crate::registration::{GatedRegistration, RegistrationError};

/// Something that happened: an operator request, a report from the robot or the image pipeline, or a safety input.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A planning scan is in (registration is running on it).
    ScanAcquired,
    /// Registration passed its quality gate.
    Registered(GatedRegistration),
    /// Registration failed or the gate refused it.
    RegistrationRefused(RegistrationError),
    /// The planner produced a plan.
    Planned(InsertionPlan),
    /// The planner refused.
    PlanFailed(PlanningError),
    /// Operator: move to the alignment (also: resume an interrupted alignment, re-orientation or redirect withdrawal).
    AlignRequested,
    /// Robot: the alignment (or re-orientation) goal is reached.
    Aligned,
    /// Operator: take the next insertion step (also: resume an interrupted step).
    InsertStepRequested,
    /// Robot: the step's goal is reached.
    StepDone,
    /// Image pipeline: the check scan after a step is analysed. `tip_error` (m) is the distance of the tip found from
    /// where the plan puts it after this step.
    CheckScanAnalysed {
        /// Tip error, m (finite, ≥ 0).
        tip_error: f64,
    },
    /// Image pipeline: the check scan after the step gave no answer (not acquired, no breath-hold for it, the needle
    /// not found). Nothing moved; the operator scans again or retracts.
    CheckScanFailed,
    /// A correction after a check scan: new joint goals about the same entry.
    Replanned(Replan),
    /// Operator: the tip is confirmed at the target (sample taken / needle placed).
    ConfirmRequested,
    /// Operator: retract the needle (at any point after planning; also the way out of a pause or an abort).
    RetractRequested,
    /// Robot: the retraction goal is reached.
    Retracted,
    /// Robot: a redirect's withdrawal depth is reached (the re-orientation follows).
    Withdrawn,
    /// Operator: abort the procedure (stops motion; retraction stays possible).
    AbortRequested,
    /// Operator: start over (only with the needle out).
    NewProcedure,
    /// Enable (deadman) input level: true while held.
    EnableChanged(bool),
    /// E-stop input level: true while active.
    EStop(bool),
    /// A fault from the robot, the bus or a node (text with its numbers); latches.
    Fault(String),
    /// Fault-reset input level; a rising edge clears a latched fault.
    Reset(bool),
    /// Respiratory gating: no breath-hold within the window could be had for the motion under way (the patient's
    /// breathing, not a fault of the robot). The motion holds; the operator asks again.
    BreathHoldLost,
}

/// What the interrupted or requested motion is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Motion {
    /// RCM onto the entry, needle on the line, insertion retracted.
    Align,
    /// Advance to the end of step `step` (index into the active steps).
    Insert {
        /// Step index.
        step: usize,
    },
    /// Turn the needle about the entry to a corrected direction, insertion held.
    Reorient,
    /// Pull the needle back along its own track to a shallow depth, before a redirect turns it further than an inserted
    /// needle may turn.
    Withdraw,
    /// Insertion back to its retracted value.
    Retract,
}

impl fmt::Display for Motion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Motion::Align => f.write_str("alignment"),
            Motion::Insert { step } => write!(f, "insertion step {}", step + 1),
            Motion::Reorient => f.write_str("re-orientation"),
            Motion::Withdraw => f.write_str("withdrawal"),
            Motion::Retract => f.write_str("retraction"),
        }
    }
}

/// What the robot (or the scanner) must do now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Controlled stop where it is; drives stay powered (the enable was released, or an abort).
    Hold,
    /// CiA 402 quick stop (e-stop or fault).
    QuickStop,
    /// Move to an absolute joint goal, planned from the measured position.
    MoveTo {
        /// Goal, SI.
        goal: JointPositions,
        /// Why.
        motion: Motion,
    },
    /// Move only the insertion joint to `insertion` (m), holding every other joint where it is measured: the needle
    /// comes out along its own axis, whatever an interrupted alignment or re-orientation left the other joints at.
    RetractTo {
        /// Insertion joint goal, m (its retracted value, or a redirect's withdrawal depth).
        insertion: f64,
        /// [`Motion::Retract`] or [`Motion::Withdraw`].
        motion: Motion,
    },
    /// Acquire a check scan after insertion step `step`.
    AcquireCheckScan {
        /// Step index.
        step: usize,
    },
}

impl Action {
    /// True for actions that move the robot.
    pub fn is_motion(&self) -> bool {
        matches!(self, Action::MoveTo { .. } | Action::RetractTo { .. })
    }
}

/// Why the machine stopped a motion.
#[derive(Clone, Debug, PartialEq)]
pub enum Halt {
    /// The enable (deadman) was released.
    EnableReleased,
    /// The e-stop went active.
    EStop,
    /// A fault latched (its text).
    Fault(String),
    /// The operator aborted.
    Abort,
    /// No breath-hold within the gating window (respiratory gating).
    BreathHold,
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Halt::EnableReleased => f.write_str("enable (deadman) released"),
            Halt::EStop => f.write_str("e-stop"),
            Halt::Fault(text) => write!(f, "fault: {text}"),
            Halt::Abort => f.write_str("aborted by the operator"),
            Halt::BreathHold => f.write_str("no breath-hold within the gating window"),
        }
    }
}

/// Where the procedure stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// Waiting for a planning scan.
    Idle,
    /// Scan in; waiting for the registration.
    Registering,
    /// Registration failed or was refused; a new scan is needed.
    RegistrationRefused(RegistrationError),
    /// Registered; waiting for the plan.
    Planning,
    /// The planner refused; a new scan or new points are needed.
    PlanFailed(PlanningError),
    /// Plan in hand; waiting for the operator to align.
    ReadyToAlign,
    /// Moving to the alignment goal.
    Aligning,
    /// Aligned (or checked); waiting for the operator to take step `next`.
    ReadyToInsert {
        /// Index of the next step.
        next: usize,
    },
    /// Moving to the end of step `step`.
    Inserting {
        /// Step index.
        step: usize,
    },
    /// Step done; waiting for the check scan's analysis.
    Checking {
        /// Step index.
        step: usize,
    },
    /// The check scan after step `step` gave no answer; waiting for the operator to scan again (an insert request) or
    /// retract. The needle stands where the step left it.
    CheckFailed {
        /// Step index.
        step: usize,
    },
    /// The check scan found the tip off the plan by more than allowed; waiting for a correction or a retraction.
    NeedsCorrection {
        /// Step index.
        step: usize,
        /// Tip error, m.
        tip_error: f64,
    },
    /// Turning the needle to a corrected direction.
    Reorienting,
    /// Pulling the needle back to a shallow depth before a redirect (then re-orienting).
    Withdrawing,
    /// All steps done and checked; waiting for the operator to confirm.
    ReadyToConfirm,
    /// Confirmed; waiting for the retraction request.
    Confirmed,
    /// Retracting.
    Retracting,
    /// Needle out, procedure complete.
    Done,
    /// A motion was stopped by a safety input or a fault; waiting for the operator to request it again (or retract).
    Paused {
        /// The motion that was interrupted.
        interrupted: Motion,
        /// Why.
        cause: Halt,
    },
    /// Aborted by the operator; only retraction or a new procedure (needle out) remain.
    Aborted,
}

impl Stage {
    /// The motion in progress in this stage, if any.
    pub fn motion(&self) -> Option<Motion> {
        match self {
            Stage::Aligning => Some(Motion::Align),
            Stage::Inserting { step } => Some(Motion::Insert { step: *step }),
            Stage::Reorienting => Some(Motion::Reorient),
            Stage::Withdrawing => Some(Motion::Withdraw),
            Stage::Retracting => Some(Motion::Retract),
            _ => None,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Idle => f.write_str("idle"),
            Stage::Registering => f.write_str("registering"),
            Stage::RegistrationRefused(e) => write!(f, "registration refused ({e})"),
            Stage::Planning => f.write_str("planning"),
            Stage::PlanFailed(e) => write!(f, "plan failed ({e})"),
            Stage::ReadyToAlign => f.write_str("ready to align"),
            Stage::Aligning => f.write_str("aligning"),
            Stage::ReadyToInsert { next } => write!(f, "ready for insertion step {}", next + 1),
            Stage::Inserting { step } => write!(f, "inserting step {}", step + 1),
            Stage::Checking { step } => write!(f, "checking step {}", step + 1),
            Stage::CheckFailed { step } => write!(
                f,
                "check scan after step {} failed: insert to scan again, or retract",
                step + 1
            ),
            Stage::NeedsCorrection { step, tip_error } => {
                write!(
                    f,
                    "needs correction after step {} (tip error {:.2} mm)",
                    step + 1,
                    tip_error * 1e3
                )
            }
            Stage::Reorienting => f.write_str("re-orienting"),
            Stage::Withdrawing => f.write_str("withdrawing for a redirect"),
            Stage::ReadyToConfirm => f.write_str("ready to confirm"),
            Stage::Confirmed => f.write_str("confirmed"),
            Stage::Retracting => f.write_str("retracting"),
            Stage::Done => f.write_str("done"),
            Stage::Paused { interrupted, cause } => write!(f, "paused: {interrupted} stopped ({cause})"),
            Stage::Aborted => f.write_str("aborted"),
        }
    }
}

/// Why an event was refused: `cannot <action>: <reason>`. A rejected event changes nothing.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("cannot {action}: {reason}")]
pub struct Rejection {
    /// What the event asked for ("align", "insert", …).
    pub action: &'static str,
    /// Why not.
    pub reason: Reason,
}

/// The reason inside a [`Rejection`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Reason {
    /// The deadman is not held.
    #[error("enable (deadman) released")]
    EnableReleased,
    /// The e-stop is active.
    #[error("e-stop active")]
    EStopActive,
    /// The e-stop has not reported its state yet (counts as active).
    #[error("e-stop state not reported yet (treated as active)")]
    EStopUnknown,
    /// A fault is latched.
    #[error("fault latched ({0}); reset it first")]
    FaultLatched(String),
    /// No usable registration.
    #[error("{}", registration_reason(.0))]
    Registration(RegistrationError),
    /// The planner refused.
    #[error("{0}")]
    Plan(PlanningError),
    /// The event does not fit the current stage.
    #[error("procedure is {stage}; this needs: {needs}")]
    WrongStage {
        /// The current stage, as text.
        stage: String,
        /// The stage(s) it needs.
        needs: &'static str,
    },
    /// The plan was made with another registration than the one held.
    #[error("the plan was made with another registration than the current one")]
    PlanFromOtherRegistration,
    /// The needle may still be in the patient.
    #[error("the needle may still be in the patient; retract it first")]
    NeedleIn,
    /// A correction would hold the insertion at another depth than the needle's.
    #[error("the correction holds the insertion at {held_mm:.3} mm but the needle stands at {current_mm:.3} mm")]
    CorrectionAtOtherDepth {
        /// Held by the correction, mm.
        held_mm: f64,
        /// Where the needle stands, mm.
        current_mm: f64,
    },
    /// A correction turns the inserted needle further than allowed.
    #[error("the correction turns the inserted needle by {angle_deg:.2}°, more than {max_deg:.2}°; retract first")]
    CorrectionTooLarge {
        /// Turn, degrees.
        angle_deg: f64,
        /// Allowed, degrees.
        max_deg: f64,
    },
    /// The procedure has made as many redirects as allowed.
    #[error("{0} redirects made, the most one procedure allows; retract and plan again on a new scan")]
    TooManyRedirects(usize),
    /// A check-scan result that is not a distance.
    #[error("tip error {0} m is not a finite distance ≥ 0")]
    BadTipError(f64),
    /// The correction's entry is not the plan's entry (the RCM must stay on the skin entry).
    #[error("the correction pivots about a point {0:.3} mm from the planned entry; it must pivot about the entry")]
    CorrectionOffEntry(f64),
}

fn registration_reason(e: &RegistrationError) -> String {
    match e {
        RegistrationError::Refused(_) => e.to_string(),
        other => format!("registration failed: {other}"),
    }
}
