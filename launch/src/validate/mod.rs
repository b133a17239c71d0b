//! `acus validate sim`: a phantom accuracy study on the simulation twin. Targets are drawn over the phantom's reachable
//! volume ([`design`]), each run as a whole simulated biopsy (`acus sim`, in its own process and ROS domain:
//! [`runner`]) in every arm (each check-scan slice thickness, with and without correction), and the rows become the
//! study folder of `acus_validate` (trials.csv, summary.json, report.md, report.html).
//!
//! `acus validate scans` ([`scans`]): the same analysis on scans of the user's own phantom.

pub mod design;
pub mod domains;
pub mod info;
pub mod runner;
pub mod scans;
pub mod scans_plan;
pub mod trial_file;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use acus_validate::{Outcome, StudyInfo, SuccessCriterion};
use anyhow::{bail, Context, Result};

pub use scans::{run_scans_study, ScansStudyArgs};
pub use trial_file::{TrialFile, TrialPlan};

use crate::config::SimConfig;
use runner::{Arm, Finished, Job};

/// `acus validate sim` options.
#[derive(clap::Args, Clone, Debug)]
pub struct SimStudyArgs {
    /// Simulated biopsies in all, spread evenly over the arms (slice thicknesses × correction on/off): the study has
    /// ceil(N / arms) targets, each run in every arm with the same seed (100 over 6 arms: 17 targets, 102 trials).
    #[arg(long, default_value_t = 100)]
    pub trials: usize,
    /// The study's seed: the targets and every trial's world are drawn from it.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Check-scan slice thicknesses (and spacings), mm, comma-separated; the planning scan keeps the configuration's.
    #[arg(long, value_delimiter = ',', default_value = "1,3,5")]
    pub slices: Vec<f64>,
    /// The simulated world: `ideal`, `still`, `realistic` or a world file. A phantom study by default: `still` is the
    /// realistic robot, frame, scanner and operator with a phantom that does not breathe.
    #[arg(long, default_value = "still")]
    pub world: String,
    /// Simulation configuration (the controller's settings and the scan protocols).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml"))]
    pub config: PathBuf,
    /// Trials at once, each its own process and ROS domain (default: the available parallelism).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Study folder (default: ./acus-validate-<unix time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep every trial's DICOM series (by default each is deleted once its picture and summary are taken).
    #[arg(long)]
    pub keep_scans: bool,
    /// A success criterion, declared before the run: METRIC:STATISTIC:LIMIT:SLICE_MM[:on|off] (metric: ed, nd,
    /// depth, abs-depth, angle, predicted-tre, observed-tre; statistic: mean, sd, median, p95, max; limit in mm or °;
    /// the arm: correction on, the default, or off). Repeat for more; replaces the default: ED median ≤ 0.5 mm and
    /// p95 ≤ 1.0 mm at 1 mm with correction (issue 12's goal).
    #[arg(long = "criterion", value_name = "CRITERION", value_parser = info::parse_criterion)]
    pub criteria: Vec<SuccessCriterion>,
    /// Declare no success criterion.
    #[arg(long, conflicts_with = "criteria")]
    pub no_criteria: bool,
    /// Do not pin each worker's trials to a core of its own (pinned, a trial's EtherCAT frame hand-offs stay on one
    /// core: about a quarter less CPU per trial on 2 shared cores).
    #[arg(long)]
    pub no_pin: bool,
    /// A trial still running after this many seconds is killed and counted as failed.
    #[arg(long, value_name = "S", default_value_t = 120.0)]
    pub timeout: f64,
}

/// The arms: every slice thickness with correction on, then off.
fn arms(slices: &[f64]) -> Vec<Arm> {
    slices
        .iter()
        .flat_map(|&slice_mm| [true, false].map(|correction| Arm { slice_mm, correction }))
        .collect()
}

