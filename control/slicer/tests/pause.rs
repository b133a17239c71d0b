//! Losing Slicer mid-insertion pauses the insertion within 2 cycles of the loss being detected (issue 14, acceptance
//! 5). The connection is an enable source of the cycle: the bridge refreshes it released the moment the server reports
//! the client closed, and the cycle's next period judges it (a released enable halts along the motion and holds;
//! launch/tests/guards.rs shows that hold mid-insertion for a released deadman, the same path). Measured on the cycle's
//! own counter: the cycle published last when the loss was detected, against the cycle that reported the enable
//! released (`Event::EnableChanged`), on the real-time clock with the positioner's drives emulated in process. The
//! first connection greets the bridge as 3D Slicer does (header v2, STATUS with metadata) and is answered in v2.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acus_ethercat::config::DrivesConfig;
use acus_ethercat::ethercrab_bus::BusTiming;
use acus_ethercat::runner::{Controller, Disabled, Event};
use acus_ethercat::safety::{SafetyInput, SourceKind};
use acus_nodes::testing::isolated;
use acus_slicer::{BridgeConfig, ConnectionHold};

/// The cycle's source, and the cycle number last published when the bridge reported the loss.
struct Probe {
    input: SafetyInput,
    controller: Arc<Mutex<Controller<Disabled>>>,
    connected: bool,
    detected_at: Arc<Mutex<Vec<u64>>>,
}

impl ConnectionHold for Probe {
    fn refresh(&mut self, connected: bool) {
        if self.connected && !connected {
            if let Ok(mut c) = self.controller.lock() {
                self.detected_at.lock().unwrap().push(c.status().cycle);
            }
        }
        self.connected = connected;
        self.input.refresh(connected);
    }
}

#[test]
fn losing_slicer_releases_the_enable_within_two_cycles_of_the_detection() {
    isolated(|| {
        let drives = DrivesConfig::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../launch/config/positioner_drives.yaml"
        )))
        .unwrap();
        let period = Duration::from_secs_f64(drives.cycle_time_s);
        let start = vec![0.0; drives.axes.len()];
        let timing = BusTiming {
            pdu_timeout: Duration::from_millis(500),
            process_data_timeout: Duration::from_millis(50),
            ..BusTiming::real_time(period)
        };
        let twin = acus_sim_twin::drives::in_process(&drives, &start, timing).unwrap();
        let mut controller = Controller::spawn(twin.bus, &drives.axes, period).unwrap();
        let input = controller.register_source(SourceKind::Enable, "slicer", 300).unwrap();
        let controller = Arc::new(Mutex::new(controller));
        let detected_at = Arc::new(Mutex::new(Vec::new()));
        let probe = Probe {
            input,
            controller: Arc::clone(&controller),
            connected: false,
            detected_at: Arc::clone(&detected_at),
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let ctx = r2r::Context::create().unwrap();
            let mut config = BridgeConfig::with_hold(probe);
            config.server.addr = "127.0.0.1:0".parse().unwrap();
            let bridge = acus_slicer::start(&ctx, config).await.unwrap();
            let mut reactions = Vec::new();
            for trial in 0..10 {
                let mut client = tokio::net::TcpStream::connect(bridge.local_addr).await.unwrap();
                if trial == 0 {
                    slicer_style_greeting(&mut client).await;
                }
                let t0 = Instant::now();
                while !controller.lock().unwrap().status().enable_held {
                    assert!(t0.elapsed() < Duration::from_secs(5), "trial {trial}: never held");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // Drain the events so far; then lose the connection (the socket closes: EOF at the server).
                while controller.lock().unwrap().next_event().is_some() {}
                drop(client);
                let t0 = Instant::now();
                let released = loop {
                    let event = controller.lock().unwrap().next_event();
                    if let Some(Event::EnableChanged { cycle, held: false }) = event {
                        break cycle;
                    }
                    assert!(
                        t0.elapsed() < Duration::from_secs(5),
                        "trial {trial}: the cycle never saw the release"
                    );
                    tokio::time::sleep(Duration::from_micros(200)).await;
                };
                let detected = *detected_at
                    .lock()
                    .unwrap()
                    .last()
                    .expect("the bridge reported the loss");
                reactions.push(released.saturating_sub(detected));
            }
            println!("connection lost → enable released, cycles after the detection: {reactions:?}");
            assert!(reactions.iter().all(|&c| c <= 2), "{reactions:?}");
            drop(bridge);
        });
    });
}

/// What 3D Slicer does on connecting (header v2, a STATUS with metadata), then a v2 command: the bridge answers in v2
/// (as it answers a v1 client such as pyigtl in v1, tests/bridge.rs).
async fn slicer_style_greeting(client: &mut tokio::net::TcpStream) {
    use acus_igtl::{Body, IgtlString, Message, MetaEntry, Status};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let meta = |key: &str, value: &str| MetaEntry {
        key: key.into(),
        encoding: acus_igtl::message::ENCODING_UTF8,
        value: value.into(),
    };
    let mut status = Message::new(
        "SlicerStatus",
        Body::Status(Status {
            code: 1,
            subcode: 0,
            error_name: String::new(),
            status_string: "connected".into(),
        }),
    );
    status.metadata = vec![meta("Application", "3D Slicer"), meta("Version", "5.8.1")];
    client.write_all(&status.encode(2)).await.unwrap();
    let command = Message::new(
        "CMD",
        Body::String(IgtlString {
            encoding: acus_igtl::message::ENCODING_UTF8,
            text: "hello".into(),
        }),
    );
    client.write_all(&command.encode(2)).await.unwrap();
    // Frames until the ACK (the bridge also sends its STATUS and T_robot_ct to a new client).
    loop {
        let mut head = [0u8; acus_igtl::HEADER_SIZE];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut head))
            .await
            .expect("a reply within 10 s")
            .unwrap();
        let header = acus_igtl::Header::decode(&head).unwrap();
        let mut body = vec![0u8; header.check_size(&acus_igtl::Limits::default()).unwrap()];
        client.read_exact(&mut body).await.unwrap();
        let message = acus_igtl::message::decode_body(&header, &body).unwrap();
        if message.device_name == "ACK" {
            assert_eq!(header.version, 2, "a v2 peer is answered in v2");
            match message.body {
                Body::String(s) => assert!(s.text.starts_with("hello: refused: unknown command"), "{}", s.text),
                other => panic!("ACK is {other:?}"),
            }
            return;
        }
    }
}
