//! The procedure's reports as ROS 2 messages.

use std::path::Path;

use acus_executive::{CheckResult, Report};
use r2r::diagnostic_msgs::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};
use r2r::std_msgs::msg::String as StringMsg;
use r2r::QosProfile;
use tokio::sync::mpsc;

use crate::error::RosContext;
use crate::{msg, NodeError};

pub(super) struct Publishers {
    state: r2r::Publisher<StringMsg>,
    answers: r2r::Publisher<StringMsg>,
    faults: r2r::Publisher<StringMsg>,
    diagnostics: r2r::Publisher<DiagnosticArray>,
}

impl Publishers {
    pub(super) fn create(node: &mut r2r::Node, latched: QosProfile) -> Result<Self, NodeError> {
        Ok(Self {
            state: node
                .create_publisher::<StringMsg>("/procedure/state", latched)
                .ros("/procedure/state")?,
            answers: node
                .create_publisher::<StringMsg>("/procedure/answers", QosProfile::default())
                .ros("/procedure/answers")?,
            faults: node
                .create_publisher::<StringMsg>("/procedure/faults", QosProfile::default())
                .ros("/procedure/faults")?,
            diagnostics: node
                .create_publisher::<DiagnosticArray>("/diagnostics", QosProfile::default())
                .ros("/diagnostics")?,
        })
    }

    pub(super) async fn run(self, mut reports: mpsc::UnboundedReceiver<Report>) {
        while let Some(report) = reports.recv().await {
            let published = match report {
                Report::Stage(stage) => self.state.publish(&StringMsg {
                    data: stage.to_string(),
                }),
                Report::Answered { op, answer } => self.answers.publish(&StringMsg {
                    data: serde_json::json!({"request": op.to_string(), "ok": answer.ok, "text": answer.text})
                        .to_string(),
                }),
                Report::Fault(fault) => self.faults.publish(&StringMsg {
                    data: fault.to_string(),
                }),
                Report::CheckScan { n, dir, result } => self.diagnostics.publish(&check_scan(n, &dir, &result)),
                Report::Safety { .. } => Ok(()),
            };
            if let Err(e) = published {
                tracing::warn!("publishing a procedure report failed: {e}");
            }
        }
    }
}

fn check_scan(n: usize, dir: &Path, r: &CheckResult) -> DiagnosticArray {
    let kv = |key: &str, value: String| KeyValue { key: key.into(), value };
    let mm = |p: &acus_control::frames::Point<acus_control::frames::Ct>| {
        let c = p.coords;
        format!("{:.2} {:.2} {:.2}", c.x * 1e3, c.y * 1e3, c.z * 1e3)
    };
    let status = DiagnosticStatus {
        level: DiagnosticStatus::OK as u8,
        name: "acus: check scan".into(),
        message: format!("check scan {n}: tip {:.2} mm from the target", r.to_target * 1e3),
        hardware_id: "ct".into(),
        values: vec![
            kv("check scan", n.to_string()),
            kv("tip CT LPS [mm]", mm(&r.tip_ct)),
            kv("tip to target [mm]", format!("{:.3}", r.to_target * 1e3)),
            kv("tip off expected [mm]", format!("{:.3}", r.tip_error * 1e3)),
            kv("target CT LPS [mm]", mm(&r.target_ct)),
            kv("curvature [1/m]", format!("{:.3}", r.curvature)),
            kv("correction pivot [deg]", format!("{:.3}", r.pivot_angle.to_degrees())),
            kv("series", dir.display().to_string()),
        ],
    };
    DiagnosticArray {
        header: msg::header(""),
        status: vec![status],
    }
}