/// Run the study and write its folder; print where it is and the figures.
pub fn run_sim_study(args: &SimStudyArgs) -> Result<()> {
    let started_at = SystemTime::now();
    let started = Instant::now();
    let mut slices: Vec<f64> = Vec::new();
    for &s in &args.slices {
        // The configuration's range for a scan's slice: (0, 10] mm.
        if !(s.is_finite() && s > 0.0 && s <= 10.0) {
            bail!("--slices: {s} mm; each slice thickness must be in (0, 10] mm");
        }
        if !slices.contains(&s) {
            slices.push(s);
        }
    }
    if slices.is_empty() || args.trials == 0 {
        bail!("--trials and --slices must give at least one trial and one slice thickness");
    }
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .with_context(|| format!("--timeout {} s: give a time > 0", args.timeout))?;
    let jobs_wanted = match args.jobs {
        Some(0) => bail!("--jobs 0: at least one trial must run at a time"),
        Some(j) => j,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let criteria = if args.no_criteria {
        Vec::new()
    } else if args.criteria.is_empty() {
        info::default_criteria()
    } else {
        args.criteria.clone()
    };

    let config = SimConfig::load_in(&args.config, Some(&args.world))?;
    let arms = arms(&slices);
    let n_targets = args.trials.div_ceil(arms.len());
    let space = design::DesignSpace::default();
    let (targets, refused) = design::draw_targets(n_targets, args.seed, &space, &design::Geometry::of(&config)?)?;
    // The corrected 1 mm arm (the criterion's), or the first arm: one picture per target keeps report.html small.
    let picture_arm = arms
        .iter()
        .copied()
        .find(|a| a.correction && a.slice_mm == 1.0)
        .or(arms.first().copied())
        .context("no arm to run")?;

    let out = args.out.clone().unwrap_or_else(|| {
        let t = started_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("acus-validate-{t}"))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut jobs = Vec::new();
    for t in &targets {
        for arm in &arms {
            jobs.push(Job {
                target: *t,
                arm: *arm,
                dir: out.join("trials").join(format!("t{:03}-{}", t.index, arm.label())),
            });
        }
    }
    let total = jobs.len();
    let workers = jobs_wanted.min(total);
    let leases = domains::lease(workers)?;
    let cores = if args.no_pin {
        Vec::new()
    } else {
        runner::allowed_cores()
    };
    let pinning = match cores.as_slice() {
        [] => "unpinned".to_owned(),
        [core] => format!("every worker on core {core}"),
        many => format!("worker i on core i mod {} of {many:?}", many.len()),
    };
    println!(
        "acus validate sim: {n_targets} targets × {} arms = {total} simulated biopsies in world `{}` (seed {}), {workers} at \
         a time (ROS domains {}; {pinning}); {} design draws refused ({} outside the organ, {} out of the robot's reach)",
        arms.len(),
        config.world.name,
        args.seed,
        leases.iter().map(|l| l.id().to_string()).collect::<Vec<_>>().join(", "),
        refused.outside_organ + refused.unreachable,
        refused.outside_organ,
        refused.unreachable
    );
    let settings = runner::Settings {
        exe: std::env::current_exe().context("finding the acus executable")?,
        config: args.config.clone(),
        world: args.world.clone(),
        timeout,
        keep_scans: args.keep_scans,
        picture_arm,
        cores,
    };
    let mut progress = Progress::new(total);
    let mut finished = runner::run(jobs, &settings, &leases, |f| progress.trial(f))?;
    progress.finish();
    drop(leases);

    // Rows in design order: target by target, each in arm order.
    let arm_index = |a: &Arm| arms.iter().position(|b| b == a).unwrap_or(usize::MAX);
    finished.sort_by_key(|f| (f.job.target.index, arm_index(&f.job.arm)));
    let trials: Vec<_> = finished.iter().map(|f| f.trial.clone()).collect();
    let pictures: Vec<_> = finished.iter().filter_map(|f| f.picture.clone()).collect();
    let wall_s = started.elapsed().as_secs_f64();
    let info = StudyInfo {
        command_line: info::command_line(),
        seed: args.seed,
        trials_requested: args.trials,
        slice_mm: slices.clone(),
        world: format!("{} ({})", config.world.name, config.world_path.display()),
        noise_model: noise_model(&config, args, (&space, &targets), arms.len(), picture_arm)?,
        controller: controller_text(&args.config)?,
        git_revision: info::git_revision(Path::new(env!("CARGO_MANIFEST_DIR"))),
        started: info::utc(started_at),
        wall_s,
        criteria,
    };
    let summary = acus_validate::write_study(&out, &info, &trials, &pictures)?;
    println!("\n{}", info::table(&summary));
    println!("{}", timing(&finished, wall_s, workers));
    println!(
        "study: {} (report.html, report.md, trials.csv, summary.json)",
        out.display()
    );
    Ok(())
}

/// The world file's text (the noise model the figures were measured in), after the study's design in comment lines.
fn noise_model(
    config: &SimConfig,
    args: &SimStudyArgs,
    (space, targets): (&design::DesignSpace, &[design::Target]),
    arms: usize,
    picture_arm: Arm,
) -> Result<String> {
    let world = std::fs::read_to_string(&config.world_path)
        .with_context(|| format!("reading {}", config.world_path.display()))?;
    let deg = |r: f64| r.to_degrees();
    let draws: usize = targets.iter().map(|t| t.draws).sum();
    // What the kept targets span (the robot's reach trims the drawn ranges).
    let span = |f: fn(&design::Target) -> f64| {
        let v = targets.iter().map(f);
        let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(x), h.max(x)));
        format!("{lo:.0}…{hi:.0}")
    };
    let kept = format!(
        "# Kept targets span: depth {} mm, {}° from vertical, entry x {} mm, z {} mm.\n",
        span(|t| t.depth * 1e3),
        span(|t| t.angle.to_degrees()),
        span(|t| t.entry_xz[0] * 1e3),
        span(|t| t.entry_xz[1] * 1e3),
    );
    Ok(format!(
        "# acus validate sim: the study's design (each trial a whole simulated biopsy: `acus sim` over DDS and emulated\n\
         # EtherCAT drives, the virtual CT scanner writing DICOM).\n\
         # Trials: {} requested, spread over {} arms (slice thicknesses × correction on/off): {} targets, each run in\n\
         # every arm with the same seed (its world: robot, frame, needle, image noise and operator drawn from it).\n\
         # Targets drawn from seed {}: skin entry x {:.0}…{:.0} mm, z {:.0}…{:.0} mm on the anterior skin; path {:.0}…{:.0}°\n\
         # from vertical, any azimuth; lesion centre {:.0}…{:.0} mm deep, ≥ {:.0} mm inside the organ (under the skin and\n\
         # fat) and ≥ {:.0} mm from the phantom's ends; reachable by the nominal robot with the correction margins and\n\
         # {:.0}° of aim headroom ({} draws for {} targets).\n\
         {kept}\
         # Slice thickness = the check scans' slice thickness and spacing; the planning scan keeps the configuration's.\n\
         # Target = the lesion centre, the twin's truth at the last check scan (pushed by the needle, moved by\n\
         # breathing): ED, ND, depth error and the error vector are the true tip against it, along the true needle\n\
         # direction at the tip; the angle error is against the planned line (planned entry → planned target).\n\
         # Pictures: the final check scan of each target in the arm slice {} mm, correction {}.\n\
         {world}",
        args.trials,
        arms,
        targets.len(),
        args.seed,
        space.entry_x[0] * 1e3,
        space.entry_x[1] * 1e3,
        space.entry_z[0] * 1e3,
        space.entry_z[1] * 1e3,
        deg(space.angle[0]),
        deg(space.angle[1]),
        space.depth[0] * 1e3,
        space.depth[1] * 1e3,
        space.organ_margin * 1e3,
        space.end_margin * 1e3,
        deg(space.aim_headroom),
        draws,
        targets.len(),
        picture_arm.slice_mm,
        if picture_arm.correction { "on" } else { "off" },
    ))
}

