//! The values that cross the cycle's boundary: the command in, the status and faults out, the bus health.

use crate::cia402::DriveState;
use crate::config::MAX_AXES;
#[allow(unused_imports)]
use crate::cycle::IN_POSITION_CYCLES;
#[allow(unused_imports)] // named in doc links
use crate::safety::SafetySettings;
use crate::safety::StopSource;

/// Health of the last exchange, as the bus reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusHealth {
    /// Frame came back with the expected working counter.
    Ok,
    /// Frame came back with the wrong working counter (a device missing or not in OP).
    WorkingCounter {
        /// Received.
        got: u16,
        /// Expected.
        expected: u16,
    },
    /// No frame came back (link down, frame lost).
    Lost,
    /// A SubDevice left OP (AL state check in the same frame).
    NotOperational,
}

/// Why the cycle latched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// A frame did not come back.
    FrameLost,
    /// A SubDevice left OP.
    NotOperational,
    /// Working counter mismatch.
    WorkingCounter {
        /// Received.
        got: u16,
        /// Expected.
        expected: u16,
    },
    /// A drive reported a fault.
    Drive {
        /// Axis index.
        axis: u8,
        /// 0x603F error code.
        code: u16,
    },
    /// Actual position left the setpoint by more than the window.
    FollowingError {
        /// Axis index.
        axis: u8,
        /// Error, joint units.
        error: f64,
    },
    /// Actual position outside the joint range (plus one following-error window).
    OutOfRange {
        /// Axis index.
        axis: u8,
        /// Position, joint units.
        position: f64,
    },
    /// A drive left Operation enabled by itself.
    DriveDisabled {
        /// Axis index.
        axis: u8,
    },
    /// An emergency stop: the command's stop level, or a registered source pressed or silent beyond its deadline.
    EmergencyStop {
        /// Which one.
        source: StopSource,
    },
    /// The command heartbeat did not change for longer than the watchdog allows while enabling or enabled: the
    /// supervising side (or its runtime) stalled.
    StaleCommand {
        /// Cycles since the last change.
        cycles: u32,
    },
    /// Actual position beyond the procedure's depth limit plus one following-error window.
    DepthLimit {
        /// Axis index.
        axis: u8,
        /// Position, joint units.
        position: f64,
        /// Depth limit in force, joint units.
        limit: f64,
    },
    /// A goal or depth limit in the command is not a number (never turned into counts).
    InvalidGoal {
        /// Axis index.
        axis: u8,
    },
    /// Velocity actual (0x606C) beyond the joint limit and the overspeed margin.
    Overspeed {
        /// Axis index.
        axis: u8,
        /// Velocity actual, joint units/s.
        velocity: f64,
    },
    /// Position actual jumped between consecutive frames by more than the axis can move.
    EncoderJump {
        /// Axis index.
        axis: u8,
        /// Jump, joint units.
        jump: f64,
    },
    /// Too many late periods within the overrun window.
    OverrunBurst {
        /// Late periods in the window.
        count: u32,
    },
    /// The interpolator asked for a setpoint step faster than the joint limit (a defect upstream; never sent).
    SetpointVelocity {
        /// Axis index.
        axis: u8,
    },
    /// Drives did not reach Operation enabled in time, or report a mode other than CSP.
    EnableTimeout {
        /// Axis index.
        axis: u8,
    },
}

/// What the cycle did with a reset request (a new [`Command::reset_seq`]). Every request is answered, once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResetAnswer {
    /// The fault was cleared: the group acknowledges drive faults ([`Mode::Resetting`]), then is [`Mode::Disabled`].
    /// A fault that latches after this is a new one ([`Status::fault_cycle`] after [`ResetReply::cycle`]).
    Taken,
    /// Refused: a cause of the fault is still there, named as the fault it is (the first the cycle found, in the
    /// order it checks: the e-stop, the link, the goal, overruns, motion, the command watchdog). The fault stays
    /// latched; send a new request once the cause is gone.
    Refused {
        /// The cause that persists.
        cause: Fault,
    },
    /// No fault was latched (the group was not [`Mode::Faulted`]): nothing to reset.
    NothingLatched,
}

/// The answer to one reset request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResetReply {
    /// The request answered ([`Command::reset_seq`]).
    pub seq: u32,
    /// Cycle that took the decision.
    pub cycle: u64,
    /// The decision.
    pub answer: ResetAnswer,
}

/// Operating mode of the axis group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// No torque requested (drives held in Ready to switch on).
    #[default]
    Disabled,
    /// Walking drives through the power state machine.
    Enabling,
    /// All drives in Operation enabled; setpoints interpolated towards the goal.
    Enabled,
    /// Acknowledging drive faults after a reset request.
    Resetting,
    /// Latched fault: quick stop, no motion.
    Faulted,
}

