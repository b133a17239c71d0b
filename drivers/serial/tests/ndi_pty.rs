//! The NDI tracker driver against the simulated tracker on a real pseudo-terminal: bring-up, tracking rate and
//! accuracy against the poses the sim was given, damaged replies (typed, then resynchronised), a hung device (typed
//! timeout, then reconnection) and a closed port (reconnection with backoff). Figures are printed
//! (`cargo test -p acus-serial --test ndi_pty -- --nocapture`).

use std::time::{Duration, Instant};

use acus_serial::ndi::{run_tracker, NdiConfig, NdiError, NdiEvent, NdiTracker, PollMode, TrackingFrame};
use acus_sim_serial::ndi::{SimNdi, SimNdiConfig};
use nalgebra::{Isometry3, Vector3};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const SLOW: Duration = Duration::from_secs(5);

fn config(path: &std::path::Path) -> NdiConfig {
    let mut c = NdiConfig::new(path);
    c.reply_timeout = Duration::from_millis(150);
    c.byte_gap = Duration::from_millis(20);
    c.break_duration = Duration::from_millis(5);
    c.reset_timeout = Duration::from_millis(50);
    c.comm_settle = Duration::from_millis(5);
    c.backoff_min = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(400);
    c.max_bad_replies = 50;
    c
}

/// Tool 0 still, tool 1 moving along x (0.1 m/s, so motion between frames is visible), tool 2 out of the volume
/// (z = -0.5 m, in front of the box), tool 3 inside but 1 cm from the +x face (partially out of volume).
fn poses(t: f64) -> Vec<Option<Isometry3<f64>>> {
    let rot = Vector3::new(0.1, -0.2, 0.3);
    vec![
        Some(Isometry3::new(Vector3::new(0.1, -0.05, -1.5), rot)),
        Some(Isometry3::new(Vector3::new(-0.2 + 0.1 * t, 0.05, -1.4), rot)),
        Some(Isometry3::new(Vector3::new(0.0, 0.0, -0.5), rot)),
        Some(Isometry3::new(Vector3::new(0.49, 0.0, -1.5), rot)),
    ]
}

struct Probe {
    rx: mpsc::UnboundedReceiver<(Instant, NdiEvent)>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Probe {
    fn start(config: NdiConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let r = run_tracker(
                config,
                async move {
                    let _ = stopped.await;
                },
                move |ev| {
                    let _ = tx.send((Instant::now(), ev));
                },
            )
            .await;
            assert_eq!(r, Ok(()));
        });
        Self {
            rx,
            stop: Some(stop),
            task,
        }
    }

    /// The first event matching `pred` within `within`, and the ones before it.
    async fn wait(
        &mut self,
        within: Duration,
        pred: impl Fn(&NdiEvent) -> bool,
    ) -> ((Instant, NdiEvent), Vec<(Instant, NdiEvent)>) {
        let mut seen = Vec::new();
        let end = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(end, self.rx.recv()).await {
                Ok(Some(ev)) if pred(&ev.1) => return (ev, seen),
                Ok(Some(ev)) => seen.push(ev),
                Ok(None) => panic!("tracker stopped; last seen {:?}", seen.last()),
                Err(_) => panic!("no matching event within {within:?}; last seen {:?}", seen.last()),
            }
        }
    }

    async fn frames(&mut self, n: usize) -> Vec<(Instant, TrackingFrame)> {
        let mut out = Vec::new();
        while out.len() < n {
            let ((t, ev), _) = self.wait(SLOW, |e| matches!(e, NdiEvent::Frame(_))).await;
            if let NdiEvent::Frame(f) = ev {
                out.push((t, f));
            }
        }
        out
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(SLOW, self.task)
            .await
            .expect("tracker stops")
            .expect("tracker task ok");
    }
}

fn is_frame(e: &NdiEvent) -> bool {
    matches!(e, NdiEvent::Frame(_))
}

#[tokio::test]
async fn bring_up_runs_the_whole_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = SimNdi::start(dir.path(), SimNdiConfig::new(2), poses).expect("sim");
    let mut t = tokio::time::timeout(SLOW, NdiTracker::connect(&config(sim.path())))
        .await
        .expect("in time")
        .expect("connect");
    assert_eq!(t.handles(), &[0x0A, 0x0B]);
    assert_eq!(sim.baud(), 115_200, "COMM ran");
    assert!(sim.tracking());
    let f = t.frame().await.expect("a frame");
    assert_eq!(f.tools.len(), 2);
    assert!(f.tools.iter().all(|t| t.pose.is_some()));
    t.stop().await.expect("TSTOP");
    assert!(!sim.tracking(), "TSTOP reached the device");
    let expected = [
        "RESET:0",
        "COMM:50000",
        "INIT:",
        "PHSR:01",
        "PHSR:02",
        "PINIT:0A",
        "PINIT:0B",
        "PHSR:03",
        "PENA:0AD",
        "PENA:0BD",
        "PHSR:04",
        "TSTART:",
        "BX:0001",
        "TSTOP:",
    ];
    assert_eq!(sim.commands(), expected);
}

