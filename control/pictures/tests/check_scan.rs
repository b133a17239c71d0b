//! The check-scan picture over a synthetic CT whose needle, tip and lesion are known: the markers sit where the
//! things are, the embedded slice shows them there, and the document is self-contained.

mod common;

use acus_control::frames::{Ct, Point};
use acus_pictures::{check_scan_svg, CheckView, Picture};
use base64::Engine as _;
use common::*;
use nalgebra::{Unit, Vector3};

struct Scene {
    entry: Point<Ct>,
    target: Point<Ct>,
    target_found: Point<Ct>,
    tip: Point<Ct>,
    dir: Unit<Vector3<f64>>,
}

/// An oblique needle from the entry that missed the planned line (it ends 1.5–2 mm off it), a lesion that moved.
fn scene() -> Scene {
    let entry = mm(-15.0, -12.0, -10.0);
    let target = mm(12.0, 10.0, 8.0);
    let target_found = mm(13.0, 9.5, 8.5);
    let tip = mm(8.0, 9.0, 4.0);
    let dir = Unit::new_normalize(tip.coords - entry.coords);
    Scene {
        entry,
        target,
        target_found,
        tip,
        dir,
    }
}

fn render(s: &Scene, n: usize) -> Picture {
    let volume = synthetic_ct(&s.entry, &s.tip, 0.6e-3, &s.target_found, 3e-3);
    let view = CheckView {
        n,
        entry: s.entry,
        target: s.target,
        target_found: s.target_found,
        tip_found: s.tip,
        shaft_dir: Some(s.dir),
        to_target_m: s.tip.distance(&s.target_found),
    };
    check_scan_svg(&volume, &view)
}

/// The embedded PNG, decoded: (width, height, grey pixels).
fn embedded_image(svg: &str) -> (usize, usize, Vec<u8>) {
    let tag = element_by_id(svg, "slice").expect("image element");
    let href = attr(tag, "href");
    let b64 = href.strip_prefix("data:image/png;base64,").expect("PNG data URI");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("valid base64");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0u8; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, buf)
}

fn grey_at(pic: &Picture, img: &(usize, usize, Vec<u8>), p: &Point<Ct>) -> u8 {
    let (x, y, _) = pic.plane.to_pixel(p);
    let (c, r) = pic.plane.pixel_at(x, y).expect("point inside the image");
    img.2[r * img.0 + c]
}

#[test]
fn tip_marker_maps_back_to_the_known_tip_within_a_pixel() {
    let s = scene();
    let pic = render(&s, 3);
    let tip = element_by_id(&pic.svg, "tip").expect("tip marker");
    let (cx, cy) = (attr_f64(tip, "cx"), attr_f64(tip, "cy"));
    let back = pic.plane.to_world(cx, cy);
    let err = back.distance(&s.tip);
    assert!(err <= 0.25e-3, "tip marker is {:.3} mm from the tip", err * 1e3);
    // The plane really contains the planned line and the tip (so the slice shows the tip, not a projection).
    for p in [&s.entry, &s.target, &s.tip] {
        assert!(pic.plane.to_pixel(p).2.abs() < 1e-9);
    }
    assert!((pic.plane.pixel_m - 0.25e-3).abs() < 1e-12);
    let title = element_by_id(&pic.svg, "title").expect("title");
    let text_end = pic.svg.find(title).unwrap() + title.len();
    let want = format!(
        "check scan 3: tip {:.2} mm from the target",
        s.tip.distance(&s.target_found) * 1e3
    );
    assert!(
        pic.svg[text_end..].starts_with(&want),
        "title: {}",
        &pic.svg[text_end..text_end + 60]
    );
}

#[test]
fn embedded_slice_shows_the_needle_under_the_tip_marker_and_tissue_beyond_it() {
    let s = scene();
    let pic = render(&s, 1);
    let img = embedded_image(&pic.svg);
    assert_eq!((img.0, img.1), pic.plane.size_px);
    let tag = element_by_id(&pic.svg, "slice").unwrap();
    assert!((attr_f64(tag, "x") - pic.plane.offset.0).abs() < 1e-9);
    assert!((attr_f64(tag, "y") - pic.plane.offset.1).abs() < 1e-9);
    assert!((attr_f64(tag, "width") - img.0 as f64).abs() < 1e-9);

    let marker = element_by_id(&pic.svg, "tip").unwrap();
    let (c, r) = pic
        .plane
        .pixel_at(attr_f64(marker, "cx"), attr_f64(marker, "cy"))
        .expect("marker on the image");
    let under = img.2[r * img.0 + c];
    assert!(under >= 250, "pixel under the tip marker is {under}, not needle-bright");
    let beyond = Point::new(s.tip.coords + s.dir.into_inner() * 3e-3);
    let g = grey_at(&pic, &img, &beyond);
    // 40 HU in a −200…400 window is grey 102: tissue, neither metal nor the black outside the volume.
    assert!((80..=130).contains(&g), "3 mm beyond the tip: grey {g}, want tissue");
    // Along the shaft the slice is bright; beside it (2 mm off, in the plane) it is tissue.
    let mid = Point::new(s.tip.coords - s.dir.into_inner() * 10e-3);
    assert!(grey_at(&pic, &img, &mid) >= 250);
    let side = Point::new(mid.coords + pic.plane.v.into_inner() * 2e-3);
    assert!((80..=130).contains(&grey_at(&pic, &img, &side)));
    // The lesion (100 HU, grey 128) at the target found is brighter than the tissue around it.
    let lesion = grey_at(&pic, &img, &s.target_found);
    assert!((118..=138).contains(&lesion), "lesion grey {lesion}");
}

