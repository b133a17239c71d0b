//! The registration node: CT series in, `T_robot_ct` out, gated.
//!
//! - `/scan/series` (std_msgs/String, transient local): the folder of the newest CT series, as a scanner export (or the
//!   virtual scanner) announces it.
//! - `/plan/target` (geometry_msgs/PointStamped, frame `ct`, metres): the target, so the gate checks the predicted TRE where it
//!   matters. Without one, the gate checks the configured default targets.
//! - `/registration/register` (std_srvs/Trigger): register from the newest series. The answer says what happened in one
//!   line: the figures on success, the reason on refusal.
//! - `/registration/transform` (geometry_msgs/TransformStamped `robot_base` ← `ct`, transient local): published only when the
//!   gate passes; a refusal publishes nothing new, so nobody can move on a refused registration.
//! - `/registration/fiducials` (geometry_msgs/PoseArray, frame `ct`, metres): every sphere centre found
//!   in the series, in no particular order (orientation identity), published before the service answers, accepted or
//!   refused; empty when the detector found nothing usable. Volatile, not latched: a procedure started later must not
//!   take an old scan's registration. The procedure matches, fits and gates these itself (in its
//!   own process, at its own target): this node is not trusted with the robot, only with the image.
//! - `/diagnostics` (diagnostic_msgs/DiagnosticArray): the figures (fiducials, FRE, residuals, predicted TRE), also on refusal.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use acus_control::frames::{Ct, Point};
use acus_control::registration::{
    detect_spheres, register_points, DetectionWorkspace, FiducialModel, GatedRegistration, QualityGate, Registration,
    RegistrationParams,
};
use futures::StreamExt;
use r2r::diagnostic_msgs::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};
use r2r::geometry_msgs::msg::{PointStamped, Pose, PoseArray, Quaternion, TransformStamped};
use r2r::std_msgs::msg::String as StringMsg;
use r2r::std_srvs::srv::Trigger;
use r2r::QosProfile;

use crate::error::RosContext;
use crate::{msg, NodeError, RunningNode, Spinner};

/// Settings of the registration node.
#[derive(Clone, Debug)]
pub struct RegistrationConfig {
    /// The fiducial frame, from the URDF.
    pub model: FiducialModel,
    /// The quality gate.
    pub gate: QualityGate,
    /// Where to look when no `/scan/series` has been announced yet.
    pub series_dir: Option<PathBuf>,
    /// Targets (CT frame) the gate checks while no `/plan/target` has been received.
    pub default_targets: Vec<Point<Ct>>,
}

/// Why registering a series failed (before or at the gate).
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// No series folder is known.
    #[error("no CT series announced on /scan/series and none configured")]
    NoSeries,
    /// The series could not be imported.
    #[error("import of {dir}: {source}")]
    Import {
        /// Series folder.
        dir: String,
        /// The importer's reason.
        source: acus_dicom::DicomError,
    },
    /// Fiducials could not be found or matched.
    #[error("registration of {dir}: {source}")]
    Register {
        /// Series folder.
        dir: String,
        /// Why.
        source: acus_control::registration::RegistrationError,
    },
    /// The gate refused the registration.
    #[error("registration refused: {refusal}")]
    Refused {
        /// The figures of the refused registration.
        registration: Box<Registration>,
        /// The reason.
        refusal: acus_control::registration::Refusal,
    },
}

/// Draw the fiducials found against the frame model mapped into the CT, beside the series (`<dir>.registration.svg`),
/// accepted or not (a refused registration is the one to look at). A picture that cannot be written is logged only.
fn draw_registration(dir: &Path, registration: &acus_control::registration::Registration, model: &FiducialModel) {
    let t_ct_robot = registration.t_robot_ct().inverse();
    let (found, model_in_ct): (Vec<_>, Vec<_>) = registration
        .fits()
        .iter()
        .filter_map(|f| {
            model
                .points()
                .get(f.model_index)
                .map(|m| (f.detected, t_ct_robot.apply(m)))
        })
        .unzip();
    let svg = acus_pictures::registration_svg(&found, &model_in_ct, registration.fre_rms());
    let path = dir.with_extension("registration.svg");
    if let Err(e) = acus_pictures::write_svg(&path, &svg) {
        tracing::warn!("registration picture {}: {e}", path.display());
    }
}

