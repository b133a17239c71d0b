//! The procedure's reports as ROS 2 messages, in the JSON formats of [`crate::wire`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use acus_executive::{Answer, CheckResult, ExecutiveFault, Op, Report, ScanPurpose};
use r2r::diagnostic_msgs::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};
use r2r::std_msgs::msg::String as StringMsg;
use r2r::QosProfile;
use tokio::sync::mpsc;

use crate::error::RosContext;
use crate::wire;
use crate::{msg, NodeError};

/// The procedure node's publishers. Cheap to clone (the service tasks publish their requests and answers).
#[derive(Clone)]
pub(super) struct Publishers {
    state: r2r::Publisher<StringMsg>,
    requests: r2r::Publisher<StringMsg>,
    answers: r2r::Publisher<StringMsg>,
    faults: r2r::Publisher<StringMsg>,
    scans: r2r::Publisher<StringMsg>,
    diagnostics: r2r::Publisher<DiagnosticArray>,
    breath_hold: r2r::Publisher<r2r::std_msgs::msg::Bool>,
    next_id: Arc<AtomicU64>,
}

impl Publishers {
    pub(super) fn create(node: &mut r2r::Node, latched: QosProfile) -> Result<Self, NodeError> {
        let mut string = |topic: &str, qos: QosProfile| node.create_publisher::<StringMsg>(topic, qos).ros(topic);
        Ok(Self {
            state: string(wire::STATE_TOPIC, latched)?,
            // Deep queues: an audit trail should not lose a request to a slow subscriber.
            requests: string(wire::REQUESTS_TOPIC, QosProfile::default().keep_last(100))?,
            answers: string(wire::ANSWERS_TOPIC, QosProfile::default().keep_last(100))?,
            faults: string(wire::FAULTS_TOPIC, QosProfile::default().keep_last(100))?,
            scans: string(wire::SCANS_TOPIC, QosProfile::default().keep_last(100))?,
            diagnostics: node
                .create_publisher::<DiagnosticArray>(wire::DIAGNOSTICS_TOPIC, QosProfile::default())
                .ros(wire::DIAGNOSTICS_TOPIC)?,
            breath_hold: node
                .create_publisher::<r2r::std_msgs::msg::Bool>(wire::BREATH_HOLD_TOPIC, QosProfile::default())
                .ros(wire::BREATH_HOLD_TOPIC)?,
            next_id: Arc::new(AtomicU64::new(1)),
        })
    }

    /// Publish a request as received (`from`: the service it came through); returns its id for [`Self::answer`].
    pub(super) fn request(&self, from: &str, op: Op) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = wire::Request {
            id,
            from: format!("ros {from}"),
            request: op.to_string(),
            detail: String::new(),
        };
        publish_json(&self.requests, wire::REQUESTS_TOPIC, &request);
        id
    }

    /// Publish the answer to request `id`.
    pub(super) fn answer(&self, id: u64, answer: &Answer) {
        let answer = wire::Answer {
            id,
            accepted: answer.ok,
            answer: answer.text.clone(),
        };
        publish_json(&self.answers, wire::ANSWERS_TOPIC, &answer);
    }

    pub(super) async fn run(self, mut reports: mpsc::UnboundedReceiver<Report>) {
        while let Some(report) = reports.recv().await {
            let published = match report {
                Report::Stage(stage) => self.state.publish(&StringMsg {
                    data: stage.to_string(),
                }),
                // Answers go out from the service that asked (with the request's id).
                Report::Answered { .. } | Report::Safety { .. } => Ok(()),
                Report::Fault(fault) => {
                    publish_json(&self.faults, wire::FAULTS_TOPIC, &fault_record(&fault));
                    Ok(())
                }
                Report::Scan { purpose, dir } => {
                    let scans = self.scans.clone();
                    // Reading a header is file IO: off the executor.
                    tokio::task::spawn_blocking(move || {
                        publish_json(&scans, wire::SCANS_TOPIC, &scan_record(purpose, &dir));
                    });
                    Ok(())
                }
                Report::CheckScan { n, dir, result } => self.diagnostics.publish(&check_scan(n, &dir, &result)),
                Report::BreathHold(hold) => self.breath_hold.publish(&r2r::std_msgs::msg::Bool { data: hold }),
            };
            if let Err(e) = published {
                tracing::warn!("publishing a procedure report failed: {e}");
            }
        }
    }
}

fn publish_json<T: serde::Serialize>(publisher: &r2r::Publisher<StringMsg>, topic: &str, value: &T) {
    match serde_json::to_string(value) {
        Ok(data) => {
            if let Err(e) = publisher.publish(&StringMsg { data }) {
                tracing::warn!("publishing {topic} failed: {e}");
            }
        }
        Err(e) => tracing::error!("encoding {topic}: {e}"),
    }
}

fn fault_record(fault: &ExecutiveFault) -> wire::Fault {
    wire::Fault {
        fault: match fault {
            ExecutiveFault::Motion { .. } => "motion",
            ExecutiveFault::CheckScan { .. } => "check_scan",
        }
        .into(),
        cause: fault.to_string(),
    }
}

/// A scan's identity from its first image header; a series that cannot be read is still recorded, with empty UIDs.
fn scan_record(purpose: ScanPurpose, dir: &Path) -> wire::Scan {
    let (kind, n) = match purpose {
        ScanPurpose::Planning => ("planning", 0),
        ScanPurpose::Check { step } => ("check", u32::try_from(step + 1).unwrap_or(u32::MAX)),
    };
    let (study_uid, series_uid) = match acus_dicom::first_header(dir) {
        Ok(h) => (h.study_uid.unwrap_or_default(), h.series_uid),
        Err(e) => {
            tracing::warn!("scan {}: {e}", dir.display());
            (String::new(), String::new())
        }
    };
    wire::Scan {
        kind: kind.into(),
        series_dir: dir.display().to_string(),
        study_uid,
        series_uid,
        n,
    }
}

fn check_scan(n: usize, dir: &Path, r: &CheckResult) -> DiagnosticArray {
    let kv = |key: &str, value: String| KeyValue { key: key.into(), value };
    let mm = |p: &acus_control::frames::Point<acus_control::frames::Ct>| {
        let c = p.coords;
        format!("{:.3} {:.3} {:.3}", c.x * 1e3, c.y * 1e3, c.z * 1e3)
    };
    let status = DiagnosticStatus {
        level: DiagnosticStatus::OK as u8,
        name: "acus: check scan".into(),
        message: format!("check scan {n}: tip {:.2} mm from the target", r.to_target * 1e3),
        hardware_id: "ct".into(),
        values: vec![
            kv("check scan", n.to_string()),
            kv(wire::TIP_CT_KEY, mm(&r.tip_ct)),
            kv(wire::TIP_TO_TARGET_KEY, format!("{:.3}", r.to_target * 1e3)),
            kv("tip off expected [mm]", format!("{:.3}", r.tip_error * 1e3)),
            kv("target CT LPS [mm]", mm(&r.target_ct)),
            kv("curvature [1/m]", format!("{:.3}", r.curvature)),
            kv("correction pivot [deg]", format!("{:.3}", r.pivot_angle.to_degrees())),
            kv("series", dir.display().to_string()),
        ]
        .into_iter()
        .chain(
            r.picture
                .as_ref()
                .map(|p| kv(wire::PICTURE_KEY, p.display().to_string())),
        )
        .collect(),
    };
    DiagnosticArray {
        header: msg::header(""),
        status: vec![status],
    }
}
