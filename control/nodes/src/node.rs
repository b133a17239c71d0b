//! A running node: its spinner plus the tasks serving its endpoints.

use crate::Spinner;

/// A node that runs until dropped: the spin thread and the tokio tasks that serve its topics and services. Dropping it
/// aborts the tasks and removes the node from the ROS graph.
pub struct RunningNode {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _spinner: Option<Spinner>,
}

impl RunningNode {
    /// Own `spinner` and the serving `tasks`.
    pub fn new(spinner: Spinner, tasks: Vec<tokio::task::JoinHandle<()>>) -> Self {
        Self {
            tasks,
            _spinner: Some(spinner),
        }
    }

    /// Tasks without a ROS node of their own (glue between in-process components), stopped the same way.
    pub fn new_tasks(tasks: Vec<tokio::task::JoinHandle<()>>) -> Self {
        Self { tasks, _spinner: None }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
