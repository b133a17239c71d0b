//! On the real-time clock (1 kHz of wall time), with the positioner's six drives emulated in process on their own wall
//! clock: (1) e-stop heard → quick stop at the drives: from the moment a registered e-stop source reports "pressed" to
//! the moment every emulated drive holds a quick-stop controlword (bit 2 clear) in its object dictionary, i.e. the frame
//! that carried it has arrived; (1b) the same end, from the first bus exchange that starts after the press (the cycle
//! that can first see it: it samples the sources after its exchange, and the quick stop leaves in the next one); the
//! goal is 2 periods; (2) cycle-period jitter: the spacing of the cycle thread's exchanges. Both without and
//! with the real-time settings (SCHED_FIFO 80 and locked memory for the cycle thread, FIFO 85 for the thread carrying
//! the emulated frames). Prints p50 / p99 / max (custom harness: criterion reports no percentiles).
//!
//! Run: `cargo bench -p acus-ethercat --bench estop` (the real-time run needs root; without it the second run says it
//! got no real-time scheduling). The drives are polled every 50 µs, which bounds the resolution of (1).

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acus_ethercat::bus::Bus;
use acus_ethercat::cia402::{DriveInputs, DriveOutputs};
use acus_ethercat::cycle::{BusHealth, Mode, ResetAnswer, Status};
use acus_ethercat::ethercrab_bus::{pdu_storage, BusTiming, EthercrabBus};
use acus_ethercat::rt::RtSettings;
use acus_ethercat::runner::{Controller, Disabled, Pacing, RunnerSettings};
use acus_ethercat::safety::{SafetyInput, SourceKind};
use acus_sim_ecat::inproc::InProcessLink;
use acus_sim_ecat::{Clock, Network};
use common::{config, sim_params};

const STAMPS: usize = 1 << 14;
const TRIALS: usize = 200;

/// The bus, stamping the wall time of every exchange into fixed storage (no allocation on the cycle thread).
struct TimedBus {
    inner: EthercrabBus,
    t0: Instant,
    stamps: Arc<Vec<AtomicU64>>,
    next: Arc<AtomicUsize>,
}

impl Bus for TimedBus {
    fn drives(&self) -> usize {
        self.inner.drives()
    }
    fn exchange(&mut self, outputs: &[DriveOutputs], inputs: &mut [DriveInputs]) -> BusHealth {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.stamps[i % STAMPS].store(self.t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.inner.exchange(outputs, inputs)
    }
    fn next_cycle_wait(&self) -> Option<Duration> {
        self.inner.next_cycle_wait()
    }
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), v[v.len() - 1])
}

