//! The motion supervisor: an async handle on the EtherCAT cycle for the procedure.
//!
//! The cycle thread (acus-ethercat) owns the bus and never waits; this supervisor thread owns the typestate
//! [`Controller`], samples the cycle's lock-free status every millisecond, answers requests when their outcome is known
//! (in position, fault latched) and publishes the latest joint positions. Service handlers talk to it through channels,
//! so no ROS call ever blocks the cycle.

use std::sync::Arc;
use std::time::Duration;

use acus_control::kinematics::{Joint, JointPositions};
use acus_ethercat::config::AxisConfig;
use acus_ethercat::cycle::{Fault, Mode, ResetAnswer, ResetReply, Status};
use acus_ethercat::runner::{Controller, Disabled, Enabled};
use tokio::sync::{mpsc, oneshot, watch};

/// Why a motion request did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MotionError {
    /// A fault latched (quick stop on all axes); only a reset clears it.
    #[error("fault latched: {}", describe_fault(.0))]
    Faulted(Fault),
    /// Motion needs the drives enabled.
    #[error("drives are not enabled")]
    NotEnabled,
    /// The enable (deadman) was released, or one of its sources fell silent: the axes hold where they stopped.
    #[error("enable (deadman) released: holding where the motion stopped")]
    EnableReleased,
    /// An e-stop is active (pressed or silent); it must be released before a reset.
    #[error("emergency stop active: release it, then reset")]
    EStopActive,
    /// The goal was refused before anything moved.
    #[error("goal refused: {0}")]
    Rejected(Arc<acus_ethercat::Error>),
    /// The cycle refused the reset: a cause of the fault persists.
    #[error("reset refused, the cause persists: {}", describe_fault(.0))]
    ResetRefused(Fault),
    /// A newer request took its place.
    #[error("superseded by a newer request")]
    Superseded,
    /// The robot is shutting down.
    #[error("the robot is shutting down")]
    ShuttingDown,
    /// The orderly stop did not see every drive disabled.
    #[error("orderly stop: {0}")]
    Shutdown(Arc<acus_ethercat::Error>),
    /// The drives were disabled while the request was pending.
    #[error("drives disabled during the motion")]
    Disabled,
    /// The outcome did not arrive in time (in cycles of the drive clock).
    #[error("no outcome after {cycles} cycles")]
    Timeout {
        /// Cycles waited.
        cycles: u64,
    },
    /// The supervisor has stopped.
    #[error("motion supervisor stopped")]
    Gone,
}

/// What the supervisor publishes after every sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionStatus {
    /// Actual joint positions (m, rad).
    pub actual: JointPositions,
    /// Group mode.
    pub mode: Mode,
    /// Latched fault.
    pub fault: Option<Fault>,
    /// Cycle counter of the drive clock (one per period; the simulated clock in simulation).
    pub cycle: u64,
    /// The e-stop the cycle sees this period (a source pressed or silent, or the commanded stop).
    pub estop_active: Option<acus_ethercat::safety::StopSource>,
    /// Every registered enable source is held and fresh (true when none is registered).
    pub enable_held: bool,
    /// Cycles during which a request was in progress (a motion, enabling, a reset) or the procedure waited for time to
    /// pass (a breath-hold, [`Motion::time_wanted`]): the procedure time. With the simulated clock the cycle counter also
    /// runs while nothing happens; this does not.
    pub busy_cycles: u64,
}

enum Request {
    Enable(oneshot::Sender<Result<(), MotionError>>),
    Disable(oneshot::Sender<Result<(), MotionError>>),
    MoveTo {
        goal: JointPositions,
        speed_scale: f64,
        reply: oneshot::Sender<Result<JointPositions, MotionError>>,
    },
    Halt(oneshot::Sender<Result<JointPositions, MotionError>>),
    Reset(oneshot::Sender<Result<(), MotionError>>),
    EmergencyStop(bool),
}

/// The answer to an orderly stop: the drives seen disabled, or why not.
type ShutdownReply = oneshot::Sender<Result<(), acus_ethercat::Error>>;

/// Async handle on the motion supervisor. Cheap to clone; the supervisor stops when the last handle is dropped.
#[derive(Clone)]
pub struct Motion {
    requests: mpsc::Sender<Request>,
    shutdown: mpsc::Sender<ShutdownReply>,
    status: watch::Receiver<MotionStatus>,
    time_wanted: acus_ethercat::runner::TimeWanted,
}

