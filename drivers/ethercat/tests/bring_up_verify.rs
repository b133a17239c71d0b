//! Bring-up compares every drive with the drive YAML at PRE-OP (identity 0x1018 where configured, unit objects 0x608F,
//! 0x6091, 0x6092 with 0x60A8) and refuses a line that differs before OP, naming the drive, the object and both values.

mod common;

use acus_ethercat::cia402::{DriveObject, ObjectValue};
use acus_ethercat::config::AxisConfig;
use acus_ethercat::ethercrab_bus::{pdu_storage, BusTiming, EthercrabBus};
use acus_ethercat::Error;
use acus_sim_ecat::esc::AlState;
use acus_sim_ecat::inproc::InProcessLink;
use acus_sim_ecat::network::{PRODUCT_CODE, VENDOR_ID};
use acus_sim_ecat::{DriveParams, Network};
use common::*;

fn timing() -> BusTiming {
    BusTiming {
        dc_static_sync_iterations: 10,
        pdu_timeout: std::time::Duration::from_millis(500),
        process_data_timeout: std::time::Duration::from_millis(50),
        ..BusTiming::default()
    }
}

/// Bring `axes` up on drives emulated with `params`; the result and the emulated line.
fn bring_up(params: &[DriveParams], axes: &[AxisConfig]) -> (Result<EthercrabBus, Error>, InProcessLink) {
    let (tx, rx, pdu_loop) = pdu_storage().unwrap();
    let link = InProcessLink::spawn(Network::new(params).unwrap(), tx, rx).unwrap();
    (EthercrabBus::bring_up(pdu_loop, axes, timing()), link)
}

fn matching(axes: &[AxisConfig]) -> Vec<DriveParams> {
    axes.iter().map(|a| sim_params(a, 0.5 * (a.lower + a.upper))).collect()
}

fn assert_refused_before_op(link: &InProcessLink) {
    for (i, d) in link.network().devices().iter().enumerate() {
        assert!(d.al_state() < AlState::SafeOp, "drive {i} went to {:?}", d.al_state());
    }
}

#[test]
fn drives_from_the_configuration_are_accepted_with_their_identity() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut axes = config().axes;
    for a in &mut axes {
        a.vendor_id = Some(VENDOR_ID);
        a.product_code = Some(PRODUCT_CODE);
    }
    let (bus, link) = bring_up(&matching(&axes), &axes);
    assert!(bus.is_ok(), "{:?}", bus.err());
    assert!(link.network().devices().iter().all(|d| d.al_state() == AlState::Op));
}

#[test]
fn generic_drives_are_refused_naming_the_encoder_resolution() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let axes = config().axes;
    // What `acus-ecat-emulator` serves without `--params`.
    let (bus, link) = bring_up(&vec![DriveParams::default(); axes.len()], &axes);
    match bus {
        Err(
            ref e @ Error::DriveMismatch {
                axis: 0,
                ref joint,
                object: DriveObject::EncoderResolution,
                found: ObjectValue::Number(found),
                expected: ObjectValue::Number(expected),
            },
        ) => {
            assert_eq!(joint, "x_joint");
            assert!(
                (found - 131_072.0).abs() < 1e-9 && (expected - 1_048_576.0).abs() < 1e-9,
                "{e}"
            );
            let m = e.to_string();
            assert!(
                m.contains("x_joint") && m.contains("131072") && m.contains("1048576"),
                "{m}"
            );
        }
        other => panic!("expected an encoder mismatch on x_joint, got {:?}", other.err()),
    }
    assert_refused_before_op(&link);
}

#[test]
fn a_wrong_product_code_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut axes = config().axes;
    axes[2].product_code = Some(0x0403);
    let (bus, link) = bring_up(&matching(&axes), &axes);
    match bus {
        Err(Error::DriveMismatch {
            axis: 2,
            joint,
            object: DriveObject::ProductCode,
            found: ObjectValue::Id(found),
            expected: ObjectValue::Id(0x0403),
        }) => {
            assert_eq!((joint.as_str(), found), ("z_joint", PRODUCT_CODE));
        }
        other => panic!("expected a product-code mismatch on z_joint, got {:?}", other.err()),
    }
    assert_refused_before_op(&link);
}

#[test]
fn a_wrong_gear_a_wrong_lead_and_a_rotary_drive_on_a_linear_axis_are_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let axes = config().axes;
    // yaw: a 50:1 gear where the YAML says 100:1.
    let mut params = matching(&axes);
    params[3].gear_motor_revolutions = 50;
    let (bus, _link) = bring_up(&params, &axes);
    match bus {
        Err(Error::DriveMismatch {
            axis: 3,
            object: DriveObject::GearRatio,
            found: ObjectValue::Number(f),
            expected: ObjectValue::Number(e),
            ..
        }) => assert!((f - 50.0).abs() < 1e-9 && (e - 100.0).abs() < 1e-9),
        other => panic!("expected a gear mismatch on yaw, got {:?}", other.err()),
    }
    drop(_link);
    // insertion: a 5 mm lead where the YAML says 2 mm.
    let mut params = matching(&axes);
    params[5].feed = 5_000_000;
    let (bus, _link) = bring_up(&params, &axes);
    match bus {
        Err(Error::DriveMismatch {
            axis: 5,
            object: DriveObject::FeedConstant,
            found: ObjectValue::Number(f),
            expected: ObjectValue::Number(e),
            ..
        }) => assert!((f - 0.005).abs() < 1e-12 && (e - 0.002).abs() < 1e-12),
        other => panic!("expected a feed mismatch on insertion, got {:?}", other.err()),
    }
    drop(_link);
    // x: a rotary drive (feed in µ°) on a prismatic joint.
    let mut params = matching(&axes);
    params[0] = DriveParams {
        rotary: true,
        feed: 360_000_000,
        ..params[0]
    };
    let (bus, _link) = bring_up(&params, &axes);
    assert!(
        matches!(
            bus,
            Err(Error::DriveMismatch {
                axis: 0,
                object: DriveObject::PositionUnit,
                ..
            })
        ),
        "{:?}",
        bus.err()
    );
}
