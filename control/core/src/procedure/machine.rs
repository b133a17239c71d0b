//! The machine: one owner, one `handle` per event, actions out. See the module docs for the stage diagram.

use super::{Action, Event, Halt, Interlocks, Motion, Reason, Rejection, Stage};
use crate::kinematics::JointPositions;
use nalgebra::{Unit, Vector3};

use crate::planning::{InsertionPlan, InsertionStep, Replan};
use crate::registration::GatedRegistration;

/// How far (m) a correction's pivot may be from the planned entry: the RCM must stay on the skin entry.
const ENTRY_TOLERANCE: f64 = 1e-6;

/// How far (m) a correction's held insertion may be from where the needle stands: it is held while turning, so a
/// different value would insert or pull the needle during the pivot.
const INSERTION_TOLERANCE: f64 = 1e-4;

/// Procedure settings (SI), checked by the caller's config loader.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcedureConfig {
    /// Largest tip error (m) in a check scan that lets insertion continue without a correction.
    pub max_tip_error: f64,
    /// Largest turn (rad) of a correction while the needle may be in the patient: pivoting about the skin entry sweeps
    /// the inserted shaft sideways through tissue, so large corrections need a retraction first.
    pub max_correction_angle: f64,
    /// Largest turn (rad) of a redirect, made with the needle withdrawn to a shallow depth: the pivot sweeps only that
    /// much shaft through (subcutaneous) tissue.
    pub max_redirect_angle: f64,
    /// Most redirects in one procedure: each is another pass through the tissue.
    pub max_redirects: usize,
}

impl Default for ProcedureConfig {
    fn default() -> Self {
        Self {
            max_tip_error: 2.0e-3,
            max_correction_angle: 5f64.to_radians(),
            max_redirect_angle: 15f64.to_radians(),
            max_redirects: 2,
        }
    }
}

/// The procedure: stage, interlocks and the plan being executed.
#[derive(Clone, Debug, PartialEq)]
pub struct Procedure {
    config: ProcedureConfig,
    stage: Stage,
    interlocks: Interlocks,
    registration: Option<GatedRegistration>,
    plan: Option<InsertionPlan>,
    /// The steps being executed: the plan's, or a correction's remaining steps.
    steps: Vec<InsertionStep>,
    /// Number of the first of `steps` among all the procedure's steps (stages count steps from the first insertion,
    /// across corrections, as the operator does).
    step_base: usize,
    /// Goal of an alignment or re-orientation (resumed after a pause).
    axis_goal: JointPositions,
    /// Insertion joint value of a retraction (m).
    retracted: f64,
    /// Insertion joint value (m) a redirect withdraws to.
    withdraw_to: f64,
    /// Redirects made in this procedure.
    redirects: usize,
    /// True from the first insertion command until the retraction is reported done.
    needle_in: bool,
    /// Insertion joint value (m) where the needle stands between motions (last goal reached).
    insertion: f64,
    /// Needle direction of the active axis (the plan's, or the last correction's).
    direction: Unit<Vector3<f64>>,
}

/// Shorthand for a rejection.
fn reject<T>(action: &'static str, reason: Reason) -> Result<T, Rejection> {
    Err(Rejection { action, reason })
}

impl Procedure {
    /// A new procedure, idle, with the enable released and the e-stop treated as active until reported.
    pub fn new(config: ProcedureConfig) -> Self {
        Self {
            config,
            stage: Stage::Idle,
            interlocks: Interlocks::new(),
            registration: None,
            plan: None,
            steps: Vec::new(),
            step_base: 0,
            axis_goal: JointPositions::default(),
            retracted: 0.0,
            withdraw_to: 0.0,
            redirects: 0,
            needle_in: false,
            insertion: 0.0,
            direction: Vector3::z_axis(),
        }
    }

