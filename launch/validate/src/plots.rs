//! The report's plots, drawn with plotters into SVG strings (no fonts, no files), over finished trials only.
//!
//! Box plots are drawn from rectangles and lines rather than plotters' `Boxplot` element so their quartiles use the
//! same percentile definition as the tables (linear interpolation, [`crate::percentile_sorted`]).

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::stats::{percentile_sorted, same_slice};
use crate::trial::{Outcome, Trial};
use crate::Error;

const SIZE: (u32, u32) = (720, 420);
const ON: RGBColor = RGBColor(31, 119, 180);
const OFF: RGBColor = RGBColor(230, 120, 20);
const FONT: &str = "sans-serif";
/// The y axis runs this far past the data, so the legend (upper right) sits in empty space above it.
const HEADROOM: f64 = 1.3;

/// One rendered plot and the sentence that says how to read it.
#[derive(Debug, Clone)]
pub(crate) struct Plot {
    pub caption: String,
    pub svg: String,
}

type Draw = Result<(), DrawingAreaErrorKind<std::io::Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Every plot there is data for, in report order; none when no trial finished.
pub(crate) fn plots(trials: &[Trial]) -> Result<Vec<Plot>, Error> {
    let done: Vec<&Trial> = trials.iter().filter(|t| t.outcome == Outcome::Done).collect();
    if done.is_empty() {
        return Ok(Vec::new());
    }
    let mut slices: Vec<f64> = Vec::new();
    for t in &done {
        if !slices.iter().any(|s| same_slice(*s, t.slice_mm)) {
            slices.push(t.slice_mm);
        }
    }
    slices.sort_by(f64::total_cmp);
    let arm =
        |correction: bool| -> Vec<&Trial> { done.iter().copied().filter(|t| t.correction == correction).collect() };
    let (on, off) = (arm(true), arm(false));
    let mut out = Vec::new();

    out.push(Plot {
        caption:
            "Histogram of ED (tip–target distance), every finished trial; bars side by side per bin: correction on, \
                  correction off."
                .into(),
        svg: render("ED histogram", |a| histogram(a, &on, &off))?,
    });
    if !on.is_empty() {
        out.push(Plot {
            caption:
                "ED per slice thickness, check-scan correction on. Box: quartiles (linear interpolation) with the \
                      median; whiskers: minimum to maximum."
                    .into(),
            svg: render("ED per slice", |a| {
                boxes(a, "ED per slice thickness (correction on)", &slices, &[(true, &on)])
            })?,
        });
    }
    out.push(Plot {
        caption:
            "ED with and without check-scan correction, side by side per slice thickness (box: quartiles and median; \
                  whiskers: minimum to maximum)."
                .into(),
        svg: render("ED with vs without correction", |a| {
            boxes(
                a,
                "ED with vs without correction",
                &slices,
                &[(true, &on), (false, &off)],
            )
        })?,
    });
    let tre = |ts: &[&Trial]| -> Vec<(f64, f64)> {
        ts.iter()
            .filter_map(|t| Some((t.predicted_tre_mm?, t.observed_tre_mm?)))
            .collect()
    };
    let (tre_on, tre_off) = (tre(&on), tre(&off));
    if !(tre_on.is_empty() && tre_off.is_empty()) {
        out.push(Plot {
            caption: "Predicted against observed TRE per finished trial; on the grey line y = x the registration's \
                      prediction was exact, above it the prediction was optimistic."
                .into(),
            svg: render("TRE scatter", |a| {
                scatter(
                    a,
                    "Predicted vs observed TRE",
                    "predicted TRE (mm)",
                    "observed TRE (mm)",
                    &tre_on,
                    &tre_off,
                    true,
                )
            })?,
        });
    }
    let depth = |ts: &[&Trial]| -> Vec<(f64, f64)> { ts.iter().filter_map(|t| Some((t.depth_mm, t.ed_mm?))).collect() };
    out.push(Plot {
        caption: "ED against planned insertion depth per finished trial.".into(),
        svg: render("ED vs depth", |a| {
            scatter(
                a,
                "ED vs planned depth",
                "planned depth (mm)",
                "ED (mm)",
                &depth(&on),
                &depth(&off),
                false,
            )
        })?,
    });
    Ok(out)
}

