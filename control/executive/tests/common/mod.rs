//! The executive's test bench without ROS: emulated drives on real EtherCAT frames in process (simulated clock), one
//! console's e-stop and deadman as cycle sources, a twin patient scanned by the virtual scanner into DICOM series on
//! disk (one study and frame of reference, as a scanner keeps them), and the procedure's settings.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acus_control::kinematics::PositionerModel;
use acus_control::planning::{Planner, PlanningParams};
use acus_control::procedure::ProcedureConfig;
use acus_control::registration::{register_volume, DetectionWorkspace, FiducialModel, QualityGate, RegistrationParams};
use acus_ethercat::config::DrivesConfig;
use acus_ethercat::ethercrab_bus::BusTiming;
use acus_ethercat::runner::{Controller, Pacing};
use acus_ethercat::safety::{SafetyInput, SourceKind};
use acus_executive::{Motion, MotionStatus, NeedleSpec, ProcedureSettings, ScanPurpose, ScanSource};
use acus_sim_scanner::{write_series, SeriesInfo};
use acus_sim_twin::patient::{Imaging, Patient, PatientConfig};
use acus_sim_twin::withdrawal::Shallowest;
use futures::future::BoxFuture;
use tokio::sync::watch;

pub const URDF: &str = include_str!("../../../../urdf/positioner.urdf");

/// The virtual scanner as a scan source: syncs the twin with the measured joints, images it, writes the series.
pub struct Scanner {
    pub patient: Arc<Mutex<Patient>>,
    joints: watch::Receiver<MotionStatus>,
    out: PathBuf,
    count: std::sync::atomic::AtomicUsize,
    /// One study and frame of reference for every scan, as a scanner keeps them for a patient on its table.
    study: SeriesInfo,
    /// Write check scans in a new study and frame of reference (the patient was moved and the scanner started over).
    pub check_in_another_frame: std::sync::atomic::AtomicBool,
    /// The shallowest pose the drives reported since the last scan (a redirect's withdrawal), as the sim's watch keeps it.
    pub shallowest: Arc<Shallowest>,
    /// Refuse the next check scan (a scanner that reports an error), once.
    pub fail_next_check: std::sync::atomic::AtomicBool,
}

impl ScanSource for Scanner {
    fn acquire(&self, purpose: ScanPurpose) -> BoxFuture<'static, Result<PathBuf, String>> {
        if matches!(purpose, ScanPurpose::Check { .. })
            && self.fail_next_check.swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return Box::pin(async { Err("scanner: tube arcing, acquisition aborted".to_owned()) });
        }
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let dir = self.out.join(format!("{n:02}"));
        let q = self.joints.borrow().actual;
        let patient = Arc::clone(&self.patient);
        let shallowest = Arc::clone(&self.shallowest);
        let fresh = SeriesInfo::new("test", n as u64);
        let another = matches!(purpose, ScanPurpose::Check { .. })
            && self.check_in_another_frame.load(std::sync::atomic::Ordering::Relaxed);
        let series = if another {
            fresh
        } else {
            SeriesInfo {
                study_uid: self.study.study_uid.clone(),
                frame_of_reference_uid: self.study.frame_of_reference_uid.clone(),
                ..fresh
            }
        };
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut patient = patient.lock().map_err(|_| "poisoned".to_owned())?;
                let organ = patient.organ_offset();
                patient
                    .sync_through(shallowest.take().as_ref(), &q, organ)
                    .map_err(|e| e.to_string())?;
                let imaging = Imaging::noise_only(10.0);
                let protocol = match purpose {
                    ScanPurpose::Planning => patient.planning_protocol(0.8e-3, 1e-3, &imaging, n as u64),
                    ScanPurpose::Check { .. } => patient.check_protocol(0.8e-3, 1e-3, &imaging, n as u64),
                };
                let volume = patient.scan(&protocol).map_err(|e| e.to_string())?;
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                write_series(&volume, &dir, &series).map_err(|e| e.to_string())?;
                Ok(dir)
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

/// Everything a test drives.
pub struct Bench {
    pub motion: Motion,
    pub estop: SafetyInput,
    pub deadman: SafetyInput,
    pub patient: Arc<Mutex<Patient>>,
    pub scanner: Arc<Scanner>,
    pub settings: ProcedureSettings,
    pub fiducials: FiducialModel,
    pub out: tempfile::TempDir,
    /// The emulated drives' link thread: the drives answer frames while it lives.
    pub link: acus_sim_ecat::inproc::InProcessLink,
}