    /// The current stage.
    pub fn stage(&self) -> &Stage {
        &self.stage
    }
    /// Enable, e-stop and the fault latch.
    pub fn interlocks(&self) -> &Interlocks {
        &self.interlocks
    }
    /// The gated registration in use.
    pub fn registration(&self) -> Option<&GatedRegistration> {
        self.registration.as_ref()
    }
    /// The plan in use.
    pub fn plan(&self) -> Option<&InsertionPlan> {
        self.plan.as_ref()
    }
    /// The steps being executed (the plan's, or a correction's).
    pub fn steps(&self) -> &[InsertionStep] {
        &self.steps
    }

    /// Step `step`, numbered from the procedure's first insertion across corrections (as stages and actions number
    /// them), if it is among the steps being executed.
    pub fn step(&self, step: usize) -> Option<&InsertionStep> {
        step.checked_sub(self.step_base).and_then(|i| self.steps.get(i))
    }

    /// Steps of the procedure as now planned: those done before the active steps, and the active ones.
    pub fn planned_steps(&self) -> usize {
        self.step_base + self.steps.len()
    }
    /// True from the first insertion command until a retraction is reported done.
    pub fn needle_may_be_in(&self) -> bool {
        self.needle_in
    }
    /// One line for the operator: the stage, and a latched fault if any.
    pub fn status(&self) -> String {
        match self.interlocks.fault() {
            Some(fault) => format!("{} — FAULT LATCHED: {fault} (reset required)", self.stage),
            None => self.stage.to_string(),
        }
    }

    /// Handles one event: the actions the robot must take now, or why the event is refused (then nothing changed).
    /// Safety inputs (`EnableChanged`, `EStop`, `Fault`, `Reset`) are never refused.
    pub fn handle(&mut self, event: Event) -> Result<Vec<Action>, Rejection> {
        match event {
            Event::EnableChanged(held) => {
                self.interlocks.set_enable(held);
                Ok(if held {
                    Vec::new()
                } else {
                    self.halt(Halt::EnableReleased, Action::Hold)
                })
            }
            Event::EStop(active) => {
                self.interlocks.set_estop(active);
                Ok(if active {
                    self.halt(Halt::EStop, Action::QuickStop)
                } else {
                    Vec::new()
                })
            }
            Event::Fault(text) => {
                self.interlocks.latch(text.clone());
                Ok(self.halt(Halt::Fault(text), Action::QuickStop))
            }
            Event::BreathHoldLost => Ok(self.halt(Halt::BreathHold, Action::Hold)),
            Event::Reset(level) => {
                // Clearing the latch moves nothing: the stage stays where the fault left it.
                self.interlocks.reset(level);
                Ok(Vec::new())
            }
            Event::AlignRequested => self.request_align(),
            Event::InsertStepRequested => self.request_insert(),
            Event::RetractRequested => self.request_retract(),
            Event::Replanned(replan) => self.request_reorient(replan),
            other => self.progress(other),
        }
    }

