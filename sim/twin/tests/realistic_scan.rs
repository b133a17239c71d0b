//! A check scan in the realistic world (robot as built, PSF, metal streaks, table shift, noise) still shows the needle
//! to the controller's finder: the tip is found near where the twin's needle truly is, displaced by the table shift —
//! which the controller sees only through the images.

use acus_control::frames::Point;
use acus_control::kinematics::{Joint, NeedleRequest, PositionerModel};
use acus_control::needle::{find_needle, NeedleSearch};
use acus_sim_twin::patient::{FrameAsBuilt, Imaging, Patient, PatientConfig};
use acus_sim_twin::robot::AsBuiltRobot;
use acus_sim_twin::world::WorldModel;
use nalgebra::Vector3;

const URDF: &str = include_str!("../../../urdf/positioner.urdf");

#[test]
fn the_finder_sees_the_needle_through_psf_streaks_and_the_table_shift() {
    let world = WorldModel::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../launch/config/worlds/realistic.yaml"),
    )
    .unwrap();
    let seed = 3;
    let nominal = PositionerModel::from_urdf_str(URDF).unwrap();
    let fiducials = acus_control::registration::FiducialModel::from_urdf_str(URDF).unwrap();
    let robot = AsBuiltRobot::build(URDF, &world.robot, seed).unwrap();
    let frame = FrameAsBuilt::manufacture(&fiducials, world.frame.sphere_centre, seed);
    let config = PatientConfig::reference();
    let mut patient = Patient::new(config.clone(), robot, frame).unwrap();
    let t_robot_ct = config.t_ct_robot.inverse();
    let entry = config.skin_above(&Point::xyz(0.035, 0.0, 0.0));
    let mut q = nominal
        .solve_needle(&NeedleRequest {
            entry: t_robot_ct.apply(&entry),
            target: t_robot_ct.apply(&config.lesion),
        })
        .unwrap();
    q.set(Joint::Insertion, 0.06);
    patient.sync(&q).unwrap();
    let truth = patient.tip().unwrap();
    let mut imaging = Imaging::for_scan(&world.scanner, seed, 2);
    imaging.table_offset = Vector3::new(0.0, 0.0, 0.5e-3);
    let volume = patient
        .scan(&patient.check_protocol(0.7e-3, 1e-3, &imaging, 2))
        .unwrap();
    // The controller looks along its nominal kinematics.
    let state = nominal.forward(&q);
    let t_ct_robot = config.t_ct_robot;
    let search = NeedleSearch::new(
        t_ct_robot.apply(&state.rcm),
        nalgebra::Unit::new_normalize(t_ct_robot.apply_vector(&state.direction)),
    );
    let seen = find_needle(&volume, &search).unwrap();
    let error = seen.tip.coords - (truth.coords + imaging.table_offset);
    println!(
        "tip found {:.3} mm from the truth shifted by the table ({:?} mm)",
        error.norm() * 1e3,
        error * 1e3
    );
    assert!(error.norm() < 0.6e-3, "{:.3} mm", error.norm() * 1e3);
}
