//! The robot's placement in the twin: a fiducial frame inside the patient is refused by name (its spheres would image
//! merged with tissue and bias the registration), and the reference placement clears the body.

use acus_control::frames::Transform;
use acus_sim_twin::patient::{Patient, PatientConfig};
use acus_sim_twin::TwinError;
use nalgebra::{Isometry3, Translation3};

const URDF: &str = include_str!("../../../urdf/positioner.urdf");

fn patient(config: PatientConfig) -> Result<Patient, TwinError> {
    Patient::ideal(config, URDF)
}

#[test]
fn the_reference_placement_keeps_the_frame_clear_of_the_body() {
    assert!(patient(PatientConfig::reference()).is_ok());
}

#[test]
fn a_frame_in_the_patient_is_refused_by_name() {
    let mut config = PatientConfig::reference();
    // The same robot 30 mm further along the table (CT +z): its frame's nearest sphere ends up inside the body.
    let shift = Isometry3::from_parts(Translation3::new(0.0, 0.0, 0.03), nalgebra::UnitQuaternion::identity());
    config.t_ct_robot = Transform::from_isometry(shift * *config.t_ct_robot.isometry());
    let err = patient(config).err().expect("refused");
    let text = err.to_string();
    assert!(matches!(err, TwinError::FiducialInBody { .. }), "{text}");
    assert!(text.contains("fiducial") && text.contains("in the patient"), "{text}");
}