    /// Reports from the pipeline and non-motion requests. Refused while a fault is latched.
    fn progress(&mut self, event: Event) -> Result<Vec<Action>, Rejection> {
        let action = match &event {
            Event::ScanAcquired => "accept a planning scan",
            Event::Registered(_) | Event::RegistrationRefused(_) => "accept a registration",
            Event::Planned(_) | Event::PlanFailed(_) => "accept a plan",
            Event::Aligned => "accept an alignment report",
            Event::StepDone => "accept a step report",
            Event::CheckScanAnalysed { .. } => "accept a check-scan result",
            Event::CheckScanFailed => "accept a check-scan failure",
            Event::ConfirmRequested => "confirm",
            Event::Retracted => "accept a retraction report",
            Event::Withdrawn => "accept a withdrawal report",
            Event::AbortRequested => "abort",
            Event::NewProcedure => "start a new procedure",
            _ => "handle the event",
        };
        if let Some(fault) = self.interlocks.fault() {
            // Abort is always possible: it only stops.
            if !matches!(event, Event::AbortRequested) {
                return reject(action, Reason::FaultLatched(fault.to_owned()));
            }
        }
        match event {
            Event::ScanAcquired => {
                if self.needle_in {
                    return reject(action, Reason::NeedleIn);
                }
                if !matches!(
                    self.stage,
                    Stage::Idle | Stage::RegistrationRefused(_) | Stage::PlanFailed(_) | Stage::ReadyToAlign
                ) {
                    return self.wrong(action, "idle, registration refused, plan failed or ready to align");
                }
                self.registration = None;
                self.plan = None;
                self.steps.clear();
                self.step_base = 0;
                self.stage = Stage::Registering;
            }
            Event::Registered(gated) => {
                self.require_stage(action, Stage::Registering, "registering")?;
                self.registration = Some(gated);
                self.stage = Stage::Planning;
            }
            Event::RegistrationRefused(e) => {
                self.require_stage(action, Stage::Registering, "registering")?;
                self.stage = Stage::RegistrationRefused(e);
            }
            Event::Planned(plan) => {
                self.require_stage(action, Stage::Planning, "planning")?;
                let same = self
                    .registration
                    .as_ref()
                    .is_some_and(|r| r.t_robot_ct() == plan.t_robot_ct());
                if !same {
                    return reject(action, Reason::PlanFromOtherRegistration);
                }
                self.steps = plan.steps().to_vec();
                self.step_base = 0;
                self.axis_goal = plan.align_goal();
                self.retracted = plan.align_goal().insertion();
                self.insertion = self.retracted;
                self.direction = plan.direction();
                self.redirects = 0;
                self.plan = Some(plan);
                self.stage = Stage::ReadyToAlign;
            }
            Event::PlanFailed(e) => {
                self.require_stage(action, Stage::Planning, "planning")?;
                self.stage = Stage::PlanFailed(e);
            }
            Event::Aligned => {
                if !matches!(self.stage, Stage::Aligning | Stage::Reorienting) {
                    return self.wrong(action, "aligning or re-orienting");
                }
                self.stage = if self.steps.is_empty() {
                    Stage::ReadyToConfirm
                } else {
                    Stage::ReadyToInsert { next: self.step_base }
                };
            }
            Event::StepDone => {
                let Stage::Inserting { step } = self.stage else {
                    return self.wrong(action, "inserting");
                };
                self.stage = Stage::Checking { step };
                self.insertion = self.step(step).map_or(self.insertion, |s| s.insertion);
                return Ok(vec![Action::AcquireCheckScan { step }]);
            }
            Event::CheckScanAnalysed { tip_error } => {
                let Stage::Checking { step } = self.stage else {
                    return self.wrong(action, "checking");
                };
                if !(tip_error.is_finite() && tip_error >= 0.0) {
                    return reject(action, Reason::BadTipError(tip_error));
                }
                // Fail closed: a limit that is not a number (a config never checked) asks for a correction.
                let within = tip_error
                    .partial_cmp(&self.config.max_tip_error)
                    .is_some_and(|o| o.is_le());
                self.stage = if !within {
                    Stage::NeedsCorrection { step, tip_error }
                } else if step + 1 >= self.planned_steps() {
                    Stage::ReadyToConfirm
                } else {
                    Stage::ReadyToInsert { next: step + 1 }
                };
            }
            Event::CheckScanFailed => {
                let Stage::Checking { step } = self.stage else {
                    return self.wrong(action, "checking");
                };
                self.stage = Stage::CheckFailed { step };
            }
            Event::ConfirmRequested => {
                self.require_stage(action, Stage::ReadyToConfirm, "ready to confirm")?;
                self.stage = Stage::Confirmed;
            }
            Event::Withdrawn => {
                self.require_stage(action, Stage::Withdrawing, "withdrawing for a redirect")?;
                self.insertion = self.withdraw_to;
                return Ok(self.start(Motion::Reorient));
            }
            Event::Retracted => {
                self.require_stage(action, Stage::Retracting, "retracting")?;
                self.needle_in = false;
                self.insertion = self.retracted;
                self.stage = Stage::Done;
            }
            Event::AbortRequested => {
                if matches!(self.stage, Stage::Done | Stage::Aborted) {
                    return self.wrong(action, "any stage but done or aborted");
                }
                let moving = self.stage.motion().is_some();
                self.stage = Stage::Aborted;
                return Ok(if moving { vec![Action::Hold] } else { Vec::new() });
            }
            Event::NewProcedure => {
                if self.needle_in {
                    return reject(action, Reason::NeedleIn);
                }
                if self.stage.motion().is_some() {
                    return self.wrong(action, "no motion in progress");
                }
                let interlocks = self.interlocks.clone();
                *self = Self::new(self.config.clone());
                self.interlocks = interlocks;
            }
            _ => return self.wrong(action, "a different event"),
        }
        Ok(Vec::new())
    }

