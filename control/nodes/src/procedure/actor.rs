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
use r2r::diagnostic_msgs::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};
use r2r::std_msgs::msg::String as StringMsg;
use tokio::sync::{mpsc, oneshot};

use super::check::{analyse, CheckInput, CheckResult, PerformedStep};
use super::{Input, Op, ProcedureSettings, ScanPurpose, ScanSource};
use crate::motion::{Motion, MotionError};
use crate::msg;

type Job = Pin<Box<dyn Future<Output = Done> + Send>>;

/// How a job ended. One per request, moved once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Done {
    Moved(Move, Result<JointPositions, MotionError>),
    PlanningScan(Result<PathBuf, String>),
    Checked(usize, Result<(PathBuf, CheckResult), String>),
}

pub(crate) struct Actor {
    machine: Procedure,
    s: ProcedureSettings,
    gate: QualityGate,
    motion: Motion,
    scanner: Arc<dyn ScanSource>,
    state_pub: r2r::Publisher<StringMsg>,
    diagnostics: r2r::Publisher<DiagnosticArray>,
    entry: Option<acus_control::frames::Point<acus_control::frames::Ct>>,
    target: Option<acus_control::frames::Point<acus_control::frames::Ct>>,
    performed: Vec<PerformedStep>,
    correction: Option<Replan>,
    /// Latest estimate of the target (CT): the plan's, then as found on each check scan.
    target_seen: Option<acus_control::frames::Point<acus_control::frames::Ct>>,
    /// Where the tip is expected after the next step (CT), from the last correction.
    expected_tip: Option<acus_control::frames::Point<acus_control::frames::Ct>>,
    reply: Option<oneshot::Sender<(bool, String)>>,
    /// Feed this when the current chain ends (an insertion step after its re-orientation).
    then: Option<Event>,
    note: Vec<String>,
    failed: bool,
    last_state: String,
}