/// Cycles allowed for enabling and for resetting.
const STATE_CHANGE_CYCLES: u64 = 3_000;

impl Motion {
    /// Start supervising `controller` (fresh from [`Controller::spawn`]: disabled, holding nothing).
    pub fn start(controller: Controller<Disabled>, period: Duration) -> std::io::Result<Self> {
        let (requests, rx) = mpsc::channel(16);
        let (shutdown, shutdown_rx) = mpsc::channel(1);
        let mut controller = controller;
        let time_wanted = controller.time_wanted();
        let first = sample(&mut controller.status());
        let (status_tx, status) = watch::channel(first);
        std::thread::Builder::new()
            .name("motion-supervisor".into())
            .spawn(move || {
                supervise(
                    State::Disabled(controller),
                    rx,
                    shutdown_rx,
                    status_tx,
                    period.as_secs_f64(),
                )
            })?;
        Ok(Self {
            requests,
            shutdown,
            status,
            time_wanted,
        })
    }

    /// Ask a simulated drive clock to run flat out while waiting for the world's time (a breath-hold); see
    /// [`acus_ethercat::runner::TimeWanted`].
    pub fn time_wanted(&self) -> acus_ethercat::runner::TimeWanted {
        self.time_wanted.clone()
    }

    /// Latest status.
    pub fn status(&self) -> watch::Receiver<MotionStatus> {
        self.status.clone()
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, MotionError>>) -> Request,
    ) -> Result<T, MotionError> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(make(tx)).await.map_err(|_| MotionError::Gone)?;
        rx.await.map_err(|_| MotionError::Gone)?
    }

    /// Enable all drives; they hold their actual positions.
    pub async fn enable(&self) -> Result<(), MotionError> {
        self.call(Request::Enable).await
    }

    /// Disable all drives (no torque).
    pub async fn disable(&self) -> Result<(), MotionError> {
        self.call(Request::Disable).await
    }

    /// Move to `goal` at `speed_scale` of the URDF velocity limits; returns the actual positions once at rest there.
    pub async fn move_to(&self, goal: JointPositions, speed_scale: f64) -> Result<JointPositions, MotionError> {
        self.call(|reply| Request::MoveTo {
            goal,
            speed_scale,
            reply,
        })
        .await
    }

    /// Halt: brake every axis at its acceleration limit along its current motion, and stay where it stops (no return:
    /// a needle is never pulled back by a hold). Supersedes a pending move; returns the positions once in position.
    pub async fn halt(&self) -> Result<JointPositions, MotionError> {
        self.call(Request::Halt).await
    }

    /// Reset a latched fault (a rising edge); the drives come back disabled.
    pub async fn reset(&self) -> Result<(), MotionError> {
        self.call(Request::Reset).await
    }

    /// Orderly stop of the robot (SIGINT/SIGTERM, end of the program): halt along the motion (the needle is never pulled
    /// back), disable, and wait until every drive reports Switch on disabled or Ready to switch on; then the cycle thread
    /// ends. Answers once the drives have reported it, or with the typed reason they did not. Every later request is
    /// [`MotionError::Gone`].
    pub async fn shutdown(&self) -> Result<(), MotionError> {
        let (tx, rx) = oneshot::channel();
        self.shutdown.send(tx).await.map_err(|_| MotionError::Gone)?;
        rx.await
            .map_err(|_| MotionError::Gone)?
            .map_err(|e| MotionError::Shutdown(Arc::new(e)))
    }

    /// Hold or release the emergency stop. Takes effect in the next cycle, whatever else is pending.
    pub async fn emergency_stop(&self, held: bool) -> Result<(), MotionError> {
        self.requests
            .send(Request::EmergencyStop(held))
            .await
            .map_err(|_| MotionError::Gone)
    }
}

enum State {
    Disabled(Controller<Disabled>),
    Enabled(Controller<Enabled>),
}

impl State {
    fn status(&mut self) -> Status {
        match self {
            State::Disabled(c) => c.status(),
            State::Enabled(c) => c.status(),
        }
    }
}

/// A request waiting for its outcome in the cycle's status.
enum Pending {
    Enable {
        reply: oneshot::Sender<Result<(), MotionError>>,
        until: u64,
    },
    Move {
        seq: u32,
        reply: oneshot::Sender<Result<JointPositions, MotionError>>,
        until: u64,
    },
    Reset {
        reply: oneshot::Sender<Result<(), MotionError>>,
        /// The reset request's sequence number, as the cycle echoes it.
        seq: u32,
        until: u64,
    },
}

