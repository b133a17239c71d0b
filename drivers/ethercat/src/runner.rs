//! The cycle thread and its lock-free handoffs, behind a typestate controller.
//!
//! Commands go in and status comes out through `triple_buffer` (wait-free, latest value wins,
//! fixed storage: neither side ever blocks or allocates); fault and mode events leave through an
//! `rtrb` SPSC ring (wait-free, bounded) that a non-real-time thread drains. The cycle thread
//! owns the bus: [`Cycle::step`] on the last inputs and the freshest commands and safety sources → publish → exchange
//! → wait for the next period.
//!
//! Typestates: motion can only be commanded on a [`Controller<Enabled>`]; enabling, disabling
//! and resetting consume the handle, so a stale handle cannot command motion after a reset.
//!
//! ```
//! use acus_ethercat::runner::{Controller, Enabled};
//! fn step_in(c: &mut Controller<Enabled>) -> Result<u32, acus_ethercat::Error> {
//!     c.move_to(&[0.0, 0.0, 0.01, 0.0, 0.0, 0.0], 0.5)
//! }
//! ```
//! Commanding motion on a disabled group does not compile:
//! ```compile_fail
//! use acus_ethercat::runner::{Controller, Disabled};
//! fn step_in(c: &mut Controller<Disabled>) -> Result<u32, acus_ethercat::Error> {
//!     c.move_to(&[0.0, 0.0, 0.01, 0.0, 0.0, 0.0], 0.5)
//! }
//! ```

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::bus::Bus;
use crate::cia402::{DriveInputs, DriveOutputs, DriveState};
use crate::config::{AxisConfig, MAX_AXES};
use crate::cycle::{Command, Cycle, Fault, Mode, ResetReply, Status};
use crate::rt::RtSettings;
use crate::safety::{SafetyInput, SafetySettings, SourceKind, SourceTable, MAX_SOURCES};
use crate::Error;

/// Typestate: drives not commanded to move.
#[derive(Debug)]
pub struct Disabled;
/// Typestate: enable requested; motion commands accepted.
#[derive(Debug)]
pub struct Enabled;

/// Something the cycle reports once (drained by a non-real-time reader).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// A fault latched.
    FaultLatched {
        /// Cycle number.
        cycle: u64,
        /// Cause.
        fault: Fault,
    },
    /// The group changed mode.
    ModeChanged {
        /// Cycle number.
        cycle: u64,
        /// New mode.
        mode: Mode,
    },
    /// The enable level the sources give changed: every enable source held and fresh (true), or one released or
    /// silent (false). The cycle number is the one that first judged it.
    EnableChanged {
        /// Cycle number.
        cycle: u64,
        /// The new level.
        held: bool,
    },
    /// A reset request was answered: taken, refused with the cause that persists, or nothing to reset.
    ResetAnswered(ResetReply),
}

const EVENT_CAPACITY: usize = 256;

/// Cycles a [`Pacing::Simulated`] clock keeps running flat out after the group's last work: drives settle after a
/// trajectory ends.
pub const SIMULATED_SETTLE_CYCLES: u64 = 200;

/// Someone waits for time to pass on the drive clock (a breath-hold, say): a [`Pacing::Simulated`] clock runs flat out
/// while it is set, as it does while the robot moves, so that a wait of seconds costs milliseconds. A real-time clock
/// ignores it. Cheap to clone; the cycle only loads it.
#[derive(Clone, Debug, Default)]
pub struct TimeWanted(Arc<AtomicBool>);

impl TimeWanted {
    /// Say whether time is wanted now.
    pub fn set(&self, wanted: bool) {
        self.0.store(wanted, Ordering::Relaxed);
    }

    /// Whether time is wanted now.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How the cycle thread keeps time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// One exchange per period of wall time, aligned to SYNC0 when the bus knows the DC phase: real drives.
    RealTime,
    /// The next exchange as soon as the last one is done while the group has work (a motion, a state change, a new
    /// command, a fault, and [`SIMULATED_SETTLE_CYCLES`] after), one per period of wall time while it holds. Emulated
    /// drives advance one period per process-data frame, so this runs a simulated clock (time = cycles × period) as fast
    /// as the machine allows where it matters, without a holding robot taking a core from the rest of the simulation
    /// (the scanner renders while the robot holds): studies, not hardware.
    Simulated,
}

