//! The study folder: trials.csv, summary.json, report.md, report.html. Everything is computed before the first file
//! is written, and each file appears whole (temp file in the folder, then rename), so a crash never leaves a torn
//! report next to a good CSV.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::criteria::SuccessCriterion;
use crate::stats::{summarize, Summary};
use crate::study::{StudyInfo, SummaryFile, TargetPicture, SUMMARY_VERSION};
use crate::trial::Trial;
use crate::{plots, report, report_html, report_md, Error};

/// The files of a study folder.
pub const TRIALS_CSV: &str = "trials.csv";
/// See [`TRIALS_CSV`].
pub const SUMMARY_JSON: &str = "summary.json";
/// See [`TRIALS_CSV`].
pub const REPORT_MD: &str = "report.md";
/// See [`TRIALS_CSV`].
pub const REPORT_HTML: &str = "report.html";

/// Write the study folder `dir` (created if missing; existing files of these names are replaced) and return the
/// summary it contains. Trials, info and pictures are all checked first; on any refusal nothing is written.
pub fn write_study(
    dir: &Path,
    info: &StudyInfo,
    trials: &[Trial],
    pictures: &[TargetPicture],
) -> Result<Summary, Error> {
    info.validate()?;
    let summary = summarize(trials, &info.criteria)?;
    let csv = trials_csv(&dir.join(TRIALS_CSV), trials)?;
    let file = SummaryFile {
        version: SUMMARY_VERSION,
        info: info.clone(),
        summary: summary.clone(),
    };
    let mut json = serde_json::to_vec_pretty(&file).map_err(|source| Error::Json {
        path: dir.join(SUMMARY_JSON),
        source,
    })?;
    json.push(b'\n');
    let plots = plots::plots(trials)?;
    let pictures = pictures
        .iter()
        .enumerate()
        .map(|(i, p)| Ok((p, report_html::embeddable_svg(i, p)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let blocks = report::build(info, trials, &summary, &plots, &pictures);
    let md = report_md::render(&blocks);
    let html = report_html::render(&blocks);

    fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    write_atomic(&dir.join(TRIALS_CSV), &csv)?;
    write_atomic(&dir.join(SUMMARY_JSON), &json)?;
    write_atomic(&dir.join(REPORT_MD), md.as_bytes())?;
    write_atomic(&dir.join(REPORT_HTML), html.as_bytes())?;
    Ok(summary)
}

fn trials_csv(path: &Path, trials: &[Trial]) -> Result<Vec<u8>, Error> {
    let csv_err = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    for t in trials {
        w.serialize(t).map_err(csv_err)?;
    }
    w.into_inner().map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })
}

/// Read and validate every row of a trials.csv; the first bad row fails the whole read, naming its line.
pub fn read_trials(csv_path: &Path) -> Result<Vec<Trial>, Error> {
    let csv_err = |source| Error::Csv {
        path: csv_path.to_path_buf(),
        source,
    };
    let mut r = csv::Reader::from_path(csv_path).map_err(csv_err)?;
    let headers = r.headers().map_err(csv_err)?.clone();
    let mut trials = Vec::new();
    for record in r.records() {
        let record = record.map_err(csv_err)?;
        let trial: Trial = record.deserialize(Some(&headers)).map_err(csv_err)?;
        trial.validate().map_err(|e| Error::Row {
            path: csv_path.to_path_buf(),
            line: record.position().map_or(0, |p| p.line()),
            source: Box::new(e),
        })?;
        trials.push(trial);
    }
    Ok(trials)
}

/// Recompute a study's figures from its trials.csv alone, e.g. to check a summary.json or re-judge other criteria.
pub fn summarize_csv(csv_path: &Path, criteria: &[SuccessCriterion]) -> Result<Summary, Error> {
    summarize(&read_trials(csv_path)?, criteria)
}

/// Read a summary.json.
pub fn read_summary(json_path: &Path) -> Result<SummaryFile, Error> {
    let bytes = fs::read(json_path).map_err(|source| Error::Io {
        path: json_path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: json_path.to_path_buf(),
        source,
    })
}

/// Write `bytes` to `path` whole: a temp file beside it (same file system, so the rename is atomic), synced, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |p: &Path| {
        let p: PathBuf = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&tmp);
    } else if let Ok(d) = fs::File::open(dir) {
        // Make the rename itself durable where the platform allows syncing a directory; not fatal where it does not.
        let _ = d.sync_all();
    }
    result
}
