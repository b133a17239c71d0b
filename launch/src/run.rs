//! `acus sim`: the whole simulated biopsy, and its summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use acus_ethercat::runner::Pacing;
use anyhow::{Context, Result};

use crate::config::SimConfig;
use crate::operator::{Answer, BiopsyLog, Operator};
use crate::system;

/// How to run.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Configuration file.
    pub config: PathBuf,
    /// Where the scans and the log go.
    pub out: PathBuf,
    /// Real-time drive clock (1 kHz wall time) instead of the simulated clock.
    pub realtime: bool,
    /// Override of the configuration's seed.
    pub seed: Option<u64>,
    /// The world to run (`ideal`, `realistic` or a world file); none: the configuration's choice.
    pub world: Option<String>,
    /// Where the drives are.
    pub drives: system::Drives,
    /// Write the procedure record (`<out>/record/record.mcap`).
    pub record: bool,
    /// The hardware enable pedal, if one is used (its release or silence holds the motion in the cycle).
    pub pedal: Option<system::Pedal>,
    /// Serve 3D Slicer over OpenIGTLink on this address.
    pub igtl: Option<std::net::SocketAddr>,
    /// Start no registration node: one runs in another process (`acus registration`).
    pub external_registration: bool,
    /// An NDI tracker following the needle (its calibration: `controller.tracker`), if one is used.
    pub tracker: Option<crate::tracker::TrackerAt>,
}

/// Where the procedure record goes in the output folder (the folder becomes a rosbag2 bag).
pub fn record_path(out: &Path) -> PathBuf {
    out.join("record").join("record.mcap")
}

/// What the biopsy achieved.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The operator's log.
    pub log: BiopsyLog,
    /// True tip-to-target distance at the last check scan (ground truth of the twin), m.
    pub final_error: f64,
    /// Tip-to-target distance the last check scan measured, m.
    pub measured_final_error: Option<f64>,
    /// Simulated time, s.
    pub sim_seconds: f64,
    /// Wall time of the procedure (first request to last answer), s.
    pub wall_seconds: f64,
    /// Wall time from starting the system to the operator's first request (nodes, drives, DDS discovery), s.
    pub startup_seconds: f64,
    /// Check scans taken.
    pub check_scans: usize,
    /// The world it ran in.
    pub world: String,
    /// FRE of the registration, m RMS.
    pub fre: Option<f64>,
    /// The registration's error at the target against the twin's truth (observed TRE), m.
    pub observed_tre: Option<f64>,
    /// The TRE the registration predicted at the target, m.
    pub predicted_tre: Option<f64>,
    /// The last check scan with the twin's truth then (true tip, needle direction and lesion).
    pub last_check: crate::scanner::ScanRecord,
    /// Breath-holds the procedure asked the patient for.
    pub breath_holds: usize,
    /// The organ's craniocaudal breathing displacement at each scan (planning first), m (truth).
    pub scan_levels: Vec<f64>,
    /// The procedure record, if one was written.
    pub record: Option<RecordFigures>,
    /// The summary as printed.
    pub text: String,
}

/// What the procedure record holds, as the summary prints it.
#[derive(Clone, Debug)]
pub struct RecordFigures {
    /// The MCAP file.
    pub path: PathBuf,
    /// Messages per topic.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// The procedure's state after the last answer (as that answer gave it).
    pub final_state: Option<String>,
    /// The last answers and the final state reached the record before it was finished.
    pub complete: bool,
}

/// Run the simulated biopsy; `progress` gets every answer as it arrives.
pub fn run(options: &SimOptions, progress: impl FnMut(&Answer) + Send + 'static) -> Result<Summary> {
    run_with(
        SimConfig::load_in(&options.config, options.world.as_deref())?,
        options,
        progress,
    )
}

