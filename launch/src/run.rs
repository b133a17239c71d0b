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
    /// Wall time, s.
    pub wall_seconds: f64,
    /// Check scans taken.
    pub check_scans: usize,
    /// The world it ran in.
    pub world: String,
    /// FRE of the registration, m RMS.
    pub fre: Option<f64>,
    /// The summary as printed.
    pub text: String,
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
    let sim = system::start(&config, &options.out.join("scans"), pacing, &options.drives)?;
    println!(
        "acus sim: serving in world `{}` ({}; entry and target from {}; each console: /estop/<name> and /deadman/<name> at ≥ 20 Hz, silence counts as pressed and released); Ctrl-C stops",
        config.world.name,
        config.world_path.display(),
        options.config.display()
    );
    runtime.block_on(async {
        let name = stop_signal().await?;
        println!("acus sim: {name}: stopping the robot");
        sim.motion
            .shutdown()
            .await
            .map_err(|e| anyhow::anyhow!("orderly stop: {e}"))
    })?;
    Ok(())
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
    let mut sim = system::start(&config, &options.out.join("scans"), pacing, &options.drives)?;
    let mut started = Instant::now();
    let log = runtime.block_on(async {
        let mut operator = Operator::start(&sim.ctx, config.controller.entry, config.controller.target).await?;
        operator.on_answer = Box::new(progress);
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
    sim.stop_nodes();
    let log = log?;
    let records = sim.scanner.records.lock().map(|r| r.clone()).unwrap_or_default();
    let checks: Vec<_> = records.iter().filter(|r| r.true_tip.is_some()).collect();
    let last = checks.last().context("no check scan was taken")?;
    let final_error = last.true_tip.map_or(f64::NAN, |t| t.distance(&last.true_lesion));
    let mm = |v: Option<&String>| v.and_then(|s| s.parse::<f64>().ok());
    let measured_final_error = log
        .check_scans
        .last()
        .and_then(|c| mm(c.get("tip to target [mm]")))
        .map(|v| v * 1e-3);

    let mut text = String::new();
    let reg = &log.registration;
    let fre = reg
        .get("FRE RMS [mm]")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v * 1e-3);
    let get = |k: &str| reg.get(k).cloned().unwrap_or_else(|| "?".into());
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
        "registration: {} fiducials, FRE {} mm RMS, predicted TRE {} mm at the target",
        get("fiducials matched"),
        get("FRE RMS [mm]"),
        get("predicted TRE [mm]")
    );
    let steps = log.answers.iter().filter(|a| a.service == "/insert_step").count();
    let _ = writeln!(text, "insertion: {steps} steps, {} check scans", checks.len());
    for (i, (record, seen)) in checks.iter().zip(&log.check_scans).enumerate() {
        let truth = record.true_tip.map_or(f64::NAN, |t| t.distance(&record.true_lesion)) * 1e3;
        let _ = writeln!(
            text,
            "  check scan {}: tip to target {} mm measured, {:.2} mm true; tip {} mm from where expected; correction {}°",
            i + 1,
            seen.get("tip to target [mm]").map_or("?", String::as_str),
            truth,
            seen.get("tip off expected [mm]").map_or("?", String::as_str),
            seen.get("correction pivot [deg]").map_or("?", String::as_str),
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
        "time: the procedure takes {:.1} s on the robot (motions and scans), simulated in {:.1} s wall ({:.1}× real time, \
         {} clock; start-up {:.1} s)",
        sim_seconds,
        wall_seconds,
        sim_seconds / wall_seconds,
        if options.realtime { "real-time" } else { "simulated" },
        startup_seconds
    );
    let _ = writeln!(text, "scans and log: {}", options.out.display());
    write_log(&options.out, &log, &text)?;
    Ok(Summary {
        log,
        final_error,
        measured_final_error,
        sim_seconds,
        wall_seconds,
        check_scans: checks.len(),
        world: config.world.name.clone(),
        fre,
        text,
    })
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
