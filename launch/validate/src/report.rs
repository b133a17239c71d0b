//! The report's content, once, as a small document model: report.md and report.html render the same blocks, so
//! the two cannot drift apart.

use crate::criteria::VerdictResult;
use crate::plots::Plot;
use crate::stats::{GroupSummary, Stats, Summary};
use crate::study::{StudyInfo, TargetPicture};
use crate::trial::{Outcome, Trial};

/// A piece of the report. Text is plain; each renderer escapes it for its format.
#[derive(Debug, Clone)]
pub(crate) enum Block {
    /// Heading, level 1–3.
    Heading(u8, String),
    Paragraph(String),
    /// Preformatted text (command line, noise model, controller configuration).
    Pre(String),
    List(Vec<String>),
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// A figure: its SVG goes into the HTML only; markdown gets the caption and a pointer to report.html.
    Figure {
        caption: String,
        svg: String,
    },
}

/// The label of each metric row in the per-slice tables, with its unit.
pub(crate) const METRIC_ROWS: [&str; 7] = [
    "ED (mm)",
    "ND (mm)",
    "depth error (mm)",
    "angle error (°)",
    "FRE (mm)",
    "predicted TRE (mm)",
    "observed TRE (mm)",
];

fn metric_stats(g: &GroupSummary) -> [Option<Stats>; 7] {
    [
        g.ed_mm,
        g.nd_mm,
        g.depth_error_mm,
        g.angle_error_deg,
        g.fre_mm,
        g.predicted_tre_mm,
        g.observed_tre_mm,
    ]
}

/// Two decimals: 10 µm and 0.01°, finer than any CT-derived figure here deserves; summary.json has full precision.
/// A value that rounds to zero prints as 0.00, not -0.00.
pub(crate) fn fig(v: f64) -> String {
    let s = format!("{v:.2}");
    if s == "-0.00" {
        "0.00".into()
    } else {
        s
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), fig)
}

pub(crate) fn on_off(correction: bool) -> &'static str {
    if correction {
        "on"
    } else {
        "off"
    }
}

/// The whole report, in order.
pub(crate) fn build(
    info: &StudyInfo,
    trials: &[Trial],
    summary: &Summary,
    plots: &[Plot],
    pictures: &[(&TargetPicture, String)],
) -> Vec<Block> {
    let mut b = vec![Block::Heading(1, "Phantom accuracy study".into())];
    configuration(&mut b, info, trials);
    criteria(&mut b, summary);
    counts(&mut b, summary);
    accuracy(&mut b, summary);
    definitions(&mut b);
    unfinished(&mut b, trials);
    figures(&mut b, plots, pictures);
    b
}

fn configuration(b: &mut Vec<Block>, info: &StudyInfo, trials: &[Trial]) {
    b.push(Block::Heading(2, "Configuration".into()));
    let slices: Vec<String> = info.slice_mm.iter().map(|s| format!("{s}")).collect();
    let row = |k: &str, v: String| vec![k.to_string(), v];
    b.push(Block::Table {
        head: vec!["item".into(), "value".into()],
        rows: vec![
            row("software (git revision)", info.git_revision.clone()),
            row("world", info.world.clone()),
            row("started", info.started.clone()),
            row("wall time (s)", format!("{:.1}", info.wall_s)),
            row("seed", info.seed.to_string()),
            row("trials requested", info.trials_requested.to_string()),
            row("trial rows recorded", trials.len().to_string()),
            row("slice thicknesses (mm)", slices.join(", ")),
        ],
    });
    b.push(Block::Paragraph("Command line:".into()));
    b.push(Block::Pre(info.command_line.clone()));
    b.push(Block::Heading(3, "World and noise model".into()));
    b.push(Block::Pre(info.noise_model.clone()));
    b.push(Block::Heading(3, "Controller".into()));
    b.push(Block::Pre(info.controller.clone()));
}