/// Frames at >= 40 Hz; per axis, all but 3 of 120 samples within 3 sigma and all within 5 sigma of the pose the sim was given
/// (at the frame's time), the mean within 4 sigma / sqrt(n), the spread near sigma; out-of-volume flags as given.
async fn track_and_check(mode: PollMode) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SimNdiConfig::new(4);
    let (sigma, rate) = (cfg.sigma_position_m, cfg.frame_rate_hz);
    let sim = SimNdi::start(dir.path(), cfg, poses).expect("sim");
    let mut c = config(sim.path());
    c.mode = mode;
    let mut p = Probe::start(c);
    p.wait(SLOW, |e| matches!(e, NdiEvent::Connected { .. })).await;
    p.frames(3).await;
    let n = 120;
    let frames = p.frames(n).await;
    let secs = (frames[n - 1].0 - frames[0].0).as_secs_f64();
    let hz = (n - 1) as f64 / secs;
    assert!(hz >= 40.0, "tracking at {hz:.1} Hz");
    let nums: Vec<u32> = frames.iter().map(|(_, f)| f.frame_number).collect();
    assert!(nums.windows(2).all(|w| w[1] > w[0]), "frame numbers increase: {nums:?}");
    for tool in [0usize, 1] {
        let mut errs = Vec::new();
        for (_, f) in &frames {
            let t = &f.tools[tool];
            assert!(!t.missing && !t.out_of_volume && !t.partially_out_of_volume);
            let truth = poses(f64::from(f.frame_number) / rate)[tool].expect("pose");
            let got = t.pose.expect("pose");
            errs.push(got.translation.vector - truth.translation.vector);
            assert!(got.rotation.angle_to(&truth.rotation) < 0.01, "rotation within 10 mrad");
        }
        for axis in 0..3 {
            let e: Vec<f64> = errs.iter().map(|v| v[axis]).collect();
            // Gaussian: 0.27 % of samples fall outside 3 sigma (0.3 of 120 expected); allow 3 (P(> 3) < 0.1 %).
            let within3 = e.iter().filter(|x| x.abs() <= 3.0 * sigma).count();
            assert!(
                within3 + 3 >= n,
                "tool {tool} axis {axis}: {within3}/{n} within 3 sigma"
            );
            assert!(
                e.iter().all(|x| x.abs() <= 5.0 * sigma),
                "tool {tool} axis {axis}: outlier beyond 5 sigma"
            );
            let mean = e.iter().sum::<f64>() / n as f64;
            assert!(
                mean.abs() <= 4.0 * sigma / (n as f64).sqrt(),
                "tool {tool} axis {axis}: mean {mean:e}"
            );
            let sd = (e.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
            assert!(
                sd > 0.6 * sigma && sd < 1.4 * sigma,
                "tool {tool} axis {axis}: sd {sd:e} vs sigma {sigma:e}"
            );
            println!(
                "{mode:?} tool {tool} axis {axis}: mean {:+.4} mm, sd {:.4} mm",
                mean * 1e3,
                sd * 1e3
            );
        }
    }
    let last = &frames[n - 1].1;
    assert!(last.tools[2].missing && last.tools[2].out_of_volume && last.tools[2].pose.is_none());
    assert!(last.tools[3].partially_out_of_volume && last.tools[3].pose.is_some());
    println!("{mode:?}: {hz:.1} Hz over {n} frames");
    p.stop().await;
    assert!(!sim.tracking(), "TSTOP on stop");
}

#[tokio::test]
async fn tracks_binary_at_rate_within_noise() {
    track_and_check(PollMode::Binary).await;
}

#[tokio::test]
async fn tracks_text_at_rate_within_noise() {
    track_and_check(PollMode::Text).await;
}

