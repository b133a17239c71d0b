//! What travels with a study's figures (software revision, start time, the configuration's text) and the table the
//! command prints at the end.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use acus_validate::{Metric, Statistic, Stats, SuccessCriterion, Summary};

/// The source's git revision (`git rev-parse --short HEAD`), `-dirty` if `git status --porcelain` lists anything;
/// "unknown" where git or the repository is missing. Asked of the tree this binary was built from.
pub fn git_revision(repo: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) if !rev.is_empty() => match git(&["status", "--porcelain"]) {
            Some(status) if status.is_empty() => rev,
            Some(_) => format!("{rev}-dirty"),
            None => format!("{rev} (status unknown)"),
        },
        _ => "unknown".into(),
    }
}

/// `t` as RFC 3339 UTC, to the second (`2026-12-07T04:18:41Z`).
pub fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm, proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The command line as typed, quoted where a shell would need it.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./,=:+@".contains(c)) {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The top-level YAML section `key:` of `text`, with its comments and nested lines (the lines up to the next
/// top-level key).
pub fn yaml_section(text: &str, key: &str) -> Option<String> {
    let head = format!("{key}:");
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&head));
    let first = lines.next()?;
    let mut out = vec![first];
    out.extend(lines.take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#')));
    while out.last().is_some_and(|l| l.trim().is_empty() || l.starts_with('#')) {
        out.pop();
    }
    Some(out.join("\n"))
}

/// The success criteria issue 12 set for the controller: ED median ≤ 0.5 mm and 95th percentile ≤ 1.0 mm at 1 mm
/// slices with correction.
pub fn default_criteria() -> Vec<SuccessCriterion> {
    let ed = |statistic, limit| SuccessCriterion {
        metric: Metric::Ed,
        statistic,
        slice_mm: 1.0,
        correction: true,
        limit,
    };
    vec![ed(Statistic::Median, 0.5), ed(Statistic::P95, 1.0)]
}

/// `METRIC:STATISTIC:LIMIT:SLICE_MM[:on|off]`, e.g. `ed:p95:1.0:1` or `angle:max:2:5:off`.
pub fn parse_criterion(text: &str) -> Result<SuccessCriterion, String> {
    let parts: Vec<&str> = text.split(':').map(str::trim).collect();
    if !(4..=5).contains(&parts.len()) {
        return Err(format!(
            "{text:?}: give METRIC:STATISTIC:LIMIT:SLICE_MM[:on|off], e.g. ed:p95:1.0:1"
        ));
    }
    let metric = match parts[0].to_ascii_lowercase().as_str() {
        "ed" => Metric::Ed,
        "nd" => Metric::Nd,
        "depth" => Metric::DepthError,
        "abs-depth" => Metric::AbsDepthError,
        "angle" => Metric::AngleError,
        "predicted-tre" => Metric::PredictedTre,
        "observed-tre" => Metric::ObservedTre,
        m => {
            return Err(format!(
                "metric {m:?}: one of ed, nd, depth, abs-depth, angle, predicted-tre, observed-tre"
            ))
        }
    };
    let statistic = match parts[1].to_ascii_lowercase().as_str() {
        "mean" => Statistic::Mean,
        "sd" => Statistic::Sd,
        "median" => Statistic::Median,
        "p95" => Statistic::P95,
        "max" => Statistic::Max,
        s => return Err(format!("statistic {s:?}: one of mean, sd, median, p95, max")),
    };
    let number = |s: &str, what: &str| s.parse::<f64>().map_err(|e| format!("{what} {s:?}: {e}"));
    let correction = match parts.get(4).map(|s| s.to_ascii_lowercase()) {
        None => true,
        Some(s) if s == "on" => true,
        Some(s) if s == "off" => false,
        Some(s) => return Err(format!("{s:?}: the arm is on or off (correction)")),
    };
    let c = SuccessCriterion {
        metric,
        statistic,
        limit: number(parts[2], "limit")?,
        slice_mm: number(parts[3], "slice thickness")?,
        correction,
    };
    c.validate(0).map_err(|e| e.to_string())?;
    Ok(c)
}

