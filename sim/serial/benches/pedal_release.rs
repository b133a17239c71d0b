//! Issue 15, acceptance 2: the enable pedal let go, silent or unplugged in the middle of an insertion, measured at the
//! emulated drives on the real-time clock. Prints p50 / p99 / max (custom harness: criterion reports no percentiles).
//!
//! The chain is the one `acus sim` wires (launch/src/system.rs `start_pedal`): [`SimPedal`] behind a real pty, the
//! driver's reader (`acus_serial::pedal_port::run_pedal`) on a thread of its own with a current-thread tokio runtime,
//! refreshing a `SafetyInput` of `SourceKind::Enable` whose deadline is the pedal deadline in cycles; the cycle on
//! `Pacing::RealTime` with the positioner's six drives emulated in process on their own wall clock
//! (`acus_sim_ecat::inproc`, as drivers/ethercat/benches/estop.rs).
//!
//! What the cycle does on a released or silent enable (drivers/ethercat/src/cycle.rs): a CiA 402 quick stop. Every
//! drive gets controlword 0x0002 and brakes on its own quick-stop ramp (0x6085); with the option code the bring-up
//! writes (0x605A = 6) it stays powered and holding in Quick stop active until the enable is back (no latch). Measured at
//! the drives, polled in their object dictionaries every 50 µs (the resolution of every figure):
//! - quick stop: every drive holds a controlword with bit 2 clear (the frame carrying it has arrived);
//! - drive at rest: the emulated insertion drive's own velocity below 1 % of the cruise speed from then on; the bench
//!   also counts trials in which that drive was never seen in Quick stop active.
//! Only the insertion axis moves (4 mm/s, the configured insertion speed of 0.2 × its URDF limit, already cruising); the other five hold still,
//! so "every drive" reduces to the insertion drive. The event's t0: released = when the sim wrote the first `R` line;
//! unplugged = just before the pty is hung up and its symlink removed; silent = when the sim wrote its last `H` plus
//! the reader's deadline (both are printed). Splits of the chain are printed too: the reader's callback reporting
//! released, and the cycle's published status first showing the enable not held.
//!
//! Run: `cargo bench -p acus-sim-serial --bench pedal_release` (the real-time run needs root). `PEDAL_BENCH_TRIALS`
//! sets the trials per event (default 100).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use acus_ethercat::config::{AxisConfig, DrivesConfig};
use acus_ethercat::cycle::{Mode, Status};
use acus_ethercat::ethercrab_bus::{pdu_storage, BusTiming, EthercrabBus};
use acus_ethercat::rt::RtSettings;
use acus_ethercat::runner::{Controller, Disabled, Enabled, Pacing, RunnerSettings};
use acus_ethercat::safety::{SafetyInput, SourceKind};
use acus_serial::pedal_port::{run_pedal, PedalConfig};
use acus_sim_ecat::drive::PowerState;
use acus_sim_ecat::inproc::InProcessLink;
use acus_sim_ecat::od::idx;
use acus_sim_ecat::{Clock, DriveParams, Network};
use acus_sim_serial::SimPedal;

const TRIALS: usize = 100;
const INSERTION: usize = 5;
/// Of the URDF's 20 mm/s: 4 mm/s, the insertion speed of launch/config/sim.yaml (`motion.insertion_speed`).
const SPEED_SCALE: f64 = 0.2;
const POLL: Duration = Duration::from_micros(50);
/// The trial ends once the drive has been at rest for this long.
const SETTLED: Duration = Duration::from_millis(40);

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

fn ns(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_nanos() as u64
}

fn ms(from_ns: u64, to_ns: u64) -> f64 {
    (to_ns as f64 - from_ns as f64) * 1e-6
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Released,
    Unplugged,
    Silent,
}

/// The reader on its own thread and runtime, as `start_pedal`; it stamps the first held → released level it reports
/// after being armed (the stamp is zeroed).
struct Reader {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    released_at: Arc<AtomicU64>,
}

