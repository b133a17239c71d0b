//! The background under the needle in each slice: tissue plus the metal's streaks.
//!
//! Metal leaves streaks in the slices it crosses: bright and dark rays radiating from its cross-section, fading with the
//! distance from it (beam hardening and photon starvation; Barrett & Keat, RadioGraphics 24(6):1679–1691, 2004). They
//! change sign with the angle about the metal, so a shell median (or any mean over all angles) around the needle does not
//! see them, yet the voxels of the mass tube do not sample all angles evenly, and a needle at a shallow angle to the
//! slices has rays running along its own line, in front of its tip. The tip's mass balance would count them as metal.
//!
//! So, in every slice the needle crosses, the background of a voxel is read from the voxels of the same slice that hold
//! no metal (farther than `clear` from the metal's footprint in that slice), on the same ray: the mean of those in the
//! same angular sector about the trace's centre and in the same ring of distance from the footprint (the first ring for
//! voxels nearer than `clear`). Rays vary slowly along their length and quickly across it, hence narrow sectors and
//! rings a few pixels wide. Voxels inside the metal read the tissue level of the first ring over all angles (the rays
//! start at the metal's surface). Voxels far from the needle read their own ring, so the background also follows
//! tissue edges. Slices the needle does not cross get no streak model (the caller keeps its shell median there).
//!
//! The model needs the needle's trace: the finder uses it once its own line fit on the tube has located the shaft.

use nalgebra::{Unit, Vector2, Vector3};

use super::locate::Sample;

/// Angular sectors about the trace's centre (7.5° each: a streak pattern of period 45° is still resolved to 95 %).
const SECTORS: usize = 48;
/// Rings of distance kept apart; farther voxels share the last one.
const MAX_RINGS: usize = 32;
/// Fewest clear voxels that make a sector's background; fewer, and the neighbouring sectors are pooled in.
const MIN_VOXELS: usize = 3;

/// How the slices lie: their normal, in-plane axes and the thickness of the slab each one images.
#[derive(Clone, Copy, Debug)]
pub(super) struct Slices {
    /// Slice normal (unit).
    pub normal: Vector3<f64>,
    /// In-plane axes (unit): rows and columns.
    pub row: Vector3<f64>,
    /// See `row`.
    pub col: Vector3<f64>,
    /// Slab thickness, m.
    pub thickness: f64,
}

/// The needle as the finder currently sees it, and the rings of clear tissue around it. Lengths in metres.
#[derive(Clone, Copy, Debug)]
pub(super) struct Trace {
    /// A point of the shaft line and its direction towards the tip.
    pub origin: Vector3<f64>,
    /// See `origin`.
    pub axis: Unit<Vector3<f64>>,
    /// The metal's end along `axis` from `origin` (its mass-equivalent end: the streaks' centre is the metal's).
    pub end: f64,
    /// How far the metal may reach beyond `end` (uncertainty of `end`, rounding of the tip), for telling metal from
    /// tissue.
    pub end_margin: f64,
    /// Needle radius.
    pub radius: f64,
    /// Distance from the metal's surface beyond which a voxel (in-plane) holds no metal (partial volume, point spread).
    pub clear: f64,
    /// Width of the rings of distance.
    pub ring: f64,
    /// Longest trace in one slice the model is used for (a needle lying almost in the slice plane has no centre).
    pub max_length: f64,
}

/// The background of every sample of `samples` that lies in a slice the needle crosses (`None` elsewhere, and where a
/// ray has too few clear voxels).
pub(super) fn streak_background(samples: &[Sample], slices: &Slices, trace: &Trace) -> Vec<Option<f64>> {
    let mut out = vec![None; samples.len()];
    let (Some(k_lo), Some(k_hi)) = (samples.iter().map(|s| s.k).min(), samples.iter().map(|s| s.k).max()) else {
        return out;
    };
    let mut by_slice: Vec<Vec<usize>> = vec![Vec::new(); k_hi - k_lo + 1];
    for (i, s) in samples.iter().enumerate() {
        by_slice[s.k - k_lo].push(i);
    }
    for members in by_slice.iter().filter(|m| !m.is_empty()) {
        let plane = samples[members[0]].p.dot(&slices.normal);
        let Some(geometry) = SliceTrace::new(plane, slices, trace) else {
            continue;
        };
        // (sector, ring) of every sample, and the clear voxels' HU in each bin.
        let place: Vec<(usize, usize, Voxel)> = members.iter().map(|&i| geometry.place(&samples[i].p, trace)).collect();
        let rings = place.iter().map(|&(_, r, _)| r).max().unwrap_or(0) + 1;
        let mut bins: Vec<Vec<f64>> = vec![Vec::new(); SECTORS * rings];
        let mut tissue: Vec<f64> = Vec::new();
        for (&i, &(sector, ring, voxel)) in members.iter().zip(&place) {
            if voxel == Voxel::Clear {
                bins[ring * SECTORS + sector].push(samples[i].hu);
                if ring == 0 {
                    tissue.push(samples[i].hu);
                }
            }
        }
        // The rays start at the metal's surface: inside it, the tissue level of the nearest ring, all angles.
        let level = (tissue.len() >= MIN_VOXELS).then(|| super::locate::median(tissue));
        let mut values: Vec<Option<f64>> = vec![None; SECTORS * rings];
        for ring in 0..rings {
            for sector in 0..SECTORS {
                values[ring * SECTORS + sector] = bin_value(&bins[ring * SECTORS..(ring + 1) * SECTORS], sector);
            }
        }
        for (&i, &(sector, ring, voxel)) in members.iter().zip(&place) {
            out[i] = match voxel {
                Voxel::Metal => level,
                Voxel::Near | Voxel::Clear => values[ring * SECTORS + sector],
            };
        }
    }
    out
}

