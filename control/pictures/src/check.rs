//! The check-scan picture: an oblique CT reformat through the planned path and the tip found, with the plan and what
//! the check scan found drawn over it, as one self-contained SVG.

use acus_control::frames::{Ct, Point};
use acus_control::registration::CtVolume;
use nalgebra::{Unit, Vector3};
use std::fmt::Write as _;

use crate::encode::{base64, grey_png, mm, num, xml_escape};
use crate::plane::{plane_axes, reformat, SlicePlane};

/// What one check scan found, in the CT frame of that scan (metres, DICOM LPS).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckView {
    /// Check-scan number (1 for the first), for the title.
    pub n: usize,
    /// Planned skin entry.
    pub entry: Point<Ct>,
    /// Planned target.
    pub target: Point<Ct>,
    /// The target as found again in this scan (the planned one when it was not found).
    pub target_found: Point<Ct>,
    /// The needle tip found.
    pub tip_found: Point<Ct>,
    /// Fitted shaft direction behind the tip, pointing towards the tip (as `NeedleObservation::direction`); `None`
    /// draws the needle from the tip straight to the entry.
    pub shaft_dir: Option<Unit<Vector3<f64>>>,
    /// Distance of the tip from the target as the analysis reports it, m (for the title: the picture does not
    /// recompute it, so it shows the number the procedure acted on).
    pub to_target_m: f64,
}

/// How the check-scan picture is sampled. `Default` is the documented choice.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckRender {
    /// Pixel size, m (0.25 mm: finer than the 0.5–1 mm CT voxels, so the trilinear reformat is not what limits it).
    pub pixel_m: f64,
    /// Margin around entry, targets, tip and needle, m.
    pub margin_m: f64,
    /// Smallest side of the window, m (so a tip near the entry still shows its surroundings and the legend fits).
    pub min_side_m: f64,
    /// Largest image side, pixels; a longer path gets coarser pixels rather than a huge file.
    pub max_side_px: usize,
    /// Grey 0 and 255 at these HU, clipped: −200…400 HU shows fat/soft tissue/lesion contrast and saturates metal.
    pub window_hu: (f64, f64),
}

impl Default for CheckRender {
    fn default() -> Self {
        Self {
            pixel_m: 0.25e-3,
            margin_m: 10e-3,
            min_side_m: 30e-3,
            max_side_px: 2048,
            window_hu: (-200.0, 400.0),
        }
    }
}

/// A rendered picture and the plane it shows (to map points to it and back).
#[derive(Clone, Debug)]
pub struct Picture {
    /// The self-contained SVG document (no script, no external reference).
    pub svg: String,
    /// The reformatted plane and where it sits in the SVG.
    pub plane: SlicePlane,
}

impl Picture {
    /// Writes the SVG to `path` (see [`write_svg`](crate::write_svg)).
    pub fn write_svg(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        crate::write_svg(path, &self.svg)
    }
}

/// Height of the title band above the image, SVG units.
const TITLE_H: f64 = 34.0;
/// Height of one legend row.
const ROW_H: f64 = 17.0;
/// Narrowest SVG, so the title and legend fit beside a small image.
const MIN_WIDTH: f64 = 470.0;

const PLANNED: &str = "#3fbfff";
const FOUND_TARGET: &str = "#ffc000";
const NEEDLE: &str = "#ff5050";

/// The check-scan picture with the default sampling ([`CheckRender::default`]).
pub fn check_scan_svg(volume: &CtVolume, view: &CheckView) -> Picture {
    check_scan_svg_with(volume, view, &CheckRender::default())
}