    fn request_align(&mut self) -> Result<Vec<Action>, Rejection> {
        const A: &str = "align";
        self.allow_motion(A)?;
        match &self.stage {
            Stage::ReadyToAlign
            | Stage::Paused {
                interrupted: Motion::Align,
                ..
            } => Ok(self.start(Motion::Align)),
            Stage::Paused {
                interrupted: Motion::Reorient,
                ..
            } => Ok(self.start(Motion::Reorient)),
            Stage::Paused {
                interrupted: Motion::Withdraw,
                ..
            } => Ok(self.start(Motion::Withdraw)),
            Stage::RegistrationRefused(e) => reject(A, Reason::Registration(e.clone())),
            Stage::PlanFailed(e) => reject(A, Reason::Plan(e.clone())),
            _ => self.wrong(
                A,
                "ready to align, or paused during an alignment, a re-orientation or a redirect's withdrawal",
            ),
        }
    }

    fn request_insert(&mut self) -> Result<Vec<Action>, Rejection> {
        const A: &str = "insert";
        self.allow_motion(A)?;
        match self.stage {
            Stage::ReadyToInsert { next: step }
            | Stage::Paused {
                interrupted: Motion::Insert { step },
                ..
            } => Ok(self.start(Motion::Insert { step })),
            // The step's check scan gave no answer: take it again (nothing moves).
            Stage::CheckFailed { step } => {
                self.stage = Stage::Checking { step };
                Ok(vec![Action::AcquireCheckScan { step }])
            }
            Stage::RegistrationRefused(ref e) => reject(A, Reason::Registration(e.clone())),
            Stage::PlanFailed(ref e) => reject(A, Reason::Plan(e.clone())),
            _ => self.wrong(
                A,
                "ready to insert, paused during an insertion step, or a failed check scan to take again",
            ),
        }
    }

    /// A correction: checked against the plan (same entry), the needle's current insertion (held while turning, or for
    /// a redirect, withdrawn to first) and, with the needle in, the largest turn allowed; then the remaining steps replace
    /// the active ones.
    fn request_reorient(&mut self, replan: Replan) -> Result<Vec<Action>, Rejection> {
        const A: &str = "re-orient";
        self.allow_motion(A)?;
        if !matches!(
            self.stage,
            Stage::NeedsCorrection { .. } | Stage::ReadyToInsert { .. } | Stage::ReadyToConfirm
        ) {
            return self.wrong(A, "needs correction, ready to insert or ready to confirm");
        }
        let off = self
            .plan
            .as_ref()
            .map_or(f64::INFINITY, |p| p.entry().distance(&replan.entry()));
        if off.is_nan() || off > ENTRY_TOLERANCE {
            return reject(A, Reason::CorrectionOffEntry(off * 1e3));
        }
        let held = replan.reorient_goal().insertion();
        let redirect = replan.withdraw_to().is_some();
        // A redirect turns at the depth it withdraws to, which must be above the needle; a correction where it stands.
        let depth_ok = match replan.withdraw_to() {
            Some(w) => (held - w).abs() <= INSERTION_TOLERANCE && w < self.insertion - INSERTION_TOLERANCE,
            None => (held - self.insertion).abs() <= INSERTION_TOLERANCE,
        };
        if !depth_ok || !held.is_finite() {
            return reject(
                A,
                Reason::CorrectionAtOtherDepth {
                    held_mm: held * 1e3,
                    current_mm: self.insertion * 1e3,
                },
            );
        }
        if redirect && self.redirects >= self.config.max_redirects {
            return reject(A, Reason::TooManyRedirects(self.redirects));
        }
        let turn = self.direction.angle(&replan.direction());
        let max = if redirect {
            self.config.max_redirect_angle
        } else {
            self.config.max_correction_angle
        };
        if self.needle_in && !(turn.is_finite() && turn <= max) {
            return reject(
                A,
                Reason::CorrectionTooLarge {
                    angle_deg: turn.to_degrees(),
                    max_deg: max.to_degrees(),
                },
            );
        }
        let done = match self.stage {
            Stage::NeedsCorrection { step, .. } => step + 1,
            Stage::ReadyToInsert { next } => next,
            _ => self.planned_steps(),
        };
        self.steps = replan.steps().to_vec();
        self.step_base = done;
        self.axis_goal = replan.reorient_goal();
        self.retracted = replan.retracted_goal().insertion();
        self.direction = replan.direction();
        if redirect {
            self.redirects += 1;
            self.withdraw_to = held;
            return Ok(self.start(Motion::Withdraw));
        }
        Ok(self.start(Motion::Reorient))
    }

