//! Wall time of the virtual scanner on the reference patient (`acus sim`'s defaults): the planning scan (0.8 mm pixels,
//! 2 mm slices) and a check scan (0.7 mm, 1 mm) with the needle in. Prints figures; `cargo bench -p acus-sim-twin`.

use std::time::Instant;

use acus_control::frames::Point;
use acus_control::kinematics::{Joint, NeedleRequest, PositionerModel};
use acus_sim_scanner::{ScanProtocol, Streaks};
use acus_sim_twin::patient::{Imaging, Patient, PatientConfig};

const URDF: &str = include_str!("../../../urdf/positioner.urdf");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = PositionerModel::from_urdf_str(URDF)?;
    let config = PatientConfig::reference();
    let mut patient = Patient::ideal(config.clone(), URDF)?;
    // The realistic world's image formation (PSF and streaks cost time; the table offset does not).
    let imaging = Imaging {
        psf_fwhm: 0.7e-3,
        streaks: Streaks {
            amplitude_hu: 100.0,
            decay_length: 0.01,
            rays: 8,
        },
        ..Imaging::noise_only(15.0)
    };
    let planning = patient.planning_protocol(0.8e-3, 2e-3, &imaging, 1);
    report("planning scan", &patient, &planning)?;

    // The needle aligned from the skin above the lesion and inserted 60 mm, as after the second step.
    let t_robot_ct = config.t_ct_robot.inverse();
    let entry = config.skin_above(&Point::xyz(0.035, 0.0, 0.0));
    let mut q = model.solve_needle(&NeedleRequest {
        entry: t_robot_ct.apply(&entry),
        target: t_robot_ct.apply(&config.lesion),
    })?;
    q.set(Joint::Insertion, 0.06);
    patient.sync(&q)?;
    let check = patient.check_protocol(0.7e-3, 1e-3, &imaging, 2);
    report("check scan", &patient, &check)?;
    Ok(())
}

/// Best wall time of five scans with `protocol`, printed.
fn report(name: &str, patient: &Patient, protocol: &ScanProtocol) -> Result<(), Box<dyn std::error::Error>> {
    const RUNS: usize = 5;
    let mut best = f64::INFINITY;
    for _ in 0..RUNS {
        let t = Instant::now();
        patient.scan(protocol)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    let voxels = protocol.columns * protocol.rows * protocol.slices;
    println!(
        "{name}: {voxels} voxels in {best:.3} s ({:.1} ns/voxel), best of {RUNS}",
        best / voxels as f64 * 1e9
    );
    Ok(())
}
