//! The enable pedal on a serial line (issue 15): `acus sim --pedal sim` runs the biopsy with the simulated pedal behind a
//! real pseudo-terminal, read by the tokio-serial reader in the process that owns the cycle; the pedal released, silent
//! or unplugged holds the motion in the cycle, whatever the console's ROS deadman says.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use acus_ethercat::runner::Pacing;
use acus_launch::config::SimConfig;
use acus_launch::operator::{BiopsyLog, Operator};
use acus_launch::run::{run, SimOptions};
use acus_launch::system::{self, Drives, Pedal};
use acus_nodes::testing::isolated;

fn config_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml"))
}

#[test]
fn a_biopsy_runs_with_the_simulated_pedal_over_a_pty() {
    isolated(|| {
        let out = tempfile::tempdir().unwrap();
        let options = SimOptions {
            config: config_path(),
            out: out.path().to_path_buf(),
            realtime: false,
            seed: Some(2),
            world: Some("ideal".into()),
            drives: Drives::InProcess,
            record: false,
            pedal: Some(Pedal::Simulated),
            igtl: None,
            external_registration: false,
            tracker: None,
        };
        let summary = run(&options, |_| {}).unwrap();
        println!("{}", summary.text);
        assert!(summary.final_error < 0.4e-3, "{:.2} mm", summary.final_error * 1e3);
    });
}

/// Wait until the cycle reports the enable level `held` (the pedal's reader refreshes its source within a frame).
fn wait_enable(sim: &system::SimSystem, held: bool) -> Duration {
    let t0 = Instant::now();
    while sim.motion.status().borrow().enable_held != held {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the cycle never saw enable_held = {held}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    t0.elapsed()
}

#[test]
fn pedal_released_silent_or_unplugged_holds_the_insertion_while_the_console_deadman_is_held() {
    isolated(|| {
        let config = SimConfig::load_in(&config_path(), Some("ideal")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        let sim = system::start(
            &config,
            out.path(),
            Pacing::Simulated,
            &Drives::InProcess,
            &system::Attached {
                pedal: Some(Pedal::Simulated),
                ..Default::default()
            },
        )
        .unwrap();
        let pedal = sim.sim_pedal.clone().unwrap();
        rt.block_on(async {
            let mut op = Operator::start(&sim.ctx, config.controller.entry, config.controller.target)
                .await
                .unwrap();
            let foot = pedal.clone();
            op.pedal = Some(Box::new(move |held| if held { foot.press() } else { foot.release() }));
            let mut log = BiopsyLog::default();
            assert!(op.call("/procedure/scan", &mut log).await.unwrap().success);
            for _ in 0..100 {
                if op.call("/registration/register", &mut log).await.unwrap().success {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            op.call("/reset_fault", &mut log).await.unwrap();
            for service in ["/enable", "/plan", "/align"] {
                let a = if service == "/enable" {
                    op.set_enable(true, &mut log).await.unwrap()
                } else {
                    op.call(service, &mut log).await.unwrap()
                };
                assert!(a.success, "{service}: {}", a.message);
            }
            // Each way the pedal can stop being heard, with the console's ROS deadman held throughout.
            type Lose = fn(&acus_sim_serial::SimPedal);
            let ways: [(&str, Lose, Lose); 3] = [
                ("released", |p| p.release(), |p| p.press()),
                ("silent", |p| p.go_silent(), |p| p.press()),
                (
                    "unplugged",
                    |p| p.unplug().unwrap(),
                    |p| {
                        p.replug().unwrap();
                        p.press();
                    },
                ),
            ];
            for (how, lose, restore) in ways {
                lose(&pedal);
                let seen = wait_enable(&sim, false);
                println!(
                    "pedal {how}: the cycle saw the enable released after {:.1} ms",
                    seen.as_secs_f64() * 1e3
                );
                let before = sim.motion.status().borrow().actual;
                let step = op.call("/insert_step", &mut log).await.unwrap();
                let after = sim.motion.status().borrow().actual;
                println!("insert with the pedal {how}: {}", step.message);
                assert!(
                    !step.success,
                    "an insertion step ran with the pedal {how}: {}",
                    step.message
                );
                assert!(
                    (after.insertion() - before.insertion()).abs() < 1e-5,
                    "the needle moved {:.3} mm with the pedal {how}",
                    (after.insertion() - before.insertion()) * 1e3
                );
                restore(&pedal);
                wait_enable(&sim, true);
                // Nothing latched (a hold, not a stop): the drives stayed powered where they held.
            }
            let step = op.call("/insert_step", &mut log).await.unwrap();
            assert!(
                step.success,
                "with the pedal pressed again the insertion goes on: {}",
                step.message
            );
        });
    });
}
