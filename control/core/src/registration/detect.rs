//! Fiducial sphere detection: HU threshold → 3-D connected components (26-neighbourhood) → size and shape filter →
//! intensity-weighted sub-voxel centroid with a local background.
//!
//! The centroid uses every voxel of a box around the component, weighted by HU above the local background (median of
//! the box's outer shell), not just the voxels above threshold: partial-volume voxels at the rim carry the sub-voxel
//! position, and a weight linear in the occupied fraction keeps the centroid unbiased.

use nalgebra::Vector3;

use super::volume::CtVolume;
use super::RegistrationError;
use crate::frames::{Ct, Point};

/// Tuning of the detector. Lengths in metres.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionParams {
    /// Voxels strictly above this HU start and grow components. The default (200 HU) is above soft tissue and fat but
    /// below the ~400 HU a Ø 4 mm sphere (≥ 2000 HU) still shows when split evenly between two 5 mm slices over air.
    pub threshold_hu: i16,
    /// Nominal sphere radius (from the frame model).
    pub sphere_radius: f64,
    /// Extra extent allowed beyond the diameter plus partial-volume rim (covers noise and slice profile), metres.
    pub extent_tolerance: f64,
    /// Components whose largest in-plane extent is below this fraction of the diameter are specks, not spheres.
    pub min_inplane_fraction: f64,
}

impl DetectionParams {
    /// Defaults for a sphere of the given radius.
    pub fn for_radius(sphere_radius: f64) -> Self {
        Self {
            threshold_hu: 200,
            sphere_radius,
            extent_tolerance: 1.0e-3,
            min_inplane_fraction: 0.4,
        }
    }
}

/// A sphere candidate found in the volume.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// Sub-voxel centre in the CT frame.
    pub center: Point<Ct>,
    /// Number of voxels above threshold.
    pub voxels: usize,
    /// Highest HU in the component.
    pub peak_hu: i16,
    /// Local background HU used for the weights.
    pub background_hu: f64,
    /// Physical extent of the thresholded component along the volume axes i, j, k (voxel count × spacing), metres.
    pub extent: Vector3<f64>,
}

/// Why a component was not taken as a sphere (kept for diagnostics).
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// Larger than a sphere along some axis (bone, needle, body, contrast-filled vessel).
    TooLarge {
        /// Extent along i, j, k, metres.
        extent: Vector3<f64>,
    },
    /// Smaller than a sphere in-plane (noise, calcification).
    TooSmall {
        /// Extent along i, j, k, metres.
        extent: Vector3<f64>,
    },
    /// Touches the volume border, so it cannot be localised.
    AtBorder,
}

/// Result of a detection pass.
#[derive(Clone, Debug, Default)]
pub struct Detections {
    /// Accepted sphere candidates.
    pub spheres: Vec<Detection>,
    /// Rejected components with the reason (only components with ≥ 2 voxels are listed).
    pub rejected: Vec<Rejection>,
}

/// Reusable buffers, so repeated detections do not reallocate (a visited bitset of one bit per voxel and a stack).
#[derive(Debug, Default)]
pub struct DetectionWorkspace {
    visited: Vec<u64>,
    stack: Vec<u32>,
    members: Vec<u32>,
    shell: Vec<i16>,
    slab_mass: Vec<f64>,
}

impl DetectionWorkspace {
    /// An empty workspace; buffers grow on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Voxels above a threshold, listed while the volume was being filled (the DICOM importer does it as each slice
/// streams by, while the data is in cache), so detection can skip its own pass over every voxel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrightVoxels {
    /// Every voxel strictly above this HU is listed.
    pub threshold_hu: i16,
    /// Linear voxel indices (`i` fastest), ascending.
    pub indices: Vec<u32>,
}

impl BrightVoxels {
    /// Lists the voxels of `vol` above `threshold_hu` (what an importer would produce).
    pub fn scan(vol: &CtVolume, threshold_hu: i16) -> Self {
        let mut indices = Vec::new();
        push_bright(vol.hu(), threshold_hu, 0, &mut indices);
        Self { threshold_hu, indices }
    }
}