/// Everything the cycle thread is started with besides the bus and the axes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunnerSettings {
    /// How the thread keeps time.
    pub pacing: Pacing,
    /// The supervisor's tunables.
    pub safety: SafetySettings,
    /// SCHED_FIFO and locked memory.
    pub realtime: RtSettings,
    /// A period that begins more than one period plus this after the previous one counts as an overrun (real-time
    /// pacing only). Default: one period, i.e. a slot missed.
    pub overrun_lateness: Duration,
}

impl RunnerSettings {
    /// Defaults for `period` and `pacing`: [`SafetySettings::for_period`], no real-time settings. SCHED_FIFO
    /// ([`RtSettings::REALTIME`]) is opt-in: the cycle thread waits for its frame by polling with `sched_yield`, which under
    /// SCHED_FIFO yields to no normal thread, so the thread that carries the frames (ethercrab's tx/rx task, the
    /// in-process emulator) starves on a loaded core and frames are lost (measured: `faults.rs` lost frames on 2 shared
    /// cores with FIFO 80, none without). Turn it on where that thread runs at real-time priority too, or on an
    /// isolated core. Simulated: a command watchdog of 1000 cycles, because the supervisor runs on wall time
    /// while the drive clock runs flat out (the thread also drops to one cycle per period once half of the watchdog
    /// has passed without a heartbeat, so a supervisor that is merely slow is waited for and a stalled one still trips).
    pub fn new(period: Duration, pacing: Pacing) -> Self {
        let mut safety = SafetySettings::for_period(period.as_secs_f64());
        if pacing == Pacing::Simulated {
            safety.stale_command_cycles = 1000;
        }
        let realtime = RtSettings::NONE;
        Self {
            pacing,
            safety,
            realtime,
            overrun_lateness: period,
        }
    }
}

/// Cycles [`Controller::shutdown`] waits for the halt to end and for the drives to report disabled, each.
pub const SHUTDOWN_CYCLES: u64 = 3000;

/// Handle on the running cycle thread.
pub struct Controller<S> {
    inner: Inner,
    _state: PhantomData<S>,
}

struct Inner {
    cmd_in: triple_buffer::Input<Command>,
    status_out: triple_buffer::Output<Status>,
    events: rtrb::Consumer<Event>,
    cmd: Command,
    axes: Vec<AxisConfig>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    sources: Arc<SourceTable>,
    source_names: Vec<(String, SourceKind)>,
    period: Duration,
    time_wanted: TimeWanted,
}

