//! The OpenIGTLink server over real TCP on localhost: pyigtl (an independent implementation) as a v1 client, a
//! Slicer-style v2 client (STATUS with metadata on connect), and hostile input, each closing only its own connection.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use acus_igtl::convert::image_from_volume;
use acus_igtl::message::{Body, IgtlString, Message, MetaEntry, PointItem, ScalarType, Status};
use acus_igtl::{CloseReason, Event, Header, IgtlError, Server, ServerConfig, HEADER_SIZE};
use nalgebra::Matrix4;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(20);

async fn server() -> (Server, UnboundedReceiver<Event>) {
    let config = ServerConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        queue: 8,
        ..ServerConfig::default()
    };
    Server::bind(config).await.unwrap()
}

/// The next event matching `pick`, skipping others.
async fn next<T>(events: &mut UnboundedReceiver<Event>, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = events.recv().await.expect("server events ended");
            if let Some(t) = pick(e) {
                return t;
            }
        }
    })
    .await
    .expect("no such event within 20 s")
}

async fn connected(events: &mut UnboundedReceiver<Event>) -> u64 {
    next(events, |e| match e {
        Event::Connected { client, .. } => Some(client),
        _ => None,
    })
    .await
}

async fn closed(events: &mut UnboundedReceiver<Event>, who: u64) -> CloseReason {
    next(events, |e| match e {
        Event::Closed { client, reason } if client == who => Some(reason),
        _ => None,
    })
    .await
}

