//! Composition of the simulated system: emulated EtherCAT drives and the master's 1 kHz cycle, the motion supervisor,
//! the virtual scanner, and the ROS 2 nodes (robot_state, registration, procedure) — the same nodes and drivers that run
//! the real robot.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acus_control::kinematics::{JointPositions, PositionerModel};
use acus_control::planning::{Planner, PlanningParams};
use acus_control::procedure::ProcedureConfig;
use acus_control::registration::FiducialModel;
use acus_ethercat::config::DrivesConfig;
use acus_ethercat::ethercrab_bus::{pdu_storage, spawn_nic_task_rt, BusTiming, EthercrabBus, TXRX_FIFO_PRIORITY};
use acus_ethercat::runner::{Controller, Pacing};
use acus_ethercat::safety::SourceKind;
use acus_nodes::motion::Motion;
use acus_nodes::procedure::{self, NeedleSpec, ProcedureSettings};
use acus_nodes::registration::{self, RegistrationConfig};
use acus_nodes::robot_description::{self, RobotStateConfig};
use acus_nodes::RunningNode;
use acus_record::{Recorder, RecorderNode, PROCEDURE_TOPICS};
use acus_sim_twin::patient::{FrameAsBuilt, Patient};
use acus_sim_twin::respiration::{Respiration, RespirationModel};
use acus_sim_twin::robot::AsBuiltRobot;
use anyhow::{anyhow, Context, Result};
use tokio::sync::watch;

use crate::config::{ControllerConfig, SimConfig};
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
    /// The patient's breathing (ground truth: the holds asked and their levels).
    pub respiration: Arc<Mutex<Respiration>>,
    /// The procedure record being written, if asked for.
    pub recording: Option<Recording>,
    /// The simulated enable pedal, if `Pedal::Simulated` was asked for (the operator's foot).
    pub sim_pedal: Option<Arc<acus_sim_serial::SimPedal>>,
    /// Where the OpenIGTLink server listens, if Slicer was asked for.
    pub igtl_addr: Option<std::net::SocketAddr>,
    /// The NDI tracker's node (and the simulated tracker), if one was asked for.
    pub tracker: Option<crate::tracker::TrackerHook>,
    _pedal_reader: Option<PedalReader>,
    nodes: Vec<RunningNode>,
    _link: Link,
}

/// What carries the frames; held only to keep it alive (dropping it stops the frames).
#[allow(dead_code)]
enum Link {
    InProcess(acus_sim_ecat::inproc::InProcessLink),
    Nic(std::thread::JoinHandle<()>),
}

/// A procedure record being written: the recorder node (DDS) and its file.
pub struct Recording {
    node: Option<RecorderNode>,
    /// The record (the recorder node writes into it; so may the composition root).
    pub recorder: Arc<Recorder>,
}

