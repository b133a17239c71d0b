//! How far the needle came back between two looks at the patient.
//!
//! The twin brings its needle up with the robot at scans (and, for a breathing patient, every few milliseconds of
//! drive time). A redirect withdraws the needle, turns it and inserts it again, possibly all between two looks; the
//! twin must pass through the withdrawal to cut the new track from the right depth
//! ([`crate::patient::Patient::sync_through`]). Whoever watches the drives feeds every pose it sees to
//! [`Shallowest::observe`]; whoever syncs the patient takes the shallowest one.

use std::sync::Mutex;

use acus_control::kinematics::JointPositions;

/// The robot pose at the shallowest insertion seen since the last [`Shallowest::take`].
#[derive(Debug, Default)]
pub struct Shallowest(Mutex<Option<JointPositions>>);

impl Shallowest {
    /// A pose the drives reported.
    pub fn observe(&self, q: JointPositions) {
        if let Ok(mut low) = self.0.lock() {
            if low.is_none_or(|l| q.insertion() < l.insertion()) {
                *low = Some(q);
            }
        }
    }

    /// The shallowest pose since the last take, and start again.
    pub fn take(&self) -> Option<JointPositions> {
        self.0.lock().ok().and_then(|mut low| low.take())
    }
}