fn render(plot: &'static str, draw: impl for<'a> FnOnce(&Area<'a>) -> Draw) -> Result<String, Error> {
    let fail = |e: DrawingAreaErrorKind<std::io::Error>| Error::Plot {
        plot,
        message: e.to_string(),
    };
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        draw(&root).map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(buf)
}

/// An axis end a little past the largest value, never an empty range.
fn top(values: impl Iterator<Item = f64>) -> f64 {
    let m = values.fold(0.0_f64, f64::max);
    if m > 0.0 {
        m * 1.08
    } else {
        1.0
    }
}

fn arm_label(correction: bool) -> &'static str {
    if correction {
        "correction on"
    } else {
        "correction off"
    }
}

fn histogram(root: &Area<'_>, on: &[&Trial], off: &[&Trial]) -> Draw {
    let ed = |ts: &[&Trial]| -> Vec<f64> { ts.iter().filter_map(|t| t.ed_mm).collect() };
    let (on, off) = (ed(on), ed(off));
    let n = on.len() + off.len();
    let x_max = top(on.iter().chain(&off).copied());
    // √n bins, 5–30: enough to show a shape, few enough that a bin holds several trials.
    let bins = ((n as f64).sqrt().ceil() as usize).clamp(5, 30);
    let width = x_max / bins as f64;
    let count = |vs: &[f64]| -> Vec<i32> {
        let mut c = vec![0; bins];
        for v in vs {
            let i = ((v / width) as usize).min(bins - 1);
            if let Some(slot) = c.get_mut(i) {
                *slot += 1;
            }
        }
        c
    };
    let (c_on, c_off) = (count(&on), count(&off));
    let y_max = (f64::from(c_on.iter().chain(&c_off).copied().max().unwrap_or(0)) * HEADROOM).ceil() as i32 + 1;
    let mut chart = ChartBuilder::on(root)
        .caption("ED, all finished trials", (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("ED (mm)")
        .y_desc("trials")
        .draw()?;
    for (counts, color, offset, correction, values) in [(&c_on, ON, 0.0, true, &on), (&c_off, OFF, 0.5, false, &off)] {
        if values.is_empty() {
            continue;
        }
        chart
            .draw_series(counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| {
                let x0 = (i as f64 + offset) * width;
                Rectangle::new([(x0, 0), (x0 + width / 2.0, *c)], color.filled())
            }))?
            .label(arm_label(correction))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    legend(&mut chart)?;
    Ok(())
}

fn boxes(root: &Area<'_>, title: &str, slices: &[f64], arms: &[(bool, &[&Trial])]) -> Draw {
    let k = slices.len();
    let y_max = top(arms.iter().flat_map(|(_, ts)| ts.iter().filter_map(|t| t.ed_mm))) * HEADROOM;
    let label = |v: &f64| -> String {
        let i = v.round();
        match slices.get(i as usize) {
            Some(s) if (v - i).abs() < 1e-6 && i >= 0.0 => format!("{s} mm"),
            _ => String::new(),
        }
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..(k as f64 - 0.5), 0.0..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(k + 1)
        .x_label_formatter(&label)
        .x_desc("slice thickness")
        .y_desc("ED (mm)")
        .draw()?;
    let half = if arms.len() > 1 { 0.14 } else { 0.2 };
    for (j, (correction, trials)) in arms.iter().enumerate() {
        let color = if *correction { ON } else { OFF };
        let shift = if arms.len() > 1 { (j as f64 - 0.5) * 0.36 } else { 0.0 };
        let mut filled = Vec::new();
        let mut lines = Vec::new();
        for (i, s) in slices.iter().enumerate() {
            let mut v: Vec<f64> = trials
                .iter()
                .filter(|t| same_slice(t.slice_mm, *s))
                .filter_map(|t| t.ed_mm)
                .collect();
            v.sort_by(f64::total_cmp);
            let q = |p: f64| percentile_sorted(&v, p);
            let (Some(lo), Some(q1), Some(med), Some(q3), Some(hi)) = (q(0.0), q(0.25), q(0.5), q(0.75), q(1.0)) else {
                continue;
            };
            let x = i as f64 + shift;
            filled.push([(x - half, q1), (x + half, q3)]);
            lines.push(vec![(x - half, med), (x + half, med)]);
            lines.push(vec![(x, q3), (x, hi)]);
            lines.push(vec![(x, q1), (x, lo)]);
            lines.push(vec![(x - half / 2.0, hi), (x + half / 2.0, hi)]);
            lines.push(vec![(x - half / 2.0, lo), (x + half / 2.0, lo)]);
        }
        if filled.is_empty() {
            continue;
        }
        chart
            .draw_series(filled.iter().map(|r| Rectangle::new(*r, color.mix(0.3).filled())))?
            .label(arm_label(*correction))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.mix(0.5).filled()));
        chart.draw_series(filled.iter().map(|r| Rectangle::new(*r, color.stroke_width(1))))?;
        chart.draw_series(lines.into_iter().map(|l| PathElement::new(l, color.stroke_width(2))))?;
    }
    legend(&mut chart)?;
    Ok(())
}

fn scatter(
    root: &Area<'_>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    on: &[(f64, f64)],
    off: &[(f64, f64)],
    identity: bool,
) -> Draw {
    let all = || on.iter().chain(off);
    let y_max = top(all().map(|p| p.1));
    let (x_min, x_max) = if identity {
        let m = top(all().map(|p| p.0)).max(y_max);
        (0.0, m)
    } else {
        let lo = all().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let hi = all().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.05).max(1.0);
        (lo - pad, hi + pad)
    };
    let y_max = (if identity { x_max } else { y_max }) * HEADROOM;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw()?;
    if identity {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (x_max, x_max)],
                RGBColor(128, 128, 128),
            )))?
            .label("y = x")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], RGBColor(128, 128, 128)));
    }
    for (points, correction) in [(on, true), (off, false)] {
        if points.is_empty() {
            continue;
        }
        let color = if correction { ON } else { OFF };
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.mix(0.8).filled())))?
            .label(arm_label(correction))
            .legend(move |(x, y)| Circle::new((x + 5, y), 3, color.filled()));
    }
    legend(&mut chart)?;
    Ok(())
}

fn legend<'a, X: Ranged, Y: Ranged>(chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>) -> Draw {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::tests::{done, stopped};

    #[test]
    fn one_svg_per_plot_and_nothing_external() {
        let trials = vec![
            done(0, 1.0, true, 0.4),
            done(1, 3.0, true, 0.9),
            done(0, 1.0, false, 2.0),
            stopped(2, 1.0, true, "x"),
        ];
        let p = plots(&trials).unwrap();
        assert_eq!(p.len(), 5);
        for plot in &p {
            assert_eq!(plot.svg.matches("<svg").count(), 1, "{}", plot.caption);
            assert!(!plot.svg.contains("<script"));
            assert_eq!(plot.svg.matches("http").count(), 1, "only the xmlns namespace");
        }
    }

    #[test]
    fn no_finished_trial_no_plots() {
        assert!(plots(&[stopped(0, 1.0, true, "x")]).unwrap().is_empty());
        assert!(plots(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_single_arm_and_a_single_value_still_draw() {
        let p = plots(&[done(0, 1.0, false, 0.0)]).unwrap();
        assert!(p.len() >= 3, "{}", p.len());
    }
}