/// The configuration's `controller:` section and the scan protocols, as written, and what each arm changes.
fn controller_text(config: &Path) -> Result<String> {
    let text = std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let mut out = format!(
        "# {} (per arm: check_scan.slice and controller.correct_on_check_scans)\n",
        config.display()
    );
    for key in ["planning_scan", "check_scan", "controller"] {
        if let Some(section) = info::yaml_section(&text, key) {
            out.push_str(&section);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Where the time went: per trial as the runner saw the process, and for the finished ones its parts (system start-up
/// to the first request, the procedure, and the rest: process start, configuration, shutdown).
fn timing(finished: &[Finished], wall_s: f64, workers: usize) -> String {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let process: Vec<f64> = finished.iter().map(|f| f.trial.wall_s).collect();
    let done: Vec<(&Finished, &TrialFile)> = finished
        .iter()
        .filter(|f| f.trial.outcome == Outcome::Done)
        .filter_map(|f| f.file.as_ref().map(|t| (f, t)))
        .collect();
    let of_done = |pick: fn(&Finished, &TrialFile) -> Option<f64>| {
        mean(&done.iter().filter_map(|(f, t)| pick(f, t)).collect::<Vec<_>>())
    };
    let (d_process, d_startup, d_procedure) = (
        of_done(|f, _| Some(f.trial.wall_s)),
        of_done(|_, t| t.startup_s),
        of_done(|_, t| t.procedure_wall_s),
    );
    let sim: f64 = finished.iter().map(|f| f.trial.sim_s).sum();
    format!(
        "time: {} trials in {wall_s:.1} s wall, {workers} at a time: {:.2} s per trial ({:.2} s of wall per trial); \
         a finished trial {d_process:.2} s = start-up to the first request {d_startup:.2} s + procedure \
         {d_procedure:.2} s + process start, configuration and shutdown {:.2} s ({} finished); {sim:.0} s of \
         procedure simulated",
        finished.len(),
        mean(&process),
        wall_s / finished.len().max(1) as f64,
        d_process - d_startup - d_procedure,
        done.len(),
    )
}

/// Trials done so far: a bar on a terminal, one line per trial otherwise (a log, CI).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    done: usize,
    total: usize,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            let style = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} trials, ETA {eta} {msg}",
            )
            .map(|s| s.progress_chars("=> "));
            if let Ok(style) = style {
                bar.set_style(style);
            }
            bar
        });
        Self { bar, done: 0, total }
    }

    fn trial(&mut self, f: &Finished) {
        self.done += 1;
        let t = &f.trial;
        let what = match (t.outcome, t.ed_mm) {
            (Outcome::Done, Some(ed)) => format!("ED {ed:.2} mm"),
            (o, _) => format!("{}: {}", o.as_str(), t.reason),
        };
        let arm = f.job.arm.label();
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("last: target {} {arm} {what}", t.trial));
                bar.inc(1);
            }
            None => println!(
                "[{:>4}/{}] target {} (seed {}) {arm}: {what} ({:.1} s)",
                self.done, self.total, t.trial, t.seed, t.wall_s
            ),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_are_each_slice_with_and_without_correction() {
        let a = arms(&[1.0, 3.0]);
        let labels: Vec<String> = a.iter().map(Arm::label).collect();
        assert_eq!(labels, ["s1-on", "s1-off", "s3-on", "s3-off"]);
        // 100 trials over 6 arms: 17 targets.
        assert_eq!(100usize.div_ceil(arms(&[1.0, 3.0, 5.0]).len()), 17);
    }
}
