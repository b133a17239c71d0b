//! Cycle compute time for 6 axes, excluding the wire: decode inputs → check → interpolate →
//! CiA 402 → encode outputs. Prints p50 / p99 / max in µs (custom harness: criterion reports
//! no percentiles). Run: `cargo bench -p acus-ethercat --bench cycle`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use acus_ethercat::config::DrivesConfig;
use acus_ethercat::cycle::{BusHealth, Command, Mode};
use common::pure::PureRig;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../launch/config/positioner_drives.yaml");
    let cfg = match DrivesConfig::load(&p) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let dt = cfg.cycle_time_s;
    let mut rig = PureRig::new(&cfg.axes, dt);
    let mut cmd = Command {
        enable: true,
        enable_seq: 1,
        ..Command::default()
    };
    // Enable, then alternate between two goals so the interpolator works every cycle.
    for _ in 0..100 {
        rig.master_step(BusHealth::Ok, &cmd);
        rig.drives_step(dt);
    }
    let goals = [
        [0.05, -0.05, 0.1, 0.5, -0.5, 0.15],
        [-0.05, 0.05, 0.02, -0.5, 0.5, 0.02],
    ];
    let n = 200_000;
    let mut samples = Vec::with_capacity(n);
    let mut enabled = 0usize;
    for k in 0..n {
        if k % 20_000 == 0 {
            cmd.goal[..6].copy_from_slice(&goals[(k / 20_000) % 2]);
            cmd.goal_seq += 1;
        }
        let t = Instant::now();
        let s = rig.master_step(BusHealth::Ok, &cmd);
        samples.push(t.elapsed().as_nanos() as u64);
        enabled += usize::from(s.mode == Mode::Enabled);
        rig.drives_step(dt);
    }
    samples.sort_unstable();
    let pct = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)] as f64 / 1000.0;
    println!(
        "cycle compute, {} axes, {n} cycles ({enabled} enabled): p50 {:.3} µs, p99 {:.3} µs, max {:.3} µs",
        cfg.axes.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
}