#[allow(clippy::too_many_arguments)] // the thread's whole world, handed over once
fn run<B: Bus>(
    mut bus: B,
    mut cycle: Cycle,
    period: Duration,
    mut cmd_out: triple_buffer::Output<Command>,
    mut status_in: triple_buffer::Input<Status>,
    mut events: rtrb::Producer<Event>,
    stop: Arc<AtomicBool>,
    sources: Arc<SourceTable>,
    settings: RunnerSettings,
    time_wanted: TimeWanted,
) {
    let pacing = settings.pacing;
    let (fifo, locked) = crate::rt::apply(settings.realtime);
    cycle.set_realtime(fifo, locked);
    let half_watchdog = cycle.safety_settings().stale_command_cycles / 2;
    let mut late = false;
    let n = bus.drives().min(MAX_AXES);
    let mut inputs = [DriveInputs::default(); MAX_AXES];
    let mut outputs = [DriveOutputs::default(); MAX_AXES];
    let mut last_mode = Mode::Disabled;
    let mut last_fault: Option<Fault> = None;
    let mut last_enable: Option<bool> = None;
    let mut last_reply: Option<ResetReply> = None;
    let mut deadline = Instant::now();
    let mut last_start = deadline;
    let mut last_cmd = Command::default();
    let mut flat_out_until = 0u64;
    // Read before the first decision: the drives' actual positions and states (the outputs are all zero: no
    // controlword, no motion).
    let mut health = bus.exchange(&outputs[..n], &mut inputs[..n]);
    while !stop.load(Ordering::Relaxed) {
        // Decide on the freshest safety sample, then send at once: a press waits at most one period for the frame that
        // carries its quick stop. The drive inputs are those of the last exchange, so a drive-side fault is answered in
        // the next frame either way.
        let cmd = *cmd_out.read();
        let safety = sources.sample(late);
        let status = *cycle.step_with(health, &inputs[..n], &cmd, &safety, &mut outputs[..n]);
        // A heartbeat alone is not work (a holding robot must not keep the simulated clock flat out).
        let mut cmd_cmp = cmd;
        cmd_cmp.heartbeat = last_cmd.heartbeat;
        let working = matches!(status.mode, Mode::Enabling | Mode::Resetting)
            || (status.mode == Mode::Enabled && !status.in_position)
            || status.mode != last_mode
            || cmd_cmp != last_cmd
            || status.fault != last_fault
            || time_wanted.get();
        if working {
            flat_out_until = status.cycle.saturating_add(SIMULATED_SETTLE_CYCLES);
        }
        last_cmd = cmd;
        if status.reset_reply != last_reply {
            if let Some(reply) = status.reset_reply {
                let _ = events.push(Event::ResetAnswered(reply));
            }
            last_reply = status.reset_reply;
        }
        if status.fault.is_some() && status.fault != last_fault {
            if let Some(fault) = status.fault {
                let _ = events.push(Event::FaultLatched {
                    cycle: status.cycle,
                    fault,
                });
            }
        }
        if status.mode != last_mode {
            let _ = events.push(Event::ModeChanged {
                cycle: status.cycle,
                mode: status.mode,
            });
        }
        if last_enable != Some(status.enable_held) {
            let _ = events.push(Event::EnableChanged {
                cycle: status.cycle,
                held: status.enable_held,
            });
            last_enable = Some(status.enable_held);
        }
        // Events first, then the status: whoever sees the fault in the status finds its event already queued.
        status_in.write(status);
        last_fault = status.fault;
        last_mode = status.mode;
        health = bus.exchange(&outputs[..n], &mut inputs[..n]);
        let supervisor_keeps_up = half_watchdog == 0 || status.command_age < half_watchdog;
        if pacing == Pacing::Simulated && status.cycle < flat_out_until && supervisor_keeps_up {
            continue;
        }
        // Pace: the DC phase when the bus knows it, otherwise a fixed-rate deadline.
        deadline += period;
        let now = Instant::now();
        if deadline < now {
            deadline = now; // overrun: do not try to catch up with a burst
        }
        let wait = bus.next_cycle_wait().map_or(deadline - now, |w| w.min(period));
        std::thread::sleep(wait);
        // Lateness: this period began more than `overrun_lateness` after one period from the last (a missed slot).
        let started = Instant::now();
        late = pacing == Pacing::RealTime
            && started.saturating_duration_since(last_start) >= period + settings.overrun_lateness;
        last_start = started;
    }
}

