//! The virtual CT scanner as a scan source: on request it images the twin's patient (the needle where the robot's joints
//! put it), writes a DICOM series and announces it on `/scan/series`, as a scanner's export would.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use acus_nodes::motion::MotionStatus;
use acus_nodes::procedure::{ScanPurpose, ScanSource};
use acus_nodes::Spinner;
use acus_sim_scanner::{write_series, SeriesInfo};
use acus_sim_twin::patient::{Imaging, Patient};
use acus_sim_twin::respiration::Respiration;
use acus_sim_twin::withdrawal::Shallowest;
use acus_sim_twin::world::ScannerModel;
use anyhow::Result;
use futures::future::BoxFuture;
use r2r::std_msgs::msg::String as StringMsg;
use r2r::QosProfile;
use tokio::sync::watch;

use crate::config::ScanFile;

/// A scan as the simulation log keeps it.
#[derive(Clone, Debug)]
pub struct ScanRecord {
    /// Planning or check.
    pub purpose: ScanPurpose,
    /// Series folder.
    pub dir: PathBuf,
    /// True needle tip at the time, CT (none before the needle is in).
    pub true_tip: Option<acus_control::frames::Point<acus_control::frames::Ct>>,
    /// True direction of the needle at its tip (unit, hub → tip), CT (none before the needle is in): the axis an
    /// accuracy study measures the normal distance and the angle error against.
    pub true_heading: Option<nalgebra::Vector3<f64>>,
    /// True lesion centre at the time (breathing included), CT.
    pub true_lesion: acus_control::frames::Point<acus_control::frames::Ct>,
    /// The organ's breathing displacement at the time, CT, m.
    pub organ_offset: nalgebra::Vector3<f64>,
    /// Simulated time of the scan (drive clock), s.
    pub t: f64,
}

/// The virtual scanner node.
pub struct SimScanner {
    patient: Arc<Mutex<Patient>>,
    joints: watch::Receiver<MotionStatus>,
    out: PathBuf,
    planning: ScanFile,
    check: ScanFile,
    world: ScannerModel,
    seed: u64,
    count: AtomicUsize,
    /// Scanner time spent (ms), for the simulated clock.
    pub scanner_ms: Arc<AtomicU64>,
    /// Every scan taken.
    pub records: Arc<Mutex<Vec<ScanRecord>>>,
    announce: Arc<Mutex<r2r::Publisher<StringMsg>>>,
    /// One study and one frame of reference for every scan of this patient on this table, as a scanner keeps them.
    study: SeriesInfo,
    breathing: Option<(Arc<Mutex<Respiration>>, f64)>,
    /// The shallowest robot pose since the twin last looked (a redirect's withdrawal).
    shallowest: Option<Arc<Shallowest>>,
    _spinner: Mutex<Spinner>,
}

impl SimScanner {
    /// A scanner writing series under `out`, reading the robot's pose from `joints`.
    pub fn start(
        ctx: &r2r::Context,
        patient: Arc<Mutex<Patient>>,
        joints: watch::Receiver<MotionStatus>,
        out: PathBuf,
        (planning, check): (ScanFile, ScanFile),
        world: ScannerModel,
        seed: u64,
    ) -> Result<Self> {
        let mut node = r2r::Node::create(ctx.clone(), "ct_scanner", "")?;
        let announce =
            node.create_publisher::<StringMsg>("/scan/series", QosProfile::default().transient_local().keep_last(1))?;
        let spinner = Spinner::keep(node);
        Ok(Self {
            patient,
            joints,
            out,
            planning,
            check,
            world,
            seed,
            count: AtomicUsize::new(0),
            scanner_ms: Arc::new(AtomicU64::new(0)),
            records: Arc::new(Mutex::new(Vec::new())),
            announce: Arc::new(Mutex::new(announce)),
            study: SeriesInfo::new("acus study", seed),
            breathing: None,
            shallowest: None,
            _spinner: Mutex::new(spinner),
        })
    }

    /// The patient breathes: each scan images the organ where `respiration` has it at the scan's time on the drive
    /// clock (cycles × `period` s).
    pub fn with_breathing(mut self, respiration: Arc<Mutex<Respiration>>, period: f64) -> Self {
        self.breathing = Some((respiration, period));
        self
    }

    /// The needle may be withdrawn and inserted again between two scans: the twin passes through the shallowest pose.
    pub fn with_withdrawals(mut self, shallowest: Arc<Shallowest>) -> Self {
        self.shallowest = Some(shallowest);
        self
    }
}

