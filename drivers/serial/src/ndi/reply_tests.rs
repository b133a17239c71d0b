//! Parser tests on hand-built replies (CRCs computed here byte by byte, not by the encoders under test), round trips
//! through the encoders, and a never-panics sweep over truncations and bit flips.

use super::*;
use nalgebra::Vector3;

fn with_crc(text: &str) -> Vec<u8> {
    let mut v = text.as_bytes().to_vec();
    v.extend_from_slice(format!("{:04X}\r", crc16(text.as_bytes())).as_bytes());
    v
}

#[test]
fn text_replies_are_classified() {
    assert_eq!(parse_text(b"OKAYA896\r"), Ok(TextReply::Okay));
    assert_eq!(parse_text(b"RESETBE6F\r"), Ok(TextReply::Reset));
    assert_eq!(parse_text(&with_crc("ERROR0C")), Ok(TextReply::Error(ErrorCode(0x0C))));
    assert_eq!(
        ErrorCode(0x0C).meaning(),
        "command is invalid while in the current mode"
    );
    assert_eq!(ErrorCode(0x04).meaning(), "invalid CRC calculated for command");
    assert_eq!(parse_text(&with_crc("WARNING01")), Ok(TextReply::Warning(1)));
    assert_eq!(
        parse_text(&with_crc("0100A01F")),
        Ok(TextReply::Data("0100A01F".into()))
    );
    assert_eq!(parse_text(b"OKAYA897\r"), Err(NdiError::BadCrc));
    assert_eq!(parse_text(b"OK\r"), Err(NdiError::Truncated { got: 2, expected: 4 }));
    assert!(matches!(parse_text(b"OKAYZZZZ\r"), Err(NdiError::Malformed(_))));
    assert!(matches!(parse_text(&with_crc("ERRORX")), Err(NdiError::Malformed(_))));
}

#[test]
fn okay_crc_is_the_published_one() {
    // "OKAYA896" is the reply every NDI log shows; it pins the CRC variant.
    assert_eq!(crc16(b"OKAY"), 0xA896);
}

#[test]
fn phsr_lists_handles_and_status() {
    let h = parse_phsr("020A0010B031").unwrap_or_default();
    assert_eq!(
        h,
        vec![
            PortHandle {
                handle: 0x0A,
                status: 0x001
            },
            PortHandle {
                handle: 0x0B,
                status: 0x031
            }
        ]
    );
    assert_eq!(parse_phsr("00"), Ok(vec![]));
    assert!(parse_phsr("020A001").is_err());
    assert!(parse_phsr("010A0011").is_err(), "trailing byte");
    assert!(parse_phsr("").is_err());
}