/// The check-scan picture: the plane through the planned entry→target line and the tip found (through the line and
/// CT z, or y, when the tip is on the line), over a window covering entry, both targets, tip and needle plus the
/// margin. Points off the plane (the target found, the shaft) are drawn at their projections and the legend gives
/// their distance from the plane. Never panics: non-finite points are left out of the window and drawn at 0.
pub fn check_scan_svg_with(volume: &CtVolume, view: &CheckView, render: &CheckRender) -> Picture {
    let (u, v) = plane_axes(&view.entry, &view.target, &view.tip_found);
    let needle_end = needle_back_end(view);
    let anchor = [view.entry, view.target, view.tip_found]
        .into_iter()
        .find(Point::is_finite)
        .unwrap_or_else(|| volume.center());
    let plane = window(
        anchor,
        u,
        v,
        &[view.entry, view.target, view.target_found, view.tip_found, needle_end],
        render,
    );
    let pixels = reformat(volume, &plane, render.window_hu.0, render.window_hu.1);
    let png = grey_png(&pixels, plane.size_px.0, plane.size_px.1);

    let (img_w, img_h) = (plane.size_px.0 as f64, plane.size_px.1 as f64);
    let width = img_w.max(MIN_WIDTH);
    let legend_top = TITLE_H + img_h + 8.0;
    let height = legend_top + 7.0 * ROW_H + 8.0;
    let mut s = String::with_capacity(pixels.len() / 2 + 4096);
    let title = format!("check scan {}: tip {} mm from the target", view.n, mm(view.to_target_m));
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<title>{t}</title>
<rect x="0" y="0" width="{w}" height="{h}" fill="#101010"/>
<text id="title" x="8" y="22" font-size="16" fill="#ffffff">{t}</text>
"##,
        w = num(width),
        h = num(height),
        t = xml_escape(&title)
    );
    // The picture's geometry, for any reader that wants to map a drawn point back to the patient (DICOM LPS, mm):
    // world = corner + (x - offset_x) * pixel * u + (y - offset_y) * pixel * v.
    let c = plane.corner.coords * 1e3;
    let _ = writeln!(
        s,
        "<desc id=\"plane\">corner_lps_mm={:.6},{:.6},{:.6} u={:.9},{:.9},{:.9} v={:.9},{:.9},{:.9} pixel_mm={:.9} offset={},{}</desc>",
        c.x,
        c.y,
        c.z,
        plane.u.x,
        plane.u.y,
        plane.u.z,
        plane.v.x,
        plane.v.y,
        plane.v.z,
        plane.pixel_m * 1e3,
        num(plane.offset.0),
        num(plane.offset.1)
    );
    match png {
        Ok(bytes) => {
            let _ = writeln!(
                s,
                r#"<image id="slice" x="{x}" y="{y}" width="{w}" height="{h}" preserveAspectRatio="none" style="image-rendering:pixelated" href="data:image/png;base64,{b}"/>"#,
                x = num(plane.offset.0),
                y = num(plane.offset.1),
                w = num(img_w),
                h = num(img_h),
                b = base64(&bytes)
            );
        }
        Err(e) => {
            let _ = writeln!(
                s,
                r##"<text x="8" y="{}" fill="#ff8080">slice not encoded: {}</text>"##,
                num(TITLE_H + 20.0),
                xml_escape(&e.to_string())
            );
        }
    }

    let px = |p: &Point<Ct>| plane.to_pixel(p);
    let (ex, ey, _) = px(&view.entry);
    let (tx, ty, _) = px(&view.target);
    let (fx, fy, f_out) = px(&view.target_found);
    let (nx, ny, _) = px(&view.tip_found);
    let (bx, by, b_out) = px(&needle_end);
    // Planned path and target.
    let _ = writeln!(
        s,
        r#"<line id="planned-path" x1="{}" y1="{}" x2="{}" y2="{}" stroke="{PLANNED}" stroke-width="1.5" stroke-dasharray="6 4"/>"#,
        num(ex),
        num(ey),
        num(tx),
        num(ty)
    );
    let _ = writeln!(
        s,
        r#"<circle id="planned-target" cx="{}" cy="{}" r="10" fill="none" stroke="{PLANNED}" stroke-width="1.5"/>"#,
        num(tx),
        num(ty)
    );
    // Needle found: half-transparent so the metal in the image stays visible under it.
    let _ = writeln!(
        s,
        r#"<line id="needle-found" x1="{}" y1="{}" x2="{}" y2="{}" stroke="{NEEDLE}" stroke-width="1.2" stroke-opacity="0.7"/>"#,
        num(nx),
        num(ny),
        num(bx),
        num(by)
    );
    // Target found: a cross.
    let _ = writeln!(
        s,
        r#"<g id="target-found" stroke="{FOUND_TARGET}" stroke-width="1.5"><line x1="{}" y1="{}" x2="{}" y2="{}"/><line x1="{}" y1="{}" x2="{}" y2="{}"/></g>"#,
        num(fx - 7.0),
        num(fy - 7.0),
        num(fx + 7.0),
        num(fy + 7.0),
        num(fx - 7.0),
        num(fy + 7.0),
        num(fx + 7.0),
        num(fy - 7.0)
    );
    let _ = writeln!(
        s,
        r#"<circle id="tip" cx="{}" cy="{}" r="6" fill="none" stroke="{NEEDLE}" stroke-width="1.5"/>"#,
        num(nx),
        num(ny)
    );
    scale_bar(&mut s, &plane);

    // Legend.
    let drift = view.target_found.distance(&view.target);
    let shaft = if view.shaft_dir.is_some() {
        format!(
            "needle found (fitted shaft, {} mm off the plane at its far end)",
            mm(b_out.abs())
        )
    } else {
        "needle found (no shaft fit: drawn tip to entry)".to_string()
    };
    let rows: [(&str, &str, String); 5] = [
        ("dash", PLANNED, "planned path (entry → target)".into()),
        ("circle", PLANNED, "planned target".into()),
        (
            "cross",
            FOUND_TARGET,
            format!(
                "target found ({} mm from planned, {} mm off the plane)",
                mm(drift),
                mm(f_out.abs())
            ),
        ),
        ("line", NEEDLE, shaft),
        ("circle", NEEDLE, "tip found".into()),
    ];
    let _ = writeln!(s, r#"<g id="legend">"#);
    for (k, (kind, colour, label)) in rows.iter().enumerate() {
        let y = legend_top + k as f64 * ROW_H + 8.0;
        let swatch = match *kind {
            "dash" => format!(
                r#"<line x1="10" y1="{y}" x2="30" y2="{y}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="6 4"/>"#,
                y = num(y)
            ),
            "line" => format!(
                r#"<line x1="10" y1="{y}" x2="30" y2="{y}" stroke="{colour}" stroke-width="1.5"/>"#,
                y = num(y)
            ),
            "cross" => format!(
                r#"<path d="M14 {a} L26 {b} M14 {b} L26 {a}" stroke="{colour}" stroke-width="1.5"/>"#,
                a = num(y - 6.0),
                b = num(y + 6.0)
            ),
            _ => format!(
                r#"<circle cx="20" cy="{}" r="5" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                num(y)
            ),
        };
        let _ = writeln!(
            s,
            r##"{swatch}<text x="38" y="{}" fill="#e0e0e0">{}</text>"##,
            num(y + 4.0),
            xml_escape(label)
        );
    }
    let notes = [
        "oblique reformat through the planned path and the tip found (CT frame, LPS)".to_string(),
        format!(
            "{} mm/pixel, trilinear; window {:.0}…{:.0} HU",
            num(plane.pixel_m * 1e3),
            render.window_hu.0,
            render.window_hu.1
        ),
    ];
    for (k, note) in notes.iter().enumerate() {
        let _ = writeln!(
            s,
            r##"<text x="10" y="{}" fill="#a0a0a0" font-size="11">{}</text>"##,
            num(legend_top + (5.0 + k as f64) * ROW_H + 10.0),
            xml_escape(note)
        );
    }
    s.push_str("</g>\n</svg>\n");
    Picture { svg: s, plane }
}

