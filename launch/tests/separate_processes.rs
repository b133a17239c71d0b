//! The nodes exchange state over ROS 2 only (issue 11): the registration node in one process (`acus registration`),
//! the drives, the procedure and the scanner in another (`acus sim --serve --external-registration`), and the operator
//! in this test's process. The registration reaches the procedure only as the fiducials found, on
//! `/registration/fiducials`; the procedure fits and gates them itself. The whole biopsy runs, and the twin's truth
//! (written by the served process on SIGTERM) shows the needle at the lesion.

use std::time::Duration;

use acus_launch::config::SimConfig;
use acus_launch::operator::Operator;
use acus_nodes::testing::isolated;

mod common;
use common::{spawn_serving, terminate};

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml");

#[test]
fn a_biopsy_runs_with_the_registration_node_in_a_process_of_its_own() {
    isolated(|| {
        let out = tempfile::tempdir().unwrap();
        let mut registration = spawn_serving(&["registration", "--config", CONFIG, "--world", "ideal"], None);
        let mut robot = spawn_serving(
            &[
                "sim",
                "--serve",
                "--external-registration",
                "--no-record",
                "--world",
                "ideal",
                "--seed",
                "6",
                "--config",
                CONFIG,
            ],
            Some(out.path()),
        );
        let config = SimConfig::load_in(CONFIG.as_ref(), Some("ideal")).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ctx = r2r::Context::create().unwrap();
        let log = rt.block_on(async {
            let mut operator = Operator::start(&ctx, config.controller.entry, config.controller.target)
                .await
                .unwrap();
            tokio::time::timeout(Duration::from_secs(240), operator.biopsy()).await
        });
        let robot_exit = terminate(&mut robot);
        let registration_exit = terminate(&mut registration);
        let log = log.expect("the biopsy finished within 4 min").unwrap();
        for a in &log.answers {
            println!("{:<24} {}: {}", a.service, a.success, a.message);
        }
        assert!(robot_exit.success(), "acus sim --serve exited {robot_exit}");
        assert!(
            registration_exit.success(),
            "acus registration exited {registration_exit}"
        );
        let register = log
            .answers
            .iter()
            .find(|a| a.service == "/registration/register" && a.success)
            .expect("the registration process answered");
        assert!(register.message.contains("registered"), "{}", register.message);
        let plan = log.answers.iter().find(|a| a.service == "/plan").unwrap();
        assert!(plan.success && plan.message.contains("planned"), "{}", plan.message);

        let truth: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join("truth.json")).unwrap()).unwrap();
        let last = truth["check_scans"]
            .as_array()
            .and_then(|c| c.last())
            .expect("the served process recorded its check scans");
        let miss = last["tip_to_lesion_mm"].as_f64().unwrap();
        println!("two processes: the tip ends {miss:.3} mm from the lesion (twin's truth)");
        assert!(miss < 0.5, "tip {miss:.3} mm from the lesion");
    });
}
