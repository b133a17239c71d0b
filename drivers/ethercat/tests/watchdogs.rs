//! The faults that need the whole cycle thread, in process with the emulated drives (ethercrab ↔ emulator): a stalled
//! supervisor (no heartbeat), an overrun burst (a bus that misses its slots), an e-stop source that falls silent, the
//! orderly shutdown, and the typed refusals of `move_to`. Default runner settings (50-cycle watchdog, 5 overruns in 100).
#![allow(clippy::needless_range_loop)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acus_ethercat::bus::Bus;
use acus_ethercat::cia402::{cw, DriveInputs, DriveOutputs, DriveState};
use acus_ethercat::cycle::{BusHealth, Fault, Mode, Status};
use acus_ethercat::ethercrab_bus::{pdu_storage, BusTiming, EthercrabBus};
use acus_ethercat::runner::{Controller, Disabled, Enabled, Event, Pacing, RunnerSettings};
use acus_ethercat::safety::{SourceKind, StopSource};
use acus_ethercat::Error;
use acus_sim_ecat::inproc::InProcessLink;
use acus_sim_ecat::{Clock, Network};
use common::*;

/// A bus that sleeps 25 ms before each of the next `slow_left` exchanges (a cycle thread that misses its slots).
struct SlowBus {
    inner: EthercrabBus,
    slow_left: Arc<AtomicU32>,
}

impl Bus for SlowBus {
    fn drives(&self) -> usize {
        self.inner.drives()
    }
    fn exchange(&mut self, outputs: &[DriveOutputs], inputs: &mut [DriveInputs]) -> BusHealth {
        if self.slow_left.load(Ordering::Relaxed) > 0 {
            self.slow_left.fetch_sub(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(25));
        }
        self.inner.exchange(outputs, inputs)
    }
    fn next_cycle_wait(&self) -> Option<Duration> {
        self.inner.next_cycle_wait()
    }
}

struct Line {
    link: InProcessLink,
    slow: Arc<AtomicU32>,
}

fn line(settings: RunnerSettings) -> (Line, Controller<Disabled>) {
    let cfg = config();
    let initial = [0.0, 0.0, 0.02, 0.0, 0.0, 0.02];
    let params: Vec<_> = cfg.axes.iter().zip(initial).map(|(a, q)| sim_params(a, q)).collect();
    let (tx, rx, pdu_loop) = pdu_storage().unwrap();
    let mut network = Network::new(&params).unwrap();
    network.set_clock(Clock::Lockstep);
    let link = InProcessLink::spawn(network, tx, rx).unwrap();
    let timing = BusTiming {
        dc_static_sync_iterations: 200,
        pdu_timeout: Duration::from_millis(50),
        process_data_timeout: Duration::from_millis(50),
        ..BusTiming::default()
    };
    let inner = EthercrabBus::bring_up(pdu_loop, &cfg.axes, timing).unwrap();
    let slow = Arc::new(AtomicU32::new(0));
    let bus = SlowBus {
        inner,
        slow_left: Arc::clone(&slow),
    };
    let ctrl = Controller::spawn_with(bus, &cfg.axes, Duration::from_secs_f64(cfg.cycle_time_s), settings).unwrap();
    (Line { link, slow }, ctrl)
}

fn defaults() -> RunnerSettings {
    RunnerSettings::new(Duration::from_millis(1), Pacing::RealTime)
}

/// Defaults without the overrun burst and with a 1 s command watchdog, for the tests about something else: on a shared
/// 2-core machine the in-process emulator misses slots of its own, and the test thread is no 50 ms supervisor.
fn no_burst() -> RunnerSettings {
    let mut s = defaults();
    s.safety.overrun_burst = 0;
    s.safety.stale_command_cycles = 1000;
    s
}

fn enabled_and_moving(ctrl: Controller<Disabled>) -> Controller<Enabled> {
    let mut ctrl = ctrl.enable();
    let s = wait_for(
        &mut ctrl,
        Duration::from_secs(10),
        |_| {},
        |s| s.mode == Mode::Enabled || s.fault.is_some(),
    );
    assert_eq!(s.fault, None);
    ctrl.move_to(&[0.08, -0.08, 0.12, 0.8, -0.6, 0.15], 0.5).unwrap();
    wait_for(
        &mut ctrl,
        Duration::from_secs(5),
        |s| assert_eq!(s.fault, None),
        |x| x.cycle >= s.cycle + 100,
    );
    ctrl
}

/// Poll without heartbeating (the supervisor is the one that stalled), until `pred` or the wall-time guard.
fn watch<S>(ctrl: &mut Controller<S>, timeout: Duration, pred: impl Fn(&Status) -> bool) -> Status {
    let t0 = Instant::now();
    loop {
        let s = ctrl.status();
        if pred(&s) {
            return s;
        }
        assert!(t0.elapsed() < timeout, "not reached; last {s:#?}");
        std::thread::yield_now();
    }
}

