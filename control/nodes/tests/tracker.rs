//! The tracker node over real DDS: `SimNdi` behind a pty, fed by the twin's tracker (realistic robot as built, frame
//! as manufactured, the robot held at one pose), the node's NDI driver reading it; a second r2r node in the test's own
//! ROS domain publishes the registration a noiseless scan would give and subscribes to the node's topics. Checks:
//! poses at >= 40 Hz, frame ids, no tip before the registration, the tip within the tracker's noise of the twin's true
//! tip per axis, and a needle tool out of view publishes nothing while the reference goes on.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acus_control::frames::{Ct, Point, RobotBase};
use acus_control::kinematics::JointPositions;
use acus_control::registration::{fit_rigid, FiducialModel};
use acus_nodes::testing::isolated;
use acus_nodes::tracker::{self, TrackerNodeConfig};
use acus_nodes::Spinner;
use acus_serial::ndi::NdiConfig;
use acus_sim_serial::ndi::{SimNdi, SimNdiConfig};
use acus_sim_twin::patient::{FrameAsBuilt, Patient, PatientConfig};
use acus_sim_twin::robot::AsBuiltRobot;
use acus_sim_twin::tracker::{TrackerErrors, TrackerRig, TwinTracker, NEEDLE_TOOL};
use acus_sim_twin::world::WorldModel;
use futures::StreamExt;
use nalgebra::{Matrix3, Vector3};
use r2r::geometry_msgs::msg::{PointStamped, PoseStamped, TransformStamped};
use r2r::QosProfile;
use tokio::sync::mpsc;

const SEED: u64 = 11;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn lever(v: &Vector3<f64>, sigma_r: f64) -> Matrix3<f64> {
    (Matrix3::identity() * v.norm_squared() - v * v.transpose()) * sigma_r.powi(2)
}

enum Msg {
    Reference,
    Needle(PoseStamped),
    Tip(PointStamped),
}

/// Next message matching `pred` within 10 s, counting the others.
async fn next(
    rx: &mut mpsc::UnboundedReceiver<(Instant, Msg)>,
    counts: &mut [usize; 3],
    pred: impl Fn(&Msg) -> bool,
) -> (Instant, Msg) {
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (t, m) = tokio::time::timeout_at(end, rx.recv())
            .await
            .expect("a message within 10 s")
            .expect("channel open");
        counts[match m {
            Msg::Reference => 0,
            Msg::Needle(_) => 1,
            Msg::Tip(_) => 2,
        }] += 1;
        if pred(&m) {
            return (t, m);
        }
    }
}

