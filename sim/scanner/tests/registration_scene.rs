//! End to end through real files: the virtual scanner renders the frame (one sphere missing) beside a body with a rib,
//! a lesion, a needle, a small bone fragment and a contrast spot (the last two sphere-sized, so only the matcher can
//! reject them), writes a DICOM series; acus-dicom imports it; registration finds T_robot_ct and the gate passes.

use acus_control::frames::{Ct, Point, RobotBase, Transform};
use acus_control::registration::{
    detect_spheres, register_volume, DetectionWorkspace, FiducialModel, QualityGate, Refusal, RegistrationParams,
};
use acus_sim_scanner::{scan, write_series, Needle, PhantomBody, ScanProtocol, Scene, SeriesInfo, Shape, FIDUCIAL_HU};
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

#[test]
fn registers_through_dicom_files_despite_distractors_and_a_missing_sphere() {
    let urdf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../urdf/positioner.urdf")).unwrap();
    let model = FiducialModel::from_urdf_str(&urdf).unwrap();
    let centroid = model.points().iter().fold(Vector3::zeros(), |s, p| s + p.coords.coords) / model.len() as f64;
    // Frame centroid at CT (0, -100, 0) mm, tilted.
    let rot = UnitQuaternion::from_euler_angles(0.3, -0.2, 0.9);
    let t_ct_robot = Transform::<Ct, RobotBase>::from_isometry(Isometry3::from_parts(
        Translation3::from(Vector3::new(0.0, -0.1, 0.0) - rot * centroid),
        rot,
    ));
    let truth: Vec<Point<Ct>> = model.points().iter().map(|p| t_ct_robot.apply(p)).collect();

    let mut scene = Scene::new();
    // The body's anterior surface runs through the field of view below the frame.
    let mut body = PhantomBody::abdomen(Point::xyz(0.0, 0.07, 0.0), 0.4);
    body.lesions.push((Point::xyz(0.02, -0.02, 0.0), 0.006, 90.0));
    body.bones.push((
        Point::xyz(-0.03, -0.025, 0.01),
        Vector3::new(0.02, 0.005, 0.012),
        1100.0,
    ));
    scene.add_body(&body);
    for (i, c) in truth.iter().enumerate() {
        if i != 3 {
            scene.add(
                Shape::Sphere {
                    center: c.coords,
                    radius: model.radius(),
                },
                FIDUCIAL_HU,
            );
        }
    }
    let (lo, hi) = truth.iter().fold((truth[0].coords, truth[0].coords), |(l, h), p| {
        (l.inf(&p.coords), h.sup(&p.coords))
    });
    // Sphere-sized distractors inside the field of view, well away from every fiducial.
    let mid = nalgebra::center(&lo, &hi);
    let fragment = mid + Vector3::new(0.0, 0.0, 0.0);
    let spot = mid + Vector3::new(0.012, 0.006, -0.012);
    for p in [fragment, spot] {
        assert!(
            truth.iter().all(|t| (t.coords - p).norm() > 0.015),
            "distractor too close to a fiducial"
        );
    }
    scene.add(
        Shape::Sphere {
            center: fragment,
            radius: 0.0022,
        },
        900.0,
    );
    scene.add(
        Shape::Sphere {
            center: spot,
            radius: 0.0018,
        },
        600.0,
    );
    scene.add_needle(&Needle {
        hub: Point::new(lo + Vector3::new(0.005, 0.005, 0.005)),
        tip: Point::new(lo + Vector3::new(0.03, 0.06, 0.02)),
        radius: 0.6e-3,
        hu: 3000.0,
    });
    let m = Vector3::repeat(0.008);
    let mut protocol = ScanProtocol::covering(Point::new(lo - m), Point::new(hi + m), 0.7e-3, 1e-3, 1e-3);
    protocol.noise_sigma_hu = 18.0;
    protocol.seed = 42;
    let volume = scan(&scene, &protocol).unwrap();

    let dir = tempfile::tempdir().unwrap();
    write_series(&volume, dir.path(), &SeriesInfo::new("registration scene", 5)).unwrap();
    let (imported, _) = acus_dicom::read_ct_series(dir.path()).unwrap();
    assert_eq!(imported.hu(), volume.hu());

    let params = RegistrationParams::for_model(&model);
    let mut ws = DetectionWorkspace::new();
    let found = detect_spheres(&imported, &params.detection, &mut ws).unwrap();
    // 7 fiducials + fragment + spot pass the size filter; the needle and the rib do not.
    assert_eq!(found.spheres.len(), 9, "{:?}", found.rejected);
    assert!(!found.rejected.is_empty());

    let (reg, _) = register_volume(&imported, &model, &params, &mut ws).unwrap();
    assert_eq!(reg.missing(), &[3]);
    assert_eq!(reg.unmatched_candidates(), 2);
    for f in reg.fits() {
        let e = f.detected.distance(&truth[f.model_index]);
        assert!(
            e < 0.15e-3,
            "fiducial {} localised {:.3} mm off",
            f.model_index,
            e * 1e3
        );
    }
    let target_robot = Point::<RobotBase>::new(nalgebra::Point3::from(centroid + Vector3::new(0.0, 0.0, 0.1)));
    let target_ct = t_ct_robot.apply(&target_robot);
    let tre = reg.t_robot_ct().apply(&target_ct).distance(&target_robot);
    assert!(tre < 0.2e-3, "TRE {:.3} mm", tre * 1e3);

    let gated = QualityGate::default().check(reg.clone(), &[target_ct]).unwrap();
    assert!(gated.worst_predicted_tre() < 1e-3);
    // A gate demanding all 8 spheres refuses, naming the missing one.
    let strict = QualityGate {
        min_fiducials: 8,
        ..QualityGate::default()
    };
    assert_eq!(
        strict.check(reg, &[target_ct]).unwrap_err(),
        Refusal::TooFewFiducials {
            found: 7,
            min: 8,
            missing: vec![3]
        }
    );
}
