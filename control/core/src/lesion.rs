//! Finding the target lesion again in a check scan.
//!
//! The needle pushes the tissue, so the lesion moves a few millimetres during the insertion (DiMaio & Salcudean 2003);
//! aiming at where it was on the planning scan leaves that much error. The radiologist re-marks the target on each check
//! scan; this does it automatically for a lesion that differs from its surroundings by a known contrast.
//!
//! Method: inside a ball around the previous estimate, the image is smoothed with a 3 × 3 × 3 box (noise σ/√27), the
//! surrounding tissue level is the median of a shell at the ball's rim, and the lesion is the set of voxels in the ball
//! beyond half the expected contrast. Metal (the needle, which ends inside the lesion) and a margin around it are left out
//! and filled from their mirror image through the estimate, so the hole the needle makes does not pull the centroid
//! away. The centre is the centroid of the set. Pure; works on a copy of the search box only.

use nalgebra::Vector3;

use crate::frames::{Ct, Point};
use crate::registration::CtVolume;

/// What to look for. Lengths in metres, HU as the scanner reports them.
#[derive(Clone, Debug, PartialEq)]
pub struct LesionSearch {
    /// Previous estimate of the centre (the planned target, then the last check scan's finding).
    pub near: Point<Ct>,
    /// Expected lesion radius.
    pub radius: f64,
    /// Expected contrast against the surrounding tissue (signed: positive for a brighter lesion).
    pub contrast_hu: f64,
    /// Search ball radius (≥ 1.5 × `radius`).
    pub search_radius: f64,
    /// Voxels at or above this are metal (the needle); they and `metal_margin` around them are excluded.
    pub metal_hu: f64,
    /// Exclusion margin around metal.
    pub metal_margin: f64,
}

impl LesionSearch {
    /// Defaults for a lesion of `radius` and `contrast_hu` near `near`.
    pub fn new(near: Point<Ct>, radius: f64, contrast_hu: f64) -> Self {
        Self {
            near,
            radius,
            contrast_hu,
            search_radius: 2.0 * radius,
            metal_hu: 600.0,
            metal_margin: 1.5e-3,
        }
    }
}

/// The lesion as found.
#[derive(Clone, Debug, PartialEq)]
pub struct LesionObservation {
    /// Centre, CT.
    pub center: Point<Ct>,
    /// Radius of the sphere with the found volume.
    pub equivalent_radius: f64,
    /// Surrounding tissue level, HU.
    pub background_hu: f64,
    /// Voxels in the lesion (including mirrored ones).
    pub voxels: usize,
}

/// Why the lesion was not found.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LesionError {
    /// Input out of range.
    #[error("lesion search: {0}")]
    Invalid(String),
    /// The search ball is not (enough) inside the scan.
    #[error("lesion search ball ({radius_mm:.1} mm around ({x:.1}, {y:.1}, {z:.1}) mm) is outside the scanned volume")]
    OutsideScan {
        /// Ball radius, mm.
        radius_mm: f64,
        /// Centre, mm (LPS).
        x: f64,
        /// Centre, mm.
        y: f64,
        /// Centre, mm.
        z: f64,
    },
    /// Nothing with the expected contrast.
    #[error("no lesion: {found} voxels beyond half the expected contrast ({contrast:.0} HU) near the estimate, {needed} needed")]
    NotFound {
        /// Voxels found.
        found: usize,
        /// Voxels needed (a third of the expected volume).
        needed: usize,
        /// Expected contrast, HU.
        contrast: f64,
    },
}

/// Find the lesion (module docs): twice, the second time around the first finding, so a lesion that moved towards the
/// rim of the search ball is measured whole.
pub fn find_lesion(volume: &CtVolume, search: &LesionSearch) -> Result<LesionObservation, LesionError> {
    let first = find_once(volume, search)?;
    find_once(
        volume,
        &LesionSearch {
            near: first.center,
            ..search.clone()
        },
    )
}

