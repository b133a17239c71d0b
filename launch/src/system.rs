//! Composition of the simulated system: emulated EtherCAT drives and the master's 1 kHz cycle, the motion supervisor,
//! the virtual scanner, and the ROS 2 nodes (robot_state, registration, procedure) — the same nodes and drivers that run
//! the real robot.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acus_control::kinematics::{JointPositions, PositionerModel};
use acus_control::planning::{Planner, PlanningParams};
use acus_control::procedure::ProcedureConfig;
use acus_control::registration::{FiducialModel, GatedRegistration, RegistrationError};
use acus_ethercat::config::DrivesConfig;
use acus_ethercat::ethercrab_bus::{pdu_storage, spawn_nic_task, BusTiming, EthercrabBus};
use acus_ethercat::runner::{Controller, Pacing};
use acus_nodes::motion::Motion;
use acus_nodes::procedure::{self, ProcedureSettings};
use acus_nodes::registration::{self, RegistrationConfig};
use acus_nodes::robot_description::{self, RobotStateConfig};
use acus_nodes::RunningNode;
use acus_sim_twin::patient::Patient;
use anyhow::{anyhow, Context, Result};
use tokio::sync::watch;

use crate::config::SimConfig;
use crate::scanner::SimScanner;

/// The running simulation. Dropping it stops the nodes, the cycle and the emulated drives.
pub struct SimSystem {
    /// The ROS context the nodes run in.
    pub ctx: r2r::Context,
    /// The motion supervisor (drive clock: `status().cycle`).
    pub motion: Motion,
    /// Cycle period, s.
    pub period: f64,
    /// The patient (ground truth).
    pub patient: Arc<Mutex<Patient>>,
    /// The scanner (its clock and records).
    pub scanner: Arc<SimScanner>,
    /// The latest registration outcome.
    pub registration: watch::Receiver<Option<Result<GatedRegistration, RegistrationError>>>,
    nodes: Vec<RunningNode>,
    _link: Link,
}

/// What carries the frames; held only to keep it alive (dropping it stops the frames).
#[allow(dead_code)]
enum Link {
    InProcess(acus_sim_ecat::inproc::InProcessLink),
    Nic(std::thread::JoinHandle<()>),
}

/// Where the EtherCAT drives are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drives {
    /// Emulated in this process, wired to the master through ethercrab's PduTx/PduRx (no root, no NIC).
    InProcess,
    /// On the network interface named: real drives, or the emulator in another process (`acus-ecat-emulator`, e.g.
    /// across a veth pair) started with the parameters of `acus emulator-params`.
    Nic(String),
}

/// Start everything; must be called inside a tokio runtime (nodes spawn their tasks). `out` receives the scans.
pub fn start(config: &SimConfig, out: &Path, pacing: Pacing, drives_at: &Drives) -> Result<SimSystem> {
    let model = PositionerModel::from_urdf_str(&config.urdf).context("robot URDF")?;
    let fiducials = FiducialModel::from_urdf_str(&config.urdf).context("fiducial frame in the URDF")?;
    let drives = DrivesConfig::load(&config.drives_path).context("drive configuration")?;
    let period = Duration::from_secs_f64(drives.cycle_time_s);

    // The drives: emulated, answering real EtherCAT frames in process; the master brings them up by SDO and DC.
    let timing = BusTiming {
        dc_static_sync_iterations: 200,
        pdu_timeout: Duration::from_millis(50),
        cycle: period,
    };
    let (bus, link) = match drives_at {
        Drives::InProcess => {
            let twin = acus_sim_twin::drives::in_process(&drives, &config.file.start_pose, timing)
                .context("EtherCAT bring-up (in-process drives)")?;
            (twin.bus, Link::InProcess(twin.link))
        }
        Drives::Nic(iface) => {
            let (tx, rx, pdu_loop) = pdu_storage().context("EtherCAT frame storage")?;
            let task = spawn_nic_task(iface, tx, rx).with_context(|| format!("EtherCAT on {iface}"))?;
            let bus = EthercrabBus::bring_up(pdu_loop, &drives.axes, timing)
                .with_context(|| format!("EtherCAT bring-up on {iface}"))?;
            (bus, Link::Nic(task))
        }
    };
    let controller = Controller::spawn_paced(bus, &drives.axes, period, pacing).context("EtherCAT cycle")?;
    let motion = Motion::start(controller, period)?;

    let patient = Patient::new(config.patient.clone(), model.clone(), fiducials.clone())?;
    let patient = Arc::new(Mutex::new(patient));
    let ctx = r2r::Context::create().map_err(|e| anyhow!("ROS 2 context: {e}"))?;

    // /joint_states from the measured positions.
    let (joints_tx, joints) = watch::channel(JointPositions::default());
    let mut status = motion.status();
    let follow = tokio::spawn(async move {
        while status.changed().await.is_ok() {
            let q = status.borrow_and_update().actual;
            joints_tx.send_replace(q);
        }
    });
    let robot_state = robot_description::start(
        &ctx,
        RobotStateConfig {
            urdf: config.urdf.clone(),
            rate: Duration::from_millis(5),
        },
        joints,
    )?;

    let gate = config.gate.clone();
    let (outcomes_tx, outcomes) = watch::channel(None);
    let registration = registration::start(
        &ctx,
        RegistrationConfig {
            model: fiducials,
            gate: gate.clone(),
            series_dir: None,
            default_targets: vec![config.patient.lesion],
        },
        outcomes_tx,
    )?;

    let scanner = Arc::new(SimScanner::start(
        &ctx,
        Arc::clone(&patient),
        motion.status(),
        out.to_path_buf(),
        (config.file.planning_scan, config.file.check_scan),
        config.file.seed,
    )?);

    let planning = PlanningParams {
        max_step: config.file.planning.max_step,
        insertion_margin: config.file.planning.insertion_margin,
        ..PlanningParams::default()
    };
    let settings = ProcedureSettings {
        planner: Planner::new(model, planning)?,
        machine: ProcedureConfig::default(),
        gate,
        entry: Some(config.entry),
        target: Some(config.patient.lesion),
        align_speed: config.file.motion.align_speed,
        insertion_speed: config.file.motion.insertion_speed,
        curvature_prior: config.patient.tissue.curvature,
        done_within: 1.0e-3,
        min_correction_depth: 0.015,
        lesion: Some((
            config.patient.lesion_radius,
            config.patient.lesion_hu - acus_sim_scanner::SOFT_TISSUE_HU,
        )),
    };
    let procedure = procedure::start(&ctx, settings, motion.clone(), scanner.clone(), outcomes.clone())?;
    let mut nodes = vec![robot_state, registration, procedure];
    nodes.push(RunningNode::new_tasks(vec![follow]));
    Ok(SimSystem {
        ctx,
        motion,
        period: period.as_secs_f64(),
        patient,
        scanner,
        registration: outcomes,
        nodes,
        _link: link,
    })
}

impl SimSystem {
    /// Procedure time so far, as it would pass on the real robot: the drive-clock time of every motion plus the modelled
    /// time of every scan, s. (Operator think time is not modelled.)
    pub fn sim_seconds(&self) -> f64 {
        let cycles = self.motion.status().borrow().busy_cycles as f64;
        cycles * self.period + self.scanner.scanner_ms.load(std::sync::atomic::Ordering::Relaxed) as f64 * 1e-3
    }

    /// Stop the nodes (the drives and the cycle stop when the system is dropped).
    pub fn stop_nodes(&mut self) {
        self.nodes.clear();
    }
}
