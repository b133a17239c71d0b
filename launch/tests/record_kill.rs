//! `kill -9` of `acus sim` mid-insertion (issue 16, acceptance 2): the record it leaves reads, with our reader and with
//! Python `mcap`, up to less than a second before the kill, and holds the procedure up to the insertion that was under
//! way.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acus_launch::config::SimConfig;
use acus_launch::operator::{BiopsyLog, Operator};
use acus_nodes::testing::{isolated, peer_script, venv_python};
use acus_record::{now_ns, Event, FLUSH_PERIOD};

/// Wait until the record being written at `path` holds an event that `wanted` accepts (the recorder writes its chunks
/// every flush period; a streaming read of the live file sees every chunk written so far).
fn wait_in_record(path: &Path, wanted: impl Fn(&Event) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = acus_record::summary(path) {
            if s.timeline.iter().any(|e| wanted(&e.event)) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the record at {} never showed the event",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killing_acus_sim_mid_insertion_leaves_a_record_that_reads_to_its_last_second() {
    isolated(|| {
        let out = tempfile::tempdir().unwrap();
        let config_path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_acus"))
            .args([
                "sim",
                "--serve",
                "--world",
                "ideal",
                "--seed",
                "4",
                "--config",
                config_path,
                "--out",
            ])
            .arg(out.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().contains("serving") {
                break;
            }
        }
        let path = acus_launch::run::record_path(out.path());
        let config = SimConfig::load_in(config_path.as_ref(), Some("ideal")).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ctx = r2r::Context::create().unwrap();
        rt.block_on(async {
            let mut operator = Operator::start(&ctx, config.controller.entry, config.controller.target)
                .await
                .unwrap();
            let mut log = BiopsyLog::default();
            assert!(operator.call("/procedure/scan", &mut log).await.unwrap().success);
            for _ in 0..100 {
                if operator.call("/registration/register", &mut log).await.unwrap().success {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            operator.call("/reset_fault", &mut log).await.unwrap();
            for (step, service) in ["/enable", "/plan", "/align", "/insert_step"].into_iter().enumerate() {
                let answer = if step == 0 {
                    operator.set_enable(true, &mut log).await.unwrap()
                } else {
                    operator.call(service, &mut log).await.unwrap()
                };
                assert!(answer.success, "{service}: {}", answer.message);
            }
            // The first step is on disk; the next one is asked for and the kill follows at once, while the needle
            // is in the patient and (most likely) moving.
            wait_in_record(
                &path,
                |e| matches!(e, Event::Answer(a) if a.accepted && a.answer.contains("inserted to")),
            );
            let next = operator.call("/insert_step", &mut log);
            let _ = tokio::time::timeout(Duration::from_millis(20), next).await;
        });
        child.kill().unwrap(); // SIGKILL: no destructor, no finish.
        let killed_ns = now_ns();
        child.wait().unwrap();

        let s = acus_record::summary(&path).unwrap();
        println!("{s}");
        assert!(s.truncated.is_some(), "a killed record has no footer");
        let (_, last) = s.span_ns.unwrap();
        let lost = killed_ns.saturating_sub(last) as f64 * 1e-9;
        println!(
            "kill -9 mid-insertion: the last {lost:.3} s before the kill are lost (flush period {FLUSH_PERIOD:?})"
        );
        assert!(lost < 1.0, "lost {lost:.3} s");
        let inserted = s
            .timeline
            .iter()
            .any(|e| matches!(&e.event, Event::Answer(a) if a.accepted && a.answer.contains("inserted to")));
        assert!(inserted, "the record lacks the answered insertion step");

        let script = peer_script(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../control/record"),
            "read_back.py",
        );
        let py = Command::new(venv_python())
            .arg(script)
            .arg(&path)
            .arg("--truncated")
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "read_back.py: {}",
            String::from_utf8_lossy(&py.stderr)
        );
        let py: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
        for (topic, n) in &s.counts {
            assert_eq!(
                py["mcap"]["counts"][topic], *n,
                "Python mcap reads what we read on {topic}"
            );
        }
    });
}