fn find_once(volume: &CtVolume, search: &LesionSearch) -> Result<LesionObservation, LesionError> {
    let s = search;
    let finite = s.near.is_finite()
        && [s.radius, s.contrast_hu, s.search_radius, s.metal_hu, s.metal_margin]
            .iter()
            .all(|v| v.is_finite());
    if !finite || s.radius <= 0.0 || s.search_radius < 1.5 * s.radius || s.contrast_hu == 0.0 || s.metal_margin < 0.0 {
        return Err(LesionError::Invalid(format!(
            "radius {:.2} mm, search radius {:.2} mm (≥ 1.5 × radius), contrast {:.0} HU",
            s.radius * 1e3,
            s.search_radius * 1e3,
            s.contrast_hu
        )));
    }
    let g = volume.geometry();
    let [nx, ny, nz] = volume.dims();
    let outside = || LesionError::OutsideScan {
        radius_mm: s.search_radius * 1e3,
        x: s.near.coords.x * 1e3,
        y: s.near.coords.y * 1e3,
        z: s.near.coords.z * 1e3,
    };
    let centre = g.point_to_index(&s.near).ok_or_else(outside)?;
    let reach = Vector3::new(
        s.search_radius / g.spacing.x,
        s.search_radius / g.spacing.y,
        s.search_radius / g.spacing.z,
    );
    // Stay one voxel inside the volume, for the smoothing kernel.
    let lo = |c: f64, r: f64| (c - r).floor().max(1.0) as usize;
    let hi = |c: f64, r: f64, n: usize| ((c + r).ceil().max(0.0) as usize).min(n.saturating_sub(2));
    let (i0, i1) = (lo(centre.x, reach.x), hi(centre.x, reach.x, nx));
    let (j0, j1) = (lo(centre.y, reach.y), hi(centre.y, reach.y, ny));
    let (k0, k1) = (lo(centre.z, reach.z), hi(centre.z, reach.z, nz));
    if i0 >= i1 || j0 >= j1 || k0 >= k1 {
        return Err(outside());
    }
    let raw = |i: usize, j: usize, k: usize| f64::from(volume.get(i, j, k).unwrap_or(0));
    let (bx, by, bz) = (i1 - i0 + 1, j1 - j0 + 1, k1 - k0 + 1);
    let at = |i: usize, j: usize, k: usize| (i - i0) + bx * ((j - j0) + by * (k - k0));
    // Metal and the margin around it are excluded.
    let margin = Vector3::new(
        s.metal_margin / g.spacing.x,
        s.metal_margin / g.spacing.y,
        s.metal_margin / g.spacing.z,
    )
    .map(|m| m.ceil() as usize);
    let mut excluded = vec![false; bx * by * bz];
    for k in k0..=k1 {
        for j in j0..=j1 {
            for i in i0..=i1 {
                if raw(i, j, k) < s.metal_hu {
                    continue;
                }
                for kk in k.saturating_sub(margin.z).max(k0)..=(k + margin.z).min(k1) {
                    for jj in j.saturating_sub(margin.y).max(j0)..=(j + margin.y).min(j1) {
                        for ii in i.saturating_sub(margin.x).max(i0)..=(i + margin.x).min(i1) {
                            excluded[at(ii, jj, kk)] = true;
                        }
                    }
                }
            }
        }
    }
    // Smoothed values (metal clipped so its blur stays small; those voxels are excluded anyway).
    let mut smoothed = vec![0.0; bx * by * bz];
    for k in k0..=k1 {
        for j in j0..=j1 {
            for i in i0..=i1 {
                let mut sum = 0.0;
                for kk in k - 1..=k + 1 {
                    for jj in j - 1..=j + 1 {
                        for ii in i - 1..=i + 1 {
                            sum += raw(ii, jj, kk).min(s.metal_hu);
                        }
                    }
                }
                smoothed[at(i, j, k)] = sum / 27.0;
            }
        }
    }
    let offset_of = |i: usize, j: usize, k: usize| volume.voxel_center(i, j, k).coords - s.near.coords;
    let mut rim: Vec<f64> = Vec::new();
    for k in k0..=k1 {
        for j in j0..=j1 {
            for i in i0..=i1 {
                let d = offset_of(i, j, k).norm();
                if d <= s.search_radius && d > s.search_radius - 2.0 * g.spacing.max() && !excluded[at(i, j, k)] {
                    rim.push(smoothed[at(i, j, k)]);
                }
            }
        }
    }
    if rim.len() < 8 {
        return Err(outside());
    }
    rim.sort_by(f64::total_cmp);
    let background = rim[rim.len() / 2];
    let threshold = background + s.contrast_hu / 2.0;
    let inside = |v: f64| {
        if s.contrast_hu > 0.0 {
            v >= threshold
        } else {
            v <= threshold
        }
    };
    let (mut sum, mut count) = (Vector3::zeros(), 0usize);
    for k in k0..=k1 {
        for j in j0..=j1 {
            for i in i0..=i1 {
                let offset = offset_of(i, j, k);
                if offset.norm() > s.search_radius {
                    continue;
                }
                let lesion = if excluded[at(i, j, k)] {
                    // The needle's hole, filled from the mirror image through the estimate.
                    let mirror = Point::new(s.near.coords - offset);
                    g.point_to_index(&mirror)
                        .map(|m| m.map(|c| c.round()))
                        .filter(|m| {
                            (i0 as f64..=i1 as f64).contains(&m.x)
                                && (j0 as f64..=j1 as f64).contains(&m.y)
                                && (k0 as f64..=k1 as f64).contains(&m.z)
                        })
                        .map(|m| at(m.x as usize, m.y as usize, m.z as usize))
                        .is_some_and(|m| !excluded[m] && inside(smoothed[m]))
                } else {
                    inside(smoothed[at(i, j, k)])
                };
                if lesion {
                    sum += offset;
                    count += 1;
                }
            }
        }
    }
    let voxel_volume = g.spacing.x * g.spacing.y * g.spacing.z;
    let expected = 4.0 / 3.0 * std::f64::consts::PI * s.radius.powi(3) / voxel_volume;
    let needed = ((expected / 3.0).ceil() as usize).max(4);
    if count < needed {
        return Err(LesionError::NotFound {
            found: count,
            needed,
            contrast: s.contrast_hu,
        });
    }
    let center = Point::new(s.near.coords + sum / count as f64);
    let equivalent_radius = (3.0 * count as f64 * voxel_volume / (4.0 * std::f64::consts::PI)).cbrt();
    Ok(LesionObservation {
        center,
        equivalent_radius,
        background_hu: background,
        voxels: count,
    })
}