/// Poll the status (heartbeating, the e-stop released) until `pred` holds; a guard, not a synchronisation.
fn wait<S>(ctrl: &mut Controller<S>, estop: &mut SafetyInput, pred: impl Fn(&Status) -> bool) -> Status {
    let t0 = Instant::now();
    loop {
        estop.refresh(false);
        ctrl.heartbeat();
        let s = ctrl.status();
        if pred(&s) {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no progress: {s:#?}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Release, then reset until the cycle is Disabled with no fault. Each request waits for its own answer: refused (the
/// stop still seen held, a frame lost in that period) → ask again; taken → Disabled, or a new fault latched after the
/// answer (a frame lost on the way) → ask again.
fn reset(enabled: Controller<acus_ethercat::runner::Enabled>, estop: &mut SafetyInput) -> Controller<Disabled> {
    let mut d = enabled.reset();
    loop {
        let seq = d.last_reset_seq();
        let s = wait(&mut d, estop, |s| s.reset_reply.is_some_and(|r| r.seq == seq));
        let Some(reply) = s.reset_reply else { continue };
        if !matches!(reply.answer, ResetAnswer::Refused { .. }) {
            let s = wait(&mut d, estop, |s| {
                (s.mode == Mode::Disabled && s.fault.is_none())
                    || (s.mode == Mode::Faulted && s.fault_cycle > reply.cycle)
            });
            if s.mode == Mode::Disabled {
                return d;
            }
        }
        d.reset();
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for rt in [false, true] {
        run(rt);
    }
}

fn run(rt: bool) {
    let cfg = config();
    let period = Duration::from_secs_f64(cfg.cycle_time_s);
    let initial = [0.0, 0.0, 0.05, 0.0, 0.0, 0.01];
    let params: Vec<_> = cfg.axes.iter().zip(initial).map(|(a, q)| sim_params(a, q)).collect();
    let (tx, rx, pdu_loop) = pdu_storage().expect("PDU storage");
    let mut network = Network::new(&params).expect("emulated drives");
    network.set_clock(Clock::Wall);
    let link = InProcessLink::spawn(network, tx, rx).expect("in-process link");
    let link_rt = rt && link.set_realtime(85);
    let bus = EthercrabBus::bring_up(pdu_loop, &cfg.axes, BusTiming::real_time(period)).expect("bring-up");
    let stamps: Arc<Vec<AtomicU64>> = Arc::new((0..STAMPS).map(|_| AtomicU64::new(0)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let timed = TimedBus {
        inner: bus,
        t0,
        stamps: Arc::clone(&stamps),
        next: Arc::clone(&next),
    };
    let mut settings = RunnerSettings::new(period, Pacing::RealTime);
    // Latency and jitter are measured, not judged: a late period must not end the run.
    settings.safety.overrun_burst = 0;
    if rt {
        settings.realtime = RtSettings::REALTIME;
    }
    let mut ctrl = Controller::spawn_with(timed, &cfg.axes, period, settings).expect("cycle thread");
    let mut estop = ctrl
        .register_source(SourceKind::EmergencyStop, "bench console", 500)
        .expect("e-stop source");
    estop.refresh(false); // heard at once (a source never heard counts as pressed)
    let mut latencies = Vec::with_capacity(TRIALS);
    let mut from_exchange = Vec::with_capacity(TRIALS);
    let mut disabled = ctrl;
    let mut got_rt = false;
    let mut other_faults = 0usize;
    let mut frame_lost = 0usize;
    for trial in 0..TRIALS {
        estop.refresh(false);
        let mut enabled = disabled.enable();
        let s = wait(&mut enabled, &mut estop, |s| {
            s.mode == Mode::Enabled || s.fault.is_some()
        });
        got_rt = s.realtime;
        if let Some(fault) = s.fault {
            // A frame late beyond the real-time 1.5 periods latches FrameLost: counted, not measured.
            eprintln!("trial {trial}: {fault:?} while enabling");
            other_faults += 1;
            frame_lost += usize::from(fault == acus_ethercat::cycle::Fault::FrameLost);
            disabled = reset(enabled, &mut estop);
            continue;
        }
        // Press while the axes move.
        let goal = if trial % 2 == 0 {
            [0.02, -0.02, 0.07, 0.1, -0.1, 0.02]
        } else {
            [0.0, 0.0, 0.05, 0.0, 0.0, 0.01]
        };
        enabled.move_to(&goal, 1.0).expect("goal");
        let lead = Duration::from_micros(20_000 + (trial as u64 * 7_919) % 20_000);
        let until = Instant::now() + lead;
        while Instant::now() < until {
            estop.refresh(false);
            enabled.heartbeat();
            std::thread::sleep(Duration::from_micros(200));
        }
        if let Some(fault) = enabled.status().fault {
            eprintln!("trial {trial}: {fault:?} before the press");
            other_faults += 1;
            frame_lost += usize::from(fault == acus_ethercat::cycle::Fault::FrameLost);
            disabled = reset(enabled, &mut estop);
            continue;
        }
        let pressed = Instant::now();
        estop.refresh(true);
        loop {
            let stopped = link
                .network()
                .devices()
                .iter()
                .all(|d| d.od.i32(acus_sim_ecat::od::idx::CONTROLWORD) & 0x0004 == 0);
            if stopped {
                break;
            }
            assert!(
                pressed.elapsed() < Duration::from_secs(1),
                "no quick stop at the drives"
            );
            std::thread::sleep(Duration::from_micros(50));
        }
        let stopped = Instant::now();
        latencies.push((stopped - pressed).as_secs_f64() * 1e3);
        // The first exchange that started after the press, from the stamps of the last exchanges.
        let (pressed_ns, stopped_ns) = ((pressed - t0).as_nanos() as u64, (stopped - t0).as_nanos() as u64);
        let last = next.load(Ordering::Relaxed);
        let first_after = (last.saturating_sub(STAMPS / 2)..last)
            .map(|i| stamps[i % STAMPS].load(Ordering::Relaxed))
            .filter(|t| *t >= pressed_ns)
            .min();
        if let Some(t) = first_after.filter(|t| *t <= stopped_ns) {
            from_exchange.push((stopped_ns - t) as f64 * 1e-6);
        }
        estop.refresh(false);
        disabled = reset(enabled, &mut estop);
    }
    // Period jitter from the exchange stamps of the whole run (the last STAMPS periods).
    let n = next.load(Ordering::Relaxed).min(STAMPS);
    let start = next.load(Ordering::Relaxed) - n;
    let t: Vec<u64> = (start..start + n)
        .map(|i| stamps[i % STAMPS].load(Ordering::Relaxed))
        .collect();
    let deviation: Vec<f64> = t
        .windows(2)
        .map(|w| ((w[1].saturating_sub(w[0])) as f64 * 1e-6 - period.as_secs_f64() * 1e3).abs())
        .collect();
    if latencies.is_empty() {
        println!(
            "real-time settings {}: every trial ended by another fault",
            if rt { "requested" } else { "off" }
        );
        return;
    }
    let presses = latencies.len();
    let (l50, l99, lmax) = percentiles(latencies);
    let (j50, j99, jmax) = percentiles(deviation);
    println!(
        "real-time settings {} (cycle thread SCHED_FIFO: {got_rt}; frame thread: {link_rt})",
        if rt { "requested" } else { "off" }
    );
    println!("  trials ended by another fault before the press: {other_faults}, of which FrameLost (a frame late beyond 1.5 periods): {frame_lost}");
    println!("  e-stop heard → quick stop at the drives, {presses} presses: p50 {l50:.3} ms, p99 {l99:.3} ms, max {lmax:.3} ms");
    if !from_exchange.is_empty() {
        let within = from_exchange
            .iter()
            .filter(|l| **l <= 2.0 * period.as_secs_f64() * 1e3)
            .count();
        let n = from_exchange.len();
        let (x50, x99, xmax) = percentiles(from_exchange);
        println!(
            "  first exchange after the press → quick stop at the drives, {n} presses: p50 {x50:.3} ms, p99 {x99:.3} ms, \
             max {xmax:.3} ms; within 2 periods: {within} of {n}"
        );
    }
    println!(
        "  cycle period deviation from 1 ms, {} periods: p50 {j50:.3} ms, p99 {j99:.3} ms, max {jmax:.3} ms",
        n - 1
    );
    let _ = disabled.shutdown();
}
