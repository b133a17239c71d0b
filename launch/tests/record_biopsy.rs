//! The procedure record of a whole simulated biopsy (issue 16, acceptance 1): `acus sim` records by default; Python
//! `mcap` (with `mcap-ros2-support`) and `rosbags` read back every message; their counts per topic and the final state
//! match what acus printed, and our own timeline reader agrees with the operator's log.

use std::path::PathBuf;
use std::process::Command;

use acus_launch::run::{run, SimOptions};
use acus_launch::system::Drives;
use acus_nodes::testing::{isolated, peer_script, venv_python};
use acus_record::{Event, PROCEDURE_TOPICS};

fn read_back(path: &std::path::Path) -> serde_json::Value {
    let script = peer_script(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../control/record"),
        "read_back.py",
    );
    let out = Command::new(venv_python()).arg(script).arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "read_back.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_recorded_biopsy_reads_back_in_python_mcap_and_rosbags_with_the_counts_acus_printed() {
    isolated(|| {
        let out = tempfile::tempdir().unwrap();
        let options = SimOptions {
            config: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml")),
            out: out.path().to_path_buf(),
            realtime: false,
            seed: Some(3),
            world: Some("ideal".into()),
            drives: Drives::InProcess,
            record: true,
            pedal: None,
            igtl: None,
            external_registration: false,
            tracker: None,
        };
        let summary = run(&options, |_| {}).unwrap();
        println!("{}", summary.text);
        let record = summary.record.clone().expect("acus sim records by default");
        assert!(record.complete, "the record missed the last answers: {}", summary.text);
        assert!(summary.text.contains(&format!("record: {}", record.path.display())));

        // Every procedure topic has messages (faults only when there is one; this biopsy has none).
        for (topic, _) in PROCEDURE_TOPICS {
            let n = record.counts.get(*topic).copied().unwrap_or(0);
            if *topic != "/procedure/faults" {
                assert!(n > 0, "no message on {topic}: {:?}", record.counts);
            }
        }

        // Channels without messages (the fault topic of a biopsy without faults) are not counted by the readers.
        let printed: std::collections::BTreeMap<String, u64> = record
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(t, n)| (t.clone(), *n))
            .collect();
        let back = read_back(&record.path);
        for reader in ["mcap", "rosbags"] {
            let counts: std::collections::BTreeMap<String, u64> =
                serde_json::from_value(back[reader]["counts"].clone()).unwrap();
            assert_eq!(counts, printed, "{reader} counts differ from what acus printed");
        }
        assert!(back["mcap"]["error"].is_null(), "mcap: {}", back["mcap"]["error"]);

        // Our timeline: every request has its answer, one per procedure answer the operator got, and a check-scan
        // event and a scan record per check scan.
        let timeline = acus_record::summary(&record.path).unwrap();
        assert!(timeline.truncated.is_none());
        assert_eq!(timeline.counts, printed);
        let final_state = timeline.final_state().expect("no state in the record");
        let printed = record.final_state.clone().unwrap();
        assert!(
            printed.starts_with(final_state),
            "record ends in '{final_state}', acus printed '{printed}'"
        );
        let requests: Vec<_> = timeline
            .timeline
            .iter()
            .filter_map(|e| match &e.event {
                Event::Request(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        let answers: Vec<_> = timeline
            .timeline
            .iter()
            .filter_map(|e| match &e.event {
                Event::Answer(a) => Some(a.clone()),
                _ => None,
            })
            .collect();
        let operator_answers: Vec<_> = summary
            .log
            .answers
            .iter()
            .filter(|a| a.service != "/registration/register" && !a.service.starts_with("/deadman/"))
            .collect();
        assert_eq!(answers.len(), operator_answers.len());
        assert_eq!(requests.len(), answers.len());
        for (answer, seen) in answers.iter().zip(&operator_answers) {
            assert!(
                requests.iter().any(|r| r.id == answer.id),
                "answer {} has no request",
                answer.id
            );
            assert_eq!(answer.answer, seen.message);
            assert_eq!(answer.accepted, seen.success);
        }
        let checks = timeline
            .timeline
            .iter()
            .filter(|e| matches!(e.event, Event::CheckScan { .. }))
            .count();
        assert_eq!(checks, summary.check_scans);
        let scans: Vec<_> = timeline
            .timeline
            .iter()
            .filter_map(|e| match &e.event {
                Event::Scan(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(scans.len(), summary.check_scans + 1, "{scans:?}");
        assert_eq!(scans[0].kind, "planning");
        for s in &scans {
            assert!(!s.series_uid.is_empty() && !s.study_uid.is_empty(), "{s:?}");
            assert!(std::path::Path::new(&s.series_dir).is_dir(), "{s:?}");
        }
    });
}