fn criteria(b: &mut Vec<Block>, summary: &Summary) {
    b.push(Block::Heading(2, "Success criteria (declared before the run)".into()));
    if summary.verdicts.is_empty() {
        b.push(Block::Paragraph("No success criterion was declared.".into()));
        return;
    }
    let rows = summary
        .verdicts
        .iter()
        .map(|v| {
            vec![
                v.criterion.describe(),
                opt(v.figure),
                v.n.to_string(),
                v.result.label().to_string(),
            ]
        })
        .collect();
    b.push(Block::Table {
        head: vec!["criterion".into(), "figure".into(), "n".into(), "verdict".into()],
        rows,
    });
    let failed = summary
        .verdicts
        .iter()
        .filter(|v| v.result != VerdictResult::Pass)
        .count();
    b.push(Block::Paragraph(if failed == 0 {
        "Every criterion passed.".into()
    } else {
        format!(
            "{failed} of {} criteria did not pass (FAIL or NO DATA).",
            summary.verdicts.len()
        )
    }));
}

fn counts(b: &mut Vec<Block>, summary: &Summary) {
    b.push(Block::Heading(2, "Trials".into()));
    let mean = |s: Option<Stats>| opt(s.map(|s| s.mean));
    let median = |s: Option<Stats>| opt(s.map(|s| s.median));
    let mut rows: Vec<Vec<String>> = summary
        .groups
        .iter()
        .map(|g| {
            vec![
                format!("{}", g.slice_mm),
                on_off(g.correction).into(),
                g.counts.total().to_string(),
                g.counts.done.to_string(),
                g.counts.stopped.to_string(),
                g.counts.failed.to_string(),
                mean(g.check_scans),
                median(g.sim_s),
            ]
        })
        .collect();
    let c = summary.counts;
    rows.push(vec![
        "all".into(),
        "".into(),
        c.total().to_string(),
        c.done.to_string(),
        c.stopped.to_string(),
        c.failed.to_string(),
        "".into(),
        "".into(),
    ]);
    let head = [
        "slice (mm)",
        "correction",
        "trials",
        "done",
        "stopped",
        "failed",
        "check scans (mean)",
        "sim. time (median, s)",
    ];
    b.push(Block::Table {
        head: head.iter().map(|s| s.to_string()).collect(),
        rows,
    });
}

fn accuracy(b: &mut Vec<Block>, summary: &Summary) {
    b.push(Block::Heading(2, "Accuracy per slice thickness".into()));
    if summary.counts.done == 0 {
        b.push(Block::Paragraph(
            "No trial finished: there are no accuracy figures.".into(),
        ));
        return;
    }
    b.push(Block::Paragraph(
        "Finished trials only. Each metric with check-scan correction on and off; mean ± SD, median, 95th percentile, \
         maximum."
            .into(),
    ));
    let mut slices: Vec<f64> = Vec::new();
    for g in &summary.groups {
        if !slices.iter().any(|s| crate::stats::same_slice(*s, g.slice_mm)) {
            slices.push(g.slice_mm);
        }
    }
    for s in slices {
        let arms: Vec<&GroupSummary> = summary
            .groups
            .iter()
            .filter(|g| crate::stats::same_slice(g.slice_mm, s))
            .collect();
        b.push(Block::Heading(3, format!("Slice thickness {s} mm")));
        let mut rows = Vec::new();
        for (m, label) in METRIC_ROWS.iter().enumerate() {
            for g in &arms {
                let st = metric_stats(g).get(m).copied().flatten();
                rows.push(match st {
                    Some(st) => vec![
                        label.to_string(),
                        on_off(g.correction).into(),
                        st.n.to_string(),
                        format!("{} ± {}", fig(st.mean), opt(st.sd)),
                        fig(st.median),
                        fig(st.p95),
                        fig(st.max),
                    ],
                    None => {
                        let mut r = vec![label.to_string(), on_off(g.correction).into(), "0".into()];
                        r.extend(std::iter::repeat_n("—".to_string(), 4));
                        r
                    }
                });
            }
        }
        let head = ["metric", "correction", "n", "mean ± SD", "median", "p95", "max"];
        b.push(Block::Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows,
        });

        let rows = arms
            .iter()
            .filter_map(|g| {
                let bp = g.bias_precision?;
                let p = bp.precision_mm;
                Some(vec![
                    on_off(g.correction).into(),
                    bp.n.to_string(),
                    fig(bp.bias_mm[0]),
                    fig(bp.bias_mm[1]),
                    fig(bp.bias_mm[2]),
                    fig(bp.bias_norm_mm),
                    opt(p.map(|p| p[0])),
                    opt(p.map(|p| p[1])),
                    opt(p.map(|p| p[2])),
                    opt(bp.precision_radial_mm),
                ])
            })
            .collect::<Vec<_>>();
        if !rows.is_empty() {
            b.push(Block::Paragraph(format!(
                "Bias and precision (ASTM F2554), CT LPS, mm, slice {s} mm:"
            )));
            let head = [
                "correction",
                "n",
                "bias x",
                "bias y",
                "bias z",
                "|bias|",
                "SD x",
                "SD y",
                "SD z",
                "radial precision",
            ];
            b.push(Block::Table {
                head: head.iter().map(|s| s.to_string()).collect(),
                rows,
            });
        }
    }
}

