//! The needle–tissue model against closed forms: exact arcs, straight lines, pivots mid-insertion, saturating target
//! shift, typed errors.

use acus_control::frames::{Ct, Point};
use acus_sim_needle::{GuidePose, NeedleError, NeedleInTissue, TissueModel};
use nalgebra::{Unit, UnitQuaternion, Vector3};

fn guide(dir: Vector3<f64>, roll: f64) -> GuidePose {
    let g = GuidePose::along(Point::xyz(0.01, -0.02, 0.03), Unit::new_normalize(dir));
    // A holder twisted about the needle axis, as a yaw–pitch pivot leaves it.
    GuidePose {
        holder: g.holder * UnitQuaternion::from_axis_angle(&Vector3::z_axis(), roll),
        ..g
    }
}

/// Tip of a constant-curvature arc from `p` with heading `t`, bending direction `n`, after arc length `d`.
fn arc(p: &Vector3<f64>, t: &Vector3<f64>, n: &Vector3<f64>, k: f64, d: f64) -> Vector3<f64> {
    p + t * (k * d).sin() / k + n * (1.0 - (k * d).cos()) / k
}

#[test]
fn tip_follows_the_closed_form_arc_small_and_large_angles() {
    for (k, bevel, increments) in [
        (0.6, 0.3, vec![0.013, 0.0271, 0.0005, 0.04, 0.0394]),
        (20.0, -2.0, vec![0.05, 0.05, 0.05, 0.05]), // 4 rad: more than half a circle
    ] {
        let g = guide(Vector3::new(0.2, 0.9, -0.3), 0.7);
        let mut needle = NeedleInTissue::new(
            TissueModel {
                bevel_angle: bevel,
                ..TissueModel::ideal(k)
            },
            g,
            g.entry,
        )
        .unwrap();
        let (t, n) = (needle.heading().into_inner(), needle.bend_direction().into_inner());
        assert!(t.dot(&n).abs() < 1e-12);
        let e = g.entry.coords.coords;
        let mut d = 0.0;
        for inc in increments {
            needle.advance(inc).unwrap();
            d += inc;
            let expected = arc(&e, &t, &n, k, d);
            assert!((needle.tip().coords.coords - expected).norm() < 1e-9, "κ {k} d {d}");
            assert!((needle.depth() - d).abs() < 1e-15);
        }
        // Every path point lies on the circle of radius 1/κ about e + n/κ, in the (t, n) plane.
        let centre = e + n / k;
        for p in needle.path() {
            let r = p.coords.coords - centre;
            assert!((r.norm() - 1.0 / k).abs() < 1e-9);
            assert!(r.dot(&t.cross(&n)).abs() < 1e-9);
        }
        if k < 1.0 {
            // Small angles: lateral deflection κd²/2 (the next term is −κ³d⁴/24).
            let lateral = (needle.tip().coords.coords - e).dot(&n);
            assert!(
                (lateral - k * d * d / 2.0).abs() <= k.powi(3) * d.powi(4) / 24.0 * 1.01,
                "{lateral}"
            );
            assert!(lateral > 2.5e-3, "0.6 1/m over 120 mm deflects {:.2} mm", lateral * 1e3);
        }
    }
}

#[test]
fn zero_curvature_is_a_straight_line() {
    let g = guide(Vector3::new(-0.1, 0.2, 1.0), 0.0);
    let mut needle = NeedleInTissue::new(TissueModel::ideal(0.0), g, g.entry).unwrap();
    for inc in [0.01, 0.033, 0.0001, 0.07] {
        needle.advance(inc).unwrap();
    }
    let expected = g.entry.coords + g.direction().into_inner() * 0.1131;
    assert!((needle.tip().coords - expected).norm() < 1e-12);
    for p in needle.path() {
        let v = p.coords - g.entry.coords;
        assert!(v.cross(&g.direction()).norm() < 1e-12);
    }
    assert!((needle.heading().into_inner() - g.direction().into_inner()).norm() < 1e-12);
}

#[test]
fn pivot_mid_insertion_continues_from_the_tip_with_the_new_heading() {
    let k = 0.8;
    let g = guide(Vector3::new(0.1, 1.0, 0.2), 1.1);
    for transfer in [1.0, 0.0, 0.5] {
        let model = TissueModel {
            pivot_heading_transfer: transfer,
            bevel_angle: 0.4,
            ..TissueModel::ideal(k)
        };
        let mut needle = NeedleInTissue::new(model, g, g.entry).unwrap();
        needle.advance(0.04).unwrap();
        let (p, t, n) = (
            needle.tip().coords.coords,
            needle.heading().into_inner(),
            needle.bend_direction().into_inner(),
        );
        let before: Vec<Point<Ct>> = needle.path();
        let pivot = UnitQuaternion::from_axis_angle(&Unit::new_normalize(Vector3::new(1.0, -0.3, 0.5)), 0.06);
        needle
            .set_guide(GuidePose {
                entry: g.entry,
                holder: pivot * g.holder,
            })
            .unwrap();
        // The tip has not moved; the heading turned by the transferred part of the pivot.
        assert!((needle.tip().coords.coords - p).norm() < 1e-15);
        let turn = pivot.powf(transfer);
        assert!((needle.heading().into_inner() - turn * t).norm() < 1e-12);
        needle.advance(0.03).unwrap();
        let expected = arc(&p, &(turn * t), &(turn * n), k, 0.03);
        assert!(
            (needle.tip().coords.coords - expected).norm() < 1e-9,
            "transfer {transfer}"
        );
        // The part inserted before the pivot stays where it was.
        assert_eq!(&needle.path()[..before.len()], &before[..]);
        assert!((needle.depth() - 0.07).abs() < 1e-15);
    }
}