impl Recording {
    /// Start recording `topics` ([`PROCEDURE_TOPICS`] and those of any device attached) into `path` (its folder is
    /// created, and becomes a rosbag2 bag on finish).
    fn start(ctx: &r2r::Context, path: &Path, topics: &[(&str, &str)]) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let recorder = Arc::new(Recorder::create(path).with_context(|| format!("recording into {}", path.display()))?);
        let node = RecorderNode::start(ctx, "recorder", Arc::clone(&recorder), topics).context("the recorder node")?;
        Ok(Self {
            node: Some(node),
            recorder,
        })
    }

    /// Wait until the record holds at least `count` messages of `topic` (what the procedure is known to have
    /// published; DDS delivers to the recorder on its own schedule), at most `timeout`. False on timeout.
    pub fn wait_for(&self, topic: &str, count: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let have = self.recorder.counts().map_or(0, |c| c.get(topic).copied().unwrap_or(0));
            if have >= count {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait until the last message recorded on `topic` satisfies `test` (given its CDR), at most `timeout`. False on
    /// timeout.
    pub fn wait_until(&self, topic: &str, timeout: Duration, test: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(last)) = self.recorder.last_message(topic) {
                if test(&last) {
                    return true;
                }
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stop recording and write the summary, footer and `metadata.yaml`.
    pub fn finish(&mut self) -> Result<()> {
        self.node = None;
        self.recorder
            .finish()
            .with_context(|| format!("finishing {}", self.recorder.path().display()))
    }
}

/// The enable pedal on a serial line, if one is used: a device path, or one simulated behind a pseudo-terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pedal {
    /// A real pedal (or any device speaking its line protocol) on this tty.
    Device(PathBuf),
    /// The simulated pedal (acus-sim-serial) behind a pty in the output folder; [`SimSystem::sim_pedal`] presses it.
    Simulated,
}

/// What is attached to the system besides the drives, the scanner and the nodes.
#[derive(Clone, Debug, Default)]
pub struct Attached {
    /// Write the procedure record here (MCAP), started before any node so that it misses nothing they publish.
    pub record: Option<PathBuf>,
    /// A hardware enable pedal.
    pub pedal: Option<Pedal>,
    /// Serve 3D Slicer over OpenIGTLink on this address (acus-slicer's bridge, in this process: its connection is an
    /// enable source of the cycle, so losing Slicer mid-insertion holds the needle).
    pub igtl: Option<std::net::SocketAddr>,
    /// The registration node runs in another process (`acus registration`): this one starts none, and its procedure
    /// takes the detections from `/registration/fiducials` like any other subscriber.
    pub external_registration: bool,
    /// An NDI tracker following the needle (`/needle/tip_tracked` once registered), with the calibration of the
    /// controller's configuration; its topics join the record.
    pub tracker: Option<crate::tracker::TrackerAt>,
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

/// Start everything; must be called inside a tokio runtime (nodes spawn their tasks). `out` receives the scans;
/// `record`, if given, the procedure record (MCAP), started before any node so that it misses nothing they publish.
pub fn start(
    config: &SimConfig,
    out: &Path,
    pacing: Pacing,
    drives_at: &Drives,
    attached: &Attached,
) -> Result<SimSystem> {
    let record = attached.record.as_deref();
    let controller_config = &config.controller;
    let fiducials = FiducialModel::from_urdf_str(&controller_config.urdf).context("fiducial frame in the URDF")?;
    let drives = load_drives(&config.drives_path)?;
    let period = Duration::from_secs_f64(drives.cycle_time_s);

    // The drives: emulated, answering real EtherCAT frames in process; the master brings them up by SDO and DC.
    let timing = BusTiming {
        dc_static_sync_iterations: 200,
        // Drives emulated in this process cannot lose a frame on a wire: a late answer during bring-up is the host busy
        // (CI ran two systems and their pty devices at once, and a 50 ms PDU timeout failed the bring-up), so wait as
        // long as the simulated clock's process data; real drives on a NIC keep a short timeout.
        pdu_timeout: match drives_at {
            Drives::InProcess => acus_ethercat::ethercrab_bus::SIMULATED_PD_TIMEOUT,
            Drives::Nic(_) => Duration::from_millis(50),
        },
        // Real time: a lost frame is reported within 2 periods; a simulated clock waits longer (not wall time).
        process_data_timeout: match pacing {
            Pacing::RealTime => period * 3 / 2,
            Pacing::Simulated => acus_ethercat::ethercrab_bus::SIMULATED_PD_TIMEOUT,
        },
        ..BusTiming::real_time(period)
    };
    // Real drives at 1 kHz of wall time: the cycle thread asks for SCHED_FIFO and locked memory (and says once when it
    // cannot), and the thread carrying its frames runs above it. The in-process emulator and the simulated clock stay
    // on the normal scheduler: a FIFO cycle thread would starve the emulator, which is a normal thread.
    let realtime = pacing == Pacing::RealTime && matches!(drives_at, Drives::Nic(_));
    let (bus, link) = match drives_at {
        Drives::InProcess => {
            let twin = acus_sim_twin::drives::in_process(&drives, &config.file.start_pose, timing)
                .context("EtherCAT bring-up (in-process drives)")?;
            (twin.bus, Link::InProcess(twin.link))
        }
        Drives::Nic(iface) => {
            let (tx, rx, pdu_loop) = pdu_storage().context("EtherCAT frame storage")?;
            let txrx_fifo = realtime.then_some(TXRX_FIFO_PRIORITY);
            let task = spawn_nic_task_rt(iface, tx, rx, txrx_fifo).with_context(|| format!("EtherCAT on {iface}"))?;
            let bus = EthercrabBus::bring_up(pdu_loop, &drives.axes, timing)
                .with_context(|| format!("EtherCAT bring-up on {iface}"))?;
            (bus, Link::Nic(task))
        }
    };
    let mut settings = acus_ethercat::runner::RunnerSettings::new(period, pacing);
    if realtime {
        settings.realtime = acus_ethercat::rt::RtSettings::REALTIME;
    }
    let mut controller = Controller::spawn_with(bus, &drives.axes, period, settings).context("EtherCAT cycle")?;
    let consoles = register_consoles(&mut controller, &controller_config.file, period, pacing)?;
    let (pedal_reader, sim_pedal) = match &attached.pedal {
        Some(pedal) => {
            let (reader, sim) = start_pedal(&mut controller, pedal, out, period, pacing)?;
            (Some(reader), sim)
        }
        None => (None, None),
    };
    // Slicer's connection: an enable source refreshed by the bridge every 10 ms while a client is connected.
    let slicer_hold = match attached.igtl {
        Some(addr) => {
            let cycles = (SLICER_DEADLINE.as_secs_f64() / period.as_secs_f64() * stretch(pacing))
                .ceil()
                .min(f64::from(u32::MAX)) as u32;
            let hold = controller
                .register_source(SourceKind::Enable, &format!("slicer {addr}"), cycles)
                .context("registering the Slicer connection as an enable source")?;
            Some((addr, hold))
        }
        None => None,
    };
    let mut igtl_addr = None;
    let motion = Motion::start(controller, period).context("motion supervisor")?;

    // The world: the robot as built and the frame as manufactured, drawn from the seed against the design.
    let seed = config.file.seed;
    let robot = AsBuiltRobot::build(&config.design_urdf, &config.world.robot, seed)?;
    let design_frame =
        FiducialModel::from_urdf_str(&config.design_urdf).context("fiducial frame in the design URDF")?;
    let frame = FrameAsBuilt::manufacture(&design_frame, config.world.frame.sphere_centre, seed);
    let patient = Patient::new(config.patient.clone(), robot, frame)?;
    let patient = Arc::new(Mutex::new(patient));
    let ctx = r2r::Context::create().map_err(|e| anyhow!("ROS 2 context: {e}"))?;
    let mut topics = PROCEDURE_TOPICS.to_vec();
    if attached.tracker.is_some() {
        topics.extend_from_slice(acus_nodes::wire::TRACKER_TOPICS);
    }
    let recording = record.map(|path| Recording::start(&ctx, path, &topics)).transpose()?;

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
            urdf: controller_config.urdf.clone(),
            rate: Duration::from_millis(5),
        },
        joints,
    )?;

    let tracker = match &attached.tracker {
        Some(at) => {
            let status = motion.status();
            let hook = crate::tracker::start_tracker(
                &ctx,
                at,
                (out, pacing),
                (controller_config.file.tracker.as_ref(), &fiducials),
                crate::tracker::SimWorld {
                    patient: &patient,
                    design: &design_frame,
                    frame_errors: &config.world.frame,
                    seed,
                },
                move || status.borrow().actual,
            )
            .context("the NDI tracker")?;
            Some(hook)
        }
        None => None,
    };
    let registration = if attached.external_registration {
        None
    } else {
        Some(registration::start(
            &ctx,
            registration_config(controller_config, fiducials),
        )?)
    };

    let mut scanner = SimScanner::start(
        &ctx,
        Arc::clone(&patient),
        motion.status(),
        out.to_path_buf(),
        (config.file.planning_scan, config.file.check_scan),
        config.world.scanner,
        seed,
    )?;
    // The patient breathes on the drive clock (a world without breathing: a still patient, whose belt reads flat); the
    // belt and the breathing instructions travel over ROS.
    let model = config.world.patient.breathing.unwrap_or(RespirationModel::STILL);
    let respiration = Arc::new(Mutex::new(Respiration::new(&model, seed)));
    let (shallowest, withdrawals) = crate::withdrawal::watch_withdrawals(motion.status());
    scanner = scanner
        .with_breathing(Arc::clone(&respiration), period.as_secs_f64())
        .with_withdrawals(Arc::clone(&shallowest));
    let breathing = crate::breathing::start(
        &ctx,
        Arc::clone(&respiration),
        config
            .world
            .patient
            .breathing
            .is_some()
            .then(|| (Arc::clone(&patient), shallowest)),
        motion.status(),
        period.as_secs_f64(),
    )?;
    let scanner = Arc::new(scanner);

    let settings = controller_settings(controller_config)?;
    let procedure = procedure::start(&ctx, settings, motion.clone(), scanner.clone(), consoles)?;
    let mut nodes = vec![robot_state, procedure];
    nodes.extend(registration);
    nodes.push(breathing);
    if let Some((addr, hold)) = slicer_hold {
        let bridge = tokio::runtime::Handle::current()
            .block_on(acus_slicer::start(
                &ctx,
                acus_slicer::BridgeConfig {
                    server: acus_igtl::ServerConfig {
                        addr,
                        ..acus_igtl::ServerConfig::default()
                    },
                    ..acus_slicer::BridgeConfig::with_hold(hold)
                },
            ))
            .with_context(|| format!("OpenIGTLink on {addr}"))?;
        tracing::info!("3D Slicer: OpenIGTLink server on {}", bridge.local_addr);
        igtl_addr = Some(bridge.local_addr);
        nodes.push(bridge.node);
    }
    nodes.push(RunningNode::new_tasks(vec![follow, withdrawals]));
    Ok(SimSystem {
        ctx,
        motion,
        period: period.as_secs_f64(),
        patient,
        scanner,
        respiration,
        recording,
        sim_pedal,
        igtl_addr,
        tracker,
        _pedal_reader: pedal_reader,
        nodes,
        _link: link,
    })
}

