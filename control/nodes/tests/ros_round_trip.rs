//! A real DDS round trip between processes: an r2r node publishes geometry_msgs/PoseStamped and serves std_srvs/Trigger;
//! an rclpy script in another process receives the poses and calls the service.

use std::time::Duration;

use acus_nodes::testing::{isolated, peer_script, Peer};
use acus_nodes::Spinner;
use futures::StreamExt;
use r2r::geometry_msgs::msg::{Point, Pose, PoseStamped, Quaternion};
use r2r::std_msgs::msg::Header;
use r2r::std_srvs::srv::Trigger;
use r2r::QosProfile;

#[test]
fn rclpy_receives_poses_and_calls_trigger() {
    isolated(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let ctx = r2r::Context::create().unwrap();
            let mut node = r2r::Node::create(ctx, "round_trip", "").unwrap();
            let poses = node
                .create_publisher::<PoseStamped>("/acus_test/pose", QosProfile::default())
                .unwrap();
            let mut trigger = node
                .create_service::<Trigger::Service>("/acus_test/trigger", QosProfile::services_default())
                .unwrap();
            let _spinner = Spinner::start(node).unwrap();

            let mut peer = Peer::spawn(
                peer_script(env!("CARGO_MANIFEST_DIR"), "pose_trigger_peer.py"),
                &["--poses", "5"],
            );
            // Publish a pose with a running number in x (mm) until the peer calls the service; each pose is distinct so the
            // peer's report proves it got ours.
            let mut published = 0u32;
            let mut ticker = tokio::time::interval(Duration::from_millis(50));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let request = loop {
                tokio::select! {
                    request = trigger.next() => break request.expect("service stream open"),
                    _ = ticker.tick() => {
                        assert!(tokio::time::Instant::now() < deadline, "no Trigger call within 60 s");
                        assert!(!peer.has_exited(), "the rclpy peer exited before calling the service");
                        published += 1;
                        poses.publish(&PoseStamped {
                            header: Header { stamp: acus_nodes::msg::now(), frame_id: "robot_base".into() },
                            pose: Pose {
                                position: Point { x: f64::from(published) * 1e-3, y: 0.25, z: -0.125 },
                                orientation: Quaternion { x: 0.0, y: 0.0, z: 0.0, w: 1.0 },
                            },
                        }).unwrap();
                    }
                }
            };
            let token = format!("acus served after {published} poses");
            request
                .respond(Trigger::Response {
                    success: true,
                    message: token.clone(),
                })
                .unwrap();

            let report: serde_json::Value =
                serde_json::from_str(peer.finish(Duration::from_secs(30)).trim()).expect("peer prints one JSON line");
            let seen = report["poses"].as_array().unwrap();
            assert!(seen.len() >= 5, "peer saw {} poses", seen.len());
            for pose in seen {
                assert_eq!(pose["frame_id"], "robot_base");
                let near = |key: &str, want: f64| (pose[key].as_f64().unwrap() - want).abs() < 1e-12;
                assert!(near("y", 0.25) && near("z", -0.125), "pose {pose}");
                // x carries the pose's running number in mm: compare the number, not the float.
                let x_mm = pose["x"].as_f64().unwrap() * 1e3;
                let number = x_mm.round();
                assert!(
                    (x_mm - number).abs() < 1e-9 && (1.0..=f64::from(published)).contains(&number),
                    "x {x_mm} mm, {published} poses published"
                );
            }
            assert_eq!(report["trigger"]["success"], true);
            assert_eq!(report["trigger"]["message"], token.as_str());
        });
    });
}
