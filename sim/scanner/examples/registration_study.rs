//! Registration accuracy study: localisation error (FLE) and observed vs predicted TRE over random frame poses, at
//! 1, 3 and 5 mm slices (or the thicknesses in `SLICES_MM`, e.g. `SLICES_MM=1,1.25,1.5,2`). Run in release:
//! `cargo run --release -p acus-sim-scanner --example registration_study -- [poses] [noise σ HU]`
use acus_control::frames::Point;
use acus_control::registration::FiducialModel;
use acus_sim_scanner::study::{run_study, StudyConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let poses: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let sigma: f64 = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(15.0);
    let urdf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../urdf/positioner.urdf"))?;
    let model = FiducialModel::from_urdf_str(&urdf)?;
    let c = model
        .points()
        .iter()
        .fold(nalgebra::Vector3::zeros(), |s, p| s + p.coords.coords)
        / model.len() as f64;
    // Target 100 mm from the fiducial centroid, perpendicular to the frame's main plane (where the patient lies).
    let target = Point::new(nalgebra::Point3::from(c + nalgebra::Vector3::new(0.0, 0.0, 0.1)));
    println!("{poses} poses, 0.7 mm pixels, σ {sigma} HU, target 100 mm from the fiducial centroid");
    println!("slice | reg/fail | missing | FLE rms (x, y, z) mm        | FRE rms | TRE obs | TRE pred | obs/pred");
    let thicknesses: Vec<f64> = match std::env::var("SLICES_MM") {
        Ok(list) => list
            .split(',')
            .map(|v| v.trim().parse::<f64>().map(|mm| mm * 1e-3))
            .collect::<Result<_, _>>()?,
        Err(_) => vec![1e-3, 3e-3, 5e-3],
    };
    for thickness in thicknesses {
        let cfg = StudyConfig {
            poses,
            pixel_spacing: 0.7e-3,
            slice_thickness: thickness,
            noise_sigma_hu: sigma,
            target,
            margin: 4e-3,
            seed: 7,
        };
        let t0 = std::time::Instant::now();
        let r = run_study(&model, &cfg)?;
        println!(
            "{:.2} mm | {:3}/{:<3}  | {:7} | {:.4} ({:.4}, {:.4}, {:.4}) | {:.4}  | {:.4}  | {:.4}   | {:.3}   ({:.1} s)",
            thickness * 1e3,
            r.registered,
            r.failed,
            r.missing,
            r.fle_rms * 1e3,
            r.fle_axis_rms.x * 1e3,
            r.fle_axis_rms.y * 1e3,
            r.fle_axis_rms.z * 1e3,
            r.fre_rms * 1e3,
            r.tre_observed_rms * 1e3,
            r.tre_predicted_rms * 1e3,
            r.tre_observed_rms / r.tre_predicted_rms,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