fn string(device: &str, text: &str) -> Message {
    Message::new(
        device,
        Body::String(IgtlString {
            encoding: acus_igtl::message::ENCODING_UTF8,
            text: text.into(),
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyigtl_sends_points_and_a_command_and_receives_transform_string_and_image() {
    let (server, mut events) = server().await;
    let python = Path::new(&std::env::var_os("ACUS_VENV").expect("ACUS_VENV: run launch/setup.sh")).join("bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/pyigtl_client.py");
    let child = tokio::process::Command::new(python)
        .arg(script)
        .arg(server.local_addr().port().to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = connected(&mut events).await;
    let points = next(&mut events, |e| match e {
        Event::Message { message, .. } if message.device_name == "plan" => Some(message),
        _ => None,
    })
    .await;
    let Body::Point(items) = &points.body else {
        panic!("{points:?}")
    };
    let names: Vec<&str> = items.iter().map(|p: &PointItem| p.name.as_str()).collect();
    assert_eq!(names, ["entry", "target"]);
    assert!((items[1].position - nalgebra::Point3::new(12.5, -25.0, 70.0)).norm() < 1e-4);
    let command = next(&mut events, |e| match e {
        Event::Message { message, .. } if message.device_name == "command" => Some(message),
        _ => None,
    })
    .await;
    assert!(
        matches!(&command.body, Body::String(s) if s.text == "insert"),
        "{command:?}"
    );

    // Out: the tip, a reply, a check scan (2×3×4 voxels of i16, 0.8×0.8×1 mm, LPS origin at (0.1, 0.05, -0.02) m).
    let mut tip = Matrix4::identity();
    tip[(0, 3)] = -12.0;
    tip[(1, 3)] = 34.5;
    tip[(2, 3)] = 56.0;
    assert!(server.send_to(client, Message::new("NeedleTip", Body::Transform(tip))));
    assert!(server.send_to(client, string("reply", "inserting step 1")));
    let mut ijk_to_lps = Matrix4::identity();
    ijk_to_lps[(0, 0)] = 0.8e-3;
    ijk_to_lps[(1, 1)] = 0.8e-3;
    ijk_to_lps[(2, 2)] = 1.0e-3;
    ijk_to_lps[(0, 3)] = 0.1;
    ijk_to_lps[(1, 3)] = 0.05;
    ijk_to_lps[(2, 3)] = -0.02;
    let size = [2u16, 3, 4];
    let voxels: Vec<i16> = (0..24).map(|v| v * 10 - 100).collect();
    let pixels = voxels.iter().flat_map(|v| v.to_le_bytes()).collect();
    let image = image_from_volume(&ijk_to_lps, size, ScalarType::I16, pixels).unwrap();
    assert!(server.send_to(client, Message::new("check_scan", Body::Image(image))));

    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "pyigtl client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &v["tip"];
    assert!((m[0][3].as_f64().unwrap() + 12.0).abs() < 1e-4 && (m[1][3].as_f64().unwrap() - 34.5).abs() < 1e-4);
    assert_eq!(v["reply"], "inserting step 1");
    // Voxel (i, j, k) = (1, 2, 3): LPS (0.1008, 0.0516, -0.017) m → RAS (-100.8, -51.6, -17.0) mm, within 1e-3 mm.
    let ras: Vec<f64> = v["voxel_ras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let expected = [-100.8, -51.6, -17.0];
    for (got, want) in ras.iter().zip(expected) {
        assert!((got - want).abs() < 1e-3, "voxel RAS {ras:?}, expected {expected:?}");
    }
    assert_eq!(v["voxel_value"], i64::from(voxels[1 + 2 * 2 + 3 * 6]));
}

/// A header for `type_name` declaring `body_size` with `crc`.
fn raw_header(version: u16, type_name: &str, body_size: u64, crc: u64) -> [u8; HEADER_SIZE] {
    Header {
        version,
        type_name: type_name.into(),
        device_name: "hostile".into(),
        timestamp: 0,
        body_size,
        crc,
    }
    .encode()
}

/// Connect a well-behaved client and check that a STRING still round-trips (the server is alive for others).
async fn still_serves(server: &Server, events: &mut UnboundedReceiver<Event>) {
    let mut good = TcpStream::connect(server.local_addr()).await.unwrap();
    let id = connected(events).await;
    good.write_all(&string("command", "abort").encode(1)).await.unwrap();
    let got = next(events, |e| match e {
        Event::Message { client, message } if client == id => Some(message),
        _ => None,
    })
    .await;
    assert!(matches!(&got.body, Body::String(s) if s.text == "abort"));
    assert!(server.send_to(id, string("reply", "ok")));
    let mut head = [0u8; HEADER_SIZE];
    tokio::time::timeout(WAIT, good.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Header::decode(&head).unwrap().type_name, "STRING");
}

async fn hostile(bytes: Vec<u8>, then_close: bool) -> CloseReason {
    let (server, mut events) = server().await;
    let mut bad = TcpStream::connect(server.local_addr()).await.unwrap();
    let id = connected(&mut events).await;
    bad.write_all(&bytes).await.unwrap();
    if then_close {
        bad.shutdown().await.unwrap();
    }
    let reason = closed(&mut events, id).await;
    still_serves(&server, &mut events).await;
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_crc_closes_that_connection_only() {
    let mut frame = string("command", "insert").encode(1);
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    let reason = hostile(frame, false).await;
    assert!(
        matches!(reason, CloseReason::Protocol(IgtlError::BadCrc { .. })),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_declared_closes_with_truncated() {
    let mut frame = raw_header(1, "STRING", 1000, 0).to_vec();
    frame.extend_from_slice(&[0u8; 10]);
    let reason = hostile(frame, true).await;
    assert!(
        matches!(
            reason,
            CloseReason::Protocol(IgtlError::Truncated {
                what: "body",
                need: 1000,
                have: 10
            })
        ),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_bodies_of_1_gib_and_u64_max_are_refused_before_reading() {
    for size in [1u64 << 30, u64::MAX] {
        for type_name in ["IMAGE", "STRING"] {
            let reason = hostile(raw_header(2, type_name, size, 0).to_vec(), false).await;
            assert!(
                matches!(reason, CloseReason::Protocol(IgtlError::BodyTooLarge { declared, .. }) if declared == size),
                "{type_name} {size}: {reason:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_beyond_the_body_closes_the_connection() {
    // v2 body: extended header (12 bytes) declaring 1 MiB of metadata, 4 bytes of content.
    let mut body = Vec::new();
    body.extend_from_slice(&12u16.to_be_bytes());
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&(1u32 << 20).to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&[0, 3, 0, 0]);
    let mut frame = raw_header(2, "STRING", body.len() as u64, acus_igtl::crc64(&body)).to_vec();
    frame.extend_from_slice(&body);
    let reason = hostile(frame, false).await;
    assert!(
        matches!(
            reason,
            CloseReason::Protocol(IgtlError::MetadataBeyondBody { .. } | IgtlError::BadExtendedHeader { .. })
        ),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_header_closes_with_truncated() {
    let reason = hostile(raw_header(1, "STRING", 0, 0)[..20].to_vec(), true).await;
    assert!(
        matches!(
            reason,
            CloseReason::Protocol(IgtlError::Truncated {
                what: "header",
                have: 20,
                ..
            })
        ),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_type_is_skipped_and_the_connection_stays() {
    let (server, mut events) = server().await;
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    let id = connected(&mut events).await;
    let body = b"whatever".to_vec();
    let mut frame = raw_header(1, "CAPABILITY", body.len() as u64, acus_igtl::crc64(&body)).to_vec();
    frame.extend_from_slice(&body);
    frame.extend_from_slice(&string("command", "plan").encode(1));
    client.write_all(&frame).await.unwrap();
    let skipped = next(&mut events, |e| match e {
        Event::Skipped { client, type_name } if client == id => Some(type_name),
        _ => None,
    })
    .await;
    assert_eq!(skipped, "CAPABILITY");
    let got = next(&mut events, |e| match e {
        Event::Message { client, message } if client == id => Some(message),
        _ => None,
    })
    .await;
    assert!(matches!(&got.body, Body::String(s) if s.text == "plan"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_that_is_not_openigtlink_closes_that_connection() {
    let body = b"whatever".to_vec();
    let mut frame = raw_header(1, "XYZZY", body.len() as u64, acus_igtl::crc64(&body)).to_vec();
    frame.extend_from_slice(&body);
    let reason = hostile(frame, false).await;
    assert!(
        matches!(&reason, CloseReason::Protocol(IgtlError::UnknownType(t)) if t == "XYZZY"),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slicer_style_v2_client_with_status_metadata_is_answered_in_v2() {
    let (server, mut events) = server().await;
    let mut slicer = TcpStream::connect(server.local_addr()).await.unwrap();
    let id = connected(&mut events).await;
    let mut hello = Message::new(
        "Slicer",
        Body::Status(Status {
            code: 1,
            subcode: 0,
            error_name: String::new(),
            status_string: "connected".into(),
        }),
    );
    hello.metadata = vec![MetaEntry {
        key: "SlicerVersion".into(),
        encoding: acus_igtl::message::ENCODING_UTF8,
        value: "5.8.1".into(),
    }];
    slicer.write_all(&hello.encode(2)).await.unwrap();
    let got = next(&mut events, |e| match e {
        Event::Message { client, message } if client == id => Some(message),
        _ => None,
    })
    .await;
    assert!(matches!(&got.body, Body::Status(s) if s.code == 1));
    assert_eq!(got.metadata.first().map(|m| m.value.as_str()), Some("5.8.1"));
    assert!(server.send_to(id, string("reply", "hello")));
    let mut head = [0u8; HEADER_SIZE];
    tokio::time::timeout(WAIT, slicer.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    let header = Header::decode(&head).unwrap();
    assert_eq!(header.version, 2, "answered in the peer's version");
    let mut body = vec![0u8; header.body_size as usize];
    slicer.read_exact(&mut body).await.unwrap();
    let reply = acus_igtl::message::decode_body(&header, &body).unwrap();
    assert!(matches!(&reply.body, Body::String(s) if s.text == "hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_and_others_keep_working() {
    let (server, mut events) = server().await;
    // Connected, never reads: the kernel buffers fill, then its queue of 8.
    let _stalled = TcpStream::connect(server.local_addr()).await.unwrap();
    let id = connected(&mut events).await;
    let big = Message::new(
        "check_scan",
        Body::Image(
            image_from_volume(
                &Matrix4::identity(),
                [256, 256, 8],
                ScalarType::I16,
                vec![0; 256 * 256 * 8 * 2],
            )
            .unwrap(),
        ),
    );
    let mut sent = 0;
    while server.send_to(id, big.clone()) {
        sent += 1;
        assert!(sent < 10_000, "never disconnected");
        tokio::task::yield_now().await;
    }
    let reason = closed(&mut events, id).await;
    assert!(matches!(reason, CloseReason::SlowReader(8)), "{reason:?}");
    still_serves(&server, &mut events).await;
}