/// Appends `base + i` for every `values[i] > threshold` to `out`, in ascending order.
///
/// Blocks of 64 are first reduced to their maximum (a loop the compiler vectorises); almost all blocks of a CT hold no
/// bright voxel, so this runs at memory speed. Indices must fit in u32 (the caller checks the volume size).
pub fn push_bright(values: &[i16], threshold: i16, base: u32, out: &mut Vec<u32>) {
    const BLOCK: usize = 64;
    for (b, block) in values.chunks(BLOCK).enumerate() {
        let max = block.iter().fold(i16::MIN, |m, &v| m.max(v));
        if max > threshold {
            let start = base + (b * BLOCK) as u32;
            out.extend(
                block
                    .iter()
                    .enumerate()
                    .filter(|(_, &v)| v > threshold)
                    .map(|(i, _)| start + i as u32),
            );
        }
    }
}

/// Finds sphere-like bright blobs in `vol`.
pub fn detect_spheres(
    vol: &CtVolume,
    params: &DetectionParams,
    ws: &mut DetectionWorkspace,
) -> Result<Detections, RegistrationError> {
    if vol.hu().len() > u32::MAX as usize {
        return Err(RegistrationError::InvalidGeometry(format!(
            "{} voxels exceed the detector's 2^32 index range",
            vol.hu().len()
        )));
    }
    let bright = BrightVoxels::scan(vol, params.threshold_hu);
    detect_from(vol, params, ws, bright.indices.iter().map(|&i| i as usize))
}

/// As [`detect_spheres`], starting components only from `bright` (which must list every voxel above the detection
/// threshold: its own threshold may not be higher).
pub fn detect_spheres_seeded(
    vol: &CtVolume,
    params: &DetectionParams,
    bright: &BrightVoxels,
    ws: &mut DetectionWorkspace,
) -> Result<Detections, RegistrationError> {
    if bright.threshold_hu > params.threshold_hu {
        return Err(RegistrationError::InvalidParameter(format!(
            "bright-voxel list made at {} HU misses voxels above the detection threshold {} HU",
            bright.threshold_hu, params.threshold_hu
        )));
    }
    let n = vol.hu().len();
    if let Some(&bad) = bright.indices.iter().find(|&&i| i as usize >= n) {
        return Err(RegistrationError::InvalidParameter(format!(
            "bright voxel index {bad} outside {n} voxels"
        )));
    }
    detect_from(vol, params, ws, bright.indices.iter().map(|&i| i as usize))
}

fn detect_from(
    vol: &CtVolume,
    params: &DetectionParams,
    ws: &mut DetectionWorkspace,
    seeds: impl Iterator<Item = usize>,
) -> Result<Detections, RegistrationError> {
    if !(params.sphere_radius.is_finite() && params.sphere_radius > 0.0) {
        return Err(RegistrationError::InvalidParameter(format!(
            "sphere radius {} m",
            params.sphere_radius
        )));
    }
    let [nx, ny, nz] = vol.dims();
    let n = nx * ny * nz;
    if n > u32::MAX as usize {
        return Err(RegistrationError::InvalidGeometry(format!(
            "{n} voxels exceed the detector's 2^32 index range"
        )));
    }
    ws.visited.clear();
    ws.visited.resize(n.div_ceil(64), 0);
    let hu = vol.hu();
    let thr = params.threshold_hu;
    let mut out = Detections::default();
    for seed in seeds {
        if hu[seed] <= thr || ws.visited[seed / 64] & (1 << (seed % 64)) != 0 {
            continue;
        }
        grow(vol, thr, seed, ws);
        if ws.members.len() < 2 {
            continue;
        }
        match classify(vol, params, ws) {
            Ok(d) => out.spheres.push(d),
            Err(r) => out.rejected.push(r),
        }
    }
    Ok(out)
}

