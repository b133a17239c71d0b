//! Sampling a scene on an axial CT grid with partial volume and noise.

use acus_control::frames::{Ct, Point};
use acus_control::registration::{CtVolume, VolumeGeometry};
use nalgebra::{Point3, Vector3};
use rand::{RngExt, SeedableRng};
use rand_distr::Normal;
use rayon::prelude::*;

use crate::scene::Scene;
use crate::ScannerError;

/// Lowest HU a 12-bit CT export holds (raw 0 with intercept −1024).
const HU_MIN: f64 = -1024.0;
/// Highest HU a 12-bit CT export holds (raw 4095).
const HU_MAX: f64 = 3071.0;

/// How to scan: an axial grid (rows along +y, columns along +x, slices along +z in LPS) and the image quality.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanProtocol {
    /// Centre of voxel (0, 0, 0).
    pub origin: Point<Ct>,
    /// Columns (along x).
    pub columns: usize,
    /// Rows (along y).
    pub rows: usize,
    /// Slices (along z).
    pub slices: usize,
    /// In-plane pixel spacing (square pixels), metres.
    pub pixel_spacing: f64,
    /// Distance between slice centres, metres.
    pub slice_spacing: f64,
    /// Width of the box slice-sensitivity profile, metres.
    pub slice_thickness: f64,
    /// Standard deviation of the additive Gaussian noise, HU.
    pub noise_sigma_hu: f64,
    /// Noise seed (the same seed gives the same image).
    pub seed: u64,
    /// Supersamples per pixel edge where a surface crosses a voxel.
    pub inplane_samples: usize,
    /// Supersample step through the slice thickness, metres.
    pub z_sample_step: f64,
}

impl ScanProtocol {
    /// A protocol whose grid covers the box `[min, max]` (grid aligned to `min`), 15 HU noise, seed 1.
    pub fn covering(
        min: Point<Ct>,
        max: Point<Ct>,
        pixel_spacing: f64,
        slice_spacing: f64,
        slice_thickness: f64,
    ) -> Self {
        let size = max.coords - min.coords;
        let count = |len: f64, step: f64| ((len / step).ceil().max(0.0) as usize) + 1;
        Self {
            origin: min,
            columns: count(size.x, pixel_spacing),
            rows: count(size.y, pixel_spacing),
            slices: count(size.z, slice_spacing),
            pixel_spacing,
            slice_spacing,
            slice_thickness,
            noise_sigma_hu: 15.0,
            seed: 1,
            inplane_samples: 5,
            z_sample_step: 0.2e-3,
        }
    }

    /// The geometry of the volume this protocol produces.
    pub fn geometry(&self) -> VolumeGeometry {
        VolumeGeometry::axial(
            self.origin,
            Vector3::new(self.pixel_spacing, self.pixel_spacing, self.slice_spacing),
            self.slice_thickness,
        )
    }

    fn validate(&self) -> Result<(), ScannerError> {
        let positive = [
            self.pixel_spacing,
            self.slice_spacing,
            self.slice_thickness,
            self.z_sample_step,
        ];
        if positive.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(ScannerError::InvalidProtocol(format!(
                "spacing {:.3} mm, slice spacing {:.3} mm, thickness {:.3} mm and z step must be positive",
                self.pixel_spacing * 1e3,
                self.slice_spacing * 1e3,
                self.slice_thickness * 1e3
            )));
        }
        if self.columns == 0 || self.rows == 0 || self.slices == 0 || self.inplane_samples == 0 {
            return Err(ScannerError::InvalidProtocol(format!(
                "grid {}×{}×{} with {} in-plane samples",
                self.columns, self.rows, self.slices, self.inplane_samples
            )));
        }
        if !(self.noise_sigma_hu.is_finite() && self.noise_sigma_hu >= 0.0) {
            return Err(ScannerError::InvalidProtocol(format!(
                "noise σ {} HU",
                self.noise_sigma_hu
            )));
        }
        Ok(())
    }
}