/// Drives at zero, one console heard (e-stop released, deadman held), an ideal patient, settings without gating.
pub fn bench() -> Bench {
    let drives = DrivesConfig::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../launch/config/positioner_drives.yaml"
    )))
    .unwrap();
    let start = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let timing = BusTiming::simulated(Duration::from_secs_f64(drives.cycle_time_s));
    let twin = acus_sim_twin::drives::in_process(&drives, &start, timing).unwrap();
    let period = Duration::from_secs_f64(drives.cycle_time_s);
    let link = twin.link;
    let mut controller = Controller::spawn_paced(twin.bus, &drives.axes, period, Pacing::Simulated).unwrap();
    // One console, refreshed by the test as a console adapter would; the deadline is long on the simulated clock.
    let mut estop = controller
        .register_source(SourceKind::EmergencyStop, "/estop/test", 2_000_000)
        .unwrap();
    let mut deadman = controller
        .register_source(SourceKind::Enable, "/deadman/test", 2_000_000)
        .unwrap();
    // Heard before the supervisor starts (a source never heard counts as pressed / released).
    estop.refresh(false);
    deadman.refresh(true);
    let motion = Motion::start(controller, period).unwrap();

    let config = PatientConfig::reference();
    let target = config.lesion;
    let patient = Arc::new(Mutex::new(Patient::ideal(config, URDF).unwrap()));
    let out = tempfile::tempdir().unwrap();
    let scanner = Arc::new(Scanner {
        patient: Arc::clone(&patient),
        joints: motion.status(),
        out: out.path().to_path_buf(),
        count: Default::default(),
        study: SeriesInfo::new("study", 1),
        check_in_another_frame: Default::default(),
        shallowest: Arc::default(),
        fail_next_check: Default::default(),
    });
    let model = PositionerModel::from_urdf_str(URDF).unwrap();
    let entry = patient.lock().unwrap().config().skin_above(&target);
    let fiducials = FiducialModel::from_urdf_str(URDF).unwrap();
    let settings = ProcedureSettings {
        fiducials: fiducials.clone(),
        planner: Planner::new(model, PlanningParams::default()).unwrap(),
        machine: ProcedureConfig::default(),
        gate: QualityGate::default(),
        entry: Some(entry),
        target: Some(target),
        align_speed: 1.0,
        insertion_speed: 0.5,
        curvature_prior: 0.5,
        axis_prior: acus_control::needle::AxisPrior {
            tilt: 0.013,
            offset: 0.75e-3,
        },
        done_within: 0.2e-3,
        min_correction_depth: 0.01,
        redirect_depth: 0.015,
        gating: None,
        correct: true,
        lesion: None,
        needle: NeedleSpec {
            radius: 0.635e-3,
            hu: 3000.0,
        },
    };
    Bench {
        motion,
        estop,
        deadman,
        patient,
        scanner,
        settings,
        fiducials,
        out,
        link,
    }
}

/// The fiducial centres the registration node would publish for the planning series in `dir`.
pub fn detections(
    dir: &std::path::Path,
    fiducials: &FiducialModel,
) -> Vec<acus_control::frames::Point<acus_control::frames::Ct>> {
    let (volume, _) = acus_dicom::read_ct_series(dir).unwrap();
    let (_, detections) = register_volume(
        &volume,
        fiducials,
        &RegistrationParams::for_model(fiducials),
        &mut DetectionWorkspace::default(),
    )
    .unwrap();
    detections.iter().map(|d| d.center).collect()
}

/// A console adapter: refreshes the e-stop (released) and the deadman (held) every 2 ms until aborted.
pub fn console(mut estop: SafetyInput, mut deadman: SafetyInput) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            estop.refresh(false);
            deadman.refresh(true);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// Planning scan, power, plan (registered from the scan's fiducials, as the registration node would), align: the
/// procedure ready for its first insertion step.
pub async fn ready_to_insert(exec: &acus_executive::Executive, out: &std::path::Path, fiducials: &FiducialModel) {
    use acus_executive::Op;
    let scan = exec.request(Op::Scan).await;
    assert!(scan.ok, "{}", scan.text);
    let centres = detections(&out.join("01"), fiducials);
    assert!(exec.request(Op::Power(true)).await.ok);
    let (planned, ()) = tokio::join!(exec.request(Op::Plan), exec.detections(centres));
    assert!(planned.ok, "{}", planned.text);
    let aligned = exec.request(Op::Align).await;
    assert!(aligned.ok, "{}", aligned.text);
}

/// Feed the drives' status into `seen` every millisecond of wall time, as the sim's watch does (needs a Tokio runtime).
pub fn watch_withdrawals(seen: Arc<Shallowest>, motion: &Motion) -> tokio::task::JoinHandle<()> {
    let status = motion.status();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        while status.has_changed().is_ok() {
            tick.tick().await;
            seen.observe(status.borrow().actual);
        }
    })
}