/// The figures per arm and the verdicts, as the command prints them.
pub fn table(summary: &Summary) -> String {
    let mut t = String::new();
    let f = |s: Option<Stats>, pick: fn(&Stats) -> f64| s.map_or_else(|| "—".into(), |s| format!("{:.2}", pick(&s)));
    let mean_sd = |s: Option<Stats>| {
        s.map_or_else(
            || "—".into(),
            |s| {
                format!(
                    "{:.2} ± {}",
                    s.mean,
                    s.sd.map_or_else(|| "—".into(), |v| format!("{v:.2}"))
                )
            },
        )
    };
    let _ = writeln!(
        t,
        "{:>6} {:>4} {:>9} | {:>12} {:>6} {:>6} {:>6} | {:>6} {:>6} {:>8} | {:>8} {:>8}",
        "slice",
        "corr",
        "done/all",
        "ED mean±SD",
        "median",
        "p95",
        "max",
        "ND med",
        "ND p95",
        "angle md",
        "pTRE md",
        "oTRE md"
    );
    let _ = writeln!(
        t,
        "{:>6} {:>4} {:>9} | {:>12} {:>6} {:>6} {:>6} | {:>6} {:>6} {:>8} | {:>8} {:>8}",
        "mm", "", "", "mm", "mm", "mm", "mm", "mm", "mm", "°", "mm", "mm"
    );
    for g in &summary.groups {
        let _ = writeln!(
            t,
            "{:>6} {:>4} {:>9} | {:>12} {:>6} {:>6} {:>6} | {:>6} {:>6} {:>8} | {:>8} {:>8}",
            g.slice_mm,
            if g.correction { "on" } else { "off" },
            format!("{}/{}", g.counts.done, g.counts.total()),
            mean_sd(g.ed_mm),
            f(g.ed_mm, |s| s.median),
            f(g.ed_mm, |s| s.p95),
            f(g.ed_mm, |s| s.max),
            f(g.nd_mm, |s| s.median),
            f(g.nd_mm, |s| s.p95),
            f(g.angle_error_deg, |s| s.median),
            f(g.predicted_tre_mm, |s| s.median),
            f(g.observed_tre_mm, |s| s.median),
        );
    }
    for v in &summary.verdicts {
        let _ = writeln!(
            t,
            "criterion: {}: {} ({} trials{})",
            v.criterion.describe(),
            v.result.label(),
            v.n,
            v.figure.map_or_else(String::new, |x| format!(", figure {x:.2}"))
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_are_civil() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400 + 3_723); // 2000-02-29 01:02:03
        assert_eq!(utc(t), "2000-02-29T01:02:03Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_796_444_321);
        assert_eq!(utc(t), "2026-12-05T04:18:41Z");
    }

    #[test]
    fn criteria_parse_with_their_arm() {
        let c = parse_criterion("ed:p95:1.0:1").unwrap();
        assert_eq!(c, default_criteria()[1]);
        let c = parse_criterion("angle:max:2:5:off").unwrap();
        assert_eq!(
            (c.metric, c.statistic, c.limit, c.slice_mm, c.correction),
            (Metric::AngleError, Statistic::Max, 2.0, 5.0, false)
        );
        for bad in [
            "ed:p95:1.0",
            "xx:p95:1:1",
            "ed:p99:1:1",
            "ed:p95:one:1",
            "ed:p95:1:0",
            "ed:p95:1:1:maybe",
        ] {
            assert!(parse_criterion(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_controller_section_is_cut_at_the_next_top_level_key() {
        let text = "a: 1\n# about b\ncontroller:\n  x: 1\n  # note\n  y: { z: 2 }\n\n# world\nworld: w\n";
        assert_eq!(
            yaml_section(text, "controller").unwrap(),
            "controller:\n  x: 1\n  # note\n  y: { z: 2 }"
        );
        assert!(yaml_section(text, "none").is_none());
    }
}
