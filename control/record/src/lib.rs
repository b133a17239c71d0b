//! acus procedure records. Every procedure leaves an MCAP file (ros2 profile, CDR messages, ros2msg schemas) that ROS 2
//! tools read: [`Recorder`] writes it in small chunks closed every [`FLUSH_PERIOD`] (a killed process loses at most that),
//! [`RecorderNode`] feeds it from DDS, and [`summary`] reads a record back as the procedure's timeline.
//!
//! A finished record's folder is also a rosbag2 bag (`metadata.yaml` beside the file), which is what `rosbags` opens; a
//! truncated record (recorder killed) reads with streaming MCAP readers (ours, Python `mcap`) but not with `rosbags`.

mod bag;
mod error;
/// The procedure node's JSON formats, as the record reads them.
pub use acus_nodes::wire as formats;
mod node;
pub mod schema;
mod summary;
mod writer;

pub use bag::TopicCount;
pub use error::{RecordError, SchemaError};
pub use formats::PROCEDURE_TOPICS;
pub use node::RecorderNode;
pub use summary::{summarize, summary, Entry, Event, Summary};
pub use writer::{now_ns, Recorder, CHUNK_SIZE, FLUSH_PERIOD};
