//! Accuracy study: scan the fiducial frame at random poses, register, and compare localisation error and target
//! registration error with Fitzpatrick's prediction. Shared by the acceptance test and the `registration_study` example.

use acus_control::frames::{Ct, Point, RobotBase, Transform};
use acus_control::registration::{register_volume, DetectionWorkspace, FiducialModel, RegistrationParams};
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};
use rand::{RngExt, SeedableRng};

use crate::{scan, ScanProtocol, Scene, FIDUCIAL_HU};

/// What to study.
#[derive(Clone, Debug)]
pub struct StudyConfig {
    /// Random frame poses.
    pub poses: usize,
    /// In-plane pixel spacing, metres.
    pub pixel_spacing: f64,
    /// Slice spacing = slice thickness, metres.
    pub slice_thickness: f64,
    /// Image noise, HU.
    pub noise_sigma_hu: f64,
    /// Target in the robot base (the study reports TRE there).
    pub target: Point<RobotBase>,
    /// Margin of the scanned field of view around the spheres, metres (at least two slices along z).
    pub margin: f64,
    /// Seed for poses and noise.
    pub seed: u64,
}

/// Figures of a study.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyReport {
    /// Poses registered successfully.
    pub registered: usize,
    /// Poses where registration failed (should be 0).
    pub failed: usize,
    /// Fiducials not matched, summed over poses.
    pub missing: usize,
    /// RMS of |detected − true| sphere centre over all matched fiducials (the FLE), metres.
    pub fle_rms: f64,
    /// RMS of the same error per axis (x, y, z), metres.
    pub fle_axis_rms: Vector3<f64>,
    /// RMS FRE over poses, metres.
    pub fre_rms: f64,
    /// RMS observed TRE at the target, metres.
    pub tre_observed_rms: f64,
    /// RMS predicted TRE at the target using `fle_rms` (eq. 46), metres.
    pub tre_predicted_rms: f64,
    /// Mean distance of the target from the fiducial centroid, metres.
    pub target_distance: f64,
}

/// A uniformly random rotation and a translation within ±50 mm of the CT origin.
fn random_pose(rng: &mut impl RngExt) -> Transform<Ct, RobotBase> {
    // Shoemake's method: a uniform unit quaternion from three uniforms.
    let (u1, u2, u3): (f64, f64, f64) = (rng.random(), rng.random(), rng.random());
    let tau = std::f64::consts::TAU;
    let q = nalgebra::Quaternion::new(
        u1.sqrt() * (tau * u3).cos(),
        (1.0 - u1).sqrt() * (tau * u2).sin(),
        (1.0 - u1).sqrt() * (tau * u2).cos(),
        u1.sqrt() * (tau * u3).sin(),
    );
    let t = Vector3::new(
        rng.random::<f64>() - 0.5,
        rng.random::<f64>() - 0.5,
        rng.random::<f64>() - 0.5,
    ) * 0.1;
    Transform::from_isometry(Isometry3::from_parts(
        Translation3::from(t),
        UnitQuaternion::from_quaternion(q),
    ))
}

/// Runs the study. Each pose: render the frame in air with partial volume and noise, detect, match, register.
pub fn run_study(model: &FiducialModel, config: &StudyConfig) -> Result<StudyReport, crate::ScannerError> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
    let params = RegistrationParams::for_model(model);
    let mut ws = DetectionWorkspace::new();
    let (mut sq_err, mut sq_axis, mut n_fid) = (0.0, Vector3::zeros(), 0usize);
    let (mut sq_fre, mut sq_tre, mut sq_pred_unit, mut dist) = (0.0, 0.0, 0.0, 0.0);
    let (mut registered, mut failed, mut missing) = (0, 0, 0);
    let centroid = model.points().iter().fold(Vector3::zeros(), |s, p| s + p.coords.coords) / model.len() as f64;
    for pose in 0..config.poses {
        let t_ct_robot = random_pose(&mut rng);
        let mut scene = Scene::new();
        let truth = scene.add_fiducial_frame(model, &t_ct_robot, FIDUCIAL_HU);
        let (mut lo, mut hi) = (truth[0].coords, truth[0].coords);
        for p in &truth {
            lo = lo.inf(&p.coords);
            hi = hi.sup(&p.coords);
        }
        let m = Vector3::new(
            config.margin,
            config.margin,
            config.margin.max(2.0 * config.slice_thickness),
        ) + Vector3::repeat(model.radius());
        // Random sub-voxel grid phase, so that sphere centres sample all positions relative to voxel centres.
        let phase = Vector3::new(rng.random::<f64>(), rng.random::<f64>(), rng.random::<f64>());
        let step = Vector3::new(config.pixel_spacing, config.pixel_spacing, config.slice_thickness);
        let lo = lo - m - phase.component_mul(&step);
        let mut protocol = ScanProtocol::covering(
            Point::new(lo),
            Point::new(hi + m),
            config.pixel_spacing,
            config.slice_thickness,
            config.slice_thickness,
        );
        protocol.noise_sigma_hu = config.noise_sigma_hu;
        protocol.seed = config.seed.wrapping_mul(1000).wrapping_add(pose as u64);
        let volume = scan(&scene, &protocol)?;
        let Ok((reg, _)) = register_volume(&volume, model, &params, &mut ws) else {
            failed += 1;
            continue;
        };
        registered += 1;
        missing += reg.missing().len();
        for f in reg.fits() {
            let e = f.detected.coords - truth[f.model_index].coords;
            sq_err += e.norm_squared();
            sq_axis += e.component_mul(&e);
            n_fid += 1;
        }
        sq_fre += reg.fre_rms().powi(2);
        let target_ct = t_ct_robot.apply(&config.target);
        let estimated = reg.t_robot_ct().apply(&target_ct);
        sq_tre += estimated.distance(&config.target).powi(2);
        sq_pred_unit += reg.predicted_tre(&target_ct, 1.0).powi(2);
        dist += (config.target.coords.coords - centroid).norm();
    }
    let n = registered.max(1) as f64;
    let fle_rms = (sq_err / n_fid.max(1) as f64).sqrt();
    Ok(StudyReport {
        registered,
        failed,
        missing,
        fle_rms,
        fle_axis_rms: (sq_axis / n_fid.max(1) as f64).map(f64::sqrt),
        fre_rms: (sq_fre / n).sqrt(),
        tre_observed_rms: (sq_tre / n).sqrt(),
        tre_predicted_rms: fle_rms * (sq_pred_unit / n).sqrt(),
        target_distance: dist / n,
    })
}
