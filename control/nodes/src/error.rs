//! The one error type of the node crate.

/// What went wrong in a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The ROS 2 middleware refused an operation (context, node, endpoint, publish).
    #[error("ROS 2: {context}: {source}")]
    Ros {
        /// What was being done.
        context: String,
        /// r2r's error.
        source: r2r::Error,
    },
    /// A thread could not be started.
    #[error("could not start a thread: {0}")]
    Thread(std::io::Error),
    /// The robot description could not be read or parsed.
    #[error("robot description {path}: {message}")]
    Description {
        /// Where it was read from.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Attach what was being done to an r2r error.
pub(crate) trait RosContext<T> {
    fn ros(self, context: impl Into<String>) -> Result<T, NodeError>;
}

impl<T> RosContext<T> for Result<T, r2r::Error> {
    fn ros(self, context: impl Into<String>) -> Result<T, NodeError> {
        self.map_err(|source| NodeError::Ros {
            context: context.into(),
            source,
        })
    }
}