impl Controller<Disabled> {
    /// Start the cycle thread on `bus`, in real time. The thread owns the bus until [`Controller::shutdown`].
    pub fn spawn<B: Bus + Send + 'static>(bus: B, axes: &[AxisConfig], period: Duration) -> Result<Self, Error> {
        Self::spawn_paced(bus, axes, period, Pacing::RealTime)
    }

    /// Start the cycle thread on `bus` with the given pacing and its default settings ([`RunnerSettings::new`]).
    pub fn spawn_paced<B: Bus + Send + 'static>(
        bus: B,
        axes: &[AxisConfig],
        period: Duration,
        pacing: Pacing,
    ) -> Result<Self, Error> {
        Self::spawn_with(bus, axes, period, RunnerSettings::new(period, pacing))
    }

    /// Start the cycle thread on `bus` with `settings` (range-checked).
    pub fn spawn_with<B: Bus + Send + 'static>(
        bus: B,
        axes: &[AxisConfig],
        period: Duration,
        settings: RunnerSettings,
    ) -> Result<Self, Error> {
        if bus.drives() != axes.len() {
            return Err(Error::DriveCount {
                found: bus.drives(),
                expected: axes.len(),
            });
        }
        let cycle = Cycle::with_settings(axes, period.as_secs_f64(), settings.safety)?;
        let sources = Arc::new(SourceTable::default());
        let sources2 = Arc::clone(&sources);
        let (cmd_in, cmd_out) = triple_buffer::TripleBuffer::new(&Command::default()).split();
        let (status_in, status_out) = triple_buffer::TripleBuffer::new(&Status::default()).split();
        let (producer, events) = rtrb::RingBuffer::new(EVENT_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let time_wanted = TimeWanted::default();
        let time_wanted2 = time_wanted.clone();
        let thread = std::thread::Builder::new()
            .name("ethercat-cycle".into())
            .spawn(move || {
                run(
                    bus,
                    cycle,
                    period,
                    cmd_out,
                    status_in,
                    producer,
                    stop2,
                    sources2,
                    settings,
                    time_wanted2,
                )
            })
            .map_err(|e| Error::Thread(e.to_string()))?;
        Ok(Self {
            inner: Inner {
                cmd_in,
                status_out,
                events,
                cmd: Command::default(),
                axes: axes.to_vec(),
                stop,
                thread: Some(thread),
                sources,
                source_names: Vec::new(),
                period,
                time_wanted,
            },
            _state: PhantomData,
        })
    }

    /// Request Operation enabled on all drives. The cycle starts from the actual positions and
    /// holds them until [`Controller::move_to`] sends a goal newer than this request.
    pub fn enable(mut self) -> Controller<Enabled> {
        self.inner.cmd.enable = true;
        self.inner.cmd.enable_goal_seq = self.inner.cmd.goal_seq;
        self.inner.cmd.enable_seq = self.inner.cmd.enable_seq.wrapping_add(1);
        self.send();
        self.into_state()
    }

    /// Request a fault reset (a rising edge of controlword bit 7 on faulted drives).
    pub fn reset(&mut self) {
        self.inner.cmd.reset_seq = self.inner.cmd.reset_seq.wrapping_add(1);
        self.send();
    }
}

impl Controller<Enabled> {
    /// Move all axes to `goal` (SI, one per axis) at `speed_scale` of the URDF velocity limits.
    /// Returns the goal's sequence number, echoed in [`Status::goal_seq`].
    pub fn move_to(&mut self, goal: &[f64], speed_scale: f64) -> Result<u32, Error> {
        if goal.len() != self.inner.axes.len() {
            return Err(Error::GoalLength {
                got: goal.len(),
                expected: self.inner.axes.len(),
            });
        }
        for (i, (g, a)) in goal.iter().zip(&self.inner.axes).enumerate() {
            if !g.is_finite() {
                return Err(Error::NonFiniteGoal {
                    joint: a.joint.clone(),
                    value: *g,
                });
            }
            let limit = self.inner.cmd.depth_limit[i];
            if *g > limit {
                return Err(Error::GoalBeyondDepthLimit {
                    joint: a.joint.clone(),
                    value: *g,
                    limit,
                });
            }
            if !(a.lower..=a.upper).contains(g) {
                return Err(Error::GoalOutOfRange {
                    joint: a.joint.clone(),
                    value: *g,
                    lower: a.lower,
                    upper: a.upper,
                });
            }
        }
        if !self.inner.status_out.read().enable_held {
            return Err(Error::EnableNotHeld);
        }
        self.inner.cmd.goal[..goal.len()].copy_from_slice(goal);
        self.inner.cmd.speed_scale = speed_scale.clamp(0.0, 1.0);
        self.inner.cmd.goal_seq = self.inner.cmd.goal_seq.wrapping_add(1);
        self.send();
        Ok(self.inner.cmd.goal_seq)
    }