/// Import the series in `dir`, find and match the fiducials, fit `T_robot_ct` and pass it through the gate (IO, then
/// pure). `found` receives the sphere centres detected (empty if the detector failed), whatever the outcome.
pub fn register_series(
    dir: &Path,
    model: &FiducialModel,
    gate: &QualityGate,
    targets: &[Point<Ct>],
    found: &mut Vec<Point<Ct>>,
) -> Result<GatedRegistration, RegisterError> {
    let name = dir.display().to_string();
    let (volume, _report) = acus_dicom::read_ct_series(dir).map_err(|source| RegisterError::Import {
        dir: name.clone(),
        source,
    })?;
    let params = RegistrationParams::for_model(model);
    let mut workspace = DetectionWorkspace::new();
    let spheres =
        detect_spheres(&volume, &params.detection, &mut workspace).map_err(|source| RegisterError::Register {
            dir: name.clone(),
            source,
        })?;
    found.extend(spheres.spheres.iter().map(|d| d.center));
    let registration = register_points(model, found, &params.matching)
        .map_err(|source| RegisterError::Register { dir: name, source })?;
    draw_registration(dir, &registration, model);
    gate.check(registration.clone(), targets)
        .map_err(|refusal| RegisterError::Refused {
            registration: Box::new(registration),
            refusal,
        })
}

/// State the service reads: the newest series and target.
#[derive(Default)]
struct Inputs {
    series: Option<PathBuf>,
    target: Option<Point<Ct>>,
}

/// Start the `registration` node (it can run in a process of its own: everything it tells goes over ROS 2). A series
/// that cannot be read is reported to the caller and on `/diagnostics` only; one that was read publishes its
/// detections.
pub fn start(ctx: &r2r::Context, config: RegistrationConfig) -> Result<RunningNode, NodeError> {
    let mut node = r2r::Node::create(ctx.clone(), "registration", "").ros("create node registration")?;
    let latched = QosProfile::default().transient_local().keep_last(1);
    let mut series = node
        .subscribe::<StringMsg>("/scan/series", latched.clone())
        .ros("subscribe /scan/series")?;
    let mut targets = node
        .subscribe::<PointStamped>("/plan/target", latched.clone())
        .ros("subscribe /plan/target")?;
    let mut requests = node
        .create_service::<Trigger::Service>("/registration/register", QosProfile::services_default())
        .ros("create service /registration/register")?;
    let transform = node
        .create_publisher::<TransformStamped>("/registration/transform", latched)
        .ros("create publisher /registration/transform")?;
    let fiducials = node
        .create_publisher::<PoseArray>(FIDUCIALS_TOPIC, QosProfile::default())
        .ros("create publisher /registration/fiducials")?;
    let diagnostics = node
        .create_publisher::<DiagnosticArray>("/diagnostics", QosProfile::default())
        .ros("create publisher /diagnostics")?;
    let spinner = Spinner::start(node)?;

    let inputs = Arc::new(Mutex::new(Inputs {
        series: config.series_dir.clone(),
        target: None,
    }));
    let series_inputs = Arc::clone(&inputs);
    let series_task = tokio::spawn(async move {
        while let Some(m) = series.next().await {
            if let Ok(mut inputs) = series_inputs.lock() {
                inputs.series = Some(PathBuf::from(m.data));
            }
        }
    });
    let target_inputs = Arc::clone(&inputs);
    let target_task = tokio::spawn(async move {
        while let Some(m) = targets.next().await {
            if m.header.frame_id != <Ct as acus_control::frames::Frame>::NAME {
                tracing::warn!("ignoring /plan/target in frame '{}': expected 'ct'", m.header.frame_id);
                continue;
            }
            if let Ok(mut inputs) = target_inputs.lock() {
                inputs.target = Some(Point::xyz(m.point.x, m.point.y, m.point.z));
            }
        }
    });
    let service_task = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let (dir, target) = match inputs.lock() {
                Ok(inputs) => (inputs.series.clone(), inputs.target),
                Err(_) => (None, None),
            };
            let gate_targets = target
                .map(|t| vec![t])
                .unwrap_or_else(|| config.default_targets.clone());
            let model = config.model.clone();
            let gate = config.gate.clone();
            // Import and detection take tens of milliseconds to seconds: off the async workers.
            let named = dir.as_ref().map(|d| format!(" ({})", d.display())).unwrap_or_default();
            let outcome = tokio::task::spawn_blocking(move || {
                let mut found = Vec::new();
                let result = match dir {
                    None => Err(RegisterError::NoSeries),
                    Some(dir) => {
                        register_series(&dir, &model, &gate, &gate_targets, &mut found).map(|g| (g, dir, gate_targets))
                    }
                };
                (result, found)
            })
            .await
            .map(|(result, found)| {
                // The detections go out before the answer (a series that could not be read has none to tell).
                if !matches!(result, Err(RegisterError::Import { .. } | RegisterError::NoSeries)) {
                    if let Err(e) = fiducials.publish(&pose_array(&found)) {
                        tracing::error!("publishing /registration/fiducials failed: {e}");
                    }
                }
                result
            });
            let response = match outcome {
                Ok(Ok((gated, dir, gate_targets))) => {
                    let t = msg::transform_stamped(&gated.t_robot_ct());
                    if let Err(e) = transform.publish(&t) {
                        tracing::error!("publishing /registration/transform failed: {e}");
                    }
                    publish(&diagnostics, status_accepted(&gated, &dir, &gate_targets));
                    let text = format!("{} ({})", summary(&gated), dir.display());
                    Trigger::Response {
                        success: true,
                        message: text,
                    }
                }
                Ok(Err(error)) => {
                    publish(&diagnostics, status_failed(&error));
                    Trigger::Response {
                        success: false,
                        message: format!("{error}{named}"),
                    }
                }
                Err(join) => Trigger::Response {
                    success: false,
                    message: format!("registration task failed: {join}"),
                },
            };
            if let Err(e) = request.respond(response) {
                tracing::warn!("answering /registration/register failed: {e}");
            }
        }
    });
    Ok(RunningNode::new(spinner, vec![series_task, target_task, service_task]))
}

