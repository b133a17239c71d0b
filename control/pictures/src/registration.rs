//! The registration picture: fiducials found in the CT against the frame model mapped into the CT by the fitted
//! transform, in two orthogonal projections, with each residual drawn ten times its length so sub-millimetre errors
//! can be seen at the scale of a 100 mm frame.

use acus_control::frames::{Ct, Point};
use std::fmt::Write as _;

use crate::encode::{mm, num, xml_escape};

/// Residual lines are drawn this many times their length (and the picture says so).
pub const RESIDUAL_EXAGGERATION: f64 = 10.0;

const PANEL: f64 = 340.0;
const PAD: f64 = 36.0;
const TITLE_H: f64 = 40.0;
const GAP: f64 = 20.0;
const FOUND: &str = "#40d060";
const MODEL: &str = "#3fbfff";
const RESIDUAL: &str = "#ff5050";

/// One projection: which coordinate is horizontal, which vertical, and whether vertical grows upwards.
struct View {
    name: &'static str,
    label: &'static str,
    axes: (usize, usize),
    up: bool,
}

/// The registration picture: `found[i]` (fiducial centres detected in the CT) against `model_in_ct[i]` (the same
/// fiducial of the frame model, mapped into the CT by the registration), projected on x–y (axial: posterior down)
/// and x–z (coronal: superior up), one scale for both, in mm. Pairs are by index; unpaired points are drawn without a
/// residual. Each fiducial gets one `class="found"` marker per projection (ids `found-xy-i`, `found-xz-i`).
pub fn registration_svg(found: &[Point<Ct>], model_in_ct: &[Point<Ct>], fre_m: f64) -> String {
    let pairs = found.len().min(model_in_ct.len());
    let residual_end = |i: usize| {
        let (f, m) = (found[i].coords, model_in_ct[i].coords);
        m + (f - m) * RESIDUAL_EXAGGERATION
    };
    // One bounding box for both panels (cube, so the projections share the scale).
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    let all = found
        .iter()
        .chain(model_in_ct)
        .map(|p| p.coords)
        .chain((0..pairs).map(residual_end));
    for p in all.filter(|p| p.iter().all(|c| c.is_finite())) {
        for k in 0..3 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    if lo[0] > hi[0] {
        (lo, hi) = ([-0.05; 3], [0.05; 3]);
    }
    let extent = (0..3).map(|k| hi[k] - lo[k]).fold(10e-3, f64::max) * 1.1;
    let centre: Vec<f64> = (0..3).map(|k| (lo[k] + hi[k]) / 2.0).collect();
    let scale = (PANEL - 2.0 * PAD) / extent; // SVG units per metre

    let width = 2.0 * PANEL + GAP;
    let height = TITLE_H + PANEL + 5.0 * 17.0;
    let title = format!("registration: {} fiducials found, FRE {} mm", found.len(), mm(fre_m));
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<title>{t}</title>
<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>
<text id="title" x="8" y="22" font-size="16">{t}</text>
<text id="exaggeration" x="8" y="36" font-size="12" fill="{RESIDUAL}">residual lines drawn ×{x:.0} (exaggerated) from the model point towards the fiducial found</text>
"##,
        w = num(width),
        h = num(height),
        t = xml_escape(&title),
        x = RESIDUAL_EXAGGERATION
    );
    let views = [
        View {
            name: "xy",
            label: "x–y (axial, posterior down)",
            axes: (0, 1),
            up: false,
        },
        View {
            name: "xz",
            label: "x–z (coronal, superior up)",
            axes: (0, 2),
            up: true,
        },
    ];
    for (n, view) in views.iter().enumerate() {
        let left = n as f64 * (PANEL + GAP);
        let top = TITLE_H;
        let (h_axis, v_axis) = view.axes;
        let to_svg = |p: &nalgebra::Point3<f64>| {
            let x = left + PANEL / 2.0 + (p[h_axis] - centre[h_axis]) * scale;
            let dy = (p[v_axis] - centre[v_axis]) * scale;
            let y = top + PANEL / 2.0 + if view.up { -dy } else { dy };
            (x, y)
        };
        let names = ["x", "y", "z"];
        let _ = writeln!(
            s,
            r##"<g id="panel-{name}"><rect x="{l}" y="{t}" width="{p}" height="{p}" fill="none" stroke="#808080"/><text x="{lx}" y="{ly}" font-size="12">{label}</text><text x="{ax}" y="{ay}" font-size="11">{hn} (mm) →</text><text x="{vx}" y="{vy}" font-size="11">{vn} (mm) {arrow}</text>"##,
            name = view.name,
            l = num(left),
            t = num(top),
            p = num(PANEL),
            lx = num(left + 6.0),
            ly = num(top + 15.0),
            label = xml_escape(view.label),
            ax = num(left + PANEL - 70.0),
            ay = num(top + PANEL - 6.0),
            hn = names[h_axis],
            vx = num(left + 6.0),
            vy = num(top + 30.0),
            vn = names[v_axis],
            arrow = if view.up { "↑" } else { "↓" },
        );
        let half = PANEL / 2.0 / scale;
        let range = |k: usize| (centre[k] - half, centre[k] + half);
        axis_ticks(&mut s, (left, top), range(h_axis), range(v_axis), &to_svg, view.axes);
        for (i, m) in model_in_ct.iter().enumerate() {
            let (x, y) = to_svg(&m.coords);
            let _ = writeln!(
                s,
                r#"<rect class="model" id="model-{name}-{i}" x="{}" y="{}" width="8" height="8" fill="none" stroke="{MODEL}" stroke-width="1.5"/>"#,
                num(x - 4.0),
                num(y - 4.0),
                name = view.name
            );
        }
        for (i, f) in found.iter().enumerate() {
            let (x, y) = to_svg(&f.coords);
            let _ = writeln!(
                s,
                r#"<circle class="found" id="found-{name}-{i}" cx="{}" cy="{}" r="4" fill="none" stroke="{FOUND}" stroke-width="1.5"/>"#,
                num(x),
                num(y),
                name = view.name
            );
        }
        for i in 0..pairs {
            let (x1, y1) = to_svg(&model_in_ct[i].coords);
            let (x2, y2) = to_svg(&residual_end(i));
            let r = found[i].distance(&model_in_ct[i]);
            // Labels near the panel's right edge grow leftwards so they stay inside it.
            let (lx, anchor) = if x2 > left + PANEL - 80.0 {
                (x2 - 5.0, "end")
            } else {
                (x2 + 5.0, "start")
            };
            let _ = writeln!(
                s,
                r#"<line class="residual" id="residual-{name}-{i}" x1="{}" y1="{}" x2="{}" y2="{}" stroke="{RESIDUAL}" stroke-width="1.5"/><text x="{}" y="{}" font-size="10" fill="{RESIDUAL}" text-anchor="{anchor}">{i}: {} mm</text>"#,
                num(x1),
                num(y1),
                num(x2),
                num(y2),
                num(lx),
                num(y2 - 5.0),
                mm(r),
                name = view.name
            );
        }
        s.push_str("</g>\n");
    }
    legend(&mut s, TITLE_H + PANEL + 8.0, found.len(), model_in_ct.len());
    s.push_str("</svg>\n");
    s
}

