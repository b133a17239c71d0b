//! The one owner of the procedure: feeds events to the state machine, carries out its actions, answers the operator.
//!
//! A request runs as a chain of jobs (a motion, a scan and its analysis); the operator's answer goes out when the chain
//! ends. Safety inputs (e-stop, enable released), an abort or a retraction end the chain at once: the job in flight is
//! dropped (the machine has already commanded the stop) and the waiting operator learns why.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use acus_control::kinematics::JointPositions;
use acus_control::planning::Replan;
use acus_control::procedure::{Action, Event, Motion as Move, Procedure, Stage};
use acus_control::registration::QualityGate;
use acus_ethercat::cycle::Fault;
use tokio::sync::{mpsc, oneshot};

use crate::check::{withdraw_steps, CheckResult, CheckScanError, PerformedStep, Redirect};
use crate::gating::{gated_insert, gated_scan, BeltSample, Gate, GatingError};
use crate::motion::{Motion, MotionError};
use crate::{Answer, ExecutiveFault, Input, Op, ProcedureSettings, Report, ScanPurpose, ScanSource};

mod steering;

type Job = Pin<Box<dyn Future<Output = Done> + Send>>;

/// How long a plan request waits for a registration still on its way: the registration node answers its caller
/// before its detections reach this process, so "register, then plan" must not race them. Bounded, so a plan without
/// any registration is still refused promptly.
const REGISTRATION_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// How long a power-on request waits for the deadman to be heard.
const DEADMAN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How a job ended. One per request, moved once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Done {
    Moved(Move, Result<JointPositions, MotionError>),
    /// The planning scan's folder and its Frame of Reference UID (if it has one), or why there is none.
    PlanningScan(Result<(PathBuf, Option<String>), String>),
    Checked(usize, Result<(PathBuf, CheckResult), CheckScanError>),
    /// A plan request waited [`REGISTRATION_WAIT`] and no registration came.
    RegistrationWaitOver,
    /// An insertion got no breath-hold within the gating window; it holds where it is.
    NotGated(Move, GatingError),
}

pub(crate) struct Actor {
    machine: Procedure,
    s: ProcedureSettings,
    gate: QualityGate,
    motion: Motion,
    scanner: Arc<dyn ScanSource>,
    reports: mpsc::UnboundedSender<Report>,
    entry: Option<acus_control::frames::Point<acus_control::frames::Ct>>,
    target: Option<acus_control::frames::Point<acus_control::frames::Ct>>,
    performed: Vec<PerformedStep>,
    correction: Option<Replan>,
    /// The redirect the last check scan offered, for when no correction of the inserted needle reaches the target.
    redirect: Option<Redirect>,
    /// Why the last check scan offered no correction, if it did not.
    no_correction: Option<String>,
    /// Check scans analysed in this plan's procedure (they number on across redirects).
    check_scans: usize,
    /// Latest estimate of the target (CT): the plan's, then as found on each check scan.
    target_seen: Option<acus_control::frames::Point<acus_control::frames::Ct>>,
    /// Where the tip is expected after the next step (CT), from the last correction.
    expected_tip: Option<acus_control::frames::Point<acus_control::frames::Ct>>,
    reply: Option<(Op, oneshot::Sender<Answer>)>,
    /// Feed this when the current chain ends (an insertion step after its re-orientation).
    then: Option<Event>,
    note: Vec<String>,
    failed: bool,
    last_stage: Option<acus_control::procedure::Stage>,
    /// The cycle's e-stop and enable levels as last reported.
    estop: bool,
    enable_held: bool,
    /// A plan request waits for the registration (its job is the bounded wait).
    plan_waiting: bool,
    /// Respiratory gating, if configured.
    breath: Option<Arc<Gate>>,
    /// The Frame of Reference UID of the planning scan this procedure took: check scans must share it.
    frame_of_reference: Option<String>,
}