    /// Halt: every axis brakes at its acceleration limit to a standstill along its current motion and stays there until
    /// the next [`Controller::move_to`]. Returns the abandoned goal's sequence number, echoed in [`Status::goal_seq`].
    pub fn halt(&mut self) -> u32 {
        self.inner.cmd.halt_goal_seq = self.inner.cmd.goal_seq;
        self.inner.cmd.halt_seq = self.inner.cmd.halt_seq.wrapping_add(1);
        self.send();
        self.inner.cmd.goal_seq
    }

    /// Stop commanding torque (drives to Ready to switch on).
    pub fn disable(mut self) -> Controller<Disabled> {
        self.inner.cmd.enable = false;
        self.send();
        self.into_state()
    }

    /// Reset a latched fault; the group comes back Disabled and must be enabled again.
    pub fn reset(mut self) -> Controller<Disabled> {
        self.inner.cmd.enable = false;
        self.inner.cmd.reset_seq = self.inner.cmd.reset_seq.wrapping_add(1);
        self.send();
        self.into_state()
    }
}

impl<S> Controller<S> {
    /// The handle that asks a simulated clock for time ([`TimeWanted`]).
    pub fn time_wanted(&self) -> TimeWanted {
        self.inner.time_wanted.clone()
    }

    fn send(&mut self) {
        self.inner.send();
    }

    /// Refresh the command heartbeat (every other command refreshes it too). The supervising side calls this every
    /// sample: if it stops for longer than [`SafetySettings::stale_command_cycles`] while the group is enabling or
    /// enabled, the cycle latches [`Fault::StaleCommand`].
    pub fn heartbeat(&mut self) {
        self.send();
    }

    /// Register a safety source: an e-stop or an enable (deadman) input with a freshness deadline of `deadline_cycles`.
    /// The returned handle is the only writer of its slot; give it to the thread that owns the input. It starts
    /// released (not pressed / not held) and must be refreshed within its deadline from the first cycle that sees it.
    pub fn register_source(
        &mut self,
        kind: SourceKind,
        name: &str,
        deadline_cycles: u32,
    ) -> Result<SafetyInput, Error> {
        if deadline_cycles == 0 {
            return Err(Error::SourceDeadline { name: name.to_owned() });
        }
        let index = self.inner.source_names.len();
        let handle = self
            .inner
            .sources
            .register(index, kind, deadline_cycles)
            .ok_or(Error::TooManySources { max: MAX_SOURCES })?;
        self.inner.source_names.push((name.to_owned(), kind));
        Ok(handle)
    }

    /// Name of a registered source (as named in [`crate::safety::StopSource::Input`]).
    pub fn source_name(&self, index: u8) -> Option<&str> {
        self.inner.source_names.get(usize::from(index)).map(|(n, _)| n.as_str())
    }

    /// Set the procedure's upper limit on `axis` (the insertion depth limit: planned depth plus its margin), joint
    /// units. Goals beyond it are refused by [`Controller::move_to`] and clamped by the cycle; an actual position beyond
    /// it plus the following window latches [`Fault::DepthLimit`].
    pub fn set_depth_limit(&mut self, axis: usize, limit: f64) -> Result<(), Error> {
        let a = self.inner.axes.get(axis).ok_or(Error::NoSuchAxis {
            axis,
            axes: self.inner.axes.len(),
        })?;
        if !limit.is_finite() || limit < a.lower {
            return Err(Error::DepthLimit {
                axis,
                value: limit,
                lower: a.lower,
            });
        }
        self.inner.cmd.depth_limit[axis] = limit;
        self.send();
        Ok(())
    }

    /// Remove the depth limit of `axis` (the joint range alone applies).
    pub fn clear_depth_limit(&mut self, axis: usize) {
        if let Some(l) = self.inner.cmd.depth_limit.get_mut(axis) {
            *l = f64::INFINITY;
        }
        self.send();
    }

