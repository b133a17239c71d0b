//! What the procedure node writes into its `std_msgs/String` topics (and the record keeps): one JSON object per message, so
//! that a reader (ours, Foxglove, a Python script) gets fields, not prose. `/procedure/state` is the bare state name.

use serde::{Deserialize, Serialize};

/// The topics of a procedure record and their types (what acus-record's `RecorderNode` subscribes to by default).
pub const PROCEDURE_TOPICS: &[(&str, &str)] = &[
    ("/joint_states", "sensor_msgs/msg/JointState"),
    ("/needle/tip", "geometry_msgs/msg/PoseStamped"),
    (STATE_TOPIC, "std_msgs/msg/String"),
    (DIAGNOSTICS_TOPIC, "diagnostic_msgs/msg/DiagnosticArray"),
    ("/registration/transform", "geometry_msgs/msg/TransformStamped"),
    (REQUESTS_TOPIC, "std_msgs/msg/String"),
    (ANSWERS_TOPIC, "std_msgs/msg/String"),
    (FAULTS_TOPIC, "std_msgs/msg/String"),
    (SCANS_TOPIC, "std_msgs/msg/String"),
];

/// The tracker node's topics and their types (`acus_nodes::tracker`). Not in [`PROCEDURE_TOPICS`]: a system without a
/// tracker publishes none of them, and a record of it must not be read as incomplete; a composition root that starts the
/// tracker records `PROCEDURE_TOPICS` and these.
pub const TRACKER_TOPICS: &[(&str, &str)] = &[
    ("/tracker/reference", "geometry_msgs/msg/PoseStamped"),
    ("/tracker/needle", "geometry_msgs/msg/PoseStamped"),
    ("/needle/tip_tracked", "geometry_msgs/msg/PointStamped"),
];

/// The respiratory belt (sensor_msgs/FluidPressure: a bellows' pressure, stamped with the belt's clock): the gate's
/// input.
pub const RESPIRATION_TOPIC: &str = "/respiration";
/// The procedure's breathing instruction to the patient (std_msgs/Bool: true "hold your breath", false "breathe"), for
/// a scanner's breathing commands or the radiographer.
pub const BREATH_HOLD_TOPIC: &str = "/patient/breath_hold";

/// The procedure's stage, its name (transient local).
pub const STATE_TOPIC: &str = "/procedure/state";
/// Registration and check-scan figures (diagnostic_msgs/DiagnosticArray).
pub const DIAGNOSTICS_TOPIC: &str = "/diagnostics";
/// Every operator request as received ([`Request`]).
pub const REQUESTS_TOPIC: &str = "/procedure/requests";
/// The answer to each request ([`Answer`]).
pub const ANSWERS_TOPIC: &str = "/procedure/answers";
/// Each fault the procedure latched ([`Fault`]).
pub const FAULTS_TOPIC: &str = "/procedure/faults";
/// Each scan written ([`Scan`]).
pub const SCANS_TOPIC: &str = "/scans";
/// The `/diagnostics` key whose value is a check scan's tip-to-target distance.
pub const TIP_TO_TARGET_KEY: &str = "tip to target [mm]";
/// The `/diagnostics` key whose value is a check scan's tip found, CT LPS, mm (`x y z`).
pub const TIP_CT_KEY: &str = "tip CT LPS [mm]";
/// The `/diagnostics` key whose value is the path of a check scan's picture (SVG), when one was written.
pub const PICTURE_KEY: &str = "picture";

/// `/procedure/requests`: an operator request as the procedure node received it.
/// Example: `{"id":7,"from":"slicer@10.0.0.5","request":"insert","detail":"to depth 62.0 mm"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Pairs the request with its [`Answer`].
    pub id: u64,
    /// Who sent it (console name and address, or user).
    pub from: String,
    /// The command (`register`, `plan`, `insert`, `retract`, `stop`, ...).
    pub request: String,
    /// Its arguments as the operator gave them, for the reader.
    #[serde(default)]
    pub detail: String,
}

/// `/procedure/answers`: the procedure node's answer to request `id`.
/// Example: `{"id":7,"accepted":false,"answer":"refused: not registered"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The request's id.
    pub id: u64,
    /// The request did what was asked.
    pub accepted: bool,
    /// What happened or why not, then where the procedure stands.
    pub answer: String,
}

/// `/procedure/faults`: a fault with its cause chain. Example: `{"fault":"motion","cause":"axis z: following error"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// The fault's kind (its enum variant).
    pub fault: String,
    /// What caused it, as the operator reads it (the error's Display with its sources).
    pub cause: String,
}

/// `/scans`: a scan written to disk. Example:
/// `{"kind":"check","series_dir":"out/check-1","study_uid":"1.2...","series_uid":"1.2...","n":1}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scan {
    /// `planning` or `check`.
    pub kind: String,
    /// The series folder.
    pub series_dir: String,
    /// Study Instance UID (empty if the series could not be read).
    pub study_uid: String,
    /// Series Instance UID (empty if the series could not be read).
    pub series_uid: String,
    /// Check scan number (0 for the planning scan).
    #[serde(default)]
    pub n: u32,
}