/// The mean of a sector's clear voxels, pooling the neighbouring sectors (±1, then ±2) while there are too few.
fn bin_value(ring: &[Vec<f64>], sector: usize) -> Option<f64> {
    for reach in 0..=2usize {
        let mut pool: Vec<f64> = Vec::new();
        for off in 0..=2 * reach {
            let s = (sector + SECTORS + off - reach) % SECTORS;
            pool.extend_from_slice(&ring[s]);
        }
        if pool.len() >= MIN_VOXELS {
            return Some(pool.iter().sum::<f64>() / pool.len() as f64);
        }
    }
    None
}

/// The needle's trace in one slice, in that slice's plane coordinates.
struct SliceTrace {
    /// The shaft's centre line within the slab, up to the metal's end: where the streaks start.
    core: [Vector2<f64>; 2],
    /// The metal's footprint: the centre line within the slab widened by the needle's radius, up to the tip and its
    /// margin (the rod's edge reaches into the slab beyond the centre line's).
    footprint: [Vector2<f64>; 2],
    /// Centre of the streaks: the middle of `core`.
    centre: Vector2<f64>,
    row: Vector3<f64>,
    col: Vector3<f64>,
}

impl SliceTrace {
    /// The trace in the slice whose plane lies at `plane` along the normal; `None` if the needle does not cross that slab
    /// or lies too close to its plane for a centre.
    fn new(plane: f64, slices: &Slices, trace: &Trace) -> Option<Self> {
        let c = trace.axis.dot(&slices.normal);
        if c.abs() < 1e-6 {
            return None;
        }
        let o = trace.origin.dot(&slices.normal);
        let span = |half: f64, end: f64| {
            let (u, v) = ((plane - half - o) / c, (plane + half - o) / c);
            (u.min(v), u.max(v).min(end))
        };
        let (t0, t1) = span(0.5 * slices.thickness, trace.end);
        let (f0, f1) = span(0.5 * slices.thickness + trace.radius, trace.end + trace.end_margin);
        if t1 <= t0 || t1 - t0 > trace.max_length {
            return None;
        }
        let at = |t: f64| {
            let p = trace.origin + trace.axis.into_inner() * t;
            Vector2::new(p.dot(&slices.row), p.dot(&slices.col))
        };
        Some(Self {
            core: [at(t0), at(t1)],
            footprint: [at(f0), at(f1)],
            centre: (at(t0) + at(t1)) / 2.0,
            row: slices.row,
            col: slices.col,
        })
    }

    /// Sector, ring and what `p` holds.
    fn place(&self, p: &Vector3<f64>, trace: &Trace) -> (usize, usize, Voxel) {
        let q = Vector2::new(p.dot(&self.row), p.dot(&self.col));
        // Inside the rod's centre line within the slab (the streaks' source) is metal; within `clear` of the footprint, near.
        let d_core = segment_distance(&q, &self.core) - trace.radius;
        let d_metal = segment_distance(&q, &self.footprint) - trace.radius;
        let r = q - self.centre;
        let turn = (r.y.atan2(r.x) / core::f64::consts::TAU).rem_euclid(1.0);
        let sector = ((turn * SECTORS as f64) as usize).min(SECTORS - 1);
        let ring = (((d_metal - trace.clear).max(0.0) / trace.ring) as usize).min(MAX_RINGS - 1);
        let voxel = if d_metal >= trace.clear {
            Voxel::Clear
        } else if d_core > 0.0 {
            Voxel::Near
        } else {
            Voxel::Metal
        };
        (sector, ring, voxel)
    }
}

/// Distance of `q` from the segment `[a, b]`.
fn segment_distance(q: &Vector2<f64>, [a, b]: &[Vector2<f64>; 2]) -> f64 {
    let ab = b - a;
    let t = ((q - a).dot(&ab) / ab.norm_squared().max(f64::MIN_POSITIVE)).clamp(0.0, 1.0);
    (q - (a + ab * t)).norm()
}

/// Where a voxel's centre lies: inside the metal, near it (partial volume and blur) or clear of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Voxel {
    Metal,
    Near,
    Clear,
}
