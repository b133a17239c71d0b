//! The robot's STATUS for Slicer, from the procedure's state and faults. Pure: what arrives goes in, the STATUS to show
//! comes out, and whether it changed.
//!
//! A fault is shown (an error code, its kind as the error name, its cause as the status text) until the procedure's
//! state changes after it. State changes within [`FAULT_SETTLE`] of the fault do not count: the procedure reports a fault
//! and at once the state it put it in (`paused: ...`), on two topics whose relative order is not guaranteed (and the
//! latched state topic keeps only the last of two quick changes), so clearing on "the next state change" would hide every
//! fault the moment it arrives. The operator's next act (resume, reset, new procedure) comes later and clears it.

use std::time::{Duration, Instant};

use acus_igtl::Status;

/// OpenIGTLink STATUS code "OK".
pub const CODE_OK: u16 = 1;
/// OpenIGTLink STATUS code "unknown error": a procedure fault (its kind is the error name, its cause the text).
pub const CODE_ERROR: u16 = 2;
/// OpenIGTLink STATUS code "device not ready": no procedure state heard yet.
pub const CODE_NOT_READY: u16 = 13;
/// The STATUS message's error name is a fixed 20-byte field.
const ERROR_NAME_LEN: usize = 20;

/// The latest state and fault.
#[derive(Debug, Default, Clone)]
pub struct RobotStatus {
    state: Option<String>,
    fault: Option<(String, String)>,
    /// When the current fault arrived.
    fault_at: Option<Instant>,
}

/// State changes this soon after a fault are its consequences, not the operator's acts: they keep it shown.
pub const FAULT_SETTLE: Duration = Duration::from_secs(1);

impl RobotStatus {
    /// `/procedure/state` said `state` at `now`. Returns whether it was a change.
    pub fn state(&mut self, state: &str, now: Instant) -> bool {
        if self.state.as_deref() == Some(state) {
            return false;
        }
        self.state = Some(state.to_owned());
        if self
            .fault_at
            .is_some_and(|at| now.saturating_duration_since(at) >= FAULT_SETTLE)
        {
            self.fault = None;
            self.fault_at = None;
        }
        true
    }

    /// `/procedure/faults` reported `fault` (its kind) with `cause` at `now`.
    pub fn fault(&mut self, fault: &str, cause: &str, now: Instant) {
        self.fault = Some((fault.to_owned(), cause.to_owned()));
        self.fault_at = Some(now);
    }

    /// The STATUS to show.
    pub fn status(&self) -> Status {
        match (&self.fault, &self.state) {
            (Some((kind, cause)), _) => Status {
                code: CODE_ERROR,
                subcode: 0,
                error_name: truncate(kind, ERROR_NAME_LEN),
                status_string: cause.clone(),
            },
            (None, Some(state)) => Status {
                code: CODE_OK,
                subcode: 0,
                error_name: String::new(),
                status_string: state.clone(),
            },
            (None, None) => Status {
                code: CODE_NOT_READY,
                subcode: 0,
                error_name: String::new(),
                status_string: "no procedure state yet".into(),
            },
        }
    }
}

/// At most `n` bytes, cut at a character boundary.
fn truncate(s: &str, n: usize) -> String {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_with_the_state_until_a_fault_then_the_fault_until_the_state_moves_on() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = RobotStatus::default();
        assert_eq!(s.status().code, CODE_NOT_READY);
        assert!(s.state("aligning", at(0)));
        assert!(!s.state("aligning", at(1)));
        assert_eq!(s.status().code, CODE_OK);
        assert_eq!(s.status().status_string, "aligning");
        s.fault("motion", "axis z: following error", at(10));
        let st = s.status();
        assert_eq!((st.code, st.error_name.as_str()), (CODE_ERROR, "motion"));
        assert_eq!(st.status_string, "axis z: following error");
        // The fault's own consequences (even two, or one the latched topic collapsed) keep it shown.
        assert!(s.state("paused: align stopped (fault)", at(11)));
        assert!(s.state("paused: align stopped (fault, again)", at(900)));
        assert_eq!(s.status().code, CODE_ERROR);
        // A later change (the operator acted) clears it.
        assert!(s.state("ready to align", at(10) + FAULT_SETTLE));
        assert_eq!(s.status().code, CODE_OK);
        assert_eq!(s.status().status_string, "ready to align");
    }

    #[test]
    fn a_long_fault_kind_fits_the_error_name_field() {
        let mut s = RobotStatus::default();
        s.fault("ééééééééééééééééé", "x", Instant::now());
        assert!(s.status().error_name.len() <= 20);
    }
}