    fn into_state<T>(self) -> Controller<T> {
        Controller {
            inner: self.inner,
            _state: PhantomData,
        }
    }

    /// Hold (`true`) or release the emergency stop. In any state: while held the cycle latches
    /// [`Fault::EmergencyStop`] (quick stop on every axis) and ignores resets.
    pub fn emergency_stop(&mut self, held: bool) {
        self.inner.cmd.emergency_stop = held;
        self.send();
    }

    /// Sequence number of the last reset requested (echoed in [`Status::reset_seq`] and answered in
    /// [`Status::reset_reply`] and [`Event::ResetAnswered`]).
    pub fn last_reset_seq(&self) -> u32 {
        self.inner.cmd.reset_seq
    }

    /// Whether the emergency stop is held (as last commanded).
    pub fn emergency_stop_held(&self) -> bool {
        self.inner.cmd.emergency_stop
    }

    /// Latest status from the cycle.
    pub fn status(&mut self) -> Status {
        *self.inner.status_out.read()
    }

    /// Next event, if any.
    pub fn next_event(&mut self) -> Option<Event> {
        self.inner.events.pop().ok()
    }

    /// The axes this controller drives.
    pub fn axes(&self) -> &[AxisConfig] {
        &self.inner.axes
    }

    /// Orderly stop: halt any motion (brake along it), command disable, keep cycling until every drive reports Switch
    /// on disabled or Ready to switch on, then stop the thread. Each wait is bounded by [`SHUTDOWN_CYCLES`] of the drive
    /// clock; a drive not disabled by then is [`Error::ShutdownTimeout`] (the thread is stopped anyway).
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.inner.orderly_stop()
    }
}

fn disabled(d: DriveState) -> bool {
    matches!(d, DriveState::SwitchOnDisabled | DriveState::ReadyToSwitchOn)
}

impl Inner {
    fn send(&mut self) {
        self.cmd.heartbeat = self.cmd.heartbeat.wrapping_add(1);
        self.cmd_in.write(self.cmd);
    }

    /// Poll the status (heartbeating: the caller is the supervisor now) until `done` or `cycles` of the drive clock
    /// have passed; a cycle thread that stops advancing ends the wait after the same span of wall time, twice.
    fn wait(&mut self, cycles: u64, done: impl Fn(&Status) -> bool) -> (bool, Status) {
        let start = self.status_out.read().cycle;
        let wall = Instant::now() + 2 * self.period * (cycles as u32).max(1);
        loop {
            self.send();
            let s = *self.status_out.read();
            if done(&s) {
                return (true, s);
            }
            if s.cycle > start + cycles || Instant::now() > wall {
                return (false, s);
            }
            std::thread::sleep(self.period / 4);
        }
    }

    fn orderly_stop(&mut self) -> Result<(), Error> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let n = self.axes.len().min(MAX_AXES);
        let mut result = Ok(());
        if self.status_out.read().mode == Mode::Enabled {
            self.cmd.halt_goal_seq = self.cmd.goal_seq;
            self.cmd.halt_seq = self.cmd.halt_seq.wrapping_add(1);
            let seq = self.cmd.goal_seq;
            self.wait(SHUTDOWN_CYCLES, |s| {
                s.mode != Mode::Enabled || (s.goal_seq == seq && s.goal_reached)
            });
        }
        self.cmd.enable = false;
        let (ok, s) = self.wait(SHUTDOWN_CYCLES, |s| {
            s.mode != Mode::Enabled && s.mode != Mode::Enabling && s.drive_state[..n].iter().all(|d| disabled(*d))
        });
        if !ok {
            let axis = s.drive_state[..n].iter().position(|d| !disabled(*d)).unwrap_or(0);
            result = Err(Error::ShutdownTimeout {
                axis,
                state: s.drive_state[axis],
                cycles: SHUTDOWN_CYCLES,
            });
        }
        self.stop.store(true, Ordering::Relaxed);
        thread
            .join()
            .map_err(|_| Error::Thread("cycle thread panicked".into()))?;
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.orderly_stop();
    }
}