fn sample(s: &mut Status) -> MotionStatus {
    let mut q = [0.0; 6];
    for (i, v) in q.iter_mut().enumerate().take(s.axes.min(6)) {
        *v = s.actual[i];
    }
    MotionStatus {
        actual: JointPositions(q),
        mode: s.mode,
        fault: s.fault,
        cycle: s.cycle,
        estop_active: s.estop_active,
        enable_held: s.enable_held,
        busy_cycles: 0,
    }
}

/// Operator-readable fault, with joint names.
pub fn describe_fault(fault: &Fault) -> String {
    let name = |axis: u8| Joint::ALL.get(usize::from(axis)).map_or("axis ?", |j| j.name());
    match fault {
        Fault::FrameLost => "EtherCAT frame lost (link down?)".into(),
        Fault::NotOperational => "an EtherCAT drive left OP".into(),
        Fault::WorkingCounter { got, expected } => {
            format!("working counter {got}, expected {expected} (drive missing?)")
        }
        Fault::Drive { axis, code } => format!("drive fault on {} (0x603F = {code:#06x})", name(*axis)),
        Fault::FollowingError { axis, error } => format!("following error on {}: {error:.6}", name(*axis)),
        Fault::OutOfRange { axis, position } => format!("{} out of range at {position:.6}", name(*axis)),
        Fault::DriveDisabled { axis } => format!("{} left Operation enabled", name(*axis)),
        Fault::EmergencyStop { source } => match source {
            acus_ethercat::safety::StopSource::Command => "emergency stop".into(),
            acus_ethercat::safety::StopSource::Input { index, silent: false } => {
                format!("emergency stop pressed on source {index}")
            }
            acus_ethercat::safety::StopSource::Input { index, silent: true } => {
                format!("emergency stop: source {index} fell silent")
            }
        },
        Fault::StaleCommand { cycles } => format!("motion supervisor silent for {cycles} cycles (stale command)"),
        Fault::DepthLimit { axis, position, limit } => {
            format!("{} at {position:.6} beyond its depth limit {limit:.6}", name(*axis))
        }
        Fault::InvalidGoal { axis } => format!("goal for {} is not a number", name(*axis)),
        Fault::Overspeed { axis, velocity } => format!("overspeed on {}: {velocity:.6}/s", name(*axis)),
        Fault::EncoderJump { axis, jump } => format!("encoder jump on {}: {jump:.6}", name(*axis)),
        Fault::OverrunBurst { count } => format!("{count} cycle overruns within the overrun window"),
        Fault::SetpointVelocity { axis } => format!("setpoint on {} faster than its limit (refused)", name(*axis)),
        Fault::EnableTimeout { axis } => format!("{} did not reach Operation enabled in CSP", name(*axis)),
    }
}

/// Cycles a move may take: twice the slowest axis's trapezoid at the scaled velocity limit, plus a second to settle.
fn move_budget(axes: &[AxisConfig], from: &JointPositions, to: &JointPositions, speed_scale: f64, period: f64) -> u64 {
    let scale = speed_scale.clamp(0.01, 1.0);
    let seconds = axes
        .iter()
        .zip(Joint::ALL)
        .map(|(a, j)| {
            let v = a.max_velocity * scale;
            (to.get(j) - from.get(j)).abs() / v + v / a.max_acceleration
        })
        .fold(0.0, f64::max);
    ((2.0 * seconds + 1.0) / period) as u64
}

