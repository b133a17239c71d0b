//! Image formation beyond partial volume: the in-plane point spread of the reconstruction, metal streaks from the needle,
//! and the table's displacement between scans. Applied per slice to the noise-free partial-volume image, before noise.

use nalgebra::{Point3, Vector2, Vector3};
use rand::{RngExt, SeedableRng};

/// Metal streaks: alternating bright and dark rays radiating from a metal cross-section, decaying with distance — the
/// pattern that beam hardening and photon starvation leave around metal (De Man et al., IEEE Trans Nucl Sci
/// 46(3):691–696, 1999; Barrett & Keat, RadioGraphics 24(6):1679–1691, 2004). A phenomenological model, not a
/// projection-domain simulation: `amplitude · exp(−d/λ) · cos(rays·θ + φ)` at distance `d` from the metal's trace in the
/// slice and angle `θ` about its centre, with a phase `φ` drawn per slice from the scan's seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Streaks {
    /// Ray amplitude at the metal surface, HU (0: none).
    pub amplitude_hu: f64,
    /// Distance over which the amplitude falls by e, m.
    pub decay_length: f64,
    /// Bright rays (as many dark ones between them).
    pub rays: u32,
}

impl Streaks {
    /// No streaks.
    pub const NONE: Self = Self {
        amplitude_hu: 0.0,
        decay_length: 0.01,
        rays: 8,
    };
}

/// The Gaussian kernel (normalised, odd length) for a FWHM of `fwhm_px` pixels; `None` when it would be a single tap.
pub(crate) fn gaussian_kernel(fwhm_px: f64) -> Option<Vec<f64>> {
    let sigma = fwhm_px / (8.0 * std::f64::consts::LN_2).sqrt();
    if !(sigma.is_finite() && sigma > 0.05) {
        return None;
    }
    let half = (3.0 * sigma).ceil() as isize;
    let mut k: Vec<f64> = (-half..=half)
        .map(|i| (-0.5 * (i as f64 / sigma).powi(2)).exp())
        .collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    Some(k)
}

/// Separable in-plane convolution of one `nx × ny` slice with `kernel`, edges clamped; `scratch` is the caller's buffer.
pub(crate) fn blur_slice(slice: &mut [f64], nx: usize, ny: usize, kernel: &[f64], scratch: &mut Vec<f64>) {
    let half = (kernel.len() / 2) as isize;
    scratch.clear();
    scratch.resize(nx * ny, 0.0);
    for j in 0..ny {
        let row = &slice[j * nx..(j + 1) * nx];
        for i in 0..nx {
            let mut s = 0.0;
            for (t, w) in kernel.iter().enumerate() {
                let ii = (i as isize + t as isize - half).clamp(0, nx as isize - 1) as usize;
                s += w * row[ii];
            }
            scratch[j * nx + i] = s;
        }
    }
    for j in 0..ny {
        for i in 0..nx {
            let mut s = 0.0;
            for (t, w) in kernel.iter().enumerate() {
                let jj = (j as isize + t as isize - half).clamp(0, ny as isize - 1) as usize;
                s += w * scratch[jj * nx + i];
            }
            slice[j * nx + i] = s;
        }
    }
}

/// The in-plane trace of the metal segments in the slab `[z_lo, z_hi]`: the first and last clipped points (a needle is
/// nearly straight over a slab), or none.
pub(crate) fn trace_in_slab(
    segments: &[[Point3<f64>; 2]],
    z_lo: f64,
    z_hi: f64,
) -> Option<(Vector2<f64>, Vector2<f64>)> {
    let mut first: Option<Vector2<f64>> = None;
    let mut last = Vector2::zeros();
    for [a, b] in segments {
        let (dz, t) = (b.z - a.z, |z: f64| (z - a.z) / (b.z - a.z));
        let (t0, t1) = if dz.abs() < 1e-12 {
            if a.z < z_lo || a.z > z_hi {
                continue;
            }
            (0.0, 1.0)
        } else {
            let (u, v) = (t(z_lo), t(z_hi));
            (u.min(v).max(0.0), u.max(v).min(1.0))
        };
        if t0 > t1 {
            continue;
        }
        let at = |s: f64| (a.coords + (b.coords - a.coords) * s).xy();
        first.get_or_insert(at(t0));
        last = at(t1);
    }
    first.map(|f| (f, last))
}

/// Adds the streaks of a metal trace `(a, b)` (metal radius `radius`) to one slice whose voxel (0, 0) is at `origin`
/// (x, y) with pixel `pixel`; the phase comes from `seed`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_streaks(
    slice: &mut [f64],
    nx: usize,
    ny: usize,
    origin: Vector2<f64>,
    pixel: f64,
    (a, b): (Vector2<f64>, Vector2<f64>),
    radius: f64,
    streaks: &Streaks,
    seed: u64,
) {
    if streaks.amplitude_hu <= 0.0 {
        return;
    }
    let phase = rand_xorshift::XorShiftRng::seed_from_u64(seed).random::<f64>() * std::f64::consts::TAU;
    let centre = (a + b) / 2.0;
    let ab = b - a;
    let len2 = ab.norm_squared();
    let reach = 6.0 * streaks.decay_length + (ab.norm() / 2.0);
    let lo = |c: f64, o: f64| (((c - reach - o) / pixel).floor().max(0.0)) as usize;
    let (i0, j0) = (lo(centre.x, origin.x), lo(centre.y, origin.y));
    let hi = |c: f64, o: f64, n: usize| ((((c + reach - o) / pixel).ceil()).max(0.0) as usize).min(n);
    let (i1, j1) = (hi(centre.x, origin.x, nx), hi(centre.y, origin.y, ny));
    for j in j0..j1 {
        for i in i0..i1 {
            let p = origin + Vector2::new(i as f64, j as f64) * pixel;
            let t = if len2 > 0.0 {
                ((p - a).dot(&ab) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let d = (p - (a + ab * t)).norm() - radius;
            if d <= 0.0 {
                continue;
            }
            let r = p - centre;
            let theta = r.y.atan2(r.x);
            slice[j * nx + i] += streaks.amplitude_hu
                * (-d / streaks.decay_length).exp()
                * (f64::from(streaks.rays) * theta + phase).cos();
        }
    }
}

/// Everything on the table moves by `offset` between scans: the scanner samples the scene at grid point − offset.
pub(crate) fn sampled_origin(origin: Point3<f64>, table_offset: &Vector3<f64>) -> Point3<f64> {
    origin - table_offset
}