/// Latched with quick stop on every axis, its event queued before the status showed it, and nothing moves afterwards.
fn assert_latched_and_still<S>(ctrl: &mut Controller<S>, link: &InProcessLink, f: &Status) {
    assert!(
        f.controlword[..6].iter().all(|c| *c == cw::QUICK_STOP),
        "{:x?}",
        f.controlword
    );
    let fault = f.fault.unwrap();
    let mut latched = None;
    while let Some(e) = ctrl.next_event() {
        if let Event::FaultLatched { cycle, fault } = e {
            latched.get_or_insert((cycle, fault));
        }
    }
    assert_eq!(latched, Some((f.fault_cycle, fault)), "event queued before the status");
    let stopped = watch(ctrl, Duration::from_secs(10), |s| {
        s.drive_state[..6].iter().all(|d| *d == DriveState::SwitchOnDisabled)
    });
    let held = drive_positions(link);
    watch(ctrl, Duration::from_secs(5), |s| s.cycle >= stopped.cycle + 300);
    assert_eq!(held, drive_positions(link), "moved while latched");
    assert_eq!(ctrl.status().mode, Mode::Faulted);
}

#[test]
fn a_stalled_supervisor_quick_stops_the_cycle_thread() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut settings = no_burst();
    settings.safety.stale_command_cycles = defaults().safety.stale_command_cycles;
    let (line, ctrl) = line(settings);
    let mut ctrl = enabled_and_moving(ctrl);
    // Stop heartbeating: the last status before the fault says when the heartbeat last changed.
    let f = watch(&mut ctrl, Duration::from_secs(5), |s| s.fault.is_some());
    let deadline = u64::from(defaults().safety.stale_command_cycles);
    match f.fault {
        Some(Fault::StaleCommand { cycles }) => assert_eq!(u64::from(cycles), deadline + 1),
        other => panic!("expected a stale command, got {other:?}"),
    }
    // Observable at the heartbeat's last change + deadline + 1: latched then, not later.
    let changed_at = f.cycle - u64::from(f.command_age);
    assert!(
        f.fault_cycle <= changed_at + deadline + 2,
        "latched at {}, heartbeat at {changed_at}",
        f.fault_cycle
    );
    assert_latched_and_still(&mut ctrl, &line.link, &f);
    // A reset is a command, so it refreshes the heartbeat: the group comes back disabled.
    let mut ctrl = ctrl.reset();
    wait_for(
        &mut ctrl,
        Duration::from_secs(10),
        |_| {},
        |s| s.mode == Mode::Disabled && s.fault.is_none(),
    );
    ctrl.shutdown().unwrap();
}

#[test]
fn a_burst_of_overruns_quick_stops_the_cycle_thread() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // 5 late periods in 10, late meaning a period begun ≥ 20 ms after the previous one (+1 ms nominal): a busy shared
    // machine misses 1 ms slots of its own now and then (the defaults catch those), not five 20 ms ones in a row.
    let mut settings = defaults();
    settings.safety.overrun_window = 10;
    settings.overrun_lateness = Duration::from_millis(20);
    let (line, ctrl) = line(settings);
    let mut ctrl = enabled_and_moving(ctrl);
    let before = ctrl.status();
    line.slow.store(6, Ordering::Relaxed);
    let f = wait_for(&mut ctrl, Duration::from_secs(5), |_| {}, |s| s.fault.is_some());
    assert!(
        matches!(f.fault, Some(Fault::OverrunBurst { count: 5 })),
        "{:?}",
        f.fault
    );
    assert!(
        f.overruns > before.overruns,
        "overruns {} → {}",
        before.overruns,
        f.overruns
    );
    assert!(
        f.fault_cycle <= before.cycle + 8,
        "latched at {}, slots missed from {}",
        f.fault_cycle,
        before.cycle
    );
    eprintln!("realtime {} memory locked {}", f.realtime, f.memory_locked);
    assert_latched_and_still(&mut ctrl, &line.link, &f);
    // The burst has left the window long ago: the reset goes through.
    let mut ctrl = ctrl.reset();
    wait_for(
        &mut ctrl,
        Duration::from_secs(10),
        |_| {},
        |s| s.mode == Mode::Disabled && s.fault.is_none(),
    );
    ctrl.shutdown().unwrap();
}