/// The topic of the detections (see the module documentation).
pub const FIDUCIALS_TOPIC: &str = "/registration/fiducials";

/// Sphere centres (CT, metres) as a PoseArray in frame `ct`, identity orientations.
fn pose_array(centres: &[Point<Ct>]) -> PoseArray {
    PoseArray {
        header: msg::header(<Ct as acus_control::frames::Frame>::NAME),
        poses: centres
            .iter()
            .map(|p| Pose {
                position: msg::point(p),
                orientation: Quaternion {
                    w: 1.0,
                    ..Quaternion::default()
                },
            })
            .collect(),
    }
}

/// The sphere centres of a PoseArray from [`FIDUCIALS_TOPIC`], or why it cannot be one (another frame).
pub fn centres(m: &PoseArray) -> Result<Vec<Point<Ct>>, String> {
    if m.header.frame_id != <Ct as acus_control::frames::Frame>::NAME {
        return Err(format!(
            "{FIDUCIALS_TOPIC} in frame '{}': expected 'ct'",
            m.header.frame_id
        ));
    }
    Ok(m.poses
        .iter()
        .map(|p| Point::xyz(p.position.x, p.position.y, p.position.z))
        .collect())
}

/// One line for the operator.
pub fn summary(gated: &GatedRegistration) -> String {
    let r = gated.registration();
    format!(
        "registered {} fiducials: FRE {:.3} mm RMS, predicted TRE {:.3} mm at the target",
        r.fits().len(),
        r.fre_rms() * 1e3,
        gated.worst_predicted_tre() * 1e3
    )
}

fn publish(diagnostics: &r2r::Publisher<DiagnosticArray>, status: DiagnosticStatus) {
    let array = DiagnosticArray {
        header: msg::header(""),
        status: vec![status],
    };
    if let Err(e) = diagnostics.publish(&array) {
        tracing::warn!("publishing /diagnostics failed: {e}");
    }
}

/// Diagnostics key: the first target checked, mapped into the robot base by the accepted registration, mm.
pub const TARGET_IN_ROBOT_KEY: &str = "target in robot base [mm]";

fn kv(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value,
    }
}

fn figures(r: &Registration) -> Vec<KeyValue> {
    let mut values = vec![
        kv("fiducials matched", r.fits().len().to_string()),
        kv("fiducials missing", format!("{:?}", r.missing())),
        kv("FRE RMS [mm]", format!("{:.4}", r.fre_rms() * 1e3)),
    ];
    values.extend(r.fits().iter().map(|f| {
        kv(
            &format!("residual {} [mm]", f.model_index),
            format!("{:.4}", f.residual * 1e3),
        )
    }));
    values
}

fn status_accepted(gated: &GatedRegistration, dir: &Path, targets: &[Point<Ct>]) -> DiagnosticStatus {
    let mut values = figures(gated.registration());
    values.push(kv(
        "predicted TRE [mm]",
        format!("{:.4}", gated.worst_predicted_tre() * 1e3),
    ));
    values.push(kv("FLE [mm]", format!("{:.4}", gated.fle() * 1e3)));
    values.push(kv("targets checked", targets.len().to_string()));
    if let Some(target) = targets.first() {
        // Where this registration puts the (first) target in the robot: a study compares it with the truth.
        let p = gated.t_robot_ct().apply(target).coords.coords * 1e3;
        values.push(kv(TARGET_IN_ROBOT_KEY, format!("{:.4} {:.4} {:.4}", p.x, p.y, p.z)));
    }
    values.push(kv("series", dir.display().to_string()));
    DiagnosticStatus {
        level: DiagnosticStatus::OK as u8,
        name: "acus: registration".into(),
        message: summary(gated),
        hardware_id: "ct".into(),
        values,
    }
}

fn status_failed(error: &RegisterError) -> DiagnosticStatus {
    let values = match error {
        RegisterError::Refused { registration, .. } => figures(registration),
        _ => Vec::new(),
    };
    DiagnosticStatus {
        level: DiagnosticStatus::ERROR as u8,
        name: "acus: registration".into(),
        message: error.to_string(),
        hardware_id: "ct".into(),
        values,
    }
}