/// The command handed to the cycle (latest value wins).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Command {
    /// Hold the drives enabled. False disables (unless faulted).
    pub enable: bool,
    /// A change of this counter requests enabling (an edge that cannot be lost in a latest-value handoff).
    pub enable_seq: u32,
    /// A change of this counter requests a fault reset (the rising edge).
    pub reset_seq: u32,
    /// Goal joint positions, SI.
    pub goal: [f64; MAX_AXES],
    /// Identifies the goal, echoed in [`Status::goal_seq`] once it applies.
    pub goal_seq: u32,
    /// `goal_seq` when enabling was requested: that goal (and older) is stale, so after enabling
    /// the axes hold their actual positions until a goal with another sequence number arrives.
    pub enable_goal_seq: u32,
    /// A change of this counter requests a halt: every axis decelerates at its limit to a standstill along its current
    /// motion (no return to where the halt came, so a needle is never pulled back by a hold).
    pub halt_seq: u32,
    /// `goal_seq` when the halt was requested: that goal is abandoned; the axes stay where they stopped until a goal
    /// with another sequence number arrives.
    pub halt_goal_seq: u32,
    /// Fraction of the URDF velocity limit, (0, 1].
    pub speed_scale: f64,
    /// Emergency stop held (a level): latches [`Fault::EmergencyStop`] every cycle it is true, so a reset cannot clear
    /// the fault until the stop is released.
    pub emergency_stop: bool,
    /// Bumped by every write of the supervising side: the cycle's command watchdog
    /// ([`SafetySettings::stale_command_cycles`]) sees a stalled supervisor as a counter that stops changing.
    pub heartbeat: u32,
    /// Per-axis upper limit of the procedure (the insertion depth limit), joint units; `INFINITY` for none. Goals are
    /// clamped to it; an actual position beyond it plus the following window latches [`Fault::DepthLimit`].
    pub depth_limit: [f64; MAX_AXES],
}

impl Default for Command {
    fn default() -> Self {
        Self {
            enable: false,
            enable_seq: 0,
            reset_seq: 0,
            goal: [0.0; MAX_AXES],
            goal_seq: 0,
            enable_goal_seq: 0,
            halt_seq: 0,
            halt_goal_seq: 0,
            speed_scale: 1.0,
            emergency_stop: false,
            heartbeat: 0,
            depth_limit: [f64::INFINITY; MAX_AXES],
        }
    }
}

/// What the cycle publishes every period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    /// Cycle counter.
    pub cycle: u64,
    /// Group mode.
    pub mode: Mode,
    /// Latched fault, if any.
    pub fault: Option<Fault>,
    /// Cycle at which the current fault latched.
    pub fault_cycle: u64,
    /// Number of axes.
    pub axes: usize,
    /// Actual positions, SI.
    pub actual: [f64; MAX_AXES],
    /// Setpoints sent, SI.
    pub setpoint: [f64; MAX_AXES],
    /// Drive states.
    pub drive_state: [DriveState; MAX_AXES],
    /// Statuswords.
    pub statusword: [u16; MAX_AXES],
    /// Controlwords sent.
    pub controlword: [u16; MAX_AXES],
    /// Goal of the last command.
    pub goal_seq: u32,
    /// All setpoints at the goal and at rest.
    pub goal_reached: bool,
    /// Goal reached and every axis within its position window of it for [`IN_POSITION_CYCLES`] (CiA 402 0x6067/0x6068,
    /// kept by the master): the robot stands where it was sent, so a scan now images the pose the move ended in.
    pub in_position: bool,
    /// Reset requests seen.
    pub reset_seq: u32,
    /// The last reset request was refused because a cause of the fault persists ([`Status::reset_reply`] says which).
    pub reset_refused: bool,
    /// The answer to the last reset request the cycle saw (`None` before the first): taken, refused with its cause,
    /// or nothing to reset.
    pub reset_reply: Option<ResetReply>,
    /// Cycles since the command heartbeat last changed.
    pub command_age: u32,
    /// Every registered enable source is held and fresh (true when none is registered); false holds every axis.
    pub enable_held: bool,
    /// The e-stop as it stands this period (a source pressed or silent, or the command's stop), latched or not: the
    /// procedure shows it, and a reset waits for it to clear.
    pub estop_active: Option<crate::safety::StopSource>,
    /// The axes hold a stop point (a halt, or an enable released) instead of the commanded goal.
    pub halted: bool,
    /// Late periods since start (real-time pacing).
    pub overruns: u64,
    /// The cycle thread runs with SCHED_FIFO (set by the runner).
    pub realtime: bool,
    /// The process memory is locked (set by the runner).
    pub memory_locked: bool,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            cycle: 0,
            mode: Mode::Disabled,
            fault: None,
            fault_cycle: 0,
            axes: 0,
            actual: [0.0; MAX_AXES],
            setpoint: [0.0; MAX_AXES],
            drive_state: [DriveState::default(); MAX_AXES],
            statusword: [0; MAX_AXES],
            controlword: [0; MAX_AXES],
            goal_seq: 0,
            goal_reached: false,
            in_position: false,
            reset_seq: 0,
            reset_refused: false,
            reset_reply: None,
            command_age: 0,
            enable_held: true,
            estop_active: None,
            halted: false,
            overruns: 0,
            realtime: false,
            memory_locked: false,
        }
    }
}
