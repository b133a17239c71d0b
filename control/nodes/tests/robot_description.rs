//! The robot_state node publishes the URDF on /robot_description (transient local) and /joint_states; an rclpy peer that
//! starts after the one publish still reads the URDF back, byte for byte, and sees the joint positions we set.

use std::time::Duration;

use acus_control::kinematics::JointPositions;
use acus_nodes::robot_description::{self, RobotStateConfig};
use acus_nodes::testing::{isolated, peer_script, Peer};

#[test]
fn rclpy_reads_the_urdf_back_and_sees_joint_states() {
    isolated(|| {
        let urdf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../urdf/positioner.urdf")).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let ctx = r2r::Context::create().unwrap();
            let q = JointPositions::new(0.012, -0.034, 0.056, 0.1, -0.2, 0.0);
            let (_tx, rx) = tokio::sync::watch::channel(q);
            let config = RobotStateConfig {
                urdf: urdf.clone(),
                rate: Duration::from_millis(10),
            };
            let _node = robot_description::start(&ctx, config, rx).unwrap();

            let report = Peer::spawn(peer_script(env!("CARGO_MANIFEST_DIR"), "robot_state_peer.py"), &[])
                .finish(Duration::from_secs(60));
            let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
            assert!(report["urdf"] == urdf.as_str(), "the URDF changed on the way");
            let expected = [
                "x_joint",
                "y_joint",
                "z_joint",
                "yaw_joint",
                "pitch_joint",
                "insertion_joint",
            ];
            let movable: Vec<&str> = report["movable_joints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j.as_str().unwrap())
                .collect();
            for state in report["joint_states"].as_array().unwrap() {
                let names: Vec<&str> = state["name"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap())
                    .collect();
                assert_eq!(names, movable, "joint_states names the URDF's movable joints in order");
                let position: Vec<f64> = state["position"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_f64().unwrap())
                    .collect();
                assert_eq!(position, q.0.to_vec());
            }
            assert!(
                movable.iter().all(|j| expected.contains(j)) && movable.len() == 6,
                "{movable:?}"
            );
        });
    });
}
