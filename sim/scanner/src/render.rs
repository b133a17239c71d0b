//! Sampling a scene on an axial CT grid with partial volume and noise.

use acus_control::frames::{Ct, Point};
use acus_control::registration::{CtVolume, VolumeGeometry};
use nalgebra::{Point3, Vector3};
use rand::{RngExt, SeedableRng};
use rand_distr::Normal;
use rayon::prelude::*;

use crate::effects::{add_streaks, blur_slice, gaussian_kernel, sampled_origin, trace_in_slab, Streaks};
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
    /// In-plane point spread (Gaussian) full width at half maximum, metres; 0 for none (ideal reconstruction).
    pub psf_fwhm: f64,
    /// Metal streaks from the scene's streak sources (the needle) in their slices.
    pub streaks: Streaks,
    /// Displacement of the table (and everything on it) from where the grid's coordinates assume it, metres: the image
    /// shows every object shifted by this.
    pub table_offset: Vector3<f64>,
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
            psf_fwhm: 0.0,
            streaks: Streaks::NONE,
            table_offset: Vector3::zeros(),
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
        let effects_ok = self.psf_fwhm.is_finite()
            && self.psf_fwhm >= 0.0
            && self.streaks.amplitude_hu.is_finite()
            && self.streaks.amplitude_hu >= 0.0
            && self.streaks.decay_length.is_finite()
            && self.streaks.decay_length > 0.0
            && self.table_offset.iter().all(|v| v.is_finite());
        if !effects_ok {
            return Err(ScannerError::InvalidProtocol(format!(
                "PSF FWHM {} m, streaks {} HU over {} m, table offset {:?} m must be finite and non-negative",
                self.psf_fwhm, self.streaks.amplitude_hu, self.streaks.decay_length, self.table_offset
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

/// Scans the scene: partial-volume HU per voxel, blurred in-plane by the point spread, streaked around metal, plus
/// noise, rounded and clipped to the 12-bit CT range. The scene is sampled displaced by the table offset.
///
/// A voxel is supersampled only where a surface may cross it (the level-set bound of [`crate::Shape::lipschitz`]), and
/// for a prism along z (the body's layers) only in the directions its surface crosses: in-plane for its side, through
/// the slice for its end.
pub fn scan(scene: &Scene, protocol: &ScanProtocol) -> Result<CtVolume, ScannerError> {
    protocol.validate()?;
    let (nx, ny, nz) = (protocol.columns, protocol.rows, protocol.slices);
    let mut hu = vec![0i16; nx * ny * nz];
    let noise = Normal::new(0.0, protocol.noise_sigma_hu)
        .map_err(|e| ScannerError::InvalidProtocol(format!("noise σ {}: {e}", protocol.noise_sigma_hu)))?;
    let half = Vector3::new(protocol.pixel_spacing, protocol.pixel_spacing, protocol.slice_thickness) / 2.0;
    let (reach, reach_xy) = (half.norm(), half.xy().norm());
    let n_in = protocol.inplane_samples;
    let n_z = ((protocol.slice_thickness / protocol.z_sample_step).ceil() as usize).max(1);
    let offsets =
        |n: usize, width: f64| -> Vec<f64> { (0..n).map(|s| ((s as f64 + 0.5) / n as f64 - 0.5) * width).collect() };
    let (ox, oz) = (
        offsets(n_in, protocol.pixel_spacing),
        offsets(n_z, protocol.slice_thickness),
    );
    let centre_only = [0.0];
    let bounds: Vec<(Point3<f64>, Point3<f64>)> = scene.elements.iter().map(|e| e.shape.bounds()).collect();
    let origin = sampled_origin(protocol.origin.coords, &protocol.table_offset).coords;
    let kernel = gaussian_kernel(protocol.psf_fwhm / protocol.pixel_spacing);

    hu.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slice)| {
        let z = origin.z + k as f64 * protocol.slice_spacing;
        let (z_lo, z_hi) = (z - half.z, z + half.z);
        let in_slab: Vec<(usize, InSlab)> = (0..scene.elements.len())
            .filter(|&e| bounds[e].0.z <= z_hi && bounds[e].1.z >= z_lo)
            .map(|e| {
                let how = match scene.elements[e].shape.prism_extent_z() {
                    Some((bottom, top)) => InSlab::Prism {
                        end_in_slab: (z_lo..=z_hi).contains(&bottom) || (z_lo..=z_hi).contains(&top),
                    },
                    None => InSlab::Solid,
                };
                (e, how)
            })
            .collect();
        let mut rng =
            rand_xorshift::XorShiftRng::seed_from_u64(protocol.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut row_c: Vec<(usize, InSlab)> = Vec::new();
        // (element, inside the whole voxel)
        let mut cand: Vec<(usize, bool)> = Vec::new();
        let mut image = vec![0.0f64; nx * ny];
        for j in 0..ny {
            let y = origin.y + j as f64 * protocol.pixel_spacing;
            row_c.clear();
            row_c.extend(
                in_slab
                    .iter()
                    .copied()
                    .filter(|&(e, _)| bounds[e].0.y <= y + half.y && bounds[e].1.y >= y - half.y),
            );
            for i in 0..nx {
                let x = origin.x + i as f64 * protocol.pixel_spacing;
                let p = Point3::new(x, y, z);
                cand.clear();
                let (mut across_xy, mut across_z) = (false, false);
                let mut value = scene.background_hu;
                for &(e, how) in &row_c {
                    if bounds[e].0.x > x + half.x || bounds[e].1.x < x - half.x {
                        continue;
                    }
                    let element = &scene.elements[e];
                    let lipschitz = element.shape.lipschitz();
                    let (level, crosses_z) = match how {
                        InSlab::Solid => (element.shape.level(&p), true),
                        InSlab::Prism { end_in_slab } => (element.shape.level_xy(&p), end_in_slab),
                    };
                    let r = if how == InSlab::Solid { reach } else { reach_xy };
                    if (level - 1.0).abs() <= lipschitz * r {
                        across_xy = true;
                        across_z |= crosses_z;
                        cand.push((e, false));
                    } else if level <= 1.0 && crosses_z {
                        across_z = true;
                        cand.push((e, false));
                    } else if level <= 1.0 {
                        value = element.hu;
                        cand.push((e, true));
                    }
                }
                if across_xy || across_z {
                    let xs: &[f64] = if across_xy { &ox } else { &centre_only };
                    let zs: &[f64] = if across_z { &oz } else { &centre_only };
                    let mut sum = 0.0;
                    for &dz in zs {
                        for &dy in xs {
                            for &dx in xs {
                                let q = Point3::new(x + dx, y + dy, z + dz);
                                let mut v = scene.background_hu;
                                for &(e, inside) in &cand {
                                    let element = &scene.elements[e];
                                    if inside || element.shape.level(&q) <= 1.0 {
                                        v = element.hu;
                                    }
                                }
                                sum += v;
                            }
                        }
                    }
                    value = sum / (xs.len() * xs.len() * zs.len()) as f64;
                }
                image[j * nx + i] = value;
            }
        }
        if let Some(kernel) = &kernel {
            let mut scratch = Vec::new();
            blur_slice(&mut image, nx, ny, kernel, &mut scratch);
        }
        if let Some(trace) = trace_in_slab(&scene.streak_sources, z_lo, z_hi) {
            let seed = protocol.seed.rotate_left(17) ^ (k as u64).wrapping_mul(0xA24B_AED4_963E_E407);
            let o = origin.xy();
            add_streaks(
                &mut image,
                nx,
                ny,
                o,
                protocol.pixel_spacing,
                trace,
                scene.streak_radius,
                &protocol.streaks,
                seed,
            );
        }
        for (out, value) in slice.iter_mut().zip(&image) {
            let noisy = value + rng.sample(noise);
            *out = noisy.round().clamp(HU_MIN, HU_MAX) as i16;
        }
    });
    Ok(CtVolume::new([nx, ny, nz], hu, protocol.geometry())?)
}

/// How an element meets a slab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InSlab {
    /// Any shape: a surface may cross a voxel in any direction.
    Solid,
    /// A prism along z: its side crosses voxels in-plane only; its end, if in the slab, through the slice only.
    Prism { end_in_slab: bool },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::{PhantomBody, Shape};

    /// Every voxel supersampled in 3D, no shortcut: the partial volume `scan` must reproduce.
    fn brute_force(scene: &Scene, protocol: &ScanProtocol) -> Vec<f64> {
        let n_z = ((protocol.slice_thickness / protocol.z_sample_step).ceil() as usize).max(1);
        let n_in = protocol.inplane_samples;
        let offsets = |n: usize, width: f64| -> Vec<f64> {
            (0..n).map(|s| ((s as f64 + 0.5) / n as f64 - 0.5) * width).collect()
        };
        let (ox, oz) = (
            offsets(n_in, protocol.pixel_spacing),
            offsets(n_z, protocol.slice_thickness),
        );
        let o = protocol.origin.coords;
        let mut out = Vec::new();
        for k in 0..protocol.slices {
            for j in 0..protocol.rows {
                for i in 0..protocol.columns {
                    let c = o + Vector3::new(
                        i as f64 * protocol.pixel_spacing,
                        j as f64 * protocol.pixel_spacing,
                        k as f64 * protocol.slice_spacing,
                    );
                    let mut sum = 0.0;
                    for &dz in &oz {
                        for &dy in &ox {
                            for &dx in &ox {
                                let q = Point3::from(c + Vector3::new(dx, dy, dz));
                                let mut v = scene.background_hu;
                                for e in &scene.elements {
                                    if e.shape.level(&q) <= 1.0 {
                                        v = e.hu;
                                    }
                                }
                                sum += v;
                            }
                        }
                    }
                    out.push(sum / (ox.len() * ox.len() * oz.len()) as f64);
                }
            }
        }
        out
    }

    /// A body whose end lies inside the scanned range (slabs where its layers are prisms and slabs where they are not),
    /// a sphere on its surface and a needle through it: the shortcuts change no voxel beyond rounding.
    #[test]
    fn shortcuts_match_full_supersampling() {
        let mut body = PhantomBody::abdomen(Point::new(Point3::origin()), 0.02);
        body.semi_x = 0.012;
        body.semi_y = 0.008;
        body.skin = 0.0015;
        body.fat = 0.002;
        let mut scene = Scene::new();
        scene.add_body(&body);
        scene.add(
            Shape::Sphere {
                center: Point3::new(0.0, -0.008, 0.004),
                radius: 0.002,
            },
            2500.0,
        );
        scene.add(
            Shape::Capsule {
                a: Point3::new(-0.004, -0.012, -0.006),
                b: Point3::new(0.003, 0.002, 0.011),
                radius: 0.0006,
            },
            3000.0,
        );
        let mut protocol = ScanProtocol::covering(
            Point::new(Point3::new(-0.015, -0.011, -0.004)),
            Point::new(Point3::new(0.015, 0.011, 0.014)),
            0.0008,
            0.0015,
            0.002,
        );
        protocol.noise_sigma_hu = 0.0;
        let volume = scan(&scene, &protocol).expect("scan");
        let reference = brute_force(&scene, &protocol);
        let worst = volume
            .hu()
            .iter()
            .zip(&reference)
            .map(|(&got, want)| (f64::from(got) - want.round().clamp(HU_MIN, HU_MAX)).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 1.0, "largest difference {worst} HU from full supersampling");
        let (bottom, top) = scene.elements[0].shape.prism_extent_z().expect("the body is a prism");
        let end_slabs = (0..protocol.slices)
            .filter(|&k| {
                let z = protocol.origin.coords.z + k as f64 * protocol.slice_spacing;
                (z - 0.001..=z + 0.001).contains(&bottom) || (z - 0.001..=z + 0.001).contains(&top)
            })
            .count();
        assert!(
            end_slabs > 0 && end_slabs < protocol.slices,
            "the scan covers slabs through the body's end and slabs through its side ({end_slabs} of {})",
            protocol.slices
        );
    }
}