#[test]
fn document_is_self_contained_and_well_formed() {
    let pic = render(&scene(), 2);
    assert!(pic.svg.starts_with("<svg "));
    assert!(pic.svg.trim_end().ends_with("</svg>"));
    assert_self_contained(&pic.svg);
    assert_tags_balanced(&pic.svg);
    for id in [
        "planned-path",
        "planned-target",
        "target-found",
        "needle-found",
        "tip",
        "scale-bar",
        "legend",
    ] {
        assert!(element_by_id(&pic.svg, id).is_some(), "no element {id}");
    }
}

#[test]
fn overlays_sit_on_their_points_and_the_scale_bar_is_10_mm() {
    let s = scene();
    let pic = render(&s, 1);
    let near = |x: f64, y: f64, p: &Point<Ct>| {
        let (px, py, _) = pic.plane.to_pixel(p);
        (x - px).hypot(y - py) < 0.01
    };
    let path = element_by_id(&pic.svg, "planned-path").unwrap();
    assert!(near(attr_f64(path, "x1"), attr_f64(path, "y1"), &s.entry));
    assert!(near(attr_f64(path, "x2"), attr_f64(path, "y2"), &s.target));
    let t = element_by_id(&pic.svg, "planned-target").unwrap();
    assert!(near(attr_f64(t, "cx"), attr_f64(t, "cy"), &s.target));
    // The needle runs from the tip back along the shaft to the entry (entry is on the shaft here).
    let needle = element_by_id(&pic.svg, "needle-found").unwrap();
    assert!(near(attr_f64(needle, "x1"), attr_f64(needle, "y1"), &s.tip));
    assert!(near(attr_f64(needle, "x2"), attr_f64(needle, "y2"), &s.entry));
    // Window covers every point with the margin.
    for p in [&s.entry, &s.target, &s.target_found, &s.tip] {
        let (x, y, _) = pic.plane.to_pixel(p);
        assert!(pic.plane.pixel_at(x - 39.0, y - 39.0).is_some() && pic.plane.pixel_at(x + 39.0, y + 39.0).is_some());
    }
    let bar_start = pic.svg.find(r#"id="scale-bar""#).unwrap();
    let line = &pic.svg[bar_start..][pic.svg[bar_start..].find("<line").unwrap()..];
    let len_m = (attr_f64(line, "x2") - attr_f64(line, "x1")) * pic.plane.pixel_m;
    assert!((len_m - 10e-3).abs() < 1e-6, "scale bar {:.3} mm", len_m * 1e3);
    assert!(pic.svg.contains(">10 mm</text>"));
}

#[test]
fn tip_on_the_planned_line_uses_the_plane_through_the_line_and_ct_z() {
    let entry = mm(-10.0, -5.0, 0.0);
    let target = mm(10.0, 5.0, 0.0);
    let tip = mm(6.0, 3.0, 0.0);
    let volume = synthetic_ct(&entry, &tip, 0.6e-3, &target, 3e-3);
    let view = CheckView {
        n: 1,
        entry,
        target,
        target_found: target,
        tip_found: tip,
        shaft_dir: None,
        to_target_m: tip.distance(&target),
    };
    let pic = check_scan_svg(&volume, &view);
    let up = Point::new(tip.coords + Vector3::z() * 5e-3);
    for p in [&entry, &target, &tip, &up] {
        assert!(pic.plane.to_pixel(p).2.abs() < 1e-9);
    }
    let img = embedded_image(&pic.svg);
    let marker = element_by_id(&pic.svg, "tip").unwrap();
    let (c, r) = pic
        .plane
        .pixel_at(attr_f64(marker, "cx"), attr_f64(marker, "cy"))
        .unwrap();
    assert!(img.2[r * img.0 + c] >= 250);
    // No shaft fit: the needle is drawn to the entry, and the legend says so.
    assert!(pic.svg.contains("no shaft fit"));
}

#[test]
fn degenerate_points_still_give_a_valid_document() {
    let p = mm(0.0, 0.0, 0.0);
    let volume = synthetic_ct(&mm(-1.0, 0.0, 0.0), &p, 0.6e-3, &p, 1e-3);
    let nan = Point::xyz(f64::NAN, 0.0, 0.0);
    for (entry, target, tip) in [(p, p, p), (nan, nan, nan), (p, nan, p)] {
        let view = CheckView {
            n: 0,
            entry,
            target,
            target_found: target,
            tip_found: tip,
            shaft_dir: Some(Vector3::x_axis()),
            to_target_m: f64::NAN,
        };
        let pic = check_scan_svg(&volume, &view);
        assert_self_contained(&pic.svg);
        assert_tags_balanced(&pic.svg);
        // Outside the image data (base64 may spell anything), no NaN or infinity reached the document.
        let data = pic.svg.find("base64,").map(|a| a..a + pic.svg[a..].find('"').unwrap());
        let text = match data {
            Some(r) => format!("{}{}", &pic.svg[..r.start], &pic.svg[r.end..]),
            None => pic.svg.clone(),
        };
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
        assert!(pic.svg.contains("tip n/a mm from the target"));
    }
}

#[test]
fn write_svg_writes_the_whole_document() {
    let pic = render(&scene(), 1);
    // To look at the picture: ACUS_PICTURES_OUT=/some/dir cargo test -p acus-pictures write_svg
    if let Some(out) = std::env::var_os("ACUS_PICTURES_OUT") {
        pic.write_svg(std::path::Path::new(&out).join("check-scan-synthetic.svg"))
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("check-1.svg");
    pic.write_svg(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pic.svg);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary file left behind"
    );
}
