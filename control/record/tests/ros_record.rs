//! Real DDS: an rclpy peer publishes a short procedure on every topic of the record; the recorder node records it; the
//! summary and both Python readers read back every message.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acus_nodes::testing::{isolated, peer_script, venv_python, Peer};
use acus_record::{summary, Event, Recorder, RecorderNode, PROCEDURE_TOPICS};

fn expected() -> Vec<(&'static str, u64)> {
    PROCEDURE_TOPICS
        .iter()
        .map(|&(t, _)| match t {
            "/joint_states" => (t, 50),
            "/procedure/state" => (t, 2),
            _ => (t, 1),
        })
        .collect()
}

#[test]
fn recorder_node_records_what_rclpy_publishes() {
    isolated(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.mcap");
        let recorder = Arc::new(Recorder::create(&path).unwrap());
        let ctx = r2r::Context::create().unwrap();
        let node = RecorderNode::start(&ctx, "recorder", Arc::clone(&recorder), PROCEDURE_TOPICS).unwrap();
        let mut peer = Peer::spawn(peer_script(env!("CARGO_MANIFEST_DIR"), "procedure_peer.py"), &[]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let counts = recorder.counts().unwrap();
            if expected().iter().all(|&(t, n)| counts.get(t) == Some(&n)) {
                break;
            }
            assert!(!peer.has_exited(), "the peer exited early");
            assert!(Instant::now() < deadline, "recorded only {counts:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(peer);
        drop(node);
        recorder.finish().unwrap();

        let s = summary(&path).unwrap();
        println!("{s}");
        for (topic, n) in expected() {
            assert_eq!(s.counts.get(topic), Some(&n), "{topic}");
        }
        assert_eq!(s.final_state(), Some("Faulted"));
        assert!(s
            .timeline
            .iter()
            .any(|e| matches!(&e.event, Event::CheckScan { tip_to_target, .. }
            if (tip_to_target - 0.875e-3).abs() < 1e-9)));
        assert!(s
            .timeline
            .iter()
            .any(|e| matches!(&e.event, Event::Request(r) if r.from == "peer" && r.id == 3)));
        assert!(!s.timeline.iter().any(|e| matches!(&e.event, Event::Unreadable { .. })));

        let out = std::process::Command::new(venv_python())
            .arg(peer_script(env!("CARGO_MANIFEST_DIR"), "read_back.py"))
            .arg(Path::new(&path))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        println!("{py}");
        for reader in ["mcap", "rosbags"] {
            for (topic, n) in expected() {
                assert_eq!(py[reader]["counts"][topic], n, "{reader} {topic}");
            }
        }
        assert_eq!(py["mcap"]["last_joint_state"][1][0], 49.0);
    });
}
