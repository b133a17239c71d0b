//! The pedal reader against a simulated pedal on a real pseudo-terminal: held only while the pedal really is held, and
//! every way of losing it (release, silence, garbage, unplug, a closed pty, a missing port) reported as released within
//! the deadline plus one frame. Latencies are printed (`cargo test -p acus-serial --test pedal_pty -- --nocapture`).

use std::path::Path;
use std::time::{Duration, Instant};

use acus_serial::pedal::PedalError;
use acus_serial::pedal_port::{run_pedal, PedalConfig, PedalLevel, PedalState, PortFault};
use acus_sim_serial::SimPedal;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const PERIOD: Duration = Duration::from_millis(20);
const DEADLINE: Duration = Duration::from_millis(100);
/// What the brief allows from the event to held = false.
const BOUND: Duration = Duration::from_millis(120);
/// Generous bound for things that do not have a safety budget (getting held after a press, reconnecting).
const SLOW: Duration = Duration::from_secs(3);

/// One callback: when it was called and with what.
type Event = (Instant, PedalLevel);

/// The reader running on a task, with every callback recorded.
struct Probe {
    rx: mpsc::UnboundedReceiver<Event>,
    task: JoinHandle<()>,
}

impl Probe {
    fn start(path: &Path) -> Self {
        let mut config = PedalConfig::new(path);
        config.deadline = DEADLINE;
        // The default heartbeat (40 ms) keeps every callback gap under DEADLINE / 2, as the consumer requires.
        config.backoff_min = Duration::from_millis(20);
        config.backoff_max = Duration::from_millis(200);
        Self::start_with(config)
    }

    fn start_with(config: PedalConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let r = run_pedal(config, move |level| {
                let _ = tx.send((Instant::now(), level));
            })
            .await;
            panic!("run_pedal returned: {r:?}");
        });
        Self { rx, task }
    }

    /// Wait for the first callback matching `pred`, at most `within`; the events before it are returned too.
    async fn wait(&mut self, within: Duration, pred: impl Fn(&PedalLevel) -> bool) -> (Event, Vec<Event>) {
        let mut seen = Vec::new();
        let end = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(end, self.rx.recv()).await {
                Ok(Some(ev)) if pred(&ev.1) => return (ev, seen),
                Ok(Some(ev)) => seen.push(ev),
                Ok(None) => panic!("reader stopped; seen {seen:?}"),
                Err(_) => panic!("no matching level within {within:?}; last seen {:?}", seen.last()),
            }
        }
    }

    /// Every callback during `window` (to assert on what did *not* happen, and on the heartbeat).
    async fn collect(&mut self, window: Duration) -> Vec<Event> {
        let mut seen = Vec::new();
        let end = tokio::time::Instant::now() + window;
        while let Ok(Some(ev)) = tokio::time::timeout_at(end, self.rx.recv()).await {
            seen.push(ev);
        }
        seen
    }

    /// Press and wait until held (after any re-synchronisation).
    async fn hold(&mut self, sim: &SimPedal) -> Duration {
        sim.press();
        let t0 = Instant::now();
        let ((t, _), _) = self.wait(SLOW, |l| l.held).await;
        t - t0
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn sim(dir: &Path) -> SimPedal {
    SimPedal::start_with_period(dir, PERIOD).expect("start simulated pedal")
}

/// Longest time between two callbacks.
fn max_gap(events: &[Event]) -> Duration {
    events.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap_or_default()
}

fn report(what: &str, latency: Duration) {
    eprintln!("pedal_pty: {what}: {:.1} ms", latency.as_secs_f64() * 1e3);
}

#[tokio::test]
async fn held_only_after_press() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim(dir.path());
    let mut p = Probe::start(sim.path());
    // A released pedal streams R frames: the reader reaches Released and never reports held.
    p.wait(SLOW, |l| l.why == PedalState::Released).await;
    let idle = p.collect(Duration::from_millis(200)).await;
    assert!(idle.iter().all(|(_, l)| !l.held), "held without a press: {idle:?}");
    let latency = p.hold(&sim).await;
    report("press -> held", latency);
    assert!(latency < BOUND, "press took {latency:?}");
}