/// Round-number ticks (5, 10, 20, 50 or 100 mm apart, at most 7 per axis) along the bottom and left edges of a panel,
/// so absolute CT positions can be read off the picture.
fn axis_ticks(
    s: &mut String,
    (left, top): (f64, f64),
    h_range: (f64, f64),
    v_range: (f64, f64),
    to_svg: &dyn Fn(&nalgebra::Point3<f64>) -> (f64, f64),
    (h_axis, v_axis): (usize, usize),
) {
    let ticks = |(lo, hi): (f64, f64)| -> Vec<f64> {
        let span_mm = (hi - lo) * 1e3;
        let step = [5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
            .into_iter()
            .find(|st| span_mm / st <= 7.0)
            .unwrap_or(1000.0);
        let first = (lo * 1e3 / step).ceil() as i64;
        let last = (hi * 1e3 / step).floor() as i64;
        (first..=last).take(16).map(|n| n as f64 * step * 1e-3).collect()
    };
    if !(h_range.0.is_finite() && h_range.1.is_finite() && v_range.0.is_finite() && v_range.1.is_finite()) {
        return;
    }
    let (bottom, right) = (top + PANEL, left + PANEL);
    for value in ticks(h_range) {
        let mut p = nalgebra::Point3::origin();
        p[h_axis] = value;
        let (x, _) = to_svg(&p);
        if x < left + 30.0 || x > right - 80.0 {
            continue; // leave the corners to the axis names
        }
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{a}" x2="{x}" y2="{b}" stroke="#808080"/><text x="{x}" y="{c}" font-size="10" text-anchor="middle" fill="#606060">{v:.0}</text>"##,
            x = num(x),
            a = num(bottom - 6.0),
            b = num(bottom),
            c = num(bottom - 9.0),
            v = value * 1e3,
        );
    }
    for value in ticks(v_range) {
        let mut p = nalgebra::Point3::origin();
        p[v_axis] = value;
        let (_, y) = to_svg(&p);
        if y < top + 40.0 || y > bottom - 20.0 {
            continue;
        }
        let _ = writeln!(
            s,
            r##"<line x1="{a}" y1="{y}" x2="{b}" y2="{y}" stroke="#808080"/><text x="{c}" y="{ty}" font-size="10" fill="#606060">{v:.0}</text>"##,
            a = num(left),
            b = num(left + 6.0),
            c = num(left + 9.0),
            y = num(y),
            ty = num(y + 3.5),
            v = value * 1e3,
        );
    }
}

fn legend(s: &mut String, top: f64, n_found: usize, n_model: usize) {
    let mismatch = if n_found == n_model {
        String::new()
    } else {
        format!(" ({n_found} found, {n_model} model points: unpaired ones have no residual)")
    };
    let rows = [
        format!(
            r#"<circle cx="20" cy="{}" r="4" fill="none" stroke="{FOUND}" stroke-width="1.5"/>"#,
            num(top + 8.0)
        ),
        format!(
            r#"<rect x="16" y="{}" width="8" height="8" fill="none" stroke="{MODEL}" stroke-width="1.5"/>"#,
            num(top + 17.0 + 4.0)
        ),
        format!(
            r#"<line x1="10" y1="{y}" x2="30" y2="{y}" stroke="{RESIDUAL}" stroke-width="1.5"/>"#,
            y = num(top + 34.0 + 8.0)
        ),
    ];
    let labels = [
        "fiducial found in the CT".to_string(),
        format!("frame model mapped into the CT{mismatch}"),
        format!("residual (found − model) ×{RESIDUAL_EXAGGERATION:.0}, labelled with fiducial index and true length"),
    ];
    let _ = writeln!(s, r#"<g id="legend">"#);
    for (k, (swatch, label)) in rows.iter().zip(labels.iter()).enumerate() {
        let _ = writeln!(
            s,
            r#"{swatch}<text x="38" y="{}">{}</text>"#,
            num(top + k as f64 * 17.0 + 12.0),
            xml_escape(label)
        );
    }
    s.push_str("</g>\n");
}