impl Reader {
    fn start(config: PedalConfig, mut input: SafetyInput) -> Self {
        let released_at = Arc::new(AtomicU64::new(0));
        let stamp = Arc::clone(&released_at);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pedal".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("pedal reader runtime");
                let mut was_held = false;
                let reader = run_pedal(config, move |level| {
                    let now = Instant::now();
                    input.refresh(level.held);
                    if was_held && !level.held {
                        let _ = stamp.compare_exchange(0, ns(now), Ordering::Relaxed, Ordering::Relaxed);
                    }
                    was_held = level.held;
                });
                runtime.block_on(async {
                    tokio::select! {
                        Err(e) = reader => eprintln!("pedal reader: {e}"),
                        _ = stopped => {}
                    }
                });
            })
            .expect("pedal reader thread");
        Self {
            stop: Some(stop),
            thread: Some(thread),
            released_at,
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Emulator parameters for an axis (as drivers/ethercat/tests/common): URDF mass and limits, the motor a little faster
/// than the joint limits the master plans with.
fn sim_params(a: &AxisConfig, initial: f64) -> DriveParams {
    let units = DriveParams::with_units(a.encoder_counts_per_rev, a.gear_ratio, a.lead_m_per_rev).expect("drive units");
    DriveParams {
        mass: a.mass,
        max_velocity: a.max_velocity * 1.5,
        max_acceleration: a.max_acceleration * 2.0,
        rated_effort: a.max_effort,
        initial_position: initial,
        ..units
    }
}

fn percentiles(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Some((at(0.5), at(0.99), v[v.len() - 1]))
}

fn line(name: &str, v: &[f64]) {
    match percentiles(v.to_vec()) {
        Some((p50, p99, max)) => println!("    {name:<44} p50 {p50:8.3} ms, p99 {p99:8.3} ms, max {max:8.3} ms"),
        None => println!("    {name:<44} (no sample)"),
    }
}

/// Poll the status (heartbeating) until `pred` holds; a guard, not a synchronisation.
fn wait<S>(ctrl: &mut Controller<S>, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
    let t0 = Instant::now();
    loop {
        ctrl.heartbeat();
        let s = ctrl.status();
        if pred(&s) {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{what}: no progress: {s:#?}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Enable (the pedal held), resetting first until the cycle is Disabled without a fault.
fn bring_up(mut d: Controller<Disabled>) -> Controller<Enabled> {
    loop {
        let s = wait(&mut d, "reset", |s| {
            (s.mode == Mode::Disabled && s.fault.is_none()) || s.mode == Mode::Faulted
        });
        if s.mode == Mode::Disabled {
            break;
        }
        d.reset();
        std::thread::sleep(Duration::from_millis(5));
    }
    wait(&mut d, "pedal held", |s| s.enable_held);
    let mut e = d.enable();
    let s = wait(&mut e, "enable", |s| s.mode == Mode::Enabled || s.fault.is_some());
    if s.fault.is_some() {
        return bring_up(e.reset());
    }
    e
}

/// One measured trial, ms from the event's t0.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    reader: Option<f64>,
    judged: Option<f64>,
    quick_stop: f64,
    drive_rest: f64,
}

enum Outcome {
    Measured(Figures),
    Skipped(String),
    /// A fault latched (a frame late beyond 1.5 periods, on a loaded machine); with the quick-stop latency when the
    /// pedal's quick stop had reached the drives before it.
    Fault(String, Option<f64>),
}

struct Bench<'a> {
    link: &'a InProcessLink,
    pedal: &'a SimPedal,
    reader: &'a Reader,
    deadline: Duration,
    /// Insertion cruise speed, m/s.
    speed: f64,
    /// Trials whose insertion drive was never seen in Quick stop active.
    no_quick_stop_state: usize,
}

impl Bench<'_> {
    fn trial(&mut self, e: &mut Controller<Enabled>, event: Event, trial: usize) -> Outcome {
        wait(e, "pedal held", |s| s.enable_held);
        let s = e.status();
        let n = s.axes;
        let mut goal = s.setpoint;
        let dir = if s.actual[INSERTION] < 0.1 { 1.0 } else { -1.0 };
        goal[INSERTION] = if dir > 0.0 { 0.19 } else { 0.01 };
        if let Err(err) = e.move_to(&goal[..n], SPEED_SCALE) {
            return Outcome::Skipped(format!("move refused: {err}"));
        }
        // Cruising first (20 ms of ramp at 0.2 m/s²), the event at a varying phase of the pedal's 20 ms frames.
        let fire_at = Instant::now() + Duration::from_micros(60_000 + (trial as u64 * 7_919) % 20_000);
        let mut fired: Option<Instant> = None;
        let mut t_ref = 0u64;
        let mut judged: Option<u64> = None;
        let mut quick_stop_at: Option<u64> = None;
        let mut rest_since: Option<u64> = None;
        let mut state_seen = false;
        let mut speed_at_event = 0.0;
        let mut fault_after = None;
        let rest_speed = 0.01 * self.speed;
        loop {
            e.heartbeat();
            let now = Instant::now();
            if let Some(f) = fired {
                // The drives' dictionaries, under the emulated line's lock (every frame takes it too): every drive
                // holding a quick-stop controlword (bit 2 clear) means the frame carrying it has arrived.
                let (all_quick_stop, in_state, speed) = {
                    let net = self.link.network();
                    let d = net.devices();
                    (
                        d.iter().all(|x| x.od.i32(idx::CONTROLWORD) & 0x0004 == 0),
                        d[INSERTION].drive.state() == PowerState::QuickStopActive,
                        d[INSERTION].drive.velocity().abs(),
                    )
                };
                if all_quick_stop {
                    quick_stop_at.get_or_insert(ns(now));
                }
                state_seen |= in_state;
                if speed < rest_speed {
                    rest_since.get_or_insert(ns(now));
                } else {
                    rest_since = None;
                }
                let st = e.status();
                if judged.is_none() && !st.enable_held {
                    judged = Some(ns(now));
                }
                if let Some(fault) = st.fault {
                    fault_after = Some(format!("{fault:?} after the event"));
                    break;
                }
                if judged.is_some()
                    && quick_stop_at.is_some()
                    && rest_since.is_some_and(|t| ns(now) - t >= SETTLED.as_nanos() as u64)
                {
                    break;
                }
                if f.elapsed() > Duration::from_secs(2) {
                    return Outcome::Skipped("no standstill within 2 s".into());
                }
            } else if now >= fire_at {
                let st = e.status();
                if let Some(fault) = st.fault {
                    return Outcome::Fault(format!("{fault:?} before the event"), None);
                }
                speed_at_event = self.link.network().devices()[INSERTION].drive.velocity().abs();
                self.reader.released_at.store(0, Ordering::Relaxed);
                match event {
                    Event::Released => self.pedal.release(),
                    Event::Unplugged => {
                        t_ref = ns(Instant::now());
                        if let Err(err) = self.pedal.unplug() {
                            return Outcome::Skipped(format!("unplug: {err}"));
                        }
                    }
                    Event::Silent => {
                        self.pedal.go_silent();
                        match self.pedal.last_frame() {
                            Some(f) if f.held => t_ref = ns(f.at) + self.deadline.as_nanos() as u64,
                            other => return Outcome::Skipped(format!("last frame before silence: {other:?}")),
                        }
                    }
                }
                fired = Some(now);
            }
            std::thread::sleep(if fired.is_some() {
                POLL
            } else {
                Duration::from_micros(200)
            });
        }
        if event == Event::Released {
            match self.pedal.last_frame() {
                Some(f) if !f.held => t_ref = ns(f.level_since),
                _ if fault_after.is_some() => return Outcome::Fault(fault_after.unwrap_or_default(), None),
                other => return Outcome::Skipped(format!("no R frame sent: {other:?}")),
            }
        }
        if let Some(why) = fault_after {
            // The fault's own quick stop follows; only a quick stop received before it counts as the pedal's.
            return Outcome::Fault(why, judged.and(quick_stop_at).map(|t| ms(t_ref, t)));
        }
        if speed_at_event < 0.9 * self.speed {
            return Outcome::Skipped(format!("not cruising at the event ({:.2} mm/s)", speed_at_event * 1e3));
        }
        let Some(quick_stop) = quick_stop_at else {
            return Outcome::Skipped("no quick stop seen".into());
        };
        if !state_seen {
            self.no_quick_stop_state += 1;
        }
        let stamp = self.reader.released_at.load(Ordering::Relaxed);
        Outcome::Measured(Figures {
            reader: (stamp != 0).then(|| ms(t_ref, stamp)),
            judged: judged.map(|t| ms(t_ref, t)),
            quick_stop: ms(t_ref, quick_stop),
            drive_rest: ms(t_ref, rest_since.unwrap_or(quick_stop)),
        })
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = epoch();
    let trials = std::env::var("PEDAL_BENCH_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(TRIALS);
    for rt in [false, true] {
        run(rt, trials);
    }
}

fn run(rt: bool, trials: usize) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../launch/config/positioner_drives.yaml");
    let cfg = DrivesConfig::load(&path).expect("drive configuration");
    let period = Duration::from_secs_f64(cfg.cycle_time_s);
    let initial = [0.0, 0.0, 0.05, 0.0, 0.0, 0.01];
    let params: Vec<_> = cfg.axes.iter().zip(initial).map(|(a, q)| sim_params(a, q)).collect();
    let (tx, rx, pdu_loop) = pdu_storage().expect("PDU storage");
    let mut network = Network::new(&params).expect("emulated drives");
    network.set_clock(Clock::Wall);
    let link = InProcessLink::spawn(network, tx, rx).expect("in-process link");
    let link_rt = rt && link.set_realtime(85);
    let bus = EthercrabBus::bring_up(pdu_loop, &cfg.axes, BusTiming::real_time(period)).expect("bring-up");
    let mut settings = RunnerSettings::new(period, Pacing::RealTime);
    // Latency is measured, not judged: a late period must not end the run.
    settings.safety.overrun_burst = 0;
    if rt {
        settings.realtime = RtSettings::REALTIME;
    }
    let mut ctrl = Controller::spawn_with(bus, &cfg.axes, period, settings).expect("cycle thread");

    let dir = tempfile::tempdir().expect("pty directory");
    let pedal = SimPedal::start(dir.path()).expect("simulated pedal");
    let config = PedalConfig::new(pedal.path());
    let deadline = config.deadline;
    let cycles = (deadline.as_secs_f64() / period.as_secs_f64()).ceil() as u32;
    let heartbeat = config.heartbeat;
    let input = ctrl
        .register_source(SourceKind::Enable, "bench pedal", cycles)
        .expect("pedal source");
    let reader = Reader::start(config, input);
    pedal.press();

    let axis = &cfg.axes[INSERTION];
    let speed = axis.max_velocity * SPEED_SCALE;
    let mut bench = Bench {
        link: &link,
        pedal: &pedal,
        reader: &reader,
        deadline,
        speed,
        no_quick_stop_state: 0,
    };
    let mut group = Some(bring_up(ctrl));
    let got_rt = group.as_mut().map(|e| e.status().realtime).unwrap_or(false);
    println!(
        "real-time settings {} (cycle thread SCHED_FIFO: {got_rt}; frame thread: {link_rt})",
        if rt { "requested" } else { "off" }
    );
    println!(
        "  chain: pedal frames every 20 ms; reader deadline {} ms, heartbeat {} ms; enable source deadline {cycles} cycles \
         of {} ms; insertion at {:.1} mm/s; the drives' quick-stop ramp (0x6085) {} m/s² ({:.1} ms of braking)",
        deadline.as_millis(),
        heartbeat.as_millis(),
        period.as_secs_f64() * 1e3,
        speed * 1e3,
        2.0 * axis.max_acceleration,
        speed / (2.0 * axis.max_acceleration) * 1e3
    );
    for event in [Event::Released, Event::Unplugged, Event::Silent] {
        let mut figs = Vec::with_capacity(trials);
        let mut faults = 0usize;
        let mut braked_before_fault = Vec::new();
        let mut skipped = 0usize;
        bench.no_quick_stop_state = 0;
        let started = Instant::now();
        for trial in 0..trials {
            let Some(mut e) = group.take() else { break };
            match bench.trial(&mut e, event, trial) {
                Outcome::Measured(f) => figs.push(f),
                Outcome::Skipped(why) => {
                    eprintln!("{event:?} trial {trial}: skipped: {why}");
                    skipped += 1;
                }
                Outcome::Fault(why, braked) => {
                    eprintln!("{event:?} trial {trial}: {why}");
                    faults += 1;
                    braked_before_fault.extend(braked);
                }
            }
            // Back to held: plug in again first after an unplug (the reader reopens on its backoff).
            if event == Event::Unplugged {
                if let Err(err) = pedal.replug() {
                    eprintln!("replug: {err}");
                }
            }
            pedal.press();
            let s = e.status();
            group = Some(if s.fault.is_some() { bring_up(e.reset()) } else { e });
        }
        report(
            event,
            &figs,
            faults,
            skipped,
            bench.no_quick_stop_state,
            deadline,
            started.elapsed(),
        );
        if !braked_before_fault.is_empty() {
            line(
                &format!(
                    "(faulted trials, quick stop received first: {})",
                    braked_before_fault.len()
                ),
                &braked_before_fault,
            );
        }
    }
    drop(reader);
    if let Some(e) = group {
        let _ = e.disable().shutdown();
    }
}

fn report(
    event: Event,
    figs: &[Figures],
    faults: usize,
    skipped: usize,
    no_state: usize,
    deadline: Duration,
    took: Duration,
) {
    let (what, t0) = match event {
        Event::Released => ("released", "t0 = the sim wrote the first R line"),
        Event::Unplugged => ("unplugged", "t0 = just before the pty hangs up (symlink removed)"),
        Event::Silent => ("silent", "t0 = the sim wrote its last H + the reader's deadline"),
    };
    println!(
        "  {what}: {} trials measured, {faults} ended by a fault, {skipped} skipped, {no_state} without the insertion \
         drive seen in Quick stop active ({:.1} s); {t0}",
        figs.len(),
        took.as_secs_f64()
    );
    fn pick(figs: &[Figures], f: impl Fn(&Figures) -> Option<f64>) -> Vec<f64> {
        figs.iter().filter_map(f).collect()
    }
    let col = |f: &dyn Fn(&Figures) -> Option<f64>| pick(figs, f);
    line("→ reader reports released", &col(&|f| f.reader));
    line("→ cycle status: enable not held", &col(&|f| f.judged));
    line(
        "→ quick stop at every drive (controlword)",
        &col(&|f| Some(f.quick_stop)),
    );
    line(
        "→ insertion drive at rest (<1 % of cruise)",
        &col(&|f| Some(f.drive_rest)),
    );
    let within = figs.iter().filter(|f| f.quick_stop <= 50.0).count();
    println!("    quick stop at the drives within 50 ms: {within} of {}", figs.len());
    if event == Event::Silent {
        let d = deadline.as_secs_f64() * 1e3;
        println!("    from the last H written (raw, deadline included):");
        line(
            "→ quick stop at every drive (controlword)",
            &col(&|f| Some(f.quick_stop + d)),
        );
    }
}