#[tokio::test]
async fn release_is_seen_within_a_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim(dir.path());
    let mut p = Probe::start(sim.path());
    p.hold(&sim).await;
    let t0 = Instant::now();
    sim.release();
    let ((t, l), before) = p.wait(SLOW, |l| !l.held).await;
    report("release -> held=false", t - t0);
    assert_eq!(l.why, PedalState::Released);
    assert!(
        before.iter().all(|(t, _)| *t < t0 + PERIOD * 2),
        "held reported a frame after release"
    );
    assert!(t - t0 < BOUND, "release took {:?}", t - t0);
}

#[tokio::test]
async fn silence_is_released_at_the_deadline_with_heartbeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim(dir.path());
    let mut p = Probe::start(sim.path());
    p.hold(&sim).await;
    let t0 = Instant::now();
    sim.go_silent();
    let ((t, l), _) = p.wait(SLOW, |l| !l.held).await;
    report("silent -> held=false", t - t0);
    assert_eq!(l.why, PedalState::Silent);
    assert!(t - t0 < BOUND, "silence took {:?}", t - t0);
    // Nothing arrives now, yet the consumer keeps being told "released" at the heartbeat.
    let beats = p.collect(Duration::from_millis(400)).await;
    assert!(beats.len() >= 8, "only {} heartbeats in 400 ms", beats.len());
    assert!(beats.iter().all(|(_, l)| l.why == PedalState::Silent && !l.held));
    let gap = max_gap(&beats);
    report("heartbeat gap while silent (heartbeat 40 ms)", gap);
    assert!(gap <= DEADLINE / 2, "heartbeat gap {gap:?}");
    // Resuming needs one frame to re-sync, then holds again.
    p.hold(&sim).await;
}

#[tokio::test]
async fn heartbeat_while_held_keeps_the_consumer_fresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A slow pedal (frames every 120 ms, well inside a 300 ms deadline so scheduling jitter cannot make it silent):
    // only the 40 ms heartbeat keeps the callback coming faster than the frames.
    let sim = SimPedal::start_with_period(dir.path(), Duration::from_millis(120)).expect("sim");
    let mut config = PedalConfig::new(sim.path());
    config.deadline = Duration::from_millis(300);
    config.heartbeat = Duration::from_millis(40);
    let mut p = Probe::start_with(config);
    p.hold(&sim).await;
    let events = p.collect(Duration::from_millis(600)).await;
    let gap = max_gap(&events);
    report("callback gap while held, 120 ms frames, 40 ms heartbeat", gap);
    assert!(events.iter().all(|(_, l)| l.held), "not steadily held: {events:?}");
    assert!(gap <= Duration::from_millis(50), "callback gap {gap:?}");
}

#[tokio::test]
async fn bad_checksum_and_garbage_release_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim(dir.path());
    let mut p = Probe::start(sim.path());
    p.hold(&sim).await;

    let t0 = Instant::now();
    sim.send_garbage(b"$PED,1,H*00\r\n").expect("write");
    let ((t, l), _) = p.wait(SLOW, |l| !l.held).await;
    report("bad checksum line -> held=false", t - t0);
    assert!(
        matches!(l.why, PedalState::Garbage(PedalError::Checksum { .. })),
        "{l:?}"
    );
    assert!(t - t0 < BOUND);
    // The stream around it was intact: the next frame is in sequence and holds again.
    p.wait(SLOW, |l| l.held).await;

    let t0 = Instant::now();
    sim.send_garbage(&[0xA5; 100]).expect("write");
    sim.send_garbage(b"\n").expect("write");
    let ((t, l), _) = p.wait(SLOW, |l| !l.held).await;
    report("100 noise bytes -> held=false", t - t0);
    assert_eq!(l.why, PedalState::Garbage(PedalError::TooLong));
    assert!(t - t0 < BOUND);
    p.wait(SLOW, |l| l.held).await;

    // A pedal whose every frame fails its checksum is never held, however long it insists.
    let t0 = Instant::now();
    sim.corrupt_checksums(true);
    let ((t, _), _) = p.wait(SLOW, |l| !l.held).await;
    report("corrupt stream -> held=false", t - t0);
    assert!(t - t0 < BOUND);
    let bad = p.collect(Duration::from_millis(300)).await;
    assert!(bad.iter().all(|(_, l)| !l.held), "held on corrupt frames");
    assert!(bad
        .iter()
        .any(|(_, l)| matches!(l.why, PedalState::Garbage(PedalError::Checksum { .. }))));
    sim.corrupt_checksums(false);
    p.wait(SLOW, |l| l.held).await;
}

