//! The simulated patient's breathing (the twin's side): a respiratory belt on `/respiration` (sensor_msgs/FluidPressure,
//! stamped with the simulated time) at the belt's rate, the patient hearing `/patient/breath_hold`, and the needle in the
//! breathing organ kept up with the robot's joints as time passes (the needle cuts its path where the organ is while
//! it advances). Simulated time is the drive clock (cycles × period), as for the scanner: the belt, the instructions, the
//! needle and the scans share one clock.

use std::sync::{Arc, Mutex};

use acus_nodes::motion::MotionStatus;
use acus_nodes::wire::{BREATH_HOLD_TOPIC, RESPIRATION_TOPIC};
use acus_nodes::{RunningNode, Spinner};
use acus_sim_twin::patient::Patient;
use acus_sim_twin::respiration::Respiration;
use acus_sim_twin::withdrawal::Shallowest;
use anyhow::{anyhow, Result};
use futures::StreamExt;
use r2r::builtin_interfaces::msg::Time;
use r2r::sensor_msgs::msg::FluidPressure;
use r2r::std_msgs::msg::{Bool, Header};
use r2r::QosProfile;
use tokio::sync::watch;

/// Start the patient's breathing node: it publishes the belt sample of every belt period of simulated time that passes
/// (on a simulated clock faster than real time, only the latest one when several periods pass between two wake-ups, as
/// a belt read by a slower host would be), and applies each instruction at the simulated time it is heard. With
/// `patient`, the needle follows the robot and the organ between scans (a breathing patient; a still one is synced at
/// its scans alone, which keeps its runs independent of the host's timing).
pub fn start(
    ctx: &r2r::Context,
    respiration: Arc<Mutex<Respiration>>,
    patient: Option<(Arc<Mutex<Patient>>, Arc<Shallowest>)>,
    status: watch::Receiver<MotionStatus>,
    period: f64,
) -> Result<RunningNode> {
    let mut node = r2r::Node::create(ctx.clone(), "sim_patient", "").map_err(|e| anyhow!("sim_patient node: {e}"))?;
    let belt = node
        .create_publisher::<FluidPressure>(RESPIRATION_TOPIC, QosProfile::default())
        .map_err(|e| anyhow!("{RESPIRATION_TOPIC}: {e}"))?;
    let mut instructions = node
        .subscribe::<Bool>(BREATH_HOLD_TOPIC, QosProfile::default())
        .map_err(|e| anyhow!("subscribe {BREATH_HOLD_TOPIC}: {e}"))?;
    let spinner = Spinner::start(node).map_err(|e| anyhow!("sim_patient spinner: {e}"))?;

    let sample_period = respiration
        .lock()
        .map_err(|_| anyhow!("breathing poisoned"))?
        .sample_period();
    let mut clock = status.clone();
    let belt_respiration = Arc::clone(&respiration);
    let publish = tokio::spawn(async move {
        let mut last = None;
        while clock.changed().await.is_ok() {
            let t = clock.borrow_and_update().cycle as f64 * period;
            let k = (t / sample_period).floor() as i64;
            if last.is_some_and(|l| l >= k) {
                continue;
            }
            last = Some(k);
            // A simulated clock running flat out would publish thousands of samples a second of wall time: at most one
            // per WALL_PACE, so that DDS and the consoles' heartbeats keep their share of two cores.
            tokio::time::sleep(WALL_PACE).await;
            let ts = k as f64 * sample_period;
            let Ok(value) = belt_respiration.lock().map(|r| r.signal(ts)) else {
                return;
            };
            let message = FluidPressure {
                header: Header {
                    stamp: stamp(ts),
                    frame_id: "belt".into(),
                },
                fluid_pressure: value,
                variance: 0.0,
            };
            if let Err(e) = belt.publish(&message) {
                tracing::warn!("publishing {RESPIRATION_TOPIC}: {e}");
            }
        }
    });
    let mut tasks = Vec::new();
    if let Some((patient, shallowest)) = patient {
        tasks.push(tokio::spawn(follow_needle(
            Arc::clone(&respiration),
            (patient, shallowest),
            status.clone(),
            period,
        )));
    }
    let hear = tokio::spawn(async move {
        while let Some(m) = instructions.next().await {
            let t = status.borrow().cycle as f64 * period;
            match respiration.lock() {
                Ok(mut r) => r.instruct(m.data, t),
                Err(_) => return,
            }
        }
    });
    tasks.extend([publish, hear]);
    Ok(RunningNode::new(spinner, tasks))
}

/// How often (drive-clock time) the needle is brought up with the robot and the organ: 0.1 mm of insertion at the
/// procedure's speed, and a fiftieth of a breath.
const NEEDLE_SYNC: f64 = 0.02;

/// The least wall time between two belt samples or two needle syncs (the simulated clock may run 100× real time).
const WALL_PACE: std::time::Duration = std::time::Duration::from_millis(2);

/// Keep the needle in the breathing organ up with the robot's joints. A scan in progress holds the patient (it syncs
/// it itself); this skips a turn rather than wait.
async fn follow_needle(
    respiration: Arc<Mutex<Respiration>>,
    (patient, shallowest): (Arc<Mutex<Patient>>, Arc<Shallowest>),
    mut status: watch::Receiver<MotionStatus>,
    period: f64,
) {
    let mut last = f64::NEG_INFINITY;
    let mut warned = false;
    while status.changed().await.is_ok() {
        let (q, t) = {
            let s = status.borrow_and_update();
            (s.actual, s.cycle as f64 * period)
        };
        if t - last < NEEDLE_SYNC {
            continue;
        }
        let Ok(d) = respiration.lock().map(|r| r.displacement(t)) else {
            return;
        };
        let synced = match patient.try_lock() {
            Ok(mut patient) => Some(patient.sync_through(shallowest.take().as_ref(), &q, d)),
            Err(_) => None,
        };
        match synced {
            None => continue,
            Some(Ok(())) => last = t,
            Some(Err(e)) => {
                last = t;
                if !warned {
                    tracing::warn!("the twin's needle cannot follow the robot: {e}");
                    warned = true;
                }
            }
        }
        tokio::time::sleep(WALL_PACE).await;
    }
}

fn stamp(t: f64) -> Time {
    let t = t.max(0.0);
    Time {
        sec: t.floor() as i32,
        nanosec: ((t - t.floor()) * 1e9) as u32,
    }
}
