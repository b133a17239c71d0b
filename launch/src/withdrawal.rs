//! The sim side's watch of the drives for the twin's needle: a redirect's withdrawal between two looks at the patient
//! (see [`acus_sim_twin::withdrawal`]).

use std::sync::Arc;

use acus_nodes::motion::MotionStatus;
use acus_sim_twin::withdrawal::Shallowest;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the drives' status is sampled, wall time: not at every cycle (on the simulated clock that would wake the
/// task tens of thousands of times a second). A redirect holds the insertion at its withdrawal depth while it turns,
/// for many polls.
const POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// Follow the drives' status into a [`Shallowest`]; the task ends with the status channel.
pub fn watch_withdrawals(status: watch::Receiver<MotionStatus>) -> (Arc<Shallowest>, JoinHandle<()>) {
    let shallowest = Arc::new(Shallowest::default());
    let keep = Arc::clone(&shallowest);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while status.has_changed().is_ok() {
            tick.tick().await;
            let q = status.borrow().actual;
            keep.observe(q);
        }
    });
    (shallowest, task)
}