fn supervise(
    mut state: State,
    mut requests: mpsc::Receiver<Request>,
    mut shutdown: mpsc::Receiver<ShutdownReply>,
    status_tx: watch::Sender<MotionStatus>,
    period: f64,
) {
    let mut pending: Option<Pending> = None;
    let (mut busy, mut last_cycle) = (0u64, state.status().cycle);
    let time_wanted = match &state {
        State::Disabled(c) => c.time_wanted(),
        State::Enabled(c) => c.time_wanted(),
    };
    loop {
        // The cycle's command watchdog: every sample refreshes the heartbeat.
        match &mut state {
            State::Disabled(c) => c.heartbeat(),
            State::Enabled(c) => c.heartbeat(),
        }
        let mut status = state.status();
        // Busy: a request in progress, or someone waiting for the procedure's time to pass (a breath-hold).
        if pending.is_some() || time_wanted.get() {
            busy += status.cycle.saturating_sub(last_cycle);
        }
        last_cycle = status.cycle;
        let now = MotionStatus {
            busy_cycles: busy,
            ..sample(&mut status)
        };
        status_tx.send_replace(now);
        pending = settle(pending, &status, &now);
        if let Ok(reply) = shutdown.try_recv() {
            refuse(pending.take(), MotionError::ShuttingDown);
            let _ = reply.send(orderly_stop(state));
            return;
        }
        match requests.try_recv() {
            Ok(request) => state = handle(state, request, &mut pending, &status, &now, period),
            Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(1)),
            Err(mpsc::error::TryRecvError::Disconnected) => {
                // Every handle is gone: the same orderly stop, with nobody to tell.
                refuse(pending.take(), MotionError::ShuttingDown);
                let _ = orderly_stop(state);
                return;
            }
        }
    }
}

/// Halt along the motion, disable, and wait for the drives to report it (see [`Motion::shutdown`]).
fn orderly_stop(state: State) -> Result<(), acus_ethercat::Error> {
    let outcome = match state {
        State::Enabled(c) => c.shutdown(),
        State::Disabled(c) => c.shutdown(),
    };
    match &outcome {
        Ok(()) => tracing::info!("orderly stop: every drive reports it is disabled"),
        Err(e) => tracing::error!("orderly stop: {e}"),
    }
    outcome
}

/// Tell the caller of a pending request that it will not complete.
fn refuse(pending: Option<Pending>, why: MotionError) {
    let err = || why.clone();
    match pending {
        Some(Pending::Move { reply, .. }) => {
            let _ = reply.send(Err(err()));
        }
        Some(Pending::Enable { reply, .. }) | Some(Pending::Reset { reply, .. }) => {
            let _ = reply.send(Err(err()));
        }
        None => {}
    }
}

/// Answer the pending request if the status decides it.
fn settle(pending: Option<Pending>, s: &Status, now: &MotionStatus) -> Option<Pending> {
    let fault = s.fault.map(MotionError::Faulted);
    match pending? {
        Pending::Enable { reply, until } => {
            if s.mode == Mode::Enabled {
                let _ = reply.send(Ok(()));
            } else if let Some(e) = fault {
                let _ = reply.send(Err(e));
            } else if s.cycle > until {
                let _ = reply.send(Err(MotionError::Timeout {
                    cycles: STATE_CHANGE_CYCLES,
                }));
            } else {
                return Some(Pending::Enable { reply, until });
            }
            None
        }
        Pending::Move { seq, reply, until } => {
            if let Some(e) = fault {
                let _ = reply.send(Err(e));
            } else if s.mode == Mode::Disabled {
                let _ = reply.send(Err(MotionError::Disabled));
            } else if !s.enable_held && s.halted {
                // The cycle holds the axes on a stop point, not the goal: the move will not complete.
                let _ = reply.send(Err(MotionError::EnableReleased));
            } else if s.goal_seq == seq && s.in_position {
                let _ = reply.send(Ok(now.actual));
            } else if s.cycle > until {
                let _ = reply.send(Err(MotionError::Timeout { cycles: until }));
            } else {
                return Some(Pending::Move { seq, reply, until });
            }
            None
        }
        Pending::Reset { reply, seq, until } => {
            // The cycle answers every reset request once (`Status::reset_reply`): refused with the cause that persists,
            // or taken; a fault latched after a taken reset is a new one, not this reset's.
            let answer = s.reset_reply.filter(|r| r.seq == seq);
            let new_fault = match answer {
                Some(ResetReply {
                    answer: ResetAnswer::Taken,
                    cycle,
                    ..
                }) => s.fault.filter(|_| s.fault_cycle > cycle),
                _ => None,
            };
            if let Some(ResetReply {
                answer: ResetAnswer::Refused { cause },
                ..
            }) = answer
            {
                let _ = reply.send(Err(MotionError::ResetRefused(cause)));
            } else if let Some(f) = new_fault {
                let _ = reply.send(Err(MotionError::Faulted(f)));
            } else if s.mode == Mode::Disabled && s.fault.is_none() {
                let _ = reply.send(Ok(()));
            } else if s.cycle > until {
                let still = fault.unwrap_or(MotionError::Timeout {
                    cycles: STATE_CHANGE_CYCLES,
                });
                let _ = reply.send(Err(still));
            } else {
                return Some(Pending::Reset { reply, seq, until });
            }
            None
        }
    }
}