#[test]
fn an_estop_source_that_falls_silent_quick_stops_and_refuses_reset_until_it_talks() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (line, mut ctrl) = line(no_burst());
    let mut console = ctrl
        .register_source(SourceKind::EmergencyStop, "console A", 100)
        .unwrap();
    console.refresh(false); // heard before the cycle runs on (a source never heard counts as pressed)
    assert_eq!(ctrl.source_name(console.index()), Some("console A"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let talking = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (stop2, talking2) = (Arc::clone(&stop), Arc::clone(&talking));
    let owner = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            if talking2.load(Ordering::Relaxed) {
                console.refresh(false);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut ctrl = enabled_and_moving(ctrl);
    talking.store(false, Ordering::Relaxed);
    let f = wait_for(&mut ctrl, Duration::from_secs(5), |_| {}, |s| s.fault.is_some());
    assert_eq!(
        f.fault,
        Some(Fault::EmergencyStop {
            source: StopSource::Input { index: 0, silent: true }
        })
    );
    assert_latched_and_still(&mut ctrl, &line.link, &f);
    let mut ctrl = ctrl.reset();
    let r = wait_for(&mut ctrl, Duration::from_secs(2), |_| {}, |s| s.reset_refused);
    assert_eq!(r.mode, Mode::Faulted, "reset refused while the console is silent");
    talking.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(20)); // the console's next refresh; the reset below is the assertion
    ctrl.reset();
    wait_for(
        &mut ctrl,
        Duration::from_secs(10),
        |_| {},
        |s| s.mode == Mode::Disabled && s.fault.is_none(),
    );
    stop.store(true, Ordering::Relaxed);
    owner.join().unwrap();
    ctrl.shutdown().unwrap();
}

#[test]
fn move_to_refuses_nan_and_goals_beyond_the_depth_limit_before_anything_moves() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (_line, ctrl) = line(no_burst());
    let mut ctrl = ctrl.enable();
    wait_for(&mut ctrl, Duration::from_secs(10), |_| {}, |s| s.mode == Mode::Enabled);
    let seq = ctrl.status().goal_seq;
    let nan = ctrl.move_to(&[0.0, 0.0, 0.02, f64::NAN, 0.0, 0.02], 1.0);
    assert!(
        matches!(nan, Err(Error::NonFiniteGoal { ref joint, .. }) if joint == "yaw_joint"),
        "{nan:?}"
    );
    assert!(matches!(
        ctrl.set_depth_limit(5, f64::NAN),
        Err(Error::DepthLimit { axis: 5, .. })
    ));
    ctrl.set_depth_limit(5, 0.05).unwrap();
    let deep = ctrl.move_to(&[0.0, 0.0, 0.02, 0.0, 0.0, 0.06], 1.0);
    assert!(matches!(deep, Err(Error::GoalBeyondDepthLimit { .. })), "{deep:?}");
    let s = wait_for(&mut ctrl, Duration::from_secs(1), |_| {}, |x| x.cycle > 50);
    assert_eq!((s.goal_seq, s.fault), (seq, None), "nothing was sent");
    ctrl.disable().shutdown().unwrap();
}

#[test]
fn shutdown_mid_motion_halts_disables_at_the_drives_then_stops() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (line, ctrl) = line(no_burst());
    let ctrl = enabled_and_moving(ctrl);
    ctrl.shutdown().unwrap();
    let net = line.link.network();
    for (i, d) in net.devices().iter().enumerate() {
        let sw = d.od.i32(0x6041) as u16;
        let st = DriveState::from_statusword(sw);
        assert!(
            matches!(st, DriveState::ReadyToSwitchOn | DriveState::SwitchOnDisabled),
            "drive {i} left in {st:?} ({sw:#06x})"
        );
    }
}

/// Whether this process may use SCHED_FIFO (probed on a throwaway thread).
fn fifo_permitted() -> bool {
    std::thread::spawn(|| {
        let p = libc::sched_param { sched_priority: 1 };
        // SAFETY: the calling thread, a valid param.
        unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &p) == 0 }
    })
    .join()
    .unwrap()
}

#[test]
fn the_status_says_whether_the_cycle_thread_got_its_real_time_settings() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut settings = no_burst();
    settings.realtime = acus_ethercat::rt::RtSettings::REALTIME;
    let (_line, mut ctrl) = line(settings);
    let s = wait_for(&mut ctrl, Duration::from_secs(5), |_| {}, |s| s.cycle > 20);
    assert_eq!(
        s.realtime,
        fifo_permitted(),
        "status {:?}",
        (s.realtime, s.memory_locked)
    );
    eprintln!("SCHED_FIFO {} mlockall {}", s.realtime, s.memory_locked);
    ctrl.shutdown().unwrap();
    // Without them asked: off.
    let (_line, mut ctrl) = line(no_burst());
    let s = wait_for(&mut ctrl, Duration::from_secs(5), |_| {}, |s| s.cycle > 20);
    assert!(!s.realtime && !s.memory_locked);
    ctrl.shutdown().unwrap();
}