#[test]
fn tracker_node_publishes_poses_and_the_tip_in_ct() {
    isolated(|| {
        let world = WorldModel::load(&root().join("launch/config/worlds/realistic.yaml")).unwrap();
        let urdf = std::fs::read_to_string(root().join("urdf/positioner.urdf")).unwrap();
        let design = FiducialModel::from_urdf_str(&urdf).unwrap();
        let robot = AsBuiltRobot::build(&urdf, &world.robot, SEED).unwrap();
        let frame = FrameAsBuilt::manufacture(&design, world.frame.sphere_centre, SEED);
        let patient = Patient::new(PatientConfig::reference(), robot, frame).unwrap();
        let in_ct: Vec<Point<Ct>> = patient
            .frame()
            .centres
            .iter()
            .map(|p| patient.config().t_ct_robot.apply(p))
            .collect();
        let t_robot_ct = fit_rigid::<RobotBase, Ct>(design.points(), &in_ct).unwrap();
        let rig = TrackerRig::overhead(&patient, &design, 1.5).unwrap();
        let twin = TwinTracker::new(&patient, &design, rig, &TrackerErrors::NONE, SEED).unwrap();
        let q = JointPositions::new(0.02, -0.01, 0.05, 0.2, -0.15, 0.06);
        let truth = twin.clone().sample(&q).unwrap();
        let calibration = twin.calibration();
        let hidden = Arc::new(AtomicBool::new(false));
        let hide = Arc::clone(&hidden);
        let poses = twin.into_pose_fn(move |_| q);
        let cfg = SimNdiConfig::new(2);
        let (sp, sr) = (cfg.sigma_position_m, cfg.sigma_rotation_rad);
        let dir = tempfile::tempdir().unwrap();
        let sim = SimNdi::start(dir.path(), cfg, move |t| {
            let mut p = poses(t);
            if hide.load(Ordering::Relaxed) {
                p[NEEDLE_TOOL] = None;
            }
            p
        })
        .unwrap();

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let ctx = r2r::Context::create().unwrap();
            let mut ndi = NdiConfig::new(sim.path());
            // The simulated tracker shares this host: on a loaded machine the process can be descheduled for longer
            // than the default 200 ms reply timeout, which the driver reads as a device gone silent and answers by
            // rebuilding the link (2 of 10 runs measured 37-38 Hz so). Silence detection is the driver's fault tests'
            // business; this test gives a reply a second.
            ndi.reply_timeout = Duration::from_secs(1);
            ndi.break_duration = Duration::from_millis(5);
            ndi.reset_timeout = Duration::from_millis(50);
            ndi.comm_settle = Duration::from_millis(5);
            let _node = tracker::start(
                &ctx,
                TrackerNodeConfig {
                    ndi,
                    reference_handle: 0x0A,
                    needle_handle: 0x0B,
                    calibration,
                    model: design.clone(),
                },
            )
            .unwrap();

            let mut probe = r2r::Node::create(ctx.clone(), "tracker_probe", "").unwrap();
            let (tx, mut rx) = mpsc::unbounded_channel();
            let mut refs = probe
                .subscribe::<PoseStamped>(tracker::REFERENCE_TOPIC, QosProfile::default())
                .unwrap();
            let mut needles = probe
                .subscribe::<PoseStamped>(tracker::NEEDLE_TOPIC, QosProfile::default())
                .unwrap();
            let mut tips = probe
                .subscribe::<PointStamped>(tracker::TIP_TRACKED_TOPIC, QosProfile::default())
                .unwrap();
            let registration = probe
                .create_publisher::<TransformStamped>(
                    tracker::REGISTRATION_TOPIC,
                    QosProfile::default().transient_local().keep_last(1),
                )
                .unwrap();
            let _spin = Spinner::start(probe).unwrap();
            let t1 = tx.clone();
            tokio::spawn(async move {
                while let Some(m) = refs.next().await {
                    assert_eq!(m.header.frame_id, "tracker");
                    let _ = t1.send((Instant::now(), Msg::Reference));
                }
            });
            let t2 = tx.clone();
            tokio::spawn(async move {
                while let Some(m) = needles.next().await {
                    let _ = t2.send((Instant::now(), Msg::Needle(m)));
                }
            });
            tokio::spawn(async move {
                while let Some(m) = tips.next().await {
                    let _ = tx.send((Instant::now(), Msg::Tip(m)));
                }
            });

            // Before any registration: poses, no tip.
            let mut counts = [0usize; 3];
            for _ in 0..30 {
                next(&mut rx, &mut counts, |m| matches!(m, Msg::Needle(_))).await;
            }
            assert_eq!(counts[2], 0, "a tip before the registration");
            assert!(counts[0] >= 25, "reference poses too: {counts:?}");

            registration
                .publish(&acus_nodes::msg::transform_stamped(&t_robot_ct))
                .unwrap();
            next(&mut rx, &mut counts, |m| matches!(m, Msg::Tip(_))).await;
            let n = 150;
            let (mut needle_times, mut tip_errors) = (Vec::new(), Vec::new());
            while tip_errors.len() < n || needle_times.len() < n {
                let (t, m) = next(&mut rx, &mut counts, |m| !matches!(m, Msg::Reference)).await;
                match m {
                    Msg::Needle(p) => {
                        assert_eq!(p.header.frame_id, "tracker");
                        let got = Vector3::new(p.pose.position.x, p.pose.position.y, p.pose.position.z);
                        let want = truth.t_tracker_needle.isometry().translation.vector;
                        assert!(
                            (got - want).norm() < 5e-3,
                            "needle tool {:.2} mm off",
                            (got - want).norm() * 1e3
                        );
                        needle_times.push(t);
                    }
                    Msg::Tip(p) => {
                        assert_eq!(p.header.frame_id, "ct");
                        let got = Vector3::new(p.point.x, p.point.y, p.point.z);
                        tip_errors.push(got - truth.tip_ct.coords.coords);
                    }
                    Msg::Reference => {}
                }
            }
            let span = (needle_times[n - 1] - needle_times[0]).as_secs_f64();
            let hz = (n - 1) as f64 / span;
            println!("/tracker/needle at {hz:.1} Hz over {n} messages");
            assert!(hz >= 40.0, "{hz:.1} Hz");

            // The CT noise the tracker's σ predicts at this pose (as in acus-sim-serial's tracked_needle test).
            let tip = calibration.tip_in_tool.coords.coords;
            let rn = truth.t_tracker_needle.isometry().rotation.to_rotation_matrix();
            let c_n = Matrix3::identity() * sp * sp + rn * lever(&tip, sr) * rn.transpose();
            let rr = truth.t_tracker_ref.isometry().rotation.to_rotation_matrix();
            let u = truth.t_tracker_ref.inverse().apply(&truth.tip_tracker).coords.coords;
            let c_ref = rr.transpose() * (c_n + Matrix3::identity() * sp * sp) * rr + lever(&u, sr);
            let t_ct_ref = t_robot_ct.inverse() * design.t_base_frame() * calibration.t_frame_ref;
            let r_ct = t_ct_ref.isometry().rotation.to_rotation_matrix();
            let expected = (r_ct * c_ref * r_ct.transpose()).diagonal().map(f64::sqrt);
            let m = tip_errors.len() as f64;
            let mean = tip_errors.iter().sum::<Vector3<f64>>() / m;
            for k in 0..3 {
                let sd = (tip_errors.iter().map(|e| (e[k] - mean[k]).powi(2)).sum::<f64>() / (m - 1.0)).sqrt();
                println!(
                    "/needle/tip_tracked axis {k}: mean {:+.4} mm, sd {:.4} mm (expected {:.4})",
                    mean[k] * 1e3,
                    sd * 1e3,
                    expected[k] * 1e3
                );
                assert!(
                    mean[k].abs() <= 4.0 * expected[k] / m.sqrt(),
                    "axis {k}: mean {:e}",
                    mean[k]
                );
                assert!(sd > 0.7 * expected[k] && sd < 1.3 * expected[k], "axis {k}: sd {sd:e}");
            }

            // The needle tool out of view: the reference goes on, the needle and the tip fall silent.
            hidden.store(true, Ordering::Relaxed);
            for _ in 0..10 {
                next(&mut rx, &mut counts, |m| matches!(m, Msg::Reference)).await;
            }
            let before = counts;
            for _ in 0..30 {
                next(&mut rx, &mut counts, |m| matches!(m, Msg::Reference)).await;
            }
            assert_eq!(
                (counts[1], counts[2]),
                (before[1], before[2]),
                "published for a tool not seen"
            );
            hidden.store(false, Ordering::Relaxed);
            next(&mut rx, &mut counts, |m| matches!(m, Msg::Tip(_))).await;
        });
    });
}
