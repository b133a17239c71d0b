//! `acus`: the command line of the acus needle positioner.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// acus — control stack of a CT-guided needle positioner.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// How far ROS 2 (DDS) discovery reaches. The robot's services (`/enable`, `/insert_step`) and the e-stop ride on
    /// DDS, so the default keeps them on this host whatever the environment says; open it only on an isolated, trusted
    /// network (see the README, "Deploying beyond one host").
    #[arg(long, global = true, value_enum, default_value_t = DdsRange::Localhost)]
    dds_range: DdsRange,
    #[command(subcommand)]
    command: Command,
}

/// `ROS_AUTOMATIC_DISCOVERY_RANGE` values (ROS 2 Jazzy).
#[derive(Clone, Copy, clap::ValueEnum)]
enum DdsRange {
    /// This host only.
    Localhost,
    /// The local subnet (multicast discovery).
    Subnet,
    /// No automatic discovery (static peers only, `ROS_STATIC_PEERS`).
    Off,
}

impl DdsRange {
    fn env_value(self) -> &'static str {
        match self {
            DdsRange::Localhost => "LOCALHOST",
            DdsRange::Subnet => "SUBNET",
            DdsRange::Off => "OFF",
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole CT-guided biopsy on the simulation twin: emulated EtherCAT drives, virtual CT scanner, all nodes over
    /// ROS 2; prints progress and a summary, writes the scans and a log.
    Sim {
        /// Simulation configuration.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml"))]
        config: PathBuf,
        /// Output folder for the scans and the log (default: ./acus-sim-<unix time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Drive the EtherCAT cycle at 1 kHz of wall time instead of the simulated clock.
        #[arg(long)]
        realtime: bool,
        /// Seed of every draw of the world: robot as built, frame, table, operator, needle, image noise (overrides the
        /// configuration).
        #[arg(long)]
        seed: Option<u64>,
        /// The simulated world: `ideal` (the robot, frame, scanner and operator exactly as the controller's model),
        /// `realistic` (the noise model of launch/config/worlds/realistic.yaml, a breathing patient among it), `still`
        /// (`realistic` without the breathing: a phantom) or a world file; default: the configuration's choice
        /// (realistic).
        #[arg(long)]
        world: Option<String>,
        /// Start the system and serve its ROS 2 interface until interrupted, without running the biopsy: drive it
        /// yourself (`ros2 service call /procedure/scan std_srvs/srv/Trigger`, …, or 3D Slicer).
        #[arg(long)]
        serve: bool,
        /// Drive the EtherCAT drives on this network interface (e.g. `acus-ecat-emulator` across a veth pair) instead
        /// of emulating them in this process.
        #[arg(long)]
        ecat_iface: Option<String>,
        /// Do not write the procedure record (MCAP, `<out>/record/record.mcap`; written by default).
        #[arg(long)]
        no_record: bool,
        /// A hardware enable pedal: its tty (e.g. /dev/ttyUSB0), or `sim` for the simulated one behind a
        /// pseudo-terminal. Its release, silence (100 ms) or loss holds the motion in the cycle, in this process.
        #[arg(long)]
        pedal: Option<String>,
        /// An NDI tracker (Polaris, Aurora) following the needle between check scans: its tty, or `sim` for the
        /// simulated one behind a pseudo-terminal, seeing the twin's needle. Publishes `/tracker/reference`,
        /// `/tracker/needle` and, once registered, `/needle/tip_tracked` (CT); calibration from `controller.tracker`.
        #[arg(long)]
        tracker: Option<String>,
        /// Serve 3D Slicer over OpenIGTLink (e.g. 127.0.0.1:18944, Slicer's default port): entry and target POINTs in,
        /// STRING commands, the needle tip and T_robot_ct as TRANSFORMs, STATUS and every scan as IMAGE out. The
        /// connection is an enable source: losing Slicer mid-insertion holds the needle until the operator resumes.
        #[arg(long)]
        igtl: Option<std::net::SocketAddr>,
        /// Start no registration node here: run `acus registration` in another process (the procedure takes the
        /// fiducials it finds from `/registration/fiducials` and fits and gates them itself).
        #[arg(long)]
        external_registration: bool,
        /// Keep the breath-holds but do not check the respiratory belt against the gating window (the comparison arm
        /// of a gating study; `controller.respiration.gated: false`).
        #[arg(long)]
        ungated: bool,
        /// Insert straight along the plan and only measure at the check scans (the comparison arm of an accuracy
        /// study; `controller.correct_on_check_scans: false`).
        #[arg(long)]
        no_correction: bool,
        /// Put the lesion's centre here in the simulated world (its truth), CT LPS, mm: `X,Y,Z`. The operator still
        /// reads the target off the planning scan; the controller learns the lesion only from the images.
        #[arg(long, value_name = "X,Y,Z", value_parser = parse_mm::<3>, allow_hyphen_values = true, conflicts_with = "serve")]
        lesion: Option<[f64; 3]>,
        /// The operator's skin entry: on the anterior skin above this CT (x, z), mm: `X,Z` (`entry_xz`).
        #[arg(long, value_name = "X,Z", value_parser = parse_mm::<2>, allow_hyphen_values = true, conflicts_with = "serve")]
        entry_xz: Option<[f64; 2]>,
        /// The check scans' slice thickness and spacing, mm (`check_scan.slice`).
        #[arg(long, value_name = "MM", conflicts_with = "serve")]
        check_slice: Option<f64>,
        /// Also write the run's machine-readable result here (JSON, SI): outcome, plan, the twin's truth at the last
        /// check scan, registration figures, times. Written when the procedure stops or fails too.
        #[arg(long, value_name = "FILE", conflicts_with = "serve")]
        summary_json: Option<PathBuf>,
    },
    /// Phantom accuracy studies: many biopsies, their accuracy per slice thickness with and without check-scan
    /// correction, in a study folder (trials.csv, summary.json, report.md, report.html).
    Validate {
        #[command(subcommand)]
        command: ValidateCommand,
    },
    /// Run the registration node alone (CT series in, `T_robot_ct` and the fiducials found out, over ROS 2), e.g.
    /// beside `acus sim --serve --external-registration`, until interrupted.
    Registration {
        /// Simulation configuration (its controller part: URDF, gate, default target).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml"))]
        config: PathBuf,
        /// The world file the configuration names, if another (only the controller part is used).
        #[arg(long)]
        world: Option<String>,
    },
    /// Procedure records (MCAP).
    Record {
        #[command(subcommand)]
        command: RecordCommand,
    },
    /// Print the `acus-ecat-emulator --params` YAML for the simulation's drives (their configuration and start pose).
    EmulatorParams {
        /// Simulation configuration.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml"))]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ValidateCommand {
    /// A simulated study: targets drawn over the phantom's reachable volume, each a whole simulated biopsy (`acus sim`
    /// in its own process and ROS domain) in every arm: each slice thickness, with and without correction.
    Sim(acus_launch::validate::SimStudyArgs),
    /// The same analysis on scans of your own phantom: a planning series, one post-insertion series per target and the
    /// plan (YAML, CT LPS mm) → registration, the needle found per target, ED/ND/depth/angle errors. A target whose
    /// series is missing, unreadable, of another frame of reference or without a needle is a failed row.
    Scans(acus_launch::validate::ScansStudyArgs),
}

#[derive(Subcommand)]
enum RecordCommand {
    /// Print a record's timeline (requests, answers, state changes, faults, scans, check-scan errors) and its message
    /// count per topic. Reads a finished record and one whose recorder was killed alike.
    Summary {
        /// The MCAP file (`<out>/record/record.mcap`).
        file: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("ACUS_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Before any thread exists and before the first ROS context reads it.
    std::env::set_var("ROS_AUTOMATIC_DISCOVERY_RANGE", cli.dds_range.env_value());
    match cli.command {
        Command::EmulatorParams { config } => match emulator_params(&config) {
            Ok(yaml) => {
                print!("{yaml}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("acus emulator-params: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Record {
            command: RecordCommand::Summary { file },
        } => match acus_record::summary(&file) {
            Ok(summary) => {
                print!("{summary}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("acus record summary: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Validate {
            command: ValidateCommand::Sim(args),
        } => match acus_launch::validate::run_sim_study(&args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("acus validate sim: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Validate {
            command: ValidateCommand::Scans(args),
        } => match acus_launch::validate::run_scans_study(&args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("acus validate scans: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Registration { config, world } => {
            match acus_launch::run::serve_registration(&config, world.as_deref()) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("acus registration: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Sim {
            config,
            out,
            realtime,
            seed,
            world,
            ecat_iface,
            serve,
            no_record,
            pedal,
            tracker,
            igtl,
            external_registration,
            ungated,
            no_correction,
            lesion,
            entry_xz,
            check_slice,
            summary_json,
        } => {
            let out = out.unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                PathBuf::from(format!("acus-sim-{t}"))
            });
            let started = std::time::Instant::now();
            let drives = ecat_iface.map_or(acus_launch::system::Drives::InProcess, acus_launch::system::Drives::Nic);
            let options = acus_launch::run::SimOptions {
                config,
                out,
                realtime,
                seed,
                world,
                drives,
                record: !no_record,
                pedal: pedal.map(|p| match p.as_str() {
                    "sim" => acus_launch::system::Pedal::Simulated,
                    _ => acus_launch::system::Pedal::Device(PathBuf::from(p)),
                }),
                igtl,
                external_registration,
                tracker: tracker.as_deref().map(acus_launch::tracker::TrackerAt::from_arg),
            };
            if serve {
                return match acus_launch::run::serve(&options) {
                    Ok(()) => std::process::ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("acus sim --serve: {e:#}");
                        std::process::ExitCode::FAILURE
                    }
                };
            }
            // The last refusal, for a summary file: the sentence a stopped procedure gave the operator.
            let refused = std::sync::Arc::new(std::sync::Mutex::new(None::<(String, String)>));
            let progress = {
                let refused = std::sync::Arc::clone(&refused);
                move |a: &acus_launch::operator::Answer| {
                    let mark = if a.success { "ok" } else { "REFUSED" };
                    println!(
                        "[{:6.1} s] {:<24} {mark}: {}",
                        started.elapsed().as_secs_f64(),
                        a.service,
                        a.message
                    );
                    if !a.success {
                        if let Ok(mut r) = refused.lock() {
                            *r = Some((a.service.clone(), a.message.clone()));
                        }
                    }
                }
            };
            let overrides = acus_launch::config::Overrides {
                lesion: lesion.map(|p| p.map(|v| v * 1e-3)),
                entry_xz: entry_xz.map(|p| p.map(|v| v * 1e-3)),
                check_slice: check_slice.map(|v| v * 1e-3),
            };
            let mut plan = None;
            let ran = acus_launch::config::SimConfig::load_in(&options.config, options.world.as_deref())
                .map_err(anyhow::Error::from)
                .and_then(|mut config| {
                    if ungated {
                        if let Some(r) = config.controller.file.respiration.as_mut() {
                            r.gated = false;
                        }
                    }
                    if no_correction {
                        config.controller.file.correct_on_check_scans = false;
                    }
                    config.apply_overrides(&overrides)?;
                    if let Some(seed) = seed {
                        config.set_seed(seed)?;
                    }
                    plan = Some(acus_launch::validate::TrialPlan::of(&config));
                    acus_launch::run::run_with(config, &options, progress)
                });
            if let (Some(path), Some(plan)) = (&summary_json, &plan) {
                let wall = started.elapsed().as_secs_f64();
                let last_refusal = refused.lock().ok().and_then(|r| r.clone());
                let file = acus_launch::validate::TrialFile::from_run(plan, ran.as_ref(), last_refusal, wall);
                if let Err(e) = file.write(path) {
                    eprintln!("acus sim: {e:#}");
                    return std::process::ExitCode::FAILURE;
                }
            }
            match ran {
                Ok(summary) => {
                    println!("\n{}", summary.text);
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("acus sim: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

/// `N` comma-separated numbers in mm, e.g. `20,-30,10`.
fn parse_mm<const N: usize>(text: &str) -> Result<[f64; N], String> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>().map_err(|e| format!("{v:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let array: [f64; N] = values
        .try_into()
        .map_err(|v: Vec<f64>| format!("{} numbers given; {N} expected (mm, comma-separated)", v.len()))?;
    match array.iter().find(|v| !v.is_finite()) {
        Some(v) => Err(format!("{v} is not a finite number of mm")),
        None => Ok(array),
    }
}

fn emulator_params(config: &std::path::Path) -> anyhow::Result<String> {
    let sim = acus_launch::config::SimConfig::load(config)?;
    let drives = acus_launch::system::load_drives(&sim.drives_path)?;
    let params = acus_sim_twin::drives::emulator_params(&drives, &sim.file.start_pose)?;
    Ok(serde_yaml::to_string(&params)?)
}