impl Actor {
    pub(crate) fn new(
        s: ProcedureSettings,
        motion: Motion,
        scanner: Arc<dyn ScanSource>,
        state_pub: r2r::Publisher<StringMsg>,
        diagnostics: r2r::Publisher<DiagnosticArray>,
    ) -> Self {
        Self {
            machine: Procedure::new(s.machine.clone()),
            gate: s.gate.clone(),
            entry: s.entry,
            target: s.target,
            s,
            motion,
            scanner,
            state_pub,
            diagnostics,
            performed: Vec::new(),
            correction: None,
            target_seen: None,
            expected_tip: None,
            reply: None,
            then: None,
            note: Vec::new(),
            failed: false,
            last_state: String::new(),
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
        if let Some(reply) = self.reply.take() {
            // What happened, then where the procedure stands now (with a latched fault, if any).
            let text = if self.note.is_empty() {
                format!("→ {}", self.machine.status())
            } else {
                format!("{} → {}", self.note.join("; "), self.machine.status())
            };
            let _ = reply.send((!self.failed, text));
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
                        Move::Insert { .. } | Move::Retract => self.s.insertion_speed,
                    };
                    let handle = self.motion.clone();
                    job = Some(Box::pin(async move { Done::Moved(motion, handle.move_to(goal, speed).await) }) as Job);
                }
                Action::RetractTo { insertion } => {
                    let mut goal = self.motion.status().borrow().actual;
                    goal.0[5] = insertion;
                    let (handle, speed) = (self.motion.clone(), self.s.insertion_speed);
                    job = Some(Box::pin(async move {
                        Done::Moved(Move::Retract, handle.move_to(goal, speed).await)
                    }));
                }
                Action::AcquireCheckScan { step } => job = self.check_scan(step),
            }
        }
        job
    }

    fn check_scan(&mut self, step: usize) -> Option<Job> {
        let (Some(plan), Some(registration)) = (self.machine.plan(), self.machine.registration()) else {
            self.fail("check scan: no plan or registration");
            return None;
        };
        let t_ct_robot = registration.t_robot_ct().inverse();
        let planned_tip = self
            .machine
            .step(step)
            .map(|s| t_ct_robot.apply(&self.s.planner.model().forward(&s.goal).tip))
            .unwrap_or_else(|| plan.target_ct());
        let input = CheckInput {
            planner: self.s.planner.clone(),
            t_robot_ct: registration.t_robot_ct(),
            entry_ct: plan.entry_ct(),
            target_ct: self.target_seen.unwrap_or_else(|| plan.target_ct()),
            plan: plan.clone(),
            lesion: self.s.lesion,
            q: self.motion.status().borrow().actual,
            expected_tip: self.expected_tip.take().unwrap_or(planned_tip),
            last_step: step + 1 >= self.machine.planned_steps(),
            steps: self.performed.clone(),
            curvature_prior: self.s.curvature_prior,
            axis_prior: self.s.axis_prior,
            needle: self.s.needle,
            done_within: self.s.done_within,
            min_correction_depth: self.s.min_correction_depth,
        };
        let scan = self.scanner.acquire(ScanPurpose::Check { step });
        Some(Box::pin(async move {
            let result = match scan.await {
                Ok(dir) => tokio::task::spawn_blocking(move || analyse(&dir, &input).map(|r| (dir, r)))
                    .await
                    .unwrap_or_else(|e| Err(format!("check-scan analysis failed: {e}"))),
                Err(e) => Err(format!("check scan not acquired: {e}")),
            };
            Done::Checked(step, result)
        }))
    }

    /// Interrupt the chain in flight (its job is dropped by the caller).
    fn interrupt(&mut self, why: &str) {
        self.then = None;
        if self.reply.is_some() {
            self.fail(format!("interrupted: {why}"));
            self.finish();
        }
    }

    async fn on_input(&mut self, input: Input, job: Option<Job>) -> Option<Job> {
        match input {
            Input::EStop(held) => {
                if held && job.is_some() {
                    self.interrupt("e-stop");
                    return self.feed_quiet(Event::EStop(true));
                }
                let next = self.feed_quiet(Event::EStop(held));
                next.or(job)
            }
            Input::Registration(result) => {
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
                job
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
                let interrupting = matches!(op, Op::Abort | Op::Retract | Op::Enable(false));
                if job.is_some() && !interrupting {
                    let _ = reply.send((false, format!("busy: {}", self.machine.stage())));
                    return job;
                }
                if job.is_some() {
                    self.interrupt(match op {
                        Op::Abort => "aborted by the operator",
                        Op::Retract => "retraction requested",
                        _ => "enable (deadman) released",
                    });
                }
                self.reply = Some(reply);
                self.request(op).await
            }
        }
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
        match op {
            Op::Scan => {
                let scan = self.scanner.acquire(ScanPurpose::Planning);
                Some(Box::pin(async move { Done::PlanningScan(scan.await) }))
            }
            Op::Plan => {
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
            Op::Align => self.feed(Event::AlignRequested),
            Op::InsertStep => {
                if let Some(replan) = self.correction.take() {
                    let pivot = replan.direction().angle(
                        &self
                            .s
                            .planner
                            .model()
                            .forward(&self.motion.status().borrow().actual)
                            .direction,
                    );
                    match self.machine.handle(Event::Replanned(replan)) {
                        Ok(actions) => {
                            if pivot > 1e-6 {
                                self.say(format!("re-aimed by {:.2}° about the entry", pivot.to_degrees()));
                            }
                            self.then = Some(Event::InsertStepRequested);
                            return self.perform(actions);
                        }
                        Err(r) => tracing::warn!("correction not applied: {r}"),
                    }
                }
                self.feed(Event::InsertStepRequested)
            }
            Op::Confirm => self.feed(Event::ConfirmRequested),
            Op::Retract => self.feed(Event::RetractRequested),
            Op::Abort => self.feed(Event::AbortRequested),
            Op::New => {
                self.performed.clear();
                self.correction = None;
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
            Op::Enable(held) => {
                let job = self.feed(Event::EnableChanged(held));
                if held {
                    match self.motion.enable().await {
                        Ok(()) => self.say("enabled: drives hold their actual position"),
                        Err(e) => self.fail(format!("drives not enabled: {e}")),
                    }
                } else {
                    self.say("enable released: holding");
                }
                job
            }
        }
    }

    fn on_done(&mut self, done: Done) -> Option<Job> {
        match done {
            Done::Moved(_, Err(MotionError::Refused(why))) if why.contains("superseded") => None,
            Done::Moved(motion, Err(e)) => {
                self.then = None;
                self.fail(format!("{motion} stopped: {e}"));
                self.feed_quiet(Event::Fault(format!("{motion}: {e}")))
            }
            Done::Moved(motion, Ok(q)) => {
                let event = match motion {
                    Move::Align | Move::Reorient => Event::Aligned,
                    Move::Insert { .. } => {
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
                            self.performed.len(),
                            self.machine.planned_steps(),
                            q.insertion() * 1e3
                        ));
                        Event::StepDone
                    }
                    Move::Retract => {
                        self.performed.clear();
                        self.correction = None;
                        self.say("needle retracted");
                        Event::Retracted
                    }
                };
                if matches!(motion, Move::Align) {
                    self.say("aligned: needle guide on the entry point, needle on the planned line");
                }
                self.feed(event)
            }
            Done::PlanningScan(Ok(dir)) => {
                self.say(format!("planning scan written to {}", dir.display()));
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
                let n = self.performed.len();
                self.publish_check(n, &dir, &result);
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
                self.correction = result.replan;
                self.feed(Event::CheckScanAnalysed {
                    tip_error: result.tip_error,
                })
            }
            Done::Checked(step, Err(e)) => {
                self.fail(format!("check scan after step {}: {e}", step + 1));
                self.feed_quiet(Event::Fault(format!("check scan after step {}: {e}", step + 1)))
            }
        }
    }

    fn publish_state(&mut self) {
        let text = format!("{}", self.machine.stage());
        if text != self.last_state {
            tracing::info!(stage = %text, "procedure");
            if let Err(e) = self.state_pub.publish(&StringMsg { data: text.clone() }) {
                tracing::warn!("publishing /procedure/state failed: {e}");
            }
            self.last_state = text;
        }
    }

    fn publish_check(&self, n: usize, dir: &std::path::Path, r: &CheckResult) {
        let kv = |key: &str, value: String| KeyValue { key: key.into(), value };
        let t = r.tip_ct.coords;
        let status = DiagnosticStatus {
            level: DiagnosticStatus::OK as u8,
            name: "acus: check scan".into(),
            message: format!("check scan {n}: tip {:.2} mm from the target", r.to_target * 1e3),
            hardware_id: "ct".into(),
            values: vec![
                kv("check scan", n.to_string()),
                kv(
                    "tip CT LPS [mm]",
                    format!("{:.2} {:.2} {:.2}", t.x * 1e3, t.y * 1e3, t.z * 1e3),
                ),
                kv("tip to target [mm]", format!("{:.3}", r.to_target * 1e3)),
                kv("tip off expected [mm]", format!("{:.3}", r.tip_error * 1e3)),
                kv("target CT LPS [mm]", {
                    let c = r.target_ct.coords;
                    format!("{:.2} {:.2} {:.2}", c.x * 1e3, c.y * 1e3, c.z * 1e3)
                }),
                kv("curvature [1/m]", format!("{:.3}", r.curvature)),
                kv("correction pivot [deg]", format!("{:.3}", r.pivot_angle.to_degrees())),
                kv("series", dir.display().to_string()),
            ],
        };
        let array = DiagnosticArray {
            header: msg::header(""),
            status: vec![status],
        };
        if let Err(e) = self.diagnostics.publish(&array) {
            tracing::warn!("publishing /diagnostics failed: {e}");
        }
    }
}
