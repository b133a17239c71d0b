//! The trials of a study, each a whole `acus sim` in its own process: a pool of workers, each in its own ROS domain
//! (two simulated systems in one domain would answer each other's services), taking the next trial from a queue.
//!
//! Processes rather than threads because a process is the unit ROS isolates (r2r keeps one context per process, read
//! from the environment once) and because a trial that hangs or crashes can be killed without taking the study down:
//! it becomes a failed row with its last words, and the study goes on.
//!
//! Each worker's trials run on one core of their own (round robin over the cores this process may use) unless told
//! otherwise. A trial's EtherCAT master and emulated drives hand every frame across threads by polling and yielding
//! (sim/ecat's link thread, the bus's cycle thread); on one core a yield passes the frame straight to the other side,
//! while spread over shared cores the two spin against each other and against the other trials. Measured on 2 cores,
//! 24 trials, 2 workers: 39–40 s pinned against 51 s unpinned, the same figures.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acus_validate::{Outcome, TargetPicture, Trial};
use anyhow::{Context, Result};

use super::design::Target;
use super::domains::DomainLease;
use super::trial_file::{failed_row, TrialFile};

/// One arm of the study: a slice thickness with or without check-scan correction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arm {
    /// Check scans' slice thickness, mm.
    pub slice_mm: f64,
    /// Check-scan correction on.
    pub correction: bool,
}

impl Arm {
    /// A folder name: `s1-on`, `s2.5-off`.
    pub fn label(&self) -> String {
        format!("s{}-{}", self.slice_mm, if self.correction { "on" } else { "off" })
    }
}

/// One trial to run: a target in an arm, in its own folder.
#[derive(Clone, Debug)]
pub struct Job {
    /// The target.
    pub target: Target,
    /// The arm.
    pub arm: Arm,
    /// Its folder (scans, log, summary file).
    pub dir: PathBuf,
}

/// How every trial runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The `acus` executable.
    pub exe: PathBuf,
    /// The sim configuration.
    pub config: PathBuf,
    /// The world (`ideal`, `still`, `realistic` or a file).
    pub world: String,
    /// A trial still running after this is killed and failed.
    pub timeout: Duration,
    /// Keep each trial's DICOM series (otherwise deleted once its picture and summary are taken).
    pub keep_scans: bool,
    /// The arm whose final check-scan pictures go into the report.
    pub picture_arm: Arm,
    /// Pin worker i's trials to core `cores[i % len]`; empty: no pinning.
    pub cores: Vec<usize>,
}

/// A trial that ran.
#[derive(Clone, Debug)]
pub struct Finished {
    /// What ran.
    pub job: Job,
    /// Its row.
    pub trial: Trial,
    /// Its final check scan's picture, if its arm is the picture arm and it finished.
    pub picture: Option<TargetPicture>,
    /// Its summary file, if it wrote one.
    pub file: Option<TrialFile>,
}

/// Run `jobs` on one worker per lease; `on_done` sees each trial as it ends (in the order they end). Trials that fail
/// are rows; an error here is the study's own (a folder it cannot write, an executable it cannot start).
pub fn run(
    jobs: Vec<Job>,
    settings: &Settings,
    leases: &[DomainLease],
    mut on_done: impl FnMut(&Finished),
) -> Result<Vec<Finished>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the study's runtime")?;
    runtime.block_on(async {
        let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<_>>()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<Finished>>();
        let mut workers = Vec::new();
        for (i, lease) in leases.iter().enumerate() {
            let (queue, tx, settings, domain) = (Arc::clone(&queue), tx.clone(), settings.clone(), lease.id());
            let core = settings.cores.get(i % settings.cores.len().max(1)).copied();
            workers.push(tokio::spawn(async move {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(job) = next else { return };
                    let result = run_one(job, (domain, core), &settings).await;
                    let stop = result.is_err();
                    if tx.send(result).is_err() || stop {
                        return;
                    }
                }
            }));
        }
        drop(tx);
        let mut finished = Vec::new();
        while let Some(result) = rx.recv().await {
            match result {
                Ok(f) => {
                    on_done(&f);
                    finished.push(f);
                }
                Err(e) => {
                    // Dropping the runtime kills the other trials (kill_on_drop).
                    for w in &workers {
                        w.abort();
                    }
                    return Err(e);
                }
            }
        }
        Ok(finished)
    })
}

/// `v` (m) as the mm list `acus sim` takes.
fn mm_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{:.6}", x * 1e3))
        .collect::<Vec<_>>()
        .join(",")
}