fn definitions(b: &mut Vec<Block>) {
    b.push(Block::Heading(2, "Definitions".into()));
    b.push(Block::List(
        [
            "ED: Euclidean distance from the needle tip to the target.",
            "ND: normal distance of the target from the needle axis (the line through the tip along the needle): the \
             lateral error.",
            "Depth error: tip − target along the needle axis; + = tip beyond the target.",
            "Angle error: angle between the planned entry→target line and the needle's actual axis.",
            "Entry angle (trials.csv): the planned path's angle from the CT's vertical (anterior–posterior) axis.",
            "SD: sample standard deviation (n − 1). Percentiles (median, p95, box-plot quartiles): linear interpolation \
             between closest ranks (numpy's default).",
            "Bias: mean error vector tip − target. Precision: sample SD of the error per axis; radial precision \
             √(SDx² + SDy² + SDz²).",
            "Predicted TRE: the registration's own estimate at the target; observed TRE: its actual error there.",
            "Only finished (done) trials enter the figures; stopped and failed trials are counted and listed.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    ));
}

fn unfinished(b: &mut Vec<Block>, trials: &[Trial]) {
    b.push(Block::Heading(2, "Trials that did not finish".into()));
    let items: Vec<String> = trials
        .iter()
        .filter(|t| t.outcome != Outcome::Done)
        .map(|t| {
            format!(
                "trial {} (seed {}, slice {} mm, correction {}): {}: {}",
                t.trial,
                t.seed,
                t.slice_mm,
                on_off(t.correction),
                t.outcome.as_str(),
                t.reason.trim()
            )
        })
        .collect();
    if items.is_empty() {
        b.push(Block::Paragraph("Every trial finished.".into()));
    } else {
        b.push(Block::List(items));
    }
}

fn figures(b: &mut Vec<Block>, plots: &[Plot], pictures: &[(&TargetPicture, String)]) {
    b.push(Block::Heading(2, "Figures".into()));
    if plots.is_empty() {
        b.push(Block::Paragraph("No plots: no trial finished.".into()));
    }
    for (i, p) in plots.iter().enumerate() {
        b.push(Block::Figure {
            caption: format!("Figure {}. {}", i + 1, p.caption),
            svg: p.svg.clone(),
        });
    }
    b.push(Block::Heading(3, "CT pictures per target".into()));
    if pictures.is_empty() {
        b.push(Block::Paragraph("No CT pictures were given.".into()));
    }
    for (pic, svg) in pictures {
        b.push(Block::Figure {
            caption: format!("Trial {}, slice {} mm: final check scan.", pic.trial, pic.slice_mm),
            svg: svg.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_to_two_decimals_without_negative_zero() {
        assert_eq!(fig(0.125_1), "0.13");
        assert_eq!(fig(-0.004), "0.00");
        assert_eq!(fig(-0.006), "-0.01");
    }
}
