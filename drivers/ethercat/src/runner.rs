//! The cycle thread and its lock-free handoffs, behind a typestate controller.
//!
//! Commands go in and status comes out through `triple_buffer` (wait-free, latest value wins,
//! fixed storage: neither side ever blocks or allocates); fault and mode events leave through an
//! `rtrb` SPSC ring (wait-free, bounded) that a non-real-time thread drains. The cycle thread
//! owns the bus: exchange → [`Cycle::step`] → publish → wait for the next period.
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
use crate::cia402::{DriveInputs, DriveOutputs};
use crate::config::{AxisConfig, MAX_AXES};
use crate::cycle::{Command, Cycle, Fault, Mode, Status};
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
}

const EVENT_CAPACITY: usize = 256;

/// Cycles a [`Pacing::Simulated`] clock keeps running flat out after the group's last work: drives settle after a
/// trajectory ends.
pub const SIMULATED_SETTLE_CYCLES: u64 = 200;

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
    pacing: Pacing,
) {
    let n = bus.drives().min(MAX_AXES);
    let mut inputs = [DriveInputs::default(); MAX_AXES];
    let mut outputs = [DriveOutputs::default(); MAX_AXES];
    let mut last_mode = Mode::Disabled;
    let mut last_fault: Option<Fault> = None;
    let mut deadline = Instant::now();
    let mut last_cmd = Command::default();
    let mut flat_out_until = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let health = bus.exchange(&outputs[..n], &mut inputs[..n]);
        let cmd = *cmd_out.read();
        let status = *cycle.step(health, &inputs[..n], &cmd, &mut outputs[..n]);
        status_in.write(status);
        let working = matches!(status.mode, Mode::Enabling | Mode::Resetting)
            || (status.mode == Mode::Enabled && !status.in_position)
            || status.mode != last_mode
            || cmd != last_cmd
            || status.fault != last_fault;
        if working {
            flat_out_until = status.cycle.saturating_add(SIMULATED_SETTLE_CYCLES);
        }
        last_cmd = cmd;
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
        last_fault = status.fault;
        last_mode = status.mode;
        if pacing == Pacing::Simulated && status.cycle < flat_out_until {
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
    }
}

impl Controller<Disabled> {
    /// Start the cycle thread on `bus`, in real time. The thread owns the bus until [`Controller::shutdown`].
    pub fn spawn<B: Bus + Send + 'static>(bus: B, axes: &[AxisConfig], period: Duration) -> Result<Self, Error> {
        Self::spawn_paced(bus, axes, period, Pacing::RealTime)
    }

    /// Start the cycle thread on `bus` with the given pacing.
    pub fn spawn_paced<B: Bus + Send + 'static>(
        bus: B,
        axes: &[AxisConfig],
        period: Duration,
        pacing: Pacing,
    ) -> Result<Self, Error> {
        if bus.drives() != axes.len() {
            return Err(Error::DriveCount {
                found: bus.drives(),
                expected: axes.len(),
            });
        }
        let cycle = Cycle::new(axes, period.as_secs_f64());
        let (cmd_in, cmd_out) = triple_buffer::TripleBuffer::new(&Command::default()).split();
        let (status_in, status_out) = triple_buffer::TripleBuffer::new(&Status::default()).split();
        let (producer, events) = rtrb::RingBuffer::new(EVENT_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ethercat-cycle".into())
            .spawn(move || run(bus, cycle, period, cmd_out, status_in, producer, stop2, pacing))
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
        for (g, a) in goal.iter().zip(&self.inner.axes) {
            if !(a.lower..=a.upper).contains(g) {
                return Err(Error::GoalOutOfRange {
                    joint: a.joint.clone(),
                    value: *g,
                    lower: a.lower,
                    upper: a.upper,
                });
            }
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
    fn send(&mut self) {
        self.inner.cmd_in.write(self.inner.cmd);
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

    /// Stop the cycle thread and wait for it.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.inner.stop.store(true, Ordering::Relaxed);
        match self.inner.thread.take() {
            Some(t) => t.join().map_err(|_| Error::Thread("cycle thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