impl ScanSource for SimScanner {
    fn acquire(&self, purpose: ScanPurpose) -> BoxFuture<'static, Result<PathBuf, String>> {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let (name, protocol_file) = match purpose {
            ScanPurpose::Planning => (format!("{n:02}-planning"), self.planning),
            ScanPurpose::Check { step } => (format!("{n:02}-check-step{}", step + 1), self.check),
        };
        let dir = self.out.join(&name);
        let (q, cycle) = {
            let status = self.joints.borrow();
            (status.actual, status.cycle)
        };
        let breathing = self.breathing.clone();
        let shallowest = self.shallowest.clone();
        let series = SeriesInfo {
            series_number: u32::try_from(n).unwrap_or(u32::MAX),
            ..SeriesInfo::new(&name, seed_for(self.seed, n))
        };
        let series = SeriesInfo {
            study_uid: self.study.study_uid.clone(),
            frame_of_reference_uid: self.study.frame_of_reference_uid.clone(),
            ..series
        };
        let patient = Arc::clone(&self.patient);
        let records = Arc::clone(&self.records);
        let seed = seed_for(self.seed, n);
        let imaging = Imaging::for_scan(&self.world, self.seed, n as u64);
        let scanner_ms = Arc::clone(&self.scanner_ms);
        let announce = Arc::clone(&self.announce);
        Box::pin(async move {
            let written = tokio::task::spawn_blocking(move || -> Result<(PathBuf, ScanRecord), String> {
                let mut patient = patient.lock().map_err(|_| "patient state poisoned".to_owned())?;
                let mut t = 0.0;
                let low = shallowest.as_ref().and_then(|s| s.take());
                let organ = match &breathing {
                    Some((respiration, period)) => {
                        t = cycle as f64 * period;
                        respiration
                            .lock()
                            .map_err(|_| "breathing state poisoned".to_owned())?
                            .displacement(t)
                    }
                    None => patient.organ_offset(),
                };
                patient
                    .sync_through(low.as_ref(), &q, organ)
                    .map_err(|e| e.to_string())?;
                let f = protocol_file;
                let protocol = match purpose {
                    ScanPurpose::Planning => patient.planning_protocol(f.pixel, f.slice, &imaging, seed),
                    ScanPurpose::Check { .. } => patient.check_protocol(f.pixel, f.slice, &imaging, seed),
                };
                let t0 = std::time::Instant::now();
                let volume = patient.scan(&protocol).map_err(|e| e.to_string())?;
                let t1 = std::time::Instant::now();
                std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
                write_series(&volume, &dir, &series).map_err(|e| e.to_string())?;
                tracing::info!(
                    render_s = (t1 - t0).as_secs_f64(),
                    write_s = t1.elapsed().as_secs_f64(),
                    voxels = protocol.columns * protocol.rows * protocol.slices,
                    "scan {name}"
                );
                let mm = |v: nalgebra::Vector3<f64>| format!("[{:.2}, {:.2}, {:.2}]", v.x * 1e3, v.y * 1e3, v.z * 1e3);
                tracing::debug!(
                    true_tip_mm = patient.tip().map(|p| mm(p.coords.coords)),
                    true_heading = patient
                        .needle()
                        .map(|n| format!("{:.4?}", n.heading().into_inner().as_slice())),
                    true_lesion_mm = mm(patient.lesion().coords.coords),
                    organ_mm = mm(patient.organ_offset()),
                    depth_mm = patient.needle().map(|n| n.depth() * 1e3),
                    "truth at scan {name}"
                );
                let record = ScanRecord {
                    purpose,
                    dir: dir.clone(),
                    true_tip: patient.tip(),
                    true_heading: patient.needle().map(|n| n.heading().into_inner()),
                    true_lesion: patient.lesion(),
                    organ_offset: patient.organ_offset(),
                    t,
                };
                Ok((dir, record))
            })
            .await
            .map_err(|e| format!("scanner task failed: {e}"))??;
            let (dir, record) = written;
            scanner_ms.fetch_add((protocol_file.seconds * 1e3) as u64, Ordering::Relaxed);
            if let Ok(mut r) = records.lock() {
                r.push(record);
            }
            announce
                .lock()
                .map_err(|_| "scanner publisher poisoned".to_owned())?
                .publish(&StringMsg {
                    data: dir.display().to_string(),
                })
                .map_err(|e| format!("announcing the series: {e}"))?;
            Ok(dir)
        })
    }
}

/// The seed of scan `n`'s draws (noise, UIDs).
fn seed_for(seed: u64, n: usize) -> u64 {
    seed.wrapping_mul(1000).wrapping_add(n as u64)
}