async fn run_one(job: Job, (domain, core): (u16, Option<usize>), s: &Settings) -> Result<Finished> {
    let dir = &job.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("summary.json");
    // A file left by an earlier run in this folder must not stand in for this one.
    if json.exists() {
        std::fs::remove_file(&json).with_context(|| format!("removing {}", json.display()))?;
    }
    let create = |name: &str| {
        let path = dir.join(name);
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))
    };
    let t = &job.target;
    let mut command = tokio::process::Command::new(&s.exe);
    command
        .arg("sim")
        .arg("--config")
        .arg(&s.config)
        .args(["--no-record", "--world", &s.world, "--seed", &t.seed.to_string()])
        .args(["--lesion", &mm_list(t.lesion.as_slice())])
        .args(["--entry-xz", &mm_list(&t.entry_xz)])
        .args(["--check-slice", &job.arm.slice_mm.to_string()]);
    if !job.arm.correction {
        command.arg("--no-correction");
    }
    command
        .arg("--summary-json")
        .arg(&json)
        .arg("--out")
        .arg(dir)
        .env("ROS_DOMAIN_ID", domain.to_string())
        // Plain log lines in stderr.txt (a failed trial's reason is its last line).
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(create("stdout.txt")?))
        .stderr(Stdio::from(create("stderr.txt")?))
        .kill_on_drop(true);
    if let Some(core) = core {
        // SAFETY: between fork and exec the closure only fills a stack value and makes one system call
        // (sched_setaffinity), both async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(move || {
                pin_to(core);
                Ok(())
            });
        }
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", s.exe.display()))?;
    let status = match tokio::time::timeout(s.timeout, child.wait()).await {
        Ok(status) => Some(status.context("waiting for a trial")?),
        Err(_) => {
            // Best effort: the process may have ended just now; either way it is reaped below.
            let _ = child.start_kill();
            child.wait().await.context("waiting for a killed trial")?;
            None
        }
    };
    let wall_s = started.elapsed().as_secs_f64();
    let file = TrialFile::read(&json).ok();
    let arm = (job.arm.slice_mm, job.arm.correction);
    let failed = |reason: String| failed_row(t.index, t.seed, arm, (t.entry, t.lesion), &reason, wall_s);
    let trial = match (&file, status) {
        (Some(f), _) => match f.to_trial(t.index, job.arm.slice_mm, wall_s) {
            Ok(row) => row,
            Err(e) => failed(format!("its summary cannot be used: {e:#}"))?,
        },
        (None, None) => failed(format!(
            "timed out after {} s and was killed; last words: {}",
            s.timeout.as_secs_f64(),
            last_line(&dir.join("stderr.txt"))
        ))?,
        (None, Some(status)) => failed(format!("exited with {status}: {}", last_line(&dir.join("stderr.txt"))))?,
    };
    let picture = match &file {
        Some(f) if trial.outcome == Outcome::Done && job.arm == s.picture_arm => picture(f, &job),
        _ => None,
    };
    if !s.keep_scans {
        let scans = dir.join("scans");
        if scans.exists() {
            std::fs::remove_dir_all(&scans).with_context(|| format!("removing {}", scans.display()))?;
        }
    }
    Ok(Finished {
        job,
        trial,
        picture,
        file,
    })
}

/// The cores this process may run on, in order (none if the system will not say).
pub fn allowed_cores() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data (all zeros is the empty set); sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET reads the set within CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Pin the calling process (and the threads it starts later) to `core`; best effort: a trial that cannot be pinned
/// runs unpinned, which costs time, not figures.
fn pin_to(core: usize) {
    // SAFETY: as in `allowed_cores`; CPU_SET writes within the set, sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The final check scan's picture; none (and a warning) if it cannot be read: a missing picture costs the report one
/// figure, not the trial.
fn picture(f: &TrialFile, job: &Job) -> Option<TargetPicture> {
    let path = f.final_check.as_ref()?.picture.as_ref()?;
    match std::fs::read_to_string(path) {
        Ok(svg) => Some(TargetPicture {
            trial: job.target.index,
            slice_mm: job.arm.slice_mm,
            svg,
        }),
        Err(e) => {
            tracing::warn!("trial {}: picture {}: {e}", job.target.index, path.display());
            None
        }
    }
}

/// The last non-empty line of a trial's stderr (its error, as `acus sim` prints it last), without terminal colours.
fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.lines().rev().find(|l| !l.trim().is_empty()).map(strip_ansi))
        .unwrap_or_else(|| "(nothing on stderr)".into())
}

/// `line` without ANSI escape sequences (ESC [ … letter).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_words_are_the_last_line_without_colours() {
        assert_eq!(
            strip_ansi("\u{1b}[2mtime\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x "),
            "time  WARN x"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stderr.txt");
        std::fs::write(&path, "warn\nacus sim: it broke\n\n").unwrap();
        assert_eq!(last_line(&path), "acus sim: it broke");
        assert_eq!(last_line(&dir.path().join("none")), "(nothing on stderr)");
        assert_eq!(
            Arm {
                slice_mm: 2.5,
                correction: false
            }
            .label(),
            "s2.5-off"
        );
        assert_eq!(mm_list(&[0.02, -0.0305]), "20.000000,-30.500000");
    }

    #[test]
    fn this_process_may_run_on_at_least_one_core() {
        let cores = allowed_cores();
        assert!(!cores.is_empty());
        let n = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(cores.len(), n, "{cores:?}");
    }
}