/// How much faster than real time the simulated clock may run: a console's deadline on the drive clock is stretched by
/// this much there, so that wall-clock heartbeats never read as silence (the procedure node judges the silence on the
/// wall clock in both cases).
const SIMULATED_SPEED_BOUND: f64 = 1000.0;

/// Register each console's e-stop and deadman with the cycle. On the drive clock a source's deadline is twice the
/// console's (the procedure node, on the wall clock, reacts first; the cycle catches the node itself falling silent).
fn register_consoles(
    controller: &mut Controller<acus_ethercat::runner::Disabled>,
    file: &crate::config::ControllerFile,
    period: Duration,
    pacing: Pacing,
) -> Result<Vec<procedure::Console>> {
    let deadline = Duration::from_secs_f64(file.console_deadline);
    let stretch = match pacing {
        Pacing::RealTime => 1.0,
        Pacing::Simulated => SIMULATED_SPEED_BOUND,
    };
    let cycles = (2.0 * deadline.as_secs_f64() / period.as_secs_f64() * stretch)
        .ceil()
        .min(f64::from(u32::MAX)) as u32;
    file.consoles
        .iter()
        .map(|name| {
            let estop = controller.register_source(SourceKind::EmergencyStop, &format!("/estop/{name}"), cycles)?;
            let deadman = controller.register_source(SourceKind::Enable, &format!("/deadman/{name}"), cycles)?;
            Ok(procedure::Console {
                name: name.clone(),
                estop,
                deadman,
                deadline,
            })
        })
        .collect::<Result<_, acus_ethercat::Error>>()
        .context("registering the consoles' safety inputs")
}