#[tokio::test]
async fn unplug_releases_and_replug_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim(dir.path());
    let mut p = Probe::start(sim.path());
    p.hold(&sim).await;

    let t0 = Instant::now();
    sim.unplug().expect("unplug");
    let ((t, l), _) = p.wait(SLOW, |l| !l.held).await;
    report("unplug -> held=false", t - t0);
    eprintln!("pedal_pty: unplug seen as {:?}", l.why);
    assert!(
        matches!(l.why, PedalState::Unplugged(PortFault::Closed | PortFault::Read(_))),
        "{l:?}"
    );
    assert!(t - t0 < BOUND);
    // While the port is gone the reader retries, fails with a typed error, keeps reporting released.
    p.wait(SLOW, |l| {
        l.why == PedalState::Unplugged(PortFault::Open(std::io::ErrorKind::NotFound))
    })
    .await;
    let gone = p.collect(Duration::from_millis(500)).await;
    assert!(gone.iter().all(|(_, l)| !l.held));
    let gap = max_gap(&gone);
    report("heartbeat gap while unplugged (heartbeat 40 ms)", gap);
    assert!(gap <= DEADLINE / 2, "heartbeat gap while backing off {gap:?}");

    // Plugged back in (a new pty behind the same path; the kernel may reuse the number) and pressed: held again after backoff and one re-sync frame.
    sim.replug().expect("replug");
    assert!(sim.slave_path().is_some());
    let t0 = Instant::now();
    let latency = p.hold(&sim).await;
    report("replug+press -> held (backoff max 200 ms)", latency);
    assert!(Instant::now() - t0 < Duration::from_millis(200) + PERIOD * 4 + BOUND);
}

#[tokio::test]
async fn closed_pty_releases_and_is_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim(dir.path());
    let mut p = Probe::start(sim.path());
    p.hold(&sim).await;
    let t0 = Instant::now();
    sim.close();
    let ((t, l), _) = p.wait(SLOW, |l| !l.held).await;
    report("pty closed -> held=false", t - t0);
    assert!(matches!(l.why, PedalState::Unplugged(_)), "{l:?}");
    assert!(t - t0 < BOUND);
    // The symlink still points at the vanished slave: reopening fails, typed, and nothing is ever held.
    let ((_, l), _) = p
        .wait(SLOW, |l| matches!(l.why, PedalState::Unplugged(PortFault::Open(_))))
        .await;
    eprintln!("pedal_pty: reopen of a closed pty: {:?}", l.why);
    sim.replug().expect("replug");
    p.hold(&sim).await;
}

#[tokio::test]
async fn missing_port_is_a_typed_error_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = Probe::start(&dir.path().join("never-existed"));
    let ((_, l), before) = p.wait(SLOW, |l| matches!(l.why, PedalState::Unplugged(_))).await;
    assert!(before.iter().all(|(_, l)| !l.held));
    assert_eq!(
        l.why,
        PedalState::Unplugged(PortFault::Open(std::io::ErrorKind::NotFound))
    );
    assert!(!l.held);
    let later = p.collect(Duration::from_millis(500)).await;
    assert!(!later.is_empty() && later.iter().all(|(_, l)| !l.held));
    assert!(!p.task.is_finished(), "reader died");
}

#[tokio::test]
async fn input_buffered_before_open_is_discarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim(dir.path());
    // Held frames pile up in the tty with nobody reading, then the pedal dies.
    sim.press();
    let t0 = Instant::now();
    while sim.frames_sent() < 10 {
        assert!(t0.elapsed() < SLOW, "sim not sending");
        tokio::time::sleep(PERIOD).await;
    }
    sim.go_silent();
    let mut p = Probe::start(sim.path());
    // Reading those stale frames would report held; flushed on open, the reader only ever sees silence.
    let seen = p.collect(Duration::from_millis(300)).await;
    assert!(seen.iter().all(|(_, l)| !l.held), "stale frames counted: {seen:?}");
    assert!(seen.iter().any(|(_, l)| l.why == PedalState::Silent));
}

#[tokio::test]
async fn invalid_config_is_refused() {
    let mut c = PedalConfig::new("/dev/null");
    c.backoff_max = Duration::ZERO;
    let r = run_pedal(c, |_| {}).await;
    assert!(r.is_err());
}