/// Flood fill from `seed` over voxels above `thr`, 26-connected; fills `ws.members`.
fn grow(vol: &CtVolume, thr: i16, seed: usize, ws: &mut DetectionWorkspace) {
    let [nx, ny, nz] = vol.dims();
    let hu = vol.hu();
    ws.members.clear();
    ws.stack.clear();
    ws.visited[seed / 64] |= 1 << (seed % 64);
    ws.stack.push(seed as u32);
    while let Some(idx) = ws.stack.pop() {
        ws.members.push(idx);
        let idx = idx as usize;
        let i = idx % nx;
        let j = (idx / nx) % ny;
        let k = idx / (nx * ny);
        for dk in -1i64..=1 {
            let kk = k as i64 + dk;
            if kk < 0 || kk >= nz as i64 {
                continue;
            }
            for dj in -1i64..=1 {
                let jj = j as i64 + dj;
                if jj < 0 || jj >= ny as i64 {
                    continue;
                }
                for di in -1i64..=1 {
                    let ii = i as i64 + di;
                    if ii < 0 || ii >= nx as i64 {
                        continue;
                    }
                    let nb = (kk as usize * ny + jj as usize) * nx + ii as usize;
                    let bit = 1u64 << (nb % 64);
                    if ws.visited[nb / 64] & bit == 0 && hu[nb] > thr {
                        ws.visited[nb / 64] |= bit;
                        ws.stack.push(nb as u32);
                    }
                }
            }
        }
    }
}

fn classify(vol: &CtVolume, params: &DetectionParams, ws: &mut DetectionWorkspace) -> Result<Detection, Rejection> {
    let [nx, ny, nz] = vol.dims();
    let g = vol.geometry();
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    let mut peak = i16::MIN;
    for &m in &ws.members {
        let m = m as usize;
        let ijk = [m % nx, (m / nx) % ny, m / (nx * ny)];
        for a in 0..3 {
            lo[a] = lo[a].min(ijk[a]);
            hi[a] = hi[a].max(ijk[a]);
        }
        peak = peak.max(vol.hu()[m]);
    }
    let spacing = g.spacing;
    let extent = Vector3::new(
        (hi[0] - lo[0] + 1) as f64 * spacing.x,
        (hi[1] - lo[1] + 1) as f64 * spacing.y,
        (hi[2] - lo[2] + 1) as f64 * spacing.z,
    );
    let diameter = 2.0 * params.sphere_radius;
    let thickness = g.slice_thickness.max(spacing.z);
    let max_extent = Vector3::new(
        diameter + 2.0 * spacing.x + params.extent_tolerance,
        diameter + 2.0 * spacing.y + params.extent_tolerance,
        diameter + thickness + spacing.z + params.extent_tolerance,
    );
    if (0..3).any(|a| extent[a] > max_extent[a]) {
        return Err(Rejection::TooLarge { extent });
    }
    if extent.x.max(extent.y) < params.min_inplane_fraction * diameter {
        return Err(Rejection::TooSmall { extent });
    }
    let dims = [nx, ny, nz];
    if (0..3).any(|a| lo[a] == 0 || hi[a] + 1 >= dims[a]) {
        return Err(Rejection::AtBorder);
    }
    // Window: the component's box grown by two voxels (clamped); its outer shell gives the local background.
    let wlo: Vec<usize> = (0..3).map(|a| lo[a].saturating_sub(2)).collect();
    let whi: Vec<usize> = (0..3).map(|a| (hi[a] + 2).min(dims[a] - 1)).collect();
    ws.shell.clear();
    for k in wlo[2]..=whi[2] {
        for j in wlo[1]..=whi[1] {
            for i in wlo[0]..=whi[0] {
                let on_shell = i == wlo[0] || i == whi[0] || j == wlo[1] || j == whi[1] || k == wlo[2] || k == whi[2];
                if on_shell {
                    ws.shell.push(vol.hu()[vol.linear_index(i, j, k)]);
                }
            }
        }
    }
    let mid = ws.shell.len() / 2;
    let (background, noise_sigma) = if ws.shell.is_empty() {
        (0.0, 0.0)
    } else {
        let median = *ws.shell.select_nth_unstable(mid).1;
        // Noise from the median absolute deviation of the shell (1.4826·MAD estimates σ of Gaussian noise).
        for v in ws.shell.iter_mut() {
            *v = v.saturating_sub(median).saturating_abs();
        }
        let mad = *ws.shell.select_nth_unstable(mid).1;
        (f64::from(median), 1.4826 * f64::from(mad))
    };
    let mut sum_w = 0.0;
    let mut sum = Vector3::zeros();
    ws.slab_mass.clear();
    for k in wlo[2]..=whi[2] {
        let mut slab = 0.0;
        for j in wlo[1]..=whi[1] {
            let row = vol.linear_index(0, j, k);
            for i in wlo[0]..=whi[0] {
                let signed = f64::from(vol.hu()[row + i]) - background;
                // Signed sums for the slice masses (noise averages out); clamped weights for the centroid (robust to
                // darker structures in the window).
                slab += signed;
                let w = signed.max(0.0);
                sum_w += w;
                sum += Vector3::new(i as f64, j as f64, k as f64) * w;
            }
        }
        ws.slab_mass.push(slab);
    }
    if sum_w <= 0.0 {
        return Err(Rejection::TooSmall { extent });
    }
    let mut index = sum / sum_w;
    if g.slice_thickness >= params.sphere_radius {
        let per_slab = ((whi[0] - wlo[0] + 1) * (whi[1] - wlo[1] + 1)) as f64;
        let slab_var = (noise_sigma * noise_sigma * per_slab).max(1.0);
        let axial = AxialFit {
            k0: wlo[2],
            spacing: spacing.z,
            thickness: g.slice_thickness,
            radius: params.sphere_radius,
        };
        index.z = axial.position(&ws.slab_mass, index.z, slab_var);
    }
    let center = g.index_to_point(&index);
    Ok(Detection {
        center,
        voxels: ws.members.len(),
        peak_hu: peak,
        background_hu: background,
        extent,
    })
}

