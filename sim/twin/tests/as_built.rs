//! Each of the world's robot and frame error sources is live: switched on alone, it moves the twin's needle guide (or
//! the rendered frame) by about what was drawn; all switched off, the twin's robot is the controller's nominal forward
//! kinematics.

use acus_control::kinematics::{JointPositions, PositionerModel};
use acus_control::registration::FiducialModel;
use acus_sim_scanner::{Shape, FIDUCIAL_HU};
use acus_sim_twin::patient::{FrameAsBuilt, Patient, PatientConfig};
use acus_sim_twin::robot::AsBuiltRobot;
use acus_sim_twin::world::{RobotErrors, WorldModel};
use nalgebra::Vector3;

const URDF: &str = include_str!("../../../urdf/positioner.urdf");

fn realistic() -> WorldModel {
    WorldModel::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../launch/config/worlds/realistic.yaml"),
    )
    .unwrap()
}

fn q(values: [f64; 6]) -> JointPositions {
    JointPositions(values)
}

const POSES: [[f64; 6]; 3] = [
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.02, -0.03, 0.1, 0.4, -0.3, 0.05],
    [-0.05, 0.04, 0.06, -0.6, 0.5, 0.12],
];

#[test]
fn the_robot_without_errors_is_the_nominal_forward_kinematics() {
    let nominal = PositionerModel::from_urdf_str(URDF).unwrap();
    let mut robot = AsBuiltRobot::build(URDF, &RobotErrors::NONE, 7).unwrap();
    for p in POSES {
        let state = robot.sync(&q(p)).unwrap();
        let fk = nominal.forward(&q(p));
        assert!((state.entry.coords - fk.rcm.coords).norm() < 1e-9, "RCM at {p:?}");
        assert!(state.holder.angle_to(&fk.tip_orientation) < 1e-9, "holder at {p:?}");
        assert!((state.depth - p[5]).abs() < 1e-9, "depth at {p:?}");
    }
}

fn only(f: impl Fn(&mut RobotErrors)) -> RobotErrors {
    let mut e = RobotErrors::NONE;
    f(&mut e);
    e
}

#[test]
fn zero_offsets_move_the_guide_by_the_drawn_offsets() {
    let sigma = realistic().robot;
    let mut robot = AsBuiltRobot::build(
        URDF,
        &only(|e| e.zero_offset_prismatic = sigma.zero_offset_prismatic),
        3,
    )
    .unwrap();
    let nominal = PositionerModel::from_urdf_str(URDF).unwrap();
    let offsets = robot.errors().zero_offsets;
    let state = robot.sync(&q(POSES[0])).unwrap();
    let moved = state.entry.coords - nominal.forward(&q(POSES[0])).rcm.coords;
    // At q = 0 the stage axes are the base axes.
    let drawn = Vector3::new(offsets[0], offsets[1], offsets[2]);
    println!("RCM moved {:?} mm, drawn {:?} mm", moved * 1e3, drawn * 1e3);
    assert!(drawn.norm() > 0.02e-3, "something was drawn");
    assert!((moved - drawn).norm() < 1e-9);
    // The insertion offset lengthens the needle beyond the guide by its drawn value.
    let state = robot.sync(&q([0.0, 0.0, 0.0, 0.0, 0.0, 0.05])).unwrap();
    assert!((state.depth - 0.05 - offsets[5]).abs() < 1e-9, "depth {}", state.depth);
}

#[test]
fn origin_and_axis_errors_move_the_guide_by_about_their_size() {
    let sigma = realistic().robot;
    let nominal = PositionerModel::from_urdf_str(URDF).unwrap();
    let mut origin = AsBuiltRobot::build(URDF, &only(|e| e.origin_position = sigma.origin_position), 5).unwrap();
    let drawn: Vector3<f64> = origin.errors().origin[..5].iter().sum();
    let state = origin.sync(&q(POSES[0])).unwrap();
    let moved = state.entry.coords - nominal.forward(&q(POSES[0])).rcm.coords;
    println!(
        "origin errors: RCM moved {:.3} mm (sum of drawn {:.3} mm)",
        moved.norm() * 1e3,
        drawn.norm() * 1e3
    );
    assert!(
        (moved - drawn).norm() < 1e-9,
        "at q = 0 the RCM moves by the sum of the origin errors before it"
    );

    let mut axes = AsBuiltRobot::build(URDF, &only(|e| e.axis_direction = sigma.axis_direction), 5).unwrap();
    let p = POSES[2];
    let state = axes.sync(&q(p)).unwrap();
    let fk = nominal.forward(&q(p));
    let (angle, shift) = (
        state.holder.angle_to(&fk.tip_orientation),
        (state.entry.coords - fk.rcm.coords).norm(),
    );
    println!(
        "axis errors at {p:?}: holder turned {:.4}°, RCM moved {:.3} mm",
        angle.to_degrees(),
        shift * 1e3
    );
    assert!(
        angle > 0.001_f64.to_radians() && angle < 1.0_f64.to_radians(),
        "{}°",
        angle.to_degrees()
    );
    assert!(shift > 1e-6 && shift < 2e-3, "{shift}");
}