/// Scans the scene: partial-volume HU per voxel plus noise, rounded and clipped to the 12-bit CT range.
pub fn scan(scene: &Scene, protocol: &ScanProtocol) -> Result<CtVolume, ScannerError> {
    protocol.validate()?;
    let (nx, ny, nz) = (protocol.columns, protocol.rows, protocol.slices);
    let mut hu = vec![0i16; nx * ny * nz];
    let noise = Normal::new(0.0, protocol.noise_sigma_hu)
        .map_err(|e| ScannerError::InvalidProtocol(format!("noise σ {}: {e}", protocol.noise_sigma_hu)))?;
    let half = Vector3::new(protocol.pixel_spacing, protocol.pixel_spacing, protocol.slice_thickness) / 2.0;
    let reach = half.norm();
    let n_in = protocol.inplane_samples;
    let n_z = ((protocol.slice_thickness / protocol.z_sample_step).ceil() as usize).max(1);
    let offsets =
        |n: usize, width: f64| -> Vec<f64> { (0..n).map(|s| ((s as f64 + 0.5) / n as f64 - 0.5) * width).collect() };
    let (ox, oz) = (
        offsets(n_in, protocol.pixel_spacing),
        offsets(n_z, protocol.slice_thickness),
    );
    let bounds: Vec<(Point3<f64>, Point3<f64>)> = scene.elements.iter().map(|e| e.shape.bounds()).collect();
    let origin = protocol.origin.coords;

    hu.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slice)| {
        let z = origin.z + k as f64 * protocol.slice_spacing;
        let in_slab: Vec<usize> = (0..scene.elements.len())
            .filter(|&e| bounds[e].0.z <= z + half.z && bounds[e].1.z >= z - half.z)
            .collect();
        let mut rng =
            rand_xorshift::XorShiftRng::seed_from_u64(protocol.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut row_c: Vec<usize> = Vec::new();
        let mut cand: Vec<(usize, Status)> = Vec::new();
        for j in 0..ny {
            let y = origin.y + j as f64 * protocol.pixel_spacing;
            row_c.clear();
            row_c.extend(
                in_slab
                    .iter()
                    .copied()
                    .filter(|&e| bounds[e].0.y <= y + half.y && bounds[e].1.y >= y - half.y),
            );
            for i in 0..nx {
                let x = origin.x + i as f64 * protocol.pixel_spacing;
                let p = Point3::new(x, y, z);
                cand.clear();
                let mut any_boundary = false;
                let mut value = scene.background_hu;
                for &e in &row_c {
                    if bounds[e].0.x > x + half.x || bounds[e].1.x < x - half.x {
                        continue;
                    }
                    let shape = &scene.elements[e].shape;
                    let level = shape.level(&p);
                    if (level - 1.0).abs() <= shape.lipschitz() * reach {
                        any_boundary = true;
                        cand.push((e, Status::Boundary));
                    } else if level <= 1.0 {
                        value = scene.elements[e].hu;
                        cand.push((e, Status::Inside));
                    }
                }
                if any_boundary {
                    let mut sum = 0.0;
                    for &dz in &oz {
                        for &dy in &ox {
                            for &dx in &ox {
                                let q = Point3::new(x + dx, y + dy, z + dz);
                                let mut v = scene.background_hu;
                                for &(e, status) in &cand {
                                    let element = &scene.elements[e];
                                    if status == Status::Inside || element.shape.level(&q) <= 1.0 {
                                        v = element.hu;
                                    }
                                }
                                sum += v;
                            }
                        }
                    }
                    value = sum / (ox.len() * ox.len() * oz.len()) as f64;
                }
                let noisy = value + rng.sample(noise);
                slice[j * nx + i] = noisy.round().clamp(HU_MIN, HU_MAX) as i16;
            }
        }
    });
    Ok(CtVolume::new([nx, ny, nz], hu, protocol.geometry())?)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Inside,
    Boundary,
}