#[test]
fn target_shift_follows_the_documented_saturating_law() {
    let model = TissueModel {
        shift_max: 3e-3,
        shift_length: 0.04,
        ..TissueModel::ideal(0.0)
    };
    let g = guide(Vector3::new(0.0, 1.0, 0.0), 0.0);
    let target = Point::xyz(0.01, 0.08, 0.03);
    let mut needle = NeedleInTissue::new(model, g, target).unwrap();
    let mut last = 0.0;
    for _ in 0..40 {
        needle.advance(0.01).unwrap();
        let d = needle.depth();
        let shift = needle.target_shift();
        let law = 3e-3 * (1.0 - (-d / 0.04).exp());
        assert!((shift.norm() - law).abs() < 1e-12, "depth {d}");
        assert!(shift.norm() >= last && shift.norm() <= 3e-3);
        // Straight needle: the lesion moves along the needle.
        assert!(shift.cross(&g.direction()).norm() < 1e-12);
        assert!((needle.target().coords - (target.coords + shift)).norm() < 1e-15);
        last = shift.norm();
    }
    // 400 mm = 10 e-folding lengths: saturated.
    assert!(last > 0.9999 * 3e-3);
}

#[test]
fn noise_is_seeded_and_default_model_is_realistic() {
    let g = guide(Vector3::new(0.0, 1.0, 0.1), 0.2);
    let run = |seed| {
        let mut n = NeedleInTissue::new(
            TissueModel {
                seed,
                ..TissueModel::default()
            },
            g,
            g.entry,
        )
        .unwrap();
        n.advance(0.1).unwrap();
        n
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert_eq!(a.tip(), b.tip());
    assert_ne!(a.tip(), c.tip());
    for n in [&a, &c] {
        let lateral = (n.tip().coords - g.entry.coords).cross(&g.direction()).norm();
        // 0.6 1/m ± 25 % over 100 mm: a few mm, not tenths and not centimetres.
        assert!(lateral > 0.5e-3 && lateral < 8e-3, "lateral {:.2} mm", lateral * 1e3);
        assert!(n.target_shift().norm() > 2e-3 && n.target_shift().norm() < 3e-3);
    }
    let shaft = a.shaft_polyline(0.02, 5e-3);
    assert_eq!(*shaft.last().unwrap(), a.tip());
    assert!((shaft[0].coords - (g.entry.coords - g.direction().into_inner() * 0.02)).norm() < 1e-12);
    assert!(shaft[1..].windows(2).all(|w| w[0].distance(&w[1]) <= 5e-3 + 1e-9));
    assert!(shaft.len() >= 21 && shaft.len() <= 23, "{}", shaft.len());
}

#[test]
fn bad_inputs_give_typed_errors() {
    let g = guide(Vector3::new(0.0, 1.0, 0.0), 0.0);
    let mut needle = NeedleInTissue::new(TissueModel::default(), g, g.entry).unwrap();
    let err = needle.advance(-1e-3).unwrap_err();
    assert_eq!(err, NeedleError::NegativeIncrement { increment_mm: -1.0 });
    assert!(err.to_string().contains("-1.000 mm"), "{err}");
    assert_eq!(
        needle.advance(f64::NAN).unwrap_err(),
        NeedleError::NotFinite {
            what: "insertion increment"
        }
    );
    assert_eq!(needle.depth(), 0.0);
    // Before insertion the guide may move anywhere; after, only pivot.
    let moved = GuidePose {
        entry: Point::xyz(0.0, 0.0, 0.0),
        ..g
    };
    needle.set_guide(moved).unwrap();
    needle.advance(0.01).unwrap();
    let err = needle
        .set_guide(GuidePose {
            entry: Point::xyz(0.002, 0.0, 0.0),
            ..g
        })
        .unwrap_err();
    assert!(
        matches!(err, NeedleError::EntryMoved { moved_mm, depth_mm } if (moved_mm - 2.0).abs() < 1e-9 && (depth_mm - 10.0).abs() < 1e-9)
    );
    let nan_guide = GuidePose {
        entry: Point::xyz(f64::NAN, 0.0, 0.0),
        ..g
    };
    assert!(matches!(
        needle.set_guide(nan_guide),
        Err(NeedleError::NotFinite { .. })
    ));
    let bad = TissueModel {
        shift_length: 0.0,
        ..TissueModel::default()
    };
    let err = NeedleInTissue::new(bad, g, g.entry).unwrap_err();
    assert_eq!(
        err,
        NeedleError::InvalidModel {
            name: "shift_length",
            value: 0.0
        }
    );
    let bad = TissueModel {
        curvature: f64::INFINITY,
        ..TissueModel::default()
    };
    assert!(NeedleInTissue::new(bad, g, g.entry).is_err());
    assert!(NeedleInTissue::new(TissueModel::default(), g, Point::xyz(f64::NAN, 0.0, 0.0)).is_err());
}

/// A guide that slides a fraction of a millimetre with the needle in (a robot as built pivots about a point just off its
/// guide tip) drags the skin along: the entry follows, the inserted needle and its tip stay where the tissue holds them.
#[test]
fn a_small_slide_of_the_guide_drags_the_skin_and_leaves_the_tip() {
    let g = guide(Vector3::new(0.0, 1.0, 0.0), 0.0);
    let mut needle = NeedleInTissue::new(TissueModel::ideal(0.6), g, g.entry).unwrap();
    needle.advance(0.03).unwrap();
    let tip = needle.tip();
    let slid = GuidePose {
        entry: Point::new(g.entry.coords + Vector3::new(0.3e-3, 0.0, 0.0)),
        ..g
    };
    needle.set_guide(slid).unwrap();
    assert!(needle.tip().distance(&tip) < 1e-12);
    assert!(needle.guide().entry.distance(&slid.entry) < 1e-12);
    let too_far = GuidePose {
        entry: Point::new(g.entry.coords + Vector3::new(1.5e-3, 0.0, 0.0)),
        ..g
    };
    assert!(matches!(needle.set_guide(too_far), Err(NeedleError::EntryMoved { .. })));
}

#[test]
fn a_withdrawal_retraces_the_track_and_a_redirect_cuts_a_new_one_from_there() {
    // A noisy needle, so that the track is not a closed form and only the recorded frames can put the tip back.
    let model = TissueModel {
        heading_noise: 0.05,
        seed: 7,
        ..TissueModel::default()
    };
    let g = guide(Vector3::new(0.1, 1.0, 0.05), 0.4);
    let mut needle = NeedleInTissue::new(model.clone(), g, Point::xyz(0.03, 0.07, 0.03)).unwrap();
    needle.advance(0.0153).unwrap();
    let (tip_at, heading_at, shift_at) = (needle.tip(), needle.heading(), needle.target_shift());
    needle.advance(0.0647).unwrap();
    assert!((needle.depth() - 0.08).abs() < 1e-12);
    let path_before = needle.path();

    // Back to 15.3 mm (mid-piece: the integration pieces are 1 mm): the tip, its heading and the tissue's push are
    // what they were there, and the track beyond is gone.
    needle.withdraw(0.0647).unwrap();
    assert!((needle.depth() - 0.0153).abs() < 1e-12);
    assert!(
        needle.tip().distance(&tip_at) < 1e-12,
        "{} m",
        needle.tip().distance(&tip_at)
    );
    assert!(needle.heading().angle(&heading_at) < 1e-12);
    assert!((needle.target_shift() - shift_at).norm() < 1e-15);
    let path = needle.path();
    assert!(path.len() < path_before.len());
    for (p, q) in path.iter().zip(&path_before).take(path.len() - 1) {
        assert!(p.distance(q) < 1e-15);
    }

    // Turned 8° about the entry, the tip's heading turns with it and the needle cuts a new track from the withdrawn tip.
    let axis = Unit::new_normalize(g.direction().cross(&Vector3::x()));
    let turned = GuidePose {
        holder: UnitQuaternion::from_axis_angle(&axis, 8f64.to_radians()) * g.holder,
        ..g
    };
    needle.set_guide(turned).unwrap();
    let expected = UnitQuaternion::from_axis_angle(&axis, 8f64.to_radians()) * heading_at;
    assert!(needle.heading().angle(&expected) < 1e-12);
    needle.advance(0.03).unwrap();
    let old_tip_at_45 = path_before[45].coords;
    let new_tip = needle.tip().coords;
    // 30 mm at 8° off: about 4.2 mm from where the old track was at the same depth (noise and curvature aside).
    let apart = (new_tip.coords - old_tip_at_45.coords).norm();
    assert!((3.5e-3..5.0e-3).contains(&apart), "{apart} m");

    // Withdrawing past the entry leaves the needle at the entry, not outside the patient; a negative or non-finite
    // length is refused.
    needle.withdraw(1.0).unwrap();
    assert!(needle.depth().abs() < 1e-15);
    assert!(needle.tip().distance(&g.entry) < 1e-12);
    assert!(matches!(
        needle.withdraw(-0.001),
        Err(NeedleError::NegativeIncrement { .. })
    ));
    assert!(matches!(needle.withdraw(f64::NAN), Err(NeedleError::NotFinite { .. })));
}