/// Start the simulated system and serve its ROS 2 interface until Ctrl-C (or SIGTERM from a launch system).
pub fn serve(options: &SimOptions) -> Result<()> {
    let mut config = SimConfig::load_in(&options.config, options.world.as_deref())?;
    if let Some(seed) = options.seed {
        config.set_seed(seed)?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let _guard = runtime.enter();
    let pacing = if options.realtime {
        Pacing::RealTime
    } else {
        Pacing::Simulated
    };
    let mut sim = start_system(&config, options, pacing)?;
    println!(
        "acus sim: serving in world `{}` ({}; entry and target from {}; each console: /estop/<name> and /deadman/<name> at ≥ 20 Hz, silence counts as pressed and released); Ctrl-C stops",
        config.world.name,
        config.world_path.display(),
        options.config.display()
    );
    if let Some(addr) = sim.igtl_addr {
        println!("acus sim: 3D Slicer: OpenIGTLink server on {addr}");
    }
    runtime.block_on(async {
        let name = stop_signal().await?;
        println!("acus sim: {name}: stopping the robot");
        sim.motion
            .shutdown()
            .await
            .map_err(|e| anyhow::anyhow!("orderly stop: {e}"))
    })?;
    if let Some(recording) = sim.recording.as_mut() {
        recording.finish()?;
        println!("acus sim: record {}", recording.recorder.path().display());
    }
    let path = write_truth(&options.out, &sim)?;
    println!(
        "acus sim: the simulated world's truth at each check scan: {}",
        path.display()
    );
    Ok(())
}

/// The registration node alone, until SIGINT or SIGTERM: what `acus registration` runs beside an `acus sim --serve
/// --external-registration` (or a lab's procedure) in another process. It learns the series from `/scan/series` and
/// tells everything it finds over ROS 2.
pub fn serve_registration(config_path: &Path, world: Option<&str>) -> Result<()> {
    let config = SimConfig::load_in(config_path, world)?;
    let c = &config.controller;
    let model = acus_control::registration::FiducialModel::from_urdf_str(&c.urdf)
        .map_err(|e| anyhow::anyhow!("fiducial frame in the URDF: {e}"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let _guard = runtime.enter();
    let ctx = r2r::Context::create().map_err(|e| anyhow::anyhow!("ROS 2 context: {e}"))?;
    let node = acus_nodes::registration::start(&ctx, system::registration_config(c, model))?;
    println!("acus registration: serving /registration/register; Ctrl-C stops");
    let name = runtime.block_on(stop_signal())?;
    println!("acus registration: {name}: stopping");
    drop(node);
    Ok(())
}

/// The twin's truth at each check scan (true tip, true lesion, their distance), which the controller never sees:
/// `<out>/truth.json`, for whoever drove the served system (3D Slicer, a script) to judge the result.
fn write_truth(out: &Path, sim: &system::SimSystem) -> Result<PathBuf> {
    let records = sim.scanner.records.lock().map(|r| r.clone()).unwrap_or_default();
    let mm = |p: &acus_control::frames::Point<acus_control::frames::Ct>| {
        [p.coords.x * 1e3, p.coords.y * 1e3, p.coords.z * 1e3]
    };
    // The needle the simulated tracker saw at its last frame (a straight needle from the hub: the tool sees no bending),
    // and its tools' poses without the tracker's noise (tracker frame, m; quaternion x, y, z, w).
    let pose = |p: &nalgebra::Isometry3<f64>| {
        let (t, q) = (p.translation.vector, p.rotation.quaternion());
        serde_json::json!({ "xyz_m": [t.x, t.y, t.z], "xyzw": [q.i, q.j, q.k, q.w] })
    };
    let tracker = sim.tracker.as_ref().and_then(|t| t.last_truth()).map(|t| {
        serde_json::json!({
            "camera_time_s": t.camera_time,
            "straight_needle_tip_lps_mm": mm(&t.tip_ct),
            "straight_needle_tip_robot_mm": [t.tip_robot.coords.x * 1e3, t.tip_robot.coords.y * 1e3, t.tip_robot.coords.z * 1e3],
            "true_reference_pose": pose(t.t_tracker_ref.isometry()),
            "true_needle_tool_pose": pose(t.t_tracker_needle.isometry()),
        })
    });
    let checks: Vec<_> = records
        .iter()
        .filter_map(|r| {
            r.true_tip.map(|tip| {
                serde_json::json!({
                    "series": r.dir.display().to_string(),
                    "true_tip_lps_mm": mm(&tip),
                    "true_lesion_lps_mm": mm(&r.true_lesion),
                    "tip_to_lesion_mm": tip.distance(&r.true_lesion) * 1e3,
                })
            })
        })
        .collect();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("truth.json");
    std::fs::write(
        &path,
        serde_json::json!({ "check_scans": checks, "tracker": tracker }).to_string(),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The system as the options ask for it: scans in `<out>/scans`, the record (unless turned off) in `<out>/record`.
fn start_system(config: &SimConfig, options: &SimOptions, pacing: Pacing) -> Result<system::SimSystem> {
    let attached = system::Attached {
        record: options.record.then(|| record_path(&options.out)),
        pedal: options.pedal.clone(),
        igtl: options.igtl,
        external_registration: options.external_registration,
        tracker: options.tracker.clone(),
    };
    system::start(config, &options.out.join("scans"), pacing, &options.drives, &attached)
}

/// The first SIGINT (Ctrl-C) or SIGTERM (a launch system, `kill`), by name.
async fn stop_signal() -> Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").map_err(Into::into),
        _ = term.recv() => Ok("SIGTERM"),
    }
}

/// Run the simulated biopsy with a configuration already loaded (`options.config` is not read).
pub fn run_with(
    mut config: SimConfig,
    options: &SimOptions,
    progress: impl FnMut(&Answer) + Send + 'static,
) -> Result<Summary> {
    if let Some(seed) = options.seed {
        config.set_seed(seed)?;
    }
    std::fs::create_dir_all(&options.out).with_context(|| format!("creating {}", options.out.display()))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let _guard = runtime.enter();
    let pacing = if options.realtime {
        Pacing::RealTime
    } else {
        Pacing::Simulated
    };
    let booted = Instant::now();
    let mut sim = start_system(&config, options, pacing)?;
    let mut started = Instant::now();
    let log = runtime.block_on(async {
        let mut operator = Operator::start(&sim.ctx, config.controller.entry, config.controller.target).await?;
        operator.on_answer = Box::new(progress);
        if let Some(pedal) = sim.sim_pedal.clone() {
            operator.pedal = Some(Box::new(move |held| if held { pedal.press() } else { pedal.release() }));
        }
        started = Instant::now();
        let log = tokio::select! {
            log = operator.biopsy() => log,
            signal = stop_signal() => {
                // The request in flight is dropped; the robot stops in order: halt along the motion (the needle is
                // never pulled back), disable, the drives seen disabled.
                let name = signal?;
                let stopped = match sim.motion.shutdown().await {
                    Ok(()) => "motion halted, every drive reports it is disabled; the needle stays where it stopped",
                    Err(e) => return Err(anyhow::anyhow!("interrupted by {name}; the orderly stop failed: {e}")),
                };
                return Err(anyhow::anyhow!("interrupted by {name}: {stopped}"));
            }
        };
        if log.is_err() {
            operator.collect_diagnostics(&mut BiopsyLog::default());
        }
        log
    });
    let wall_seconds = started.elapsed().as_secs_f64();
    let startup_seconds = (started - booted).as_secs_f64();
    let sim_seconds = sim.sim_seconds();
    let record = match &log {
        Ok(log) => finish_record(&mut sim, log)?,
        Err(_) => {
            if let Some(recording) = sim.recording.as_mut() {
                recording.finish()?;
            }
            None
        }
    };
    sim.stop_nodes();
    let log = log?;
    let records = sim.scanner.records.lock().map(|r| r.clone()).unwrap_or_default();
    let checks: Vec<_> = records.iter().filter(|r| r.true_tip.is_some()).collect();
    let last = (*checks.last().context("no check scan was taken")?).clone();
    let final_error = last.true_tip.map_or(f64::NAN, |t| t.distance(&last.true_lesion));
    let breath_holds = sim.respiration.lock().map_or(0, |r| r.holds());
    // LPS: caudal is −z.
    let scan_levels: Vec<f64> = records.iter().map(|r| -r.organ_offset.z).collect();
    let mm = |v: Option<&String>| v.and_then(|s| s.parse::<f64>().ok());
    let measured_final_error = log
        .check_scans
        .last()
        .and_then(|c| mm(c.get("tip to target [mm]")))
        .map(|v| v * 1e-3);

    let mut text = String::new();
    let reg = &log.registration;
    let reg_m = |key: &str| reg.get(key).and_then(|v| v.parse::<f64>().ok()).map(|v| v * 1e-3);
    let (fre, predicted_tre) = (reg_m("FRE RMS [mm]"), reg_m("predicted TRE [mm]"));
    let get = |k: &str| reg.get(k).cloned().unwrap_or_else(|| "?".into());
    // Observed TRE: where the registration puts the target in the robot base against where the twin's truth has it.
    let observed_tre = reg.get(acus_nodes::registration::TARGET_IN_ROBOT_KEY).and_then(|v| {
        let c: Vec<f64> = v.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        let truth = config
            .patient
            .t_ct_robot
            .inverse()
            .apply(&config.controller.target)
            .coords
            .coords;
        (c.len() == 3).then(|| (nalgebra::Vector3::new(c[0], c[1], c[2]) * 1e-3 - truth).norm())
    });
    let _ = writeln!(text, "acus sim — simulated CT-guided biopsy");
    let _ = writeln!(
        text,
        "world: {} ({}), seed {}",
        config.world.name,
        config.world_path.display(),
        config.file.seed
    );
    let _ = writeln!(
        text,
        "registration: {} fiducials, FRE {} mm RMS, predicted TRE {} mm at the target, observed TRE {} mm (truth)",
        get("fiducials matched"),
        get("FRE RMS [mm]"),
        get("predicted TRE [mm]"),
        observed_tre.map_or("?".into(), |v| format!("{:.4}", v * 1e3))
    );
    let gating = match &config.controller.file.respiration {
        Some(r) if r.gated => format!("gated (±{:.1} mm of the last scan's level)", r.window * 1e3),
        Some(_) => "breath-holds, ungated".to_owned(),
        None => "not gated".to_owned(),
    };
    let levels: Vec<String> = scan_levels.iter().map(|l| format!("{:+.2}", l * 1e3)).collect();
    let _ = writeln!(
        text,
        "breathing: {gating}; {breath_holds} breath-holds asked; organ at each scan {} mm (craniocaudal, true)",
        levels.join(" ")
    );
    let steps = log.answers.iter().filter(|a| a.service == "/insert_step").count();
    let _ = writeln!(text, "insertion: {steps} steps, {} check scans", checks.len());
    for (i, (record, seen)) in checks.iter().zip(&log.check_scans).enumerate() {
        let truth = record.true_tip.map_or(f64::NAN, |t| t.distance(&record.true_lesion)) * 1e3;
        let _ = writeln!(
            text,
            "  check scan {}: tip to target {} mm measured, {:.2} mm true; tip {} mm from where expected; correction {}°{}",
            i + 1,
            seen.get("tip to target [mm]").map_or("?", String::as_str),
            truth,
            seen.get("tip off expected [mm]").map_or("?", String::as_str),
            seen.get("correction pivot [deg]").map_or("?", String::as_str),
            seen.get(acus_nodes::wire::PICTURE_KEY).map_or(String::new(), |p| format!("; picture {p}")),
        );
    }
    let _ = writeln!(
        text,
        "final tip-to-target error: {:.2} mm (true), {} mm (measured on the last check scan)",
        final_error * 1e3,
        measured_final_error.map_or("?".into(), |v| format!("{:.2}", v * 1e3))
    );
    let _ = writeln!(
        text,
        "time: the procedure takes {:.1} s on the robot (motions, breath-holds and scans), simulated in {:.1} s wall ({:.1}× real time, \
         {} clock; start-up {:.1} s)",
        sim_seconds,
        wall_seconds,
        sim_seconds / wall_seconds,
        if options.realtime { "real-time" } else { "simulated" },
        startup_seconds
    );
    if let Some(r) = &record {
        let per_topic: Vec<String> = r.counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
        let _ = write!(
            text,
            "record: {} ({} messages: {})",
            r.path.display(),
            r.counts.values().sum::<u64>(),
            per_topic.join(", ")
        );
        if let Some(stage) = &r.final_state {
            let _ = write!(text, "; final state: {stage}");
        }
        if !r.complete {
            let _ = write!(
                text,
                "; INCOMPLETE: the last answers or the final state did not reach the record within {} s",
                RECORD_CATCH_UP.as_secs()
            );
        }
        let _ = writeln!(text);
    }
    let _ = writeln!(text, "scans and log: {}", options.out.display());
    write_log(&options.out, &log, &text)?;
    Ok(Summary {
        log,
        final_error,
        measured_final_error,
        sim_seconds,
        wall_seconds,
        startup_seconds,
        check_scans: checks.len(),
        world: config.world.name.clone(),
        fre,
        observed_tre,
        predicted_tre,
        last_check: last,
        breath_holds,
        scan_levels,
        record,
        text,
    })
}

/// How long the record may take to receive what the procedure published before the biopsy ended (DDS delivers on its
/// own schedule); past it the summary says the record is incomplete.
const RECORD_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(5);

/// Let the record catch up with every answer the operator got and the procedure's final state, then finish it. The
/// summary line gives what the record holds, per topic, as `acus record summary` and any MCAP reader count it.
fn finish_record(sim: &mut system::SimSystem, log: &BiopsyLog) -> Result<Option<RecordFigures>> {
    let Some(recording) = sim.recording.as_mut() else {
        return Ok(None);
    };
    // The procedure answers every request it receives (the registration has its own node; the deadman is a topic).
    let answered = log
        .answers
        .iter()
        .filter(|a| a.service != "/registration/register" && !a.service.starts_with("/deadman/"))
        .count() as u64;
    let final_stage = log
        .answers
        .iter()
        .rev()
        .find(|a| a.service != "/registration/register" && !a.service.starts_with("/deadman/"))
        .and_then(|a| a.message.rsplit(" → ").next())
        .map(str::to_owned);
    let answers_in = recording.wait_for(acus_record::formats::ANSWERS_TOPIC, answered, RECORD_CATCH_UP);
    let state_in = final_stage.as_deref().is_none_or(|stage| {
        recording.wait_until(acus_record::formats::STATE_TOPIC, RECORD_CATCH_UP, |cdr| {
            <r2r::std_msgs::msg::String as r2r::WrappedTypesupport>::from_serialized_bytes(cdr)
                .is_ok_and(|m| !m.data.is_empty() && stage.starts_with(&m.data))
        })
    });
    recording.finish()?;
    Ok(Some(RecordFigures {
        path: recording.recorder.path().to_owned(),
        counts: recording.recorder.counts().unwrap_or_default(),
        final_state: final_stage,
        complete: answers_in && state_in,
    }))
}

fn write_log(out: &Path, log: &BiopsyLog, summary: &str) -> Result<()> {
    let mut text = String::new();
    for a in &log.answers {
        let _ = writeln!(
            text,
            "{} [{}] {}",
            a.service,
            if a.success { "ok" } else { "REFUSED" },
            a.message
        );
    }
    text.push('\n');
    text.push_str(summary);
    let path = out.join("log.txt");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}
