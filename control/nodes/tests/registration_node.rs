//! The registration node over real DDS: an rclpy peer announces a CT series written by the virtual scanner, calls the
//! register service and reads back `T_robot_ct`; a folder without images is refused first, with its reason. The
//! detections the node publishes let another process (the procedure) reach the same registration on its own.

use std::time::Duration;

use acus_control::frames::{Ct, Point, RobotBase, Transform};
use acus_control::registration::{register_and_gate, FiducialModel, MatchParams, QualityGate};
use acus_nodes::registration::{self, RegistrationConfig};
use acus_nodes::testing::{isolated, peer_script, Peer};
use acus_sim_scanner::{scan, write_series, PhantomBody, ScanProtocol, Scene, SeriesInfo, FIDUCIAL_HU};
use futures::StreamExt;
use nalgebra::{Isometry3, Quaternion, Translation3, UnitQuaternion, Vector3};
use r2r::geometry_msgs::msg::PoseArray;

#[test]
fn rclpy_registers_a_series_and_reads_the_transform() {
    isolated(|| {
        let urdf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../urdf/positioner.urdf")).unwrap();
        let model = FiducialModel::from_urdf_str(&urdf).unwrap();
        // The robot stands beside the patient: its fiducial frame at a known, tilted pose in the scanner.
        let rot = UnitQuaternion::from_euler_angles(0.05, -0.1, 1.2);
        let t_ct_robot =
            Transform::<Ct, RobotBase>::from_isometry(Isometry3::from_parts(Translation3::new(0.05, -0.3, 0.02), rot));
        let mut scene = Scene::new();
        scene.add_body(&PhantomBody::abdomen(Point::xyz(0.0, 0.0, 0.0), 0.4));
        let truth = scene.add_fiducial_frame(&model, &t_ct_robot, FIDUCIAL_HU);
        let (lo, hi) = truth.iter().fold((truth[0].coords, truth[0].coords), |(l, h), p| {
            (l.inf(&p.coords), h.sup(&p.coords))
        });
        let margin = Vector3::repeat(0.01);
        let mut protocol = ScanProtocol::covering(Point::new(lo - margin), Point::new(hi + margin), 0.7e-3, 1e-3, 1e-3);
        protocol.noise_sigma_hu = 15.0;
        let good = tempfile::tempdir().unwrap();
        write_series(
            &scan(&scene, &protocol).unwrap(),
            good.path(),
            &SeriesInfo::new("registration node", 1),
        )
        .unwrap();
        let bad = tempfile::tempdir().unwrap();
        std::fs::write(bad.path().join("notes.txt"), "not a CT image").unwrap();

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let ctx = r2r::Context::create().unwrap();
            let mut listener = r2r::Node::create(ctx.clone(), "fiducials_listener", "").unwrap();
            let mut heard = listener
                .subscribe::<PoseArray>(registration::FIDUCIALS_TOPIC, r2r::QosProfile::default())
                .unwrap();
            let _listening = acus_nodes::Spinner::start(listener).unwrap();
            let config = RegistrationConfig {
                model: model.clone(),
                gate: QualityGate::default(),
                series_dir: None,
                default_targets: vec![Point::xyz(0.0, 0.0, 0.0)],
            };
            let _node = registration::start(&ctx, config).unwrap();
            let (bad_dir, good_dir) = (bad.path().display().to_string(), good.path().display().to_string());
            let report = Peer::spawn(
                peer_script(env!("CARGO_MANIFEST_DIR"), "registration_peer.py"),
                &["--bad", &bad_dir, "--good", &good_dir],
            )
            .finish(Duration::from_secs(90));
            let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();

            assert_eq!(report["bad"]["success"], false);
            assert!(
                report["bad"]["message"].as_str().unwrap().contains("no DICOM images"),
                "{}",
                report["bad"]
            );
            assert_eq!(report["good"]["success"], true, "{}", report["good"]);

            let t = &report["transform"];
            assert_eq!(t["frame_id"], "robot_base");
            assert_eq!(t["child_frame_id"], "ct");
            let v = |key: &str, i: usize| t[key][i].as_f64().unwrap();
            let received = Isometry3::from_parts(
                Translation3::new(v("translation", 0), v("translation", 1), v("translation", 2)),
                UnitQuaternion::from_quaternion(Quaternion::new(
                    v("rotation_xyzw", 3),
                    v("rotation_xyzw", 0),
                    v("rotation_xyzw", 1),
                    v("rotation_xyzw", 2),
                )),
            );
            // The received T_robot_ct maps the true sphere centres (CT) onto the model (robot) within a fraction of a mm.
            for (ct, robot) in truth.iter().zip(model.points()) {
                let error = (received * ct.coords - robot.coords).norm();
                assert!(error < 0.2e-3, "fiducial mapped {:.3} mm off", error * 1e3);
            }
            let ok = report["diagnostics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["level"] == 0)
                .expect("an OK registration status on /diagnostics");
            let fre_mm: f64 = ok["values"]["FRE RMS [mm]"].as_str().unwrap().parse().unwrap();
            assert!(fre_mm > 0.0 && fre_mm < 0.5, "FRE {fre_mm} mm");
            // The unreadable folder published no detections; the good series published its sphere centres, from
            // which a listener fits and gates the same registration on its own.
            let detections = tokio::time::timeout(Duration::from_secs(10), heard.next())
                .await
                .expect("detections on /registration/fiducials")
                .unwrap();
            let centres = registration::centres(&detections).unwrap();
            assert_eq!(centres.len(), truth.len(), "one detection per sphere");
            let own = register_and_gate(
                &model,
                &centres,
                &MatchParams::default(),
                &QualityGate::default(),
                &[Point::xyz(0.0, 0.0, 0.0)],
            )
            .unwrap();
            let delta = own.t_robot_ct().isometry().inverse() * received;
            assert!(
                delta.translation.vector.norm() < 1e-6 && delta.rotation.angle() < 1e-6,
                "the listener's own fit differs from the published transform by {:.2e} m, {:.2e} rad",
                delta.translation.vector.norm(),
                delta.rotation.angle()
            );
        });
    });
}