impl Actor {
    pub(crate) fn new(
        s: ProcedureSettings,
        motion: Motion,
        scanner: Arc<dyn ScanSource>,
        reports: mpsc::UnboundedSender<Report>,
        belt: tokio::sync::watch::Receiver<Option<BeltSample>>,
    ) -> Self {
        let breath = s
            .gating
            .map(|g| Gate::new(g, belt, reports.clone(), motion.time_wanted()));
        Self {
            breath,
            frame_of_reference: None,
            machine: Procedure::new(s.machine.clone()),
            gate: s.gate.clone(),
            entry: s.entry,
            target: s.target,
            s,
            motion,
            scanner,
            reports,
            performed: Vec::new(),
            correction: None,
            redirect: None,
            no_correction: None,
            check_scans: 0,
            target_seen: None,
            expected_tip: None,
            reply: None,
            then: None,
            note: Vec::new(),
            failed: false,
            last_stage: None,
            estop: true,
            enable_held: false,
            plan_waiting: false,
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        let mut job: Option<Job> = None;
        self.publish_state();
        loop {
            let running = async {
                match job.as_mut() {
                    Some(j) => j.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = rx.recv() => {
                    let Some(input) = input else { return };
                    job = self.on_input(input, job).await;
                }
                done = running => {
                    job = self.on_done(done);
                }
            }
            if job.is_none() {
                if let Some(next) = self.then.take() {
                    job = self.feed(next);
                }
            }
            if job.is_none() {
                self.finish();
            }
            self.publish_state();
        }
    }

    /// Answer the waiting operator with what the chain did.
    fn finish(&mut self) {
        if let Some((op, reply)) = self.reply.take() {
            // What happened, then where the procedure stands now (with a latched fault, if any).
            let text = if self.note.is_empty() {
                format!("→ {}", self.machine.status())
            } else {
                format!("{} → {}", self.note.join("; "), self.machine.status())
            };
            let answer = Answer { ok: !self.failed, text };
            let _ = self.reports.send(Report::Answered {
                op,
                answer: answer.clone(),
            });
            let _ = reply.send(answer);
        }
        self.note.clear();
        self.failed = false;
    }

    fn say(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::info!("{text}");
        self.note.push(text);
    }

    fn fail(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::warn!("{text}");
        self.note.push(text);
        self.failed = true;
    }

    /// Feed one event; carry out the actions. A rejection is reported to the operator and changes nothing.
    fn feed(&mut self, event: Event) -> Option<Job> {
        match self.machine.handle(event) {
            Ok(actions) => self.perform(actions),
            Err(rejection) => {
                self.then = None;
                self.fail(rejection.to_string());
                None
            }
        }
    }

    fn perform(&mut self, actions: Vec<Action>) -> Option<Job> {
        let mut job = None;
        for action in actions {
            match action {
                Action::Hold | Action::QuickStop => {
                    // The cycle stops on the quick stop by itself (e-stop and faults latch there); a hold halts every
                    // axis where its braking ends.
                    let motion = self.motion.clone();
                    tokio::spawn(async move {
                        let _ = motion.halt().await;
                    });
                }
                Action::MoveTo { goal, motion } => {
                    let speed = match motion {
                        Move::Align | Move::Reorient => self.s.align_speed,
                        Move::Insert { .. } | Move::Withdraw | Move::Retract => self.s.insertion_speed,
                    };
                    let handle = self.motion.clone();
                    job = match (&self.breath, motion) {
                        (Some(gate), Move::Insert { .. }) => {
                            let gate = Arc::clone(gate);
                            Some(Box::pin(async move {
                                match gated_insert(gate, handle, goal, speed).await {
                                    Ok(moved) => Done::Moved(motion, moved),
                                    Err(e) => Done::NotGated(motion, e),
                                }
                            }) as Job)
                        }
                        _ => {
                            Some(Box::pin(async move { Done::Moved(motion, handle.move_to(goal, speed).await) }) as Job)
                        }
                    };
                }
                Action::RetractTo { insertion, motion } => {
                    let mut goal = self.motion.status().borrow().actual;
                    goal.0[5] = insertion;
                    let (handle, speed) = (self.motion.clone(), self.s.insertion_speed);
                    job = Some(Box::pin(async move {
                        Done::Moved(motion, handle.move_to(goal, speed).await)
                    }));
                }
                Action::AcquireCheckScan { step } => job = self.check_scan(step),
            }
        }
        job
    }

    /// Interrupt the chain in flight (its job is dropped by the caller).
    fn interrupt(&mut self, why: &str) {
        self.then = None;
        self.plan_waiting = false;
        if self.reply.is_some() {
            self.fail(format!("interrupted: {why}"));
            self.finish();
        }
    }

    async fn on_input(&mut self, input: Input, job: Option<Job>) -> Option<Job> {
        match input {
            Input::Safety { estop, enable_held } => {
                let _ = self.reports.send(Report::Safety { estop, enable_held });
                let mut job = job;
                if estop != self.estop {
                    self.estop = estop;
                    if estop && job.is_some() {
                        self.interrupt("e-stop");
                        job = None;
                    }
                    job = self.feed_quiet(Event::EStop(estop)).or(job);
                }
                if enable_held != self.enable_held {
                    self.enable_held = enable_held;
                    if !enable_held && job.is_some() {
                        self.interrupt("enable (deadman) released");
                        job = None;
                    }
                    job = self.feed_quiet(Event::EnableChanged(enable_held)).or(job);
                }
                job
            }
            Input::Registration(result) => self.registered(result, job),
            Input::Detections(centres) => {
                let targets: Vec<_> = self.target.into_iter().collect();
                let matching = acus_control::registration::RegistrationParams::for_model(&self.s.fiducials).matching;
                let result = acus_control::registration::register_and_gate(
                    &self.s.fiducials,
                    &centres,
                    &matching,
                    &self.gate,
                    &targets,
                );
                self.registered(result, job)
            }
            Input::Entry(p) => {
                self.entry = Some(p);
                job
            }
            Input::Target(p) => {
                self.target = Some(p);
                job
            }
            Input::Request(op, reply) => {
                let interrupting = matches!(op, Op::Abort | Op::Retract | Op::Power(false));
                if job.is_some() && !interrupting {
                    let answer = Answer {
                        ok: false,
                        text: format!("busy: {}", self.machine.stage()),
                    };
                    let _ = self.reports.send(Report::Answered {
                        op,
                        answer: answer.clone(),
                    });
                    let _ = reply.send(answer);
                    return job;
                }
                if job.is_some() {
                    self.interrupt(match op {
                        Op::Abort => "aborted by the operator",
                        Op::Retract => "retraction requested",
                        _ => "drives powered off",
                    });
                }
                self.reply = Some((op, reply));
                self.request(op).await
            }
        }
    }

    /// A registration outcome reaches the machine; a plan request waiting for it runs now (its wait is dropped).
    fn registered(
        &mut self,
        result: Result<acus_control::registration::GatedRegistration, acus_control::registration::RegistrationError>,
        job: Option<Job>,
    ) -> Option<Job> {
        if matches!(self.machine.stage(), Stage::Idle) {
            let _ = self.machine.handle(Event::ScanAcquired);
        }
        let event = match result {
            Ok(gated) => Event::Registered(gated),
            Err(e) => Event::RegistrationRefused(e),
        };
        if let Err(r) = self.machine.handle(event) {
            tracing::warn!("registration not taken: {r}");
        }
        if self.plan_waiting {
            self.plan_waiting = false;
            return self.plan_now();
        }
        job
    }

    /// Feed a safety event; a rejection here is only logged (safety inputs are never refused by the machine).
    fn feed_quiet(&mut self, event: Event) -> Option<Job> {
        match self.machine.handle(event) {
            Ok(actions) => self.perform(actions),
            Err(r) => {
                tracing::warn!("{r}");
                None
            }
        }
    }

    async fn request(&mut self, op: Op) -> Option<Job> {
        // The machine judges a motion request on the cycle's safety levels as they are now: the follower's report of a
        // change may still be queued behind this request (a deadman pressed a moment ago must not refuse the step).
        if matches!(op, Op::Align | Op::InsertStep | Op::Retract) {
            let (estop, enable_held) = {
                let s = self.motion.status();
                let now = s.borrow();
                (now.estop_active.is_some(), now.enable_held)
            };
            if estop != self.estop {
                self.estop = estop;
                let _ = self.feed_quiet(Event::EStop(estop));
            }
            if enable_held != self.enable_held {
                self.enable_held = enable_held;
                let _ = self.feed_quiet(Event::EnableChanged(enable_held));
            }
        }
        match op {
            Op::Scan => {
                // A new planning scan sets a new reference level for the gate.
                if let Some(gate) = &self.breath {
                    gate.clear_reference();
                }
                let (scanner, gate) = (Arc::clone(&self.scanner), self.breath.clone());
                Some(Box::pin(async move {
                    let scan = gated_scan(gate, scanner, ScanPurpose::Planning).await;
                    let dir = match scan.map_err(|e| e.to_string()).and_then(|r| r) {
                        Ok(dir) => dir,
                        Err(e) => return Done::PlanningScan(Err(e)),
                    };
                    // Reading a header is file IO: off the executor.
                    let header_dir = dir.clone();
                    let frame = tokio::task::spawn_blocking(move || acus_dicom::first_header(&header_dir))
                        .await
                        .ok()
                        .and_then(|h| h.ok())
                        .and_then(|h| h.frame_of_reference_uid);
                    Done::PlanningScan(Ok((dir, frame)))
                }))
            }
            Op::Plan => {
                let awaiting = matches!(self.machine.stage(), Stage::Idle | Stage::Registering);
                if self.machine.registration().is_none() && awaiting {
                    self.plan_waiting = true;
                    return Some(Box::pin(async {
                        tokio::time::sleep(REGISTRATION_WAIT).await;
                        Done::RegistrationWaitOver
                    }));
                }
                self.plan_now()
            }
            Op::Align => self.feed(Event::AlignRequested),
            Op::InsertStep => self.insert_step(),
            Op::Confirm => self.feed(Event::ConfirmRequested),
            Op::Retract => self.feed(Event::RetractRequested),
            Op::Abort => self.feed(Event::AbortRequested),
            Op::New => {
                if let Some(gate) = &self.breath {
                    gate.clear_reference();
                }
                self.performed.clear();
                self.correction = None;
                self.redirect = None;
                self.check_scans = 0;
                self.feed(Event::NewProcedure)
            }
            Op::Reset => {
                let _ = self.feed(Event::Reset(true));
                let drives = self.motion.reset().await;
                let _ = self.machine.handle(Event::Reset(false));
                match drives {
                    Ok(()) => self.say("fault reset; request the interrupted motion again"),
                    Err(e) => self.fail(format!("reset refused by the drives: {e}")),
                }
                None
            }
            Op::Power(true) => {
                match self.motion.enable().await {
                    Ok(()) => self.say("drives powered: they hold their actual position"),
                    Err(e) => self.fail(format!("drives not powered: {e}")),
                }
                // A console holds its deadman before it asks for power: wait (briefly, wall clock) for the cycle to hear
                // it, so that the next request does not race the level on its way here.
                let mut status = self.motion.status();
                let heard = tokio::time::timeout(DEADMAN_WAIT, status.wait_for(|s| s.enable_held)).await;
                if matches!(heard, Ok(Ok(_))) && !self.enable_held {
                    self.enable_held = true;
                    let _ = self.feed_quiet(Event::EnableChanged(true));
                } else if !matches!(heard, Ok(Ok(_))) {
                    self.say("deadman not held: motion waits for it");
                }
                None
            }
            Op::Power(false) => {
                // The chain in flight was interrupted above; the brakes hold the axes without power.
                match self.motion.disable().await {
                    Ok(()) => self.say("drives powered off"),
                    Err(e) => self.fail(format!("drives not powered off: {e}")),
                }
                None
            }
        }
    }

    /// Plan from the entry, the target and the registration in hand.
    fn plan_now(&mut self) -> Option<Job> {
        let (Some(entry), Some(target)) = (self.entry, self.target) else {
            self.fail("cannot plan: no entry point or target (publish /plan/entry and /plan/target, frame ct)");
            return None;
        };
        let Some(registration) = self.machine.registration().cloned() else {
            self.fail(format!("cannot plan: not registered ({})", self.machine.stage()));
            return None;
        };
        match self.s.planner.plan(entry, target, &registration, &self.gate) {
            Ok(plan) => {
                let text = format!(
                    "planned: depth {:.1} mm in {} steps, predicted TRE {:.2} mm",
                    plan.depth() * 1e3,
                    plan.steps().len(),
                    plan.predicted_tre() * 1e3
                );
                self.performed.clear();
                self.correction = None;
                self.redirect = None;
                self.check_scans = 0;
                self.target_seen = None;
                self.expected_tip = None;
                let job = self.feed(Event::Planned(plan));
                if !self.failed {
                    self.say(text);
                }
                job
            }
            Err(e) => {
                self.fail(format!("cannot plan: {e}"));
                let _ = self.machine.handle(Event::PlanFailed(e));
                None
            }
        }
    }

    fn on_done(&mut self, done: Done) -> Option<Job> {
        match done {
            Done::RegistrationWaitOver => {
                self.plan_waiting = false;
                self.fail(format!(
                    "cannot plan: no registration within {} s ({}; register the planning scan first)",
                    REGISTRATION_WAIT.as_secs(),
                    self.machine.stage()
                ));
                None
            }
            Done::Moved(_, Err(MotionError::Superseded)) => None,
            Done::NotGated(motion, error) => {
                self.then = None;
                self.fail(format!("{motion} held: {error}"));
                self.feed_quiet(Event::BreathHoldLost)
            }
            // The e-stop and the enable reach the machine as levels from the cycle; the motion they stopped is not a
            // second fault.
            Done::Moved(motion, Err(MotionError::Faulted(Fault::EmergencyStop { .. }))) => {
                self.then = None;
                self.fail(format!("{motion} stopped by the e-stop"));
                self.feed_quiet(Event::EStop(true))
            }
            Done::Moved(motion, Err(MotionError::EnableReleased)) => {
                self.then = None;
                self.fail(format!("{motion} held: enable (deadman) released"));
                self.feed_quiet(Event::EnableChanged(false))
            }
            Done::Moved(motion, Err(error)) => {
                self.then = None;
                self.fail(format!("{motion} stopped: {error}"));
                let text = format!("{motion}: {error}");
                let _ = self
                    .reports
                    .send(Report::Fault(ExecutiveFault::Motion { motion, error }));
                self.feed_quiet(Event::Fault(text))
            }
            Done::Moved(motion, Ok(q)) => {
                let event = match motion {
                    Move::Align | Move::Reorient => Event::Aligned,
                    Move::Insert { step } => {
                        let before = self.performed.iter().map(|s| s.length).sum::<f64>();
                        let state = self.s.planner.model().forward(&q);
                        self.performed.push(PerformedStep {
                            holder: state.tip_orientation,
                            length: (q.insertion() - before).max(0.0),
                            observed_tip: None,
                            observed_shaft: None,
                        });
                        self.say(format!(
                            "step {} (of {} planned) inserted to {:.1} mm",
                            step + 1,
                            self.machine.planned_steps(),
                            q.insertion() * 1e3
                        ));
                        Event::StepDone
                    }
                    Move::Withdraw => {
                        withdraw_steps(&mut self.performed, q.insertion());
                        self.say(format!("needle withdrawn to {:.1} mm", q.insertion() * 1e3));
                        Event::Withdrawn
                    }
                    Move::Retract => {
                        self.performed.clear();
                        self.correction = None;
                        self.redirect = None;
                        self.say("needle retracted");
                        Event::Retracted
                    }
                };
                if matches!(motion, Move::Align) {
                    self.say("aligned: needle guide on the entry point, needle on the planned line");
                }
                self.feed(event)
            }
            Done::PlanningScan(Ok((dir, frame))) => {
                self.say(format!("planning scan written to {}", dir.display()));
                self.frame_of_reference = frame;
                let _ = self.reports.send(Report::Scan {
                    purpose: ScanPurpose::Planning,
                    dir,
                });
                None
            }
            Done::PlanningScan(Err(e)) => {
                self.fail(format!("planning scan failed: {e}"));
                None
            }
            Done::Checked(_, Ok((dir, result))) => {
                if let Some(last) = self.performed.last_mut() {
                    last.observed_tip = Some(result.tip_ct);
                    last.observed_shaft = result.shaft;
                }
                self.check_scans += 1;
                let n = self.check_scans;
                self.say(format!(
                    "check scan {n}: tip {:.2} mm from the target, {:.2} mm from where it was expected",
                    result.to_target * 1e3,
                    result.tip_error * 1e3
                ));
                if let Some(why) = &result.target_not_found {
                    self.say(format!("target not found again ({why}); aiming at the last estimate"));
                }
                if let Some(why) = &result.no_correction {
                    self.say(format!("no correction: {why}"));
                }
                self.target_seen = Some(result.target_ct);
                self.expected_tip = result.next_expected_tip;
                self.correction = result.replan.clone();
                self.redirect = result.redirect.clone();
                self.no_correction = result.no_correction.clone();
                let tip_error = result.tip_error;
                let _ = self.reports.send(Report::CheckScan {
                    n,
                    dir,
                    result: Box::new(result),
                });
                self.feed(Event::CheckScanAnalysed { tip_error })
            }
            Done::Checked(step, Err(error)) => {
                // A scan of another frame of reference means the patient or the study changed: a fault, re-register. Any
                // other failure (no series, no breath-hold for it, the needle not found) moved nothing: the operator
                // scans again or retracts.
                let latch = matches!(error, CheckScanError::FrameOfReference { .. });
                let fault = ExecutiveFault::CheckScan { step, error };
                self.fail(fault.to_string());
                let text = fault.to_string();
                let _ = self.reports.send(Report::Fault(fault));
                if latch {
                    self.feed_quiet(Event::Fault(text))
                } else {
                    self.feed_quiet(Event::CheckScanFailed)
                }
            }
        }
    }

    /// The needle direction the robot holds now (robot base).
    fn current_direction(&self) -> nalgebra::Unit<nalgebra::Vector3<f64>> {
        self.s
            .planner
            .model()
            .forward(&self.motion.status().borrow().actual)
            .direction
    }

    fn publish_state(&mut self) {
        let stage = self.machine.stage();
        if self.last_stage.as_ref() != Some(stage) {
            tracing::info!(stage = %stage, "procedure");
            let _ = self.reports.send(Report::Stage(stage.clone()));
            self.last_stage = Some(stage.clone());
        }
    }
}