#[test]
fn insertion_backlash_loses_the_dead_band_on_reversal() {
    let sigma = realistic().robot;
    let mut robot = AsBuiltRobot::build(URDF, &only(|e| e.insertion_backlash = sigma.insertion_backlash), 1).unwrap();
    let at = |r: &mut AsBuiltRobot, d: f64| r.sync(&q([0.0, 0.0, 0.0, 0.0, 0.0, d])).unwrap().depth;
    // The first sync takes the drive as it stands; from the next forward move on, the output lags by half the band.
    at(&mut robot, 0.04);
    let (d50, d60) = (at(&mut robot, 0.05), at(&mut robot, 0.06));
    let d55 = at(&mut robot, 0.055);
    println!(
        "forward 10 mm: {:.4} mm; back 5 mm: {:.4} mm",
        (d60 - d50) * 1e3,
        (d60 - d55) * 1e3
    );
    assert!((d60 - d50 - 0.01).abs() < 1e-9, "forward moves carry through");
    assert!(
        (d60 - d55 - (0.005 - sigma.insertion_backlash)).abs() < 1e-9,
        "a reversal first takes up the play"
    );
}

#[test]
fn holder_play_tilts_the_needle_by_at_most_the_play() {
    let sigma = realistic().robot;
    let nominal = PositionerModel::from_urdf_str(URDF).unwrap();
    let mut robot = AsBuiltRobot::build(URDF, &only(|e| e.holder_play = sigma.holder_play), 9).unwrap();
    let state = robot.sync(&q(POSES[1])).unwrap();
    let angle = state.holder.angle_to(&nominal.forward(&q(POSES[1])).tip_orientation);
    println!(
        "holder play: needle tilted {:.4}° (drawn {:.4}°)",
        angle.to_degrees(),
        robot.errors().play.1.to_degrees()
    );
    assert!((angle - robot.errors().play.1).abs() < 1e-9);
    assert!(angle > 0.0 && angle <= sigma.holder_play + 1e-12);
}

#[test]
fn the_frame_as_manufactured_is_what_the_scanner_sees() {
    let model = FiducialModel::from_urdf_str(URDF).unwrap();
    let sigma = realistic().frame.sphere_centre;
    let frame = FrameAsBuilt::manufacture(&model, sigma, 4);
    let offsets: Vec<Vector3<f64>> = frame
        .centres
        .iter()
        .zip(model.points())
        .map(|(b, m)| b.coords - m.coords)
        .collect();
    let rms = (offsets.iter().map(|o| o.norm_squared()).sum::<f64>() / (3.0 * offsets.len() as f64)).sqrt();
    let centroid_shift: Vector3<f64> = offsets.iter().sum::<Vector3<f64>>() / offsets.len() as f64;
    println!(
        "sphere offsets RMS {:.3} mm per axis, centroid moved {:.3} mm",
        rms * 1e3,
        centroid_shift.norm() * 1e3
    );
    assert!(rms > 0.3 * sigma && rms < 2.5 * sigma, "RMS {rms}");
    let config = PatientConfig::reference();
    let robot = AsBuiltRobot::build(URDF, &RobotErrors::NONE, 0).unwrap();
    let patient = Patient::new(config.clone(), robot, frame.clone()).unwrap();
    let spheres: Vec<Vector3<f64>> = patient
        .scene()
        .elements
        .iter()
        .filter_map(|e| match e.shape {
            Shape::Sphere { center, .. } if (e.hu - FIDUCIAL_HU).abs() < 1.0 => Some(center.coords),
            _ => None,
        })
        .collect();
    assert_eq!(spheres.len(), frame.centres.len());
    let rendered: Vector3<f64> = spheres.iter().sum::<Vector3<f64>>() / spheres.len() as f64;
    let nominal: Vector3<f64> = model
        .points()
        .iter()
        .map(|p| config.t_ct_robot.apply(p).coords.coords)
        .sum::<Vector3<f64>>()
        / spheres.len() as f64;
    let expected = config.t_ct_robot.apply_vector(&centroid_shift);
    assert!(
        ((rendered - nominal) - expected).norm() < 1e-12,
        "the rendered centroid moves by the drawn offset"
    );
}
