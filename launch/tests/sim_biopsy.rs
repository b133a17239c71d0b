//! The simulated biopsy end to end, in process: emulated CiA 402 drives answering real EtherCAT frames (PduTx/PduRx), the
//! virtual scanner writing DICOM, every node over DDS, the operator through the ROS interface. The thresholds are the
//! figures the README states, with a stated margin: in the `ideal` world (robot, frame, scanner and operator exactly as
//! the controller's model, which replays exactly) the final tip-to-target error was 0.16 mm on seed 1 (median 0.22, at
//! most 0.42 mm over seeds 1–50), accepted up to 0.25 mm on seed 1; in
//! the `realistic` world (launch/config/worlds/realistic.yaml: a breathing patient, gated) seed 9 ended 0.36–0.45 mm
//! from the target in 10 of 10 runs (the breathing world does not replay exactly), accepted up to 0.6 mm; the 50-seed
//! figures are in the README.

use std::path::PathBuf;

use acus_launch::run::{run, SimOptions};
use acus_launch::system::Drives;
use acus_nodes::testing::isolated;

fn default_config() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml"))
}

fn biopsy_in(world: &str, seed: Option<u64>, max_error: f64) -> acus_launch::run::Summary {
    let out = tempfile::tempdir().unwrap();
    let options = SimOptions {
        config: default_config(),
        out: out.path().to_path_buf(),
        realtime: false,
        seed,
        world: Some(world.into()),
        drives: Drives::InProcess,
        record: true,
        pedal: None,
        igtl: None,
        external_registration: false,
        tracker: None,
    };
    let summary = run(&options, |a| println!("{} {}: {}", a.service, a.success, a.message)).unwrap();
    println!("{}", summary.text);
    assert_eq!(summary.world, world);
    assert!(
        summary.final_error <= max_error,
        "final error {:.2} mm in world {world}",
        summary.final_error * 1e3
    );
    summary
}

/// The realistic world does not flatter the controller: registration sees the frame as manufactured (FRE well above
/// the ideal world's 0.01 mm), the patient breathes, and the gated biopsy still ends within the figure claimed for it.
#[test]
fn realistic_world_biopsy_ends_within_0_6_mm_on_seed_9() {
    isolated(|| {
        let summary = biopsy_in("realistic", Some(9), 0.6e-3);
        let fre = summary.fre.expect("an FRE");
        assert!(
            fre > 0.05e-3,
            "FRE {:.3} mm: the frame as manufactured differs from its model",
            fre * 1e3
        );
        // Observed TRE (the registration against the twin's truth): 0.14 mm on seed 9; median 0.29, max 0.67 mm over
        // seeds 1–50, above the predicted 0.26 mm in about half of them (the frame's manufacturing error is not random
        // per scan).
        let observed = summary.observed_tre.expect("an observed TRE");
        assert!(
            observed > 0.05e-3 && observed < 0.7e-3,
            "observed TRE {:.3} mm",
            observed * 1e3
        );
        let measured = summary
            .measured_final_error
            .expect("the last check scan measured the tip");
        assert!(
            (measured - summary.final_error).abs() < 0.6e-3,
            "the scan agrees with the truth within 0.6 mm: {:.2} vs {:.2} mm",
            measured * 1e3,
            summary.final_error * 1e3
        );
    });
}

#[test]
fn ideal_world_biopsy_reaches_the_target_within_0_25_mm_on_seed_1() {
    isolated(|| {
        let out = tempfile::tempdir().unwrap();
        let options = SimOptions {
            config: default_config(),
            out: out.path().to_path_buf(),
            realtime: false,
            seed: Some(1),
            world: Some("ideal".into()),
            drives: Drives::InProcess,
            record: true,
            pedal: None,
            igtl: None,
            external_registration: false,
            tracker: None,
        };
        let summary = run(&options, |a| println!("{} {}: {}", a.service, a.success, a.message)).unwrap();
        println!("{}", summary.text);
        // Every request accepted, except registration attempts made before the registration node had heard of the
        // planning scan (the operator retries those until the answer names the series).
        let refused: Vec<_> = summary
            .log
            .answers
            .iter()
            .filter(|a| {
                let early_registration = a.service == "/registration/register" && a.message.starts_with("no CT series");
                !a.success && !early_registration
            })
            .collect();
        assert!(refused.is_empty(), "refused: {refused:?}");
        assert!(summary.check_scans >= 2, "{} check scans", summary.check_scans);
        assert!(
            summary.observed_tre.is_some_and(|t| t < 0.03e-3),
            "observed TRE {:?} m: the ideal frame registers to about 0.01 mm (max 0.020 mm over seeds 1–50)",
            summary.observed_tre
        );
        assert!(
            summary.final_error <= 0.25e-3,
            "final error {:.2} mm",
            summary.final_error * 1e3
        );
        let measured = summary
            .measured_final_error
            .expect("the last check scan measured the tip");
        assert!(
            (measured - summary.final_error).abs() < 0.2e-3,
            "the scan agrees with the truth within 0.2 mm"
        );
        // The scans and the log are on disk: a DICOM series per scan.
        let log = std::fs::read_to_string(out.path().join("log.txt")).unwrap();
        assert!(log.contains("final tip-to-target error"));
        let series: Vec<_> = std::fs::read_dir(out.path().join("scans"))
            .unwrap()
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
            .collect();
        assert_eq!(series.len(), 1 + summary.check_scans);
    });
}

/// A study is repeatable: the same seed in the same world gives the same biopsy, down to what each check scan measured —
/// every draw of the `still` world (the realistic robot as built, frame, table and operator, a phantom that does not
/// breathe) included. Nothing in the outcome may depend on wall-clock timing (when a scan was taken while an axis was
/// still settling, say). (The breathing `realistic` world is not: its patient hears the breath-hold instructions over
/// DDS while the simulated clock runs; README.)
#[test]
fn the_same_seed_gives_the_same_biopsy() {
    isolated(|| {
        let outcome = || {
            let out = tempfile::tempdir().unwrap();
            let options = SimOptions {
                config: default_config(),
                out: out.path().to_path_buf(),
                realtime: false,
                seed: Some(2),
                world: Some("still".into()),
                drives: Drives::InProcess,
                record: true,
                pedal: None,
                igtl: None,
                external_registration: false,
                tracker: None,
            };
            let summary = run(&options, |_| {}).unwrap();
            let checks: Vec<_> = summary
                .log
                .check_scans
                .iter()
                .map(|c| {
                    (
                        c.get("tip to target [mm]").cloned(),
                        c.get("correction pivot [deg]").cloned(),
                    )
                })
                .collect();
            (checks, summary.final_error)
        };
        let (first, second) = (outcome(), outcome());
        assert!(!first.0.is_empty(), "no check scan measured");
        assert_eq!(first, second, "two runs with seed 2 differ");
    });
}
