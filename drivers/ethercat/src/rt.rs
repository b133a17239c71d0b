//! Real-time settings of the cycle thread: SCHED_FIFO and locked memory, where the process is permitted them.
//!
//! Through libc (`pthread_setschedparam`, `mlockall`): std has no API for either, and both are plain POSIX calls
//! without state to wrap. Asked once, before the loop; a refusal is said once (tracing) and published in the status.

/// What the cycle thread asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtSettings {
    /// SCHED_FIFO priority (1–99), or `None` to stay on the default scheduler.
    pub fifo_priority: Option<i32>,
    /// `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`: no page fault on the cycle's memory. Process-wide.
    pub lock_memory: bool,
}

impl RtSettings {
    /// SCHED_FIFO 80 and locked memory: real drives, with the frame-carrying thread at real-time priority too.
    pub const REALTIME: Self = Self {
        fifo_priority: Some(80),
        lock_memory: true,
    };
    /// Neither: a simulated clock runs flat out and must not starve the rest of the simulation.
    pub const NONE: Self = Self {
        fifo_priority: None,
        lock_memory: false,
    };
}

/// Put the calling thread on SCHED_FIFO at `priority` (1–99); says once, naming `thread`, when refused.
pub fn set_current_thread_fifo(priority: i32, thread: &str) -> bool {
    let param = libc::sched_param {
        sched_priority: priority.clamp(1, 99),
    };
    // SAFETY: pthread_self() is the calling thread; param is a valid sched_param for the call's duration.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc != 0 {
        tracing::warn!(
            priority,
            errno = rc,
            "{thread}: SCHED_FIFO refused (needs CAP_SYS_NICE or an rtprio limit); running on the default scheduler"
        );
    }
    rc == 0
}

/// What was obtained: (SCHED_FIFO on, memory locked).
pub(crate) fn apply(s: RtSettings) -> (bool, bool) {
    let fifo = s
        .fifo_priority
        .is_some_and(|p| set_current_thread_fifo(p, "EtherCAT cycle"));
    let locked = if s.lock_memory {
        // SAFETY: mlockall takes flags only.
        let mut rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) };
        if rc != 0 {
            // Kernels before 4.4 have no MCL_ONFAULT.
            rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
        }
        if rc != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "EtherCAT cycle: mlockall refused (needs CAP_IPC_LOCK or a memlock limit); pages may fault in the loop"
            );
        }
        rc == 0
    } else {
        false
    };
    (fifo, locked)
}
