//! The registration picture: one marker per fiducial in each projection, residuals drawn ×10 and labelled.

mod common;

use acus_control::frames::{Ct, Point};
use acus_pictures::{registration_svg, RESIDUAL_EXAGGERATION};
use common::*;

fn frame() -> (Vec<Point<Ct>>, Vec<Point<Ct>>) {
    let model = vec![
        mm(-40.0, -30.0, 100.0),
        mm(40.0, -30.0, 100.0),
        mm(40.0, 30.0, 110.0),
        mm(-40.0, 30.0, 120.0),
        mm(0.0, 0.0, 140.0),
        mm(10.0, -20.0, 90.0),
    ];
    // Residuals of 0.2–0.7 mm in different directions.
    let offsets = [
        (0.3, -0.2, 0.1),
        (-0.4, 0.1, 0.2),
        (0.1, 0.5, -0.3),
        (-0.2, -0.3, 0.6),
        (0.0, 0.2, 0.1),
        (0.5, 0.0, -0.2),
    ];
    let found = model
        .iter()
        .zip(offsets)
        .map(|(m, (x, y, z))| Point::new(m.coords + nalgebra::Vector3::new(x, y, z) * 1e-3))
        .collect();
    (found, model)
}

#[test]
fn one_marker_per_fiducial_in_each_projection() {
    let (found, model) = frame();
    let svg = registration_svg(&found, &model, 0.45e-3);
    if let Some(out) = std::env::var_os("ACUS_PICTURES_OUT") {
        acus_pictures::write_svg(std::path::Path::new(&out).join("registration-synthetic.svg"), &svg).unwrap();
    }
    let markers = elements_by_class(&svg, "found");
    assert_eq!(markers.len(), 2 * found.len());
    for view in ["xy", "xz"] {
        for i in 0..found.len() {
            assert!(
                element_by_id(&svg, &format!("found-{view}-{i}")).is_some(),
                "no found-{view}-{i}"
            );
            assert!(element_by_id(&svg, &format!("model-{view}-{i}")).is_some());
            assert!(element_by_id(&svg, &format!("residual-{view}-{i}")).is_some());
        }
    }
    assert_eq!(elements_by_class(&svg, "model").len(), 2 * model.len());
    assert_eq!(elements_by_class(&svg, "residual").len(), 2 * found.len());
    assert!(svg.contains("registration: 6 fiducials found, FRE 0.45 mm"));
    assert!(svg.contains("×10 (exaggerated)"));
    assert_self_contained(&svg);
    assert_tags_balanced(&svg);
}

#[test]
fn residual_lines_are_ten_times_the_residual_and_labelled_with_its_length() {
    let (found, model) = frame();
    let svg = registration_svg(&found, &model, 0.45e-3);
    let centre = |id: &str| {
        let t = element_by_id(&svg, id).unwrap();
        (attr_f64(t, "cx"), attr_f64(t, "cy"))
    };
    // SVG units per metre from two found markers far apart (x–y panel: x right, y down).
    let (a, b) = (centre("found-xy-0"), centre("found-xy-2"));
    let d_world =
        ((found[2].coords.x - found[0].coords.x).powi(2) + (found[2].coords.y - found[0].coords.y).powi(2)).sqrt();
    let scale = (b.0 - a.0).hypot(b.1 - a.1) / d_world;
    assert!(b.1 > a.1, "posterior (+y) is drawn downwards");
    for i in 0..found.len() {
        let line = element_by_id(&svg, &format!("residual-xy-{i}")).unwrap();
        let len = (attr_f64(line, "x2") - attr_f64(line, "x1")).hypot(attr_f64(line, "y2") - attr_f64(line, "y1"));
        let r = found[i].coords - model[i].coords;
        let want = r.x.hypot(r.y) * RESIDUAL_EXAGGERATION * scale;
        assert!((len - want).abs() < 0.01, "residual {i}: {len:.3} vs {want:.3} units");
        assert!(svg.contains(&format!(">{i}: {:.2} mm</text>", r.norm() * 1e3)));
    }
    // x–z panel: superior (+z) is up.
    let (p, q) = (centre("found-xz-0"), centre("found-xz-4"));
    assert!(q.1 < p.1, "fiducial 4 is 40 mm superior to 0 and must be drawn higher");
}

#[test]
fn empty_and_unpaired_inputs_still_draw() {
    let svg = registration_svg(&[], &[], f64::NAN);
    assert_tags_balanced(&svg);
    assert!(elements_by_class(&svg, "found").is_empty());
    assert!(svg.contains("FRE n/a mm"));
    let (found, model) = frame();
    let svg = registration_svg(&found[..4], &model, 0.5e-3);
    assert_eq!(elements_by_class(&svg, "found").len(), 8);
    assert_eq!(elements_by_class(&svg, "residual").len(), 8);
    assert!(svg.contains("unpaired ones have no residual"));
    assert_tags_balanced(&svg);
}