/// How long the Slicer connection's enable source may go unrefreshed (the bridge refreshes it every 10 ms) before the
/// cycle counts it released, wall time (stretched on the simulated clock).
const SLICER_DEADLINE: Duration = Duration::from_millis(100);

/// A deadline on the drive clock is stretched by this on the simulated clock (which outruns the wall).
fn stretch(pacing: Pacing) -> f64 {
    match pacing {
        Pacing::RealTime => 1.0,
        Pacing::Simulated => SIMULATED_SPEED_BOUND,
    }
}

/// The pedal's silence deadline (wall clock) on the simulated clock; on the real-time clock it is the reader's 100 ms.
pub const SIMULATED_PEDAL_DEADLINE: Duration = Duration::from_secs(1);

/// Register the pedal as an enable source of the cycle and start its reader, which refreshes the source with the level
/// it hears (released, silent, unplugged or garbage all count as released; acus_serial::pedal_port). The reader runs in
/// this process, the one that owns the cycle: the pedal reaches the drives without passing through DDS. On the drive
/// clock the source's deadline is the pedal deadline, stretched on the simulated clock like a console's.
fn start_pedal(
    controller: &mut Controller<acus_ethercat::runner::Disabled>,
    pedal: &Pedal,
    out: &Path,
    period: Duration,
    pacing: Pacing,
) -> Result<(PedalReader, Option<Arc<acus_sim_serial::SimPedal>>)> {
    let (path, sim) = match pedal {
        Pedal::Device(path) => (path.clone(), None),
        Pedal::Simulated => {
            let dir = out.join("pedal");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let sim = acus_sim_serial::SimPedal::start(&dir).context("the simulated pedal")?;
            (sim.path().to_owned(), Some(Arc::new(sim)))
        }
    };
    let mut config = acus_serial::pedal_port::PedalConfig::new(&path);
    if pacing == Pacing::Simulated {
        // The simulated clock keeps a cycle thread busy on every core it can get: a wall-clock gap of 100 ms there is
        // the pedal's reader or sender waiting for a core, not a pedal gone quiet. Silence still counts as released,
        // after a second.
        config.deadline = SIMULATED_PEDAL_DEADLINE;
    }
    config.validate().context("pedal configuration")?;
    let stretch = match pacing {
        Pacing::RealTime => 1.0,
        Pacing::Simulated => SIMULATED_SPEED_BOUND,
    };
    let cycles = (config.deadline.as_secs_f64() / period.as_secs_f64() * stretch)
        .ceil()
        .min(f64::from(u32::MAX)) as u32;
    let mut input = controller
        .register_source(SourceKind::Enable, &format!("pedal {}", path.display()), cycles)
        .context("registering the pedal's safety input")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("pedal".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                // Nothing refreshes the source: the cycle sees the pedal silent, i.e. released.
                Err(e) => return tracing::error!("pedal reader runtime: {e}"),
            };
            let mut last = None;
            let reader = acus_serial::pedal_port::run_pedal(config, move |level| {
                input.refresh(level.held);
                if last.as_ref() != Some(&level.why) {
                    tracing::info!("pedal: {:?}", level.why);
                    last = Some(level.why);
                }
            });
            runtime.block_on(async {
                tokio::select! {
                    // It returns only for a configuration it refuses (validated above).
                    Err(e) = reader => tracing::error!("pedal reader: {e}"),
                    _ = stopped => {}
                }
            });
        })
        .context("the pedal reader thread")?;
    Ok((
        PedalReader {
            stop: Some(stop),
            thread: Some(thread),
        },
        sim,
    ))
}

