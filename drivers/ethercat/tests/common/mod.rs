//! Shared test harness: the real drive config + URDF, the emulated line wired in-process.
#![allow(dead_code)]

pub mod pure;
pub mod veth;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use acus_ethercat::config::{AxisConfig, DrivesConfig};
use acus_ethercat::cycle::Status;
use acus_ethercat::ethercrab_bus::{pdu_storage, BusTiming, EthercrabBus};
use acus_ethercat::runner::{Controller, Disabled};
use acus_sim_ecat::inproc::InProcessLink;
use acus_sim_ecat::{Clock, DriveParams, Network};

/// Tests in one binary share 2 CPU cores with a 1 kHz loop each: run them one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn config() -> DrivesConfig {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../launch/config/positioner_drives.yaml");
    DrivesConfig::load(&p).unwrap()
}

/// Emulator parameters for an axis: URDF mass and limits, the motor a little faster than the
/// joint limits the master plans with.
pub fn sim_params(a: &AxisConfig, initial: f64) -> DriveParams {
    let units = DriveParams::with_units(a.encoder_counts_per_rev, a.gear_ratio, a.lead_m_per_rev).unwrap();
    DriveParams {
        mass: a.mass,
        max_velocity: a.max_velocity * 1.5,
        max_acceleration: a.max_acceleration * 2.0,
        rated_effort: a.max_effort,
        initial_position: initial,
        ..units
    }
}

pub struct Rig {
    pub link: InProcessLink,
    pub ctrl: Option<Controller<Disabled>>,
    pub cfg: DrivesConfig,
    pub initial_counts: Vec<i32>,
}

/// The positioner's drives emulated in process on the lockstep clock, the master in OP, the cycle thread on real time.
/// The process-data wait is 50 ms, not the real-time 1.5 periods: these tests share 2 cores with builds, and the
/// lockstep drives do not age while a frame is late; the 2-period detection is proven in `link_loss.rs`.
pub fn start(initial: &[f64]) -> Rig {
    start_with(
        initial,
        Clock::Lockstep,
        BusTiming {
            dc_static_sync_iterations: 200,
            pdu_timeout: Duration::from_millis(50),
            process_data_timeout: Duration::from_millis(50),
            ..BusTiming::default()
        },
    )
}

/// [`start`] with the emulator's clock and the bus timing chosen.
pub fn start_with(initial: &[f64], clock: Clock, timing: BusTiming) -> Rig {
    let cfg = config();
    let params: Vec<DriveParams> = cfg.axes.iter().zip(initial).map(|(a, q)| sim_params(a, *q)).collect();
    let (tx, rx, pdu_loop) = pdu_storage().unwrap();
    let mut network = Network::new(&params).unwrap();
    network.set_clock(clock);
    let link = InProcessLink::spawn(network, tx, rx).unwrap();
    let bus = EthercrabBus::bring_up(pdu_loop, &cfg.axes, timing).unwrap();
    let initial_counts = bus.initial_positions[..cfg.axes.len()].to_vec();
    let ctrl =
        Controller::spawn_with(bus, &cfg.axes, Duration::from_secs_f64(cfg.cycle_time_s), relaxed(&cfg)).unwrap();
    Rig {
        link,
        ctrl: Some(ctrl),
        cfg,
        initial_counts,
    }
}

/// Runner settings for tests that are not about the watchdogs: a test thread on a shared 2-core machine is no
/// supervisor with a 50 ms deadline, nor is the in-process emulator a drive that answers every slot; the command
/// watchdog is 1 s and the overrun burst off here (their own tests, `watchdogs.rs`, use the defaults).
pub fn relaxed(cfg: &DrivesConfig) -> acus_ethercat::runner::RunnerSettings {
    let period = Duration::from_secs_f64(cfg.cycle_time_s);
    let mut s = acus_ethercat::runner::RunnerSettings::new(period, acus_ethercat::runner::Pacing::RealTime);
    s.safety.stale_command_cycles = 1000;
    s.safety.overrun_burst = 0;
    s
}

/// Poll the published status until `pred` holds; every status seen goes through `each`.
/// Fails after `timeout` of wall time (a guard, not a synchronisation).
pub fn wait_for<S>(
    ctrl: &mut Controller<S>,
    timeout: Duration,
    mut each: impl FnMut(&Status),
    pred: impl Fn(&Status) -> bool,
) -> Status {
    let t0 = Instant::now();
    let mut last_cycle = 0;
    loop {
        // The waiting test is the supervisor: it keeps the command heartbeat alive.
        ctrl.heartbeat();
        let s = ctrl.status();
        if s.cycle != last_cycle {
            last_cycle = s.cycle;
            each(&s);
            if pred(&s) {
                return s;
            }
        }
        assert!(
            t0.elapsed() < timeout,
            "condition not reached within {timeout:?}; last status {s:#?}"
        );
        std::thread::yield_now();
    }
}

/// Emulated drive positions (joint units, before home offset).
pub fn drive_positions(link: &InProcessLink) -> Vec<f64> {
    link.network().devices().iter().map(|d| d.drive.position()).collect()
}