/// Where the drawn needle ends behind the tip: back along the fitted shaft as far as the entry lies along it (at
/// least 10 mm), or the entry itself without a fit.
fn needle_back_end(view: &CheckView) -> Point<Ct> {
    match view.shaft_dir {
        Some(dir) => {
            let along = (view.tip_found.coords - view.entry.coords).dot(&dir);
            let len = if along.is_finite() { along.max(10e-3) } else { 10e-3 };
            Point::new(view.tip_found.coords - dir.into_inner() * len)
        }
        None => view.entry,
    }
}

/// The pixel window on the plane `(anchor, u, v)` covering the finite `points` plus the margin.
fn window(
    anchor: Point<Ct>,
    u: Unit<Vector3<f64>>,
    v: Unit<Vector3<f64>>,
    points: &[Point<Ct>],
    r: &CheckRender,
) -> SlicePlane {
    let (mut a0, mut a1, mut b0, mut b1) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for p in points.iter().filter(|p| p.is_finite()) {
        let d = p.coords - anchor.coords;
        let (a, b) = (d.dot(&u), d.dot(&v));
        (a0, a1, b0, b1) = (a0.min(a), a1.max(a), b0.min(b), b1.max(b));
    }
    let grow = |lo: f64, hi: f64| {
        let (lo, hi) = (lo - r.margin_m, hi + r.margin_m);
        let extra = (r.min_side_m - (hi - lo)).max(0.0) / 2.0;
        (lo - extra, hi + extra)
    };
    let ((a0, a1), (b0, b1)) = (grow(a0, a1), grow(b0, b1));
    let longest = (a1 - a0).max(b1 - b0);
    let max_px = r.max_side_px.max(16) as f64;
    let wanted = if r.pixel_m.is_finite() && r.pixel_m > 0.0 {
        r.pixel_m
    } else {
        0.25e-3
    };
    let pixel_m = wanted.max(longest / max_px);
    let side = |len: f64| ((len / pixel_m).ceil() as usize).clamp(1, r.max_side_px.max(16));
    let corner = Point::new(anchor.coords + u.into_inner() * a0 + v.into_inner() * b0);
    SlicePlane {
        corner,
        u,
        v,
        pixel_m,
        size_px: (side(a1 - a0), side(b1 - b0)),
        offset: (0.0, TITLE_H),
    }
}

/// A 10 mm bar in the image's lower-left corner, white on a black outline so it shows on any grey.
fn scale_bar(s: &mut String, plane: &SlicePlane) {
    let len = 10e-3 / plane.pixel_m;
    let x0 = plane.offset.0 + 12.0;
    let y = plane.offset.1 + plane.size_px.1 as f64 - 12.0;
    let _ = writeln!(
        s,
        r##"<g id="scale-bar"><line x1="{a}" y1="{y}" x2="{b}" y2="{y}" stroke="#000000" stroke-width="5"/><line x1="{a}" y1="{y}" x2="{b}" y2="{y}" stroke="#ffffff" stroke-width="2"/><text x="{a}" y="{ty}" fill="#ffffff" stroke="#000000" stroke-width="0.6" paint-order="stroke">10 mm</text></g>"##,
        a = num(x0),
        b = num(x0 + len),
        y = num(y),
        ty = num(y - 7.0)
    );
}