/// A BX reply for one valid tool and one missing, assembled field by field.
fn hand_bx(q: [f32; 4], t: [f32; 3], err: f32, oov: bool) -> Vec<u8> {
    let mut body = vec![2u8, 0x0A, 0x01];
    for v in q.iter().chain(&t).chain([err].iter()) {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let port: u32 = 0x31 | if oov { 0x80 } else { 0 };
    body.extend_from_slice(&port.to_le_bytes());
    body.extend_from_slice(&77u32.to_le_bytes());
    body.extend_from_slice(&[0x0B, 0x02]);
    body.extend_from_slice(&0x71u32.to_le_bytes());
    body.extend_from_slice(&78u32.to_le_bytes());
    body.extend_from_slice(&0x0000u16.to_le_bytes());
    let mut out = vec![0xC4, 0xA5];
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    let h = crc16(&out);
    out.extend_from_slice(&h.to_le_bytes());
    let c = crc16(&body);
    out.extend_from_slice(&body);
    out.extend_from_slice(&c.to_le_bytes());
    out
}

#[test]
fn bx_reply_parses_into_metres() {
    let s = std::f32::consts::FRAC_1_SQRT_2;
    let raw = hand_bx([s, 0.0, 0.0, s], [10.0, -20.5, -1500.25], 0.3, true);
    let f = parse_bx(&raw).expect("valid BX");
    assert_eq!(f.frame_number, 78);
    assert_eq!(f.tools.len(), 2);
    let a = &f.tools[0];
    assert_eq!((a.handle, a.status), (0x0A, HandleStatus::Valid));
    let p = a.pose.expect("pose");
    assert!((p.translation.vector - Vector3::new(0.010, -0.0205, -1.50025)).norm() < 1e-6);
    let x = p.rotation * Vector3::x();
    assert!((x - Vector3::y()).norm() < 1e-6, "90° about z maps x to y");
    assert!((a.rms_error_m.unwrap_or(0.0) - 0.3e-3).abs() < 1e-9);
    assert!(a.partially_out_of_volume && !a.out_of_volume && !a.missing);
    let b = &f.tools[1];
    assert!(b.missing && b.pose.is_none() && b.out_of_volume);
    // ndicapi's single CRC over header + header CRC + body checks out too.
    let n = raw.len() - 2;
    assert_eq!(crc16(&raw[..n]), u16::from_le_bytes([raw[n], raw[n + 1]]));
}

#[test]
fn bx_errors_are_typed() {
    let raw = hand_bx([1.0, 0.0, 0.0, 0.0], [0.0; 3], 0.0, false);
    let mut bad = raw.clone();
    bad[0] = 0xC5;
    assert_eq!(parse_bx(&bad), Err(NdiError::BadHeader));
    let mut bad = raw.clone();
    bad[4] ^= 1;
    assert_eq!(parse_bx(&bad), Err(NdiError::BadCrc), "header CRC");
    let mut bad = raw.clone();
    bad[10] ^= 0x40;
    assert_eq!(parse_bx(&bad), Err(NdiError::BadCrc), "body CRC");
    let got = raw.len() - 5;
    assert_eq!(
        parse_bx(&raw[..got]),
        Err(NdiError::Truncated {
            got,
            expected: raw.len()
        })
    );
    assert_eq!(parse_bx(&raw[..3]), Err(NdiError::Truncated { got: 3, expected: 6 }));
    let zero_q = hand_bx([0.0; 4], [0.0; 3], 0.0, false);
    assert!(matches!(parse_bx(&zero_q), Err(NdiError::Malformed(_))));
    let nan_t = hand_bx([1.0, 0.0, 0.0, 0.0], [f32::NAN, 0.0, 0.0], 0.0, false);
    assert!(matches!(parse_bx(&nan_t), Err(NdiError::Malformed(_))));
}

#[test]
fn tx_reply_parses_hand_built_text() {
    // Handle 0A: identity rotation, (100.00, -2.50, -1000.00) mm, error 0.1234 mm; handle 0B missing; 0C disabled.
    let data = "030A+10000+00000+00000+00000+010000-000250-100000+01234000000310000002A\n\
                0BMISSING000000710000002A\n0CDISABLED\n0000";
    let f = parse_text(&with_crc(data)).ok().and_then(|r| match r {
        TextReply::Data(d) => parse_tx(&d).ok(),
        _ => None,
    });
    let f = f.expect("valid TX");
    assert_eq!(f.frame_number, 0x2A);
    assert_eq!(f.tools.len(), 3);
    let p = f.tools[0].pose.expect("pose");
    assert!((p.translation.vector - Vector3::new(0.1, -0.0025, -1.0)).norm() < 1e-9);
    assert!((f.tools[0].rms_error_m.unwrap_or(0.0) - 0.1234e-3).abs() < 1e-12);
    assert!(f.tools[1].missing && f.tools[2].status == HandleStatus::Disabled);
    assert!(parse_tx("010A+1000").is_err());
    assert!(parse_tx("010AMISSING0000007100000002\n0000X").is_err());
}

fn sample() -> TrackingFrame {
    let pose = Isometry3::new(Vector3::new(0.01, 0.2, -1.1), Vector3::new(0.1, -0.2, 0.3));
    let t = |h, status, pose: Option<Isometry3<f64>>, port: u32| ToolPose {
        handle: h,
        status,
        pose,
        rms_error_m: pose.map(|_| 0.2e-3),
        port_status: port,
        frame_number: if status == HandleStatus::Disabled { 0 } else { 1234 },
        out_of_volume: port & PORT_OUT_OF_VOLUME != 0,
        partially_out_of_volume: port & PORT_PARTIALLY_IN_VOLUME != 0,
        missing: status == HandleStatus::Missing,
    };
    TrackingFrame {
        frame_number: 1234,
        tools: vec![
            t(0x0A, HandleStatus::Valid, Some(pose), 0x31),
            t(0x0B, HandleStatus::Missing, None, 0x71),
            t(0x0C, HandleStatus::Disabled, None, 0),
        ],
        system_status: 0x0001,
    }
}

fn close(a: &TrackingFrame, b: &TrackingFrame, tol_m: f64) -> bool {
    a.frame_number == b.frame_number
        && a.system_status == b.system_status
        && a.tools.len() == b.tools.len()
        && a.tools.iter().zip(&b.tools).all(|(x, y)| {
            let pose_ok = match (x.pose, y.pose) {
                (Some(p), Some(q)) => {
                    (p.translation.vector - q.translation.vector).norm() < tol_m
                        && p.rotation.angle_to(&q.rotation) < 1e-3
                }
                (None, None) => true,
                _ => false,
            };
            pose_ok && x.handle == y.handle && x.status == y.status && x.missing == y.missing
        })
}

#[test]
fn encoders_round_trip() {
    let f = sample();
    assert!(close(&parse_bx(&encode_bx(&f)).expect("bx"), &f, 1e-6));
    let tx = encode_tx(&f);
    assert!(close(&parse_tx(&tx).expect("tx"), &f, 1e-4), "TX keeps 0.01 mm");
    assert_eq!(parse_text(&encode_text("OKAY")), Ok(TextReply::Okay));
}

#[test]
fn split_finds_reply_ends() {
    let bx = encode_bx(&sample());
    assert_eq!(split_reply(&bx), Split::Complete(bx.len()));
    assert_eq!(split_reply(&bx[..10]), Split::Incomplete { need: Some(bx.len()) });
    assert_eq!(split_reply(&bx[..3]), Split::Incomplete { need: None });
    let mut bad = bx.clone();
    bad[5] ^= 1;
    assert_eq!(
        split_reply(&bad),
        Split::Complete(6),
        "bad header CRC ends the reply at once"
    );
    assert_eq!(split_reply(b"OKAYA896\rRESET"), Split::Complete(9));
    assert_eq!(split_reply(b"OKAY"), Split::Incomplete { need: None });
    assert_eq!(split_reply(&[b'x'; MAX_REPLY]), Split::Complete(MAX_REPLY));
}

#[test]
fn no_input_panics() {
    // Every prefix and every single-bit flip of valid replies, through every parser (the fuzz targets' smoke test).
    let mut inputs = vec![
        encode_bx(&sample()),
        encode_text(&encode_tx(&sample())),
        with_crc("020A0010B031"),
    ];
    inputs.push(vec![0xC4, 0xA5, 0xFF, 0xFF, 0, 0]);
    for raw in inputs {
        for n in 0..=raw.len() {
            let _ = (parse_bx(&raw[..n]), parse_text(&raw[..n]), split_reply(&raw[..n]));
        }
        for i in 0..raw.len() * 8 {
            let mut m = raw.clone();
            m[i / 8] ^= 1 << (i % 8);
            let _ = (parse_bx(&m), split_reply(&m));
            if let Ok(TextReply::Data(d)) = parse_text(&m) {
                let _ = (parse_tx(&d), parse_phsr(&d));
            }
            let s = String::from_utf8_lossy(&m);
            let _ = (parse_tx(&s), parse_phsr(&s));
        }
    }
}