/// Slice-direction position of a sphere from its mass per slice, for slices about as thick as the sphere.
///
/// With thick slices the weighted centroid is pulled towards slice centres (one slice may hold the whole sphere). For a
/// box slice profile the mass in slice k is A·V_k(c), with V_k(c) the volume of the sphere (radius R, centre c) inside
/// the slab [kΔ − T/2, kΔ + T/2]. Where the slice masses cannot tell positions apart (a sphere wholly inside one slab
/// fits anywhere within (T − 2R)/2 of its centre; a tiny cap in the next slab is buried in noise), the least-squares
/// minimum is arbitrary, so we take the posterior mean over c instead: likelihood exp(−SSE(c)/2σ²) with A profiled out
/// and σ² the noise variance of a slice sum. That minimises the expected squared error, which is what FLE measures.
struct AxialFit {
    k0: usize,
    spacing: f64,
    thickness: f64,
    radius: f64,
}

impl AxialFit {
    /// Residual sum of squares of the slice masses for a centre at fractional slice index `c_k`.
    fn sse(&self, mass: &[f64], c_k: f64) -> f64 {
        let r = self.radius;
        // Antiderivative of the sphere's cross-section area along z (relative to its centre), clipped to the sphere.
        let f = |z: f64| {
            let z = z.clamp(-r, r);
            std::f64::consts::PI * (r * r * z - z * z * z / 3.0)
        };
        let c = c_k * self.spacing;
        let (mut wv, mut vv, mut ww) = (0.0, 0.0, 0.0);
        for (n, &w) in mass.iter().enumerate() {
            let zk = (self.k0 + n) as f64 * self.spacing;
            let v = f(zk + self.thickness / 2.0 - c) - f(zk - self.thickness / 2.0 - c);
            wv += w * v;
            vv += v * v;
            ww += w * w;
        }
        if vv <= 0.0 {
            ww
        } else {
            ww - wv * wv / vv
        }
    }

    /// Posterior-mean centre (fractional slice index) near the weighted centroid `centroid_k`.
    fn position(&self, mass: &[f64], centroid_k: f64, slab_var: f64) -> f64 {
        let span = self.thickness.max(self.spacing) / self.spacing;
        const STEPS: usize = 200;
        let grid = |s: usize| centroid_k - span + 2.0 * span * s as f64 / STEPS as f64;
        let mut min = f64::INFINITY;
        for s in 0..=STEPS {
            min = min.min(self.sse(mass, grid(s)));
        }
        let (mut sum_w, mut sum_c) = (0.0, 0.0);
        for s in 0..=STEPS {
            let c = grid(s);
            let w = (-(self.sse(mass, c) - min) / (2.0 * slab_var)).exp();
            sum_w += w;
            sum_c += w * c;
        }
        if sum_w > 0.0 {
            sum_c / sum_w
        } else {
            centroid_k
        }
    }
}
