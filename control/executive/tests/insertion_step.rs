//! The procedure without ROS: the executive on emulated drives (real EtherCAT frames in process), a twin patient scanned
//! by the virtual scanner into DICOM series on disk, and the registration computed from the planning scan as the
//! registration node would. One insertion step with its check scan, then a console's e-stop pressed mid-step stops it, and the stop is reported typed.

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
use acus_ethercat::safety::SourceKind;
use acus_executive::{Executive, MotionStatus, NeedleSpec, Op, ProcedureSettings, Report, ScanPurpose, ScanSource};
use acus_sim_scanner::{write_series, SeriesInfo};
use acus_sim_twin::patient::{Imaging, Patient, PatientConfig};
use futures::future::BoxFuture;
use tokio::sync::watch;

const URDF: &str = include_str!("../../../urdf/positioner.urdf");

/// The virtual scanner as a scan source: syncs the twin with the measured joints, images it, writes the series.
struct Scanner {
    patient: Arc<Mutex<Patient>>,
    joints: watch::Receiver<MotionStatus>,
    out: PathBuf,
    count: std::sync::atomic::AtomicUsize,
}

impl ScanSource for Scanner {
    fn acquire(&self, purpose: ScanPurpose) -> BoxFuture<'static, Result<PathBuf, String>> {
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let dir = self.out.join(format!("{n:02}"));
        let q = self.joints.borrow().actual;
        let patient = Arc::clone(&self.patient);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut patient = patient.lock().map_err(|_| "poisoned".to_owned())?;
                patient.sync(&q).map_err(|e| e.to_string())?;
                let imaging = Imaging::noise_only(10.0);
                let protocol = match purpose {
                    ScanPurpose::Planning => patient.planning_protocol(0.8e-3, 1e-3, &imaging, n as u64),
                    ScanPurpose::Check { .. } => patient.check_protocol(0.8e-3, 1e-3, &imaging, n as u64),
                };
                let volume = patient.scan(&protocol).map_err(|e| e.to_string())?;
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                write_series(&volume, &dir, &SeriesInfo::new("test", n as u64)).map_err(|e| e.to_string())?;
                Ok(dir)
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

#[test]
fn an_insertion_step_runs_without_ros_and_a_consoles_estop_stops_the_next() {
    let drives = DrivesConfig::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../launch/config/positioner_drives.yaml"
    )))
    .unwrap();
    let start = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let timing = BusTiming::simulated(Duration::from_secs_f64(drives.cycle_time_s));
    let twin = acus_sim_twin::drives::in_process(&drives, &start, timing).unwrap();
    let period = Duration::from_secs_f64(drives.cycle_time_s);
    let mut controller = Controller::spawn_paced(twin.bus, &drives.axes, period, Pacing::Simulated).unwrap();
    // One console, refreshed by this test as a console adapter would; the deadline is long on the simulated clock.
    let mut estop = controller
        .register_source(SourceKind::EmergencyStop, "/estop/test", 2_000_000)
        .unwrap();
    let mut deadman = controller
        .register_source(SourceKind::Enable, "/deadman/test", 2_000_000)
        .unwrap();
    // Heard before the supervisor starts (a source never heard counts as pressed / released).
    estop.refresh(false);
    deadman.refresh(true);
    let motion = acus_executive::Motion::start(controller, period).unwrap();

    let config = PatientConfig::reference();
    let target = config.lesion;
    let patient = Arc::new(Mutex::new(Patient::ideal(config, URDF).unwrap()));
    let out = tempfile::tempdir().unwrap();
    let scanner = Arc::new(Scanner {
        patient: Arc::clone(&patient),
        joints: motion.status(),
        out: out.path().to_path_buf(),
        count: Default::default(),
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
        lesion: None,
        needle: NeedleSpec {
            radius: 0.635e-3,
            hu: 3000.0,
        },
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pressed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let button = Arc::clone(&pressed);
        let console = tokio::spawn(async move {
            loop {
                estop.refresh(button.load(std::sync::atomic::Ordering::Relaxed));
                deadman.refresh(true);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let mut running = Executive::start(settings, motion.clone(), scanner);
        let exec = running.executive.clone();
        let ask = async |op: Op| {
            let a = exec.request(op).await;
            println!("{op}: {} {}", a.ok, a.text);
            a
        };
        assert!(ask(Op::Scan).await.ok);
        let series = out.path().join("01");
        let (volume, _) = acus_dicom::read_ct_series(&series).unwrap();
        let (_, detections) = register_volume(
            &volume,
            &fiducials,
            &RegistrationParams::for_model(&fiducials),
            &mut DetectionWorkspace::default(),
        )
        .unwrap();
        let centres = detections.iter().map(|d| d.center).collect();
        assert!(ask(Op::Power(true)).await.ok);
        // No registration comes: the plan waits a bounded time, then is refused, saying why.
        let unregistered = ask(Op::Plan).await;
        assert!(!unregistered.ok && unregistered.text.contains("no registration within"), "{}", unregistered.text);
        // The plan request goes first and waits for the registration, as over ROS, where the registration node's
        // detections may arrive after its caller has moved on: the procedure fits and gates them itself.
        let (planned, ()) = tokio::join!(ask(Op::Plan), async {
            tokio::task::yield_now().await;
            exec.detections(centres).await
        });
        assert!(planned.ok, "{}", planned.text);
        assert!(ask(Op::Align).await.ok);
        let step = ask(Op::InsertStep).await;
        assert!(step.ok && step.text.contains("check scan 1"), "{}", step.text);

        // The check scan's tip, reported typed, lies where the twin's needle is (ideal world: within 0.3 mm).
        let mut check = None;
        while let Ok(report) = running.reports.try_recv() {
            if let Report::CheckScan { result, .. } = report {
                check = Some(result);
            }
        }
        let check = check.expect("a check-scan report");
        let true_tip = patient.lock().unwrap().tip().unwrap();
        let seen_error = check.tip_ct.distance(&true_tip);
        assert!(
            seen_error < 0.3e-3,
            "tip found {:.3} mm from the twin's",
            seen_error * 1e3
        );

        // The console's e-stop is pressed during the next step: the cycle stops it, the machine hears the e-stop.
        let next = tokio::spawn({
            let exec = exec.clone();
            async move { exec.request(Op::InsertStep).await }
        });
        let mut status = motion.status();
        let at = status.borrow().actual.insertion();
        status.wait_for(|s| s.actual.insertion() > at + 1e-3).await.unwrap();
        pressed.store(true, std::sync::atomic::Ordering::Relaxed);
        let answer = next.await.unwrap();
        assert!(!answer.ok && answer.text.contains("e-stop"), "{}", answer.text);
        let stopped = *status.wait_for(|s| s.fault.is_some()).await.unwrap();
        assert!(
            matches!(
                stopped.fault,
                Some(acus_ethercat::cycle::Fault::EmergencyStop {
                    source: acus_ethercat::safety::StopSource::Input {
                        index: 0,
                        silent: false
                    }
                })
            ),
            "{:?}",
            stopped.fault
        );
        console.abort();
    });
}