fn handle(
    state: State,
    request: Request,
    pending: &mut Option<Pending>,
    s: &Status,
    now: &MotionStatus,
    period: f64,
) -> State {
    // A new request supersedes a pending one: the old caller learns it was not completed.
    let supersede = |pending: &mut Option<Pending>| refuse(pending.take(), MotionError::Superseded);
    // The commanded stop as last sent (the status may be a cycle behind a release), a source's as the cycle judged it.
    let estop_held = matches!(s.estop_active, Some(acus_ethercat::safety::StopSource::Input { .. }))
        || match &state {
            State::Disabled(c) => c.emergency_stop_held(),
            State::Enabled(c) => c.emergency_stop_held(),
        };
    match (state, request) {
        (state, Request::Reset(reply)) if estop_held => {
            // The cycle ignores resets while the stop is held; say so now rather than when the reset times out.
            let _ = reply.send(Err(MotionError::EStopActive));
            state
        }
        (mut state, Request::EmergencyStop(held)) => {
            match &mut state {
                State::Disabled(c) => c.emergency_stop(held),
                State::Enabled(c) => c.emergency_stop(held),
            }
            state
        }
        (State::Disabled(c), Request::Enable(reply)) => {
            if let Some(f) = s.fault {
                let _ = reply.send(Err(MotionError::Faulted(f)));
                return State::Disabled(c);
            }
            supersede(pending);
            *pending = Some(Pending::Enable {
                reply,
                until: s.cycle + STATE_CHANGE_CYCLES,
            });
            State::Enabled(c.enable())
        }
        (State::Enabled(c), Request::Enable(reply)) => {
            supersede(pending);
            *pending = Some(Pending::Enable {
                reply,
                until: s.cycle + STATE_CHANGE_CYCLES,
            });
            State::Enabled(c)
        }
        (State::Enabled(c), Request::Disable(reply)) => {
            supersede(pending);
            let _ = reply.send(Ok(()));
            State::Disabled(c.disable())
        }
        (State::Disabled(c), Request::Disable(reply)) => {
            let _ = reply.send(Ok(()));
            State::Disabled(c)
        }
        (
            State::Enabled(mut c),
            Request::MoveTo {
                goal,
                speed_scale,
                reply,
            },
        ) => {
            if let Some(f) = s.fault {
                let _ = reply.send(Err(MotionError::Faulted(f)));
                return State::Enabled(c);
            }
            supersede(pending);
            match c.move_to(&goal.0, speed_scale) {
                Ok(seq) => {
                    let until = s.cycle + move_budget(c.axes(), &now.actual, &goal, speed_scale, period);
                    *pending = Some(Pending::Move { seq, reply, until });
                }
                Err(e) => {
                    let _ = reply.send(Err(match e {
                        acus_ethercat::Error::EnableNotHeld => MotionError::EnableReleased,
                        e => MotionError::Rejected(Arc::new(e)),
                    }));
                }
            }
            State::Enabled(c)
        }
        (State::Enabled(mut c), Request::Halt(reply)) => {
            supersede(pending);
            let seq = c.halt();
            let until = s.cycle + move_budget(c.axes(), &now.actual, &now.actual, 1.0, period);
            *pending = Some(Pending::Move { seq, reply, until });
            State::Enabled(c)
        }
        (state @ State::Disabled(_), Request::Halt(reply)) => {
            // Not enabled: the drives hold by their brakes; nothing moves.
            let _ = reply.send(Ok(now.actual));
            state
        }
        (state @ State::Disabled(_), Request::MoveTo { reply, .. }) => {
            let _ = reply.send(Err(MotionError::NotEnabled));
            state
        }
        (State::Enabled(c), Request::Reset(reply)) => {
            supersede(pending);
            *pending = Some(Pending::Reset {
                reply,
                seq: s.reset_seq.wrapping_add(1),
                until: s.cycle + STATE_CHANGE_CYCLES,
            });
            State::Disabled(c.reset())
        }
        (State::Disabled(mut c), Request::Reset(reply)) => {
            supersede(pending);
            c.reset();
            *pending = Some(Pending::Reset {
                reply,
                seq: s.reset_seq.wrapping_add(1),
                until: s.cycle + STATE_CHANGE_CYCLES,
            });
            State::Disabled(c)
        }
    }
}