    fn request_retract(&mut self) -> Result<Vec<Action>, Rejection> {
        const A: &str = "retract";
        self.allow_motion(A)?;
        // Allowed whenever there is an axis to retract along, also pre-empting an insertion in progress.
        if self.plan.is_none()
            || matches!(self.stage, Stage::Done | Stage::Retracting | Stage::Aborted if !self.needle_in)
        {
            return self.wrong(A, "a plan and a needle that may be in, or an interrupted motion");
        }
        Ok(self.start(Motion::Retract))
    }

    /// The single place motion actions are made: the interlocks were checked by the caller (`allow_motion`), and are
    /// checked again here so that no path can skip them.
    fn start(&mut self, motion: Motion) -> Vec<Action> {
        if self.interlocks.motion_allowed().is_err() {
            return vec![Action::Hold];
        }
        let action = match motion {
            Motion::Align | Motion::Reorient => Action::MoveTo {
                goal: self.axis_goal,
                motion,
            },
            Motion::Insert { step } => match self.step(step) {
                Some(s) => Action::MoveTo { goal: s.goal, motion },
                None => return vec![Action::Hold],
            },
            Motion::Withdraw => Action::RetractTo {
                insertion: self.withdraw_to,
                motion,
            },
            Motion::Retract => Action::RetractTo {
                insertion: self.retracted,
                motion,
            },
        };
        if matches!(motion, Motion::Insert { .. }) {
            self.needle_in = true;
        }
        self.stage = match motion {
            Motion::Align => Stage::Aligning,
            Motion::Insert { step } => Stage::Inserting { step },
            Motion::Reorient => Stage::Reorienting,
            Motion::Withdraw => Stage::Withdrawing,
            Motion::Retract => Stage::Retracting,
        };
        vec![action]
    }

    /// A safety stop: the stop action always; a motion in progress becomes `Paused` with the cause.
    fn halt(&mut self, cause: Halt, stop: Action) -> Vec<Action> {
        if let Some(interrupted) = self.stage.motion() {
            self.stage = Stage::Paused { interrupted, cause };
        }
        vec![stop]
    }

    fn allow_motion(&self, action: &'static str) -> Result<(), Rejection> {
        self.interlocks
            .motion_allowed()
            .map_err(|reason| Rejection { action, reason })
    }

    fn require_stage(&self, action: &'static str, stage: Stage, needs: &'static str) -> Result<(), Rejection> {
        if self.stage == stage {
            Ok(())
        } else {
            self.wrong(action, needs)
        }
    }

    fn wrong<T>(&self, action: &'static str, needs: &'static str) -> Result<T, Rejection> {
        reject(
            action,
            Reason::WrongStage {
                stage: self.stage.to_string(),
                needs,
            },
        )
    }
}