#[tokio::test]
async fn damaged_replies_are_typed_and_the_stream_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = SimNdi::start(dir.path(), SimNdiConfig::new(1), poses).expect("sim");
    let mut p = Probe::start(config(sim.path()));
    p.wait(SLOW, is_frame).await;
    let no_disconnect = |seen: &[(Instant, NdiEvent)]| {
        assert!(
            !seen.iter().any(|(_, e)| matches!(e, NdiEvent::Disconnected(_))),
            "link kept: {seen:?}"
        );
    };

    sim.corrupt_crc(true);
    let ((_, e), seen) = p.wait(SLOW, |e| matches!(e, NdiEvent::Fault(_))).await;
    assert_eq!(e, NdiEvent::Fault(NdiError::BadCrc));
    no_disconnect(&seen);
    sim.corrupt_crc(false);
    let (_, seen) = p.wait(SLOW, is_frame).await;
    no_disconnect(&seen);

    sim.truncate_replies(true);
    let ((_, e), seen) = p.wait(SLOW, |e| matches!(e, NdiEvent::Fault(_))).await;
    assert!(matches!(e, NdiEvent::Fault(NdiError::Truncated { .. })), "{e:?}");
    no_disconnect(&seen);
    sim.truncate_replies(false);
    let (_, seen) = p.wait(SLOW, is_frame).await;
    no_disconnect(&seen);

    // Garbage lands between exchanges (flushed unseen) or inside one (a typed fault): send until one is seen.
    let mut fault = None;
    for _ in 0..50 {
        sim.send_garbage(b"\x00\xffjunk\xa5\xc4\r").expect("garbage");
        let ((_, e), seen) = p.wait(SLOW, |e| !matches!(e, NdiEvent::Connected { .. })).await;
        no_disconnect(&seen);
        if let NdiEvent::Fault(f) = e {
            fault = Some(f);
            break;
        }
    }
    let fault = fault.expect("garbage seen at least once");
    assert!(fault.is_reply_error(), "{fault:?}");
    let (_, seen) = p.wait(SLOW, is_frame).await;
    no_disconnect(&seen);
    p.frames(10).await;
    p.stop().await;
}

#[tokio::test]
async fn silent_device_times_out_then_reconnects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = SimNdi::start(dir.path(), SimNdiConfig::new(1), poses).expect("sim");
    let mut p = Probe::start(config(sim.path()));
    p.wait(SLOW, is_frame).await;
    sim.go_silent();
    let t0 = Instant::now();
    let ((t, e), _) = p.wait(SLOW, |e| matches!(e, NdiEvent::Disconnected(_))).await;
    assert!(matches!(e, NdiEvent::Disconnected(NdiError::Timeout(_))), "{e:?}");
    println!("timeout reported after {:?}", t - t0);
    // Reconnecting while it stays silent fails with timeouts too.
    let ((_, e), _) = p.wait(SLOW, |e| matches!(e, NdiEvent::Disconnected(_))).await;
    assert!(matches!(e, NdiEvent::Disconnected(NdiError::Timeout(_))), "{e:?}");
    sim.resume();
    let t1 = Instant::now();
    let (_, seen) = p.wait(SLOW, |e| matches!(e, NdiEvent::Connected { .. })).await;
    assert!(!seen.iter().any(|(_, e)| is_frame(e)), "no frame while silent");
    p.wait(SLOW, is_frame).await;
    println!("tracking again {:?} after resume", t1.elapsed());
    p.stop().await;
}

#[tokio::test]
async fn closed_port_reconnects_with_backoff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = SimNdi::start(dir.path(), SimNdiConfig::new(1), poses).expect("sim");
    let mut p = Probe::start(config(sim.path()));
    p.wait(SLOW, is_frame).await;
    sim.close().expect("close");
    let ((_, e), _) = p.wait(SLOW, |e| matches!(e, NdiEvent::Disconnected(_))).await;
    assert!(
        matches!(e, NdiEvent::Disconnected(NdiError::Io(_) | NdiError::Closed)),
        "{e:?}"
    );
    let mut fails = Vec::new();
    while fails.len() < 3 {
        let ((t, e), _) = p.wait(SLOW, |e| matches!(e, NdiEvent::Disconnected(_))).await;
        assert_eq!(e, NdiEvent::Disconnected(NdiError::Io(std::io::ErrorKind::NotFound)));
        fails.push(t);
    }
    let (g1, g2) = (fails[1] - fails[0], fails[2] - fails[1]);
    println!("reopen attempts {g1:?}, {g2:?} apart");
    // Backoff from 50 ms, doubling: 50 ms after the loss, then 100 ms and 200 ms between failed reopens (an open of
    // a missing path fails at once, so without the backoff these gaps would be near zero).
    assert!(
        g1 >= Duration::from_millis(95) && g2 >= Duration::from_millis(195),
        "{g1:?} {g2:?}"
    );
    sim.reopen().expect("reopen");
    p.wait(SLOW, |e| matches!(e, NdiEvent::Connected { .. })).await;
    p.frames(5).await;
    p.stop().await;
}