/// The pedal's reader on a thread and runtime of its own: a loaded main runtime (nodes, scans) cannot delay it, so
/// its silence is the pedal's. Dropping it stops the reader; the source then falls silent (released).
struct PedalReader {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PedalReader {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The registration node's settings, from the controller's configuration alone (here and in `acus registration`).
pub fn registration_config(c: &ControllerConfig, model: FiducialModel) -> RegistrationConfig {
    RegistrationConfig {
        model,
        gate: c.gate.clone(),
        series_dir: None,
        default_targets: vec![c.target],
    }
}

/// The procedure's settings, from the controller's configuration alone (the world cannot reach them: see
/// launch/tests/truth_boundary.rs).
pub fn controller_settings(c: &ControllerConfig) -> Result<ProcedureSettings> {
    let model = PositionerModel::from_urdf_str(&c.urdf).context("robot URDF")?;
    let f = &c.file;
    let planning = PlanningParams {
        max_step: f.planning.max_step,
        insertion_margin: f.planning.insertion_margin,
        ..PlanningParams::default()
    };
    Ok(ProcedureSettings {
        fiducials: FiducialModel::from_urdf_str(&c.urdf).context("fiducial frame in the URDF")?,
        planner: Planner::new(model, planning)?,
        // Inserting straight (no corrections), a tip off its path is measured, not corrected: the machine must not wait
        // for a correction that will not come.
        machine: ProcedureConfig {
            max_tip_error: if f.correct_on_check_scans {
                ProcedureConfig::default().max_tip_error
            } else {
                f64::INFINITY
            },
            max_redirect_angle: f.redirect.max_angle,
            max_redirects: f.redirect.max_count,
            ..ProcedureConfig::default()
        },
        gate: c.gate.clone(),
        entry: Some(c.entry),
        target: Some(c.target),
        align_speed: f.motion.align_speed,
        insertion_speed: f.motion.insertion_speed,
        curvature_prior: f.curvature_prior,
        axis_prior: acus_control::needle::AxisPrior {
            tilt: f.axis_tilt_prior,
            offset: f.axis_offset_prior,
        },
        done_within: f.done_within,
        min_correction_depth: f.min_correction_depth,
        redirect_depth: f.redirect.depth,
        lesion: Some((f.lesion.radius, f.lesion.contrast_hu)),
        needle: NeedleSpec {
            radius: f.needle.diameter / 2.0,
            hu: f.needle.hu,
        },
        gating: f.respiration.map(|r| procedure::GatingSettings {
            gain: r.gain,
            window: r.window,
            settle: r.settle,
            hold_limit: r.hold_limit,
            recovery: r.recovery,
            attempts: r.attempts,
            gated: r.gated,
        }),
        correct: f.correct_on_check_scans,
    })
}

impl SimSystem {
    /// Procedure time so far, as it would pass on the real robot: the drive-clock time of every motion and breath-hold
    /// wait plus the modelled time of every scan, s. (Operator think time is not modelled.)
    pub fn sim_seconds(&self) -> f64 {
        let cycles = self.motion.status().borrow().busy_cycles as f64;
        cycles * self.period + self.scanner.scanner_ms.load(std::sync::atomic::Ordering::Relaxed) as f64 * 1e-3
    }

    /// Stop the nodes (the drives and the cycle stop when the system is dropped).
    pub fn stop_nodes(&mut self) {
        self.tracker = None;
        self.nodes.clear();
    }
}

/// The drive configuration, its drives checked against the controller's joint order: axis i of the cycle is
/// `Joint::ALL[i]` everywhere above it, so a reordered file is refused rather than sending x goals to the insertion axis.
pub fn load_drives(path: &Path) -> Result<DrivesConfig> {
    let order = acus_control::kinematics::Joint::ALL.map(|j| j.name());
    DrivesConfig::load_in_order(path, &order).context("drive configuration")
}
