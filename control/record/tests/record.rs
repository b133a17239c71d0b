//! A record written with [`Recorder::write`], read back by our summary and by the PyPI readers (Python `mcap` with
//! `mcap-ros2-support`, and `rosbags`); and a recorder killed with SIGKILL whose file still reads up to its last second.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use acus_nodes::testing::{peer_script, venv_python};
use acus_record::formats::{Answer, Fault, Request};
use acus_record::{now_ns, summary, Event, Recorder, FLUSH_PERIOD};
use r2r::WrappedTypesupport;

fn string(text: &str) -> Vec<u8> {
    r2r::std_msgs::msg::String { data: text.into() }
        .to_serialized_bytes()
        .unwrap()
}

fn joint_state(i: u32) -> Vec<u8> {
    r2r::sensor_msgs::msg::JointState {
        name: vec!["x".into(), "insertion".into()],
        position: vec![f64::from(i), 0.5],
        // Filled: Fast DDS pads an empty float64 sequence to 8 bytes, and rosbags refuses the longer message
        // ("CDR message size mismatch").
        velocity: vec![0.0, 0.0],
        effort: vec![0.0, 0.0],
        ..Default::default()
    }
    .to_serialized_bytes()
    .unwrap()
}

fn check_scan(mm: &str) -> Vec<u8> {
    use r2r::diagnostic_msgs::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};
    DiagnosticArray {
        status: vec![DiagnosticStatus {
            name: "acus: check scan".into(),
            values: vec![KeyValue {
                key: "tip to target [mm]".into(),
                value: mm.into(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
    .to_serialized_bytes()
    .unwrap()
}

fn read_back(path: &Path, truncated: bool) -> serde_json::Value {
    let mut cmd = Command::new(venv_python());
    cmd.arg(peer_script(env!("CARGO_MANIFEST_DIR"), "read_back.py"))
        .arg(path);
    if truncated {
        cmd.arg("--truncated");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "read_back.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const STRING: &str = "std_msgs/msg/String";

#[test]
fn python_readers_and_summary_read_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("record.mcap");
    let recorder = Recorder::create(&path).unwrap();
    let t0 = now_ns();
    let request = Request {
        id: 1,
        from: "slicer@127.0.0.1".into(),
        request: "insert".into(),
        detail: "62 mm".into(),
    };
    let answer = Answer {
        id: 1,
        accepted: true,
        answer: "inserting".into(),
    };
    let fault = Fault {
        fault: "motion".into(),
        cause: "axis z: following error".into(),
    };
    for i in 0..500 {
        recorder
            .write(
                "/joint_states",
                "sensor_msgs/msg/JointState",
                &joint_state(i),
                t0 + u64::from(i) * 1_000_000,
            )
            .unwrap();
    }
    let at = |ms: u64| t0 + ms * 1_000_000;
    recorder
        .write("/procedure/state", STRING, &string("Registered"), at(10))
        .unwrap();
    recorder
        .write(
            "/procedure/requests",
            STRING,
            &string(&serde_json::to_string(&request).unwrap()),
            at(20),
        )
        .unwrap();
    recorder
        .write(
            "/procedure/answers",
            STRING,
            &string(&serde_json::to_string(&answer).unwrap()),
            at(21),
        )
        .unwrap();
    recorder
        .write(
            "/diagnostics",
            "diagnostic_msgs/msg/DiagnosticArray",
            &check_scan("1.250"),
            at(300),
        )
        .unwrap();
    recorder
        .write(
            "/procedure/faults",
            STRING,
            &string(&serde_json::to_string(&fault).unwrap()),
            at(400),
        )
        .unwrap();
    recorder
        .write("/procedure/state", STRING, &string("Faulted"), at(401))
        .unwrap();
    recorder.finish().unwrap();

    let s = summary(&path).unwrap();
    println!("{s}");
    assert_eq!(s.truncated, None);
    assert_eq!(s.counts["/joint_states"], 500);
    assert_eq!(s.counts["/procedure/state"], 2);
    assert_eq!(s.final_state(), Some("Faulted"));
    let events: Vec<&Event> = s.timeline.iter().map(|e| &e.event).collect();
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(events[1], &Event::Request(request));
    assert_eq!(events[2], &Event::Answer(answer));
    match events[3] {
        Event::CheckScan { tip_to_target, .. } => assert!((tip_to_target - 1.25e-3).abs() < 1e-9),
        e => panic!("expected the check scan, got {e:?}"),
    }
    assert_eq!(events[4], &Event::Fault(fault));

    let py = read_back(&path, false);
    println!("{py}");
    for reader in ["mcap", "rosbags"] {
        let counts = &py[reader]["counts"];
        assert_eq!(counts["/joint_states"], 500, "{reader}");
        assert_eq!(counts["/procedure/state"], 2, "{reader}");
        assert_eq!(counts["/diagnostics"], 1, "{reader}");
        assert_eq!(counts["/procedure/requests"], 1, "{reader}");
        let texts = py[reader]["texts"].as_array().unwrap();
        assert!(texts.iter().any(|t| t == "Faulted"), "{reader}: {texts:?}");
    }
    assert!(py["mcap"]["error"].is_null());
    assert_eq!(py["mcap"]["last_joint_state"][1][0], 499.0);
}

const CHILD: &str = "ACUS_RECORD_KILL_CHILD";

/// The child: record a joint state every millisecond (position 0 counts them) until killed.
#[test]
#[ignore = "run by kill9_leaves_a_record_that_reads_to_its_last_second"]
fn kill9_child() {
    let Some(path) = std::env::var_os(CHILD) else { return };
    let recorder = Recorder::create(Path::new(&path)).unwrap();
    println!("recording");
    for i in 0.. {
        recorder
            .write("/joint_states", "sensor_msgs/msg/JointState", &joint_state(i), now_ns())
            .unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn kill9_leaves_a_record_that_reads_to_its_last_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.mcap");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "kill9_child",
            "--exact",
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(CHILD, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        if line.unwrap().contains("recording") {
            break;
        }
    }
    // Let it record a few flush periods; the duration is what is under test, not a synchronisation.
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap(); // SIGKILL: no destructor, no finish.
    let killed_ns = now_ns();
    child.wait().unwrap();

    let s = summary(&path).unwrap();
    println!("{s}");
    assert!(s.truncated.is_some(), "a killed record has no footer");
    let n = s.counts["/joint_states"];
    let (_, last) = s.span_ns.unwrap();
    let lost = killed_ns.saturating_sub(last) as f64 * 1e-9;
    println!(
        "kill -9: {n} joint states read, the last {lost:.3} s before the kill lost (flush period {FLUSH_PERIOD:?})"
    );
    assert!(n > 1000, "only {n} messages in 2.5 s");
    assert!(lost < 1.0, "lost {lost:.3} s");

    let py = read_back(&path, true);
    println!("{py}");
    assert_eq!(
        py["mcap"]["counts"]["/joint_states"], n,
        "Python mcap reads what we read"
    );
    // Contiguous: the last message read is number n - 1.
    assert_eq!(py["mcap"]["last_joint_state"][1][0], (n - 1) as f64);
}
