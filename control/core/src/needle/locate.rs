//! Finding the needle and its tip in a check scan.
//!
//! 1. **Search cylinder.** Only voxels within `search_radius` of the expected axis count, so the fiducial spheres
//!    (2500 HU, as bright as a needle in partial volume) and bone elsewhere in the scan cannot be taken for it.
//! 2. **Metal.** Threshold at the cylinder's median (tissue) plus 15 % of the way to its brightest voxel (at least
//!    300 HU above the median): low enough that a 1.3 mm needle lying in a 3 mm slice (≈ 40 % partial volume) stays
//!    connected. Along the axis the metal must be one run without gaps longer than two voxels; the heaviest run is the
//!    needle.
//! 3. **Shaft line.** Intensity-weighted principal axis of the metal over the last `fit_length` before its far end, then
//!    refined on every voxel (not only metal) of a tube around that line with weights HU − background: partial-volume
//!    voxels carry the sub-voxel position and the unthresholded weights keep the centroid unbiased.
//! 4. **Tip.** Partial volume and the slice profile blur the end of the needle, but conserve its attenuation integral. So
//!    the end is found from mass, not from a profile: with `ρ_s` the attenuation per metre on the shaft and `ρ_f` beyond
//!    the tip (residual background), the metal mass `M` from a point `s₀` on the shaft onwards gives the end
//!    `s₀ + (M − ρ_f·L)/(ρ_s − ρ_f)`. This is the half-height point of the metal–tissue step for any symmetric blur, and
//!    it does not depend on the threshold or on the slice thickness. Window edges are linear ramps one voxel wide, so
//!    the discrete voxel sums integrate smoothly whatever the grid phase. The mass-equivalent end of a round-ended rod
//!    lies `r/3` before its physical point (a hemisphere holds 2/3 of the cylinder of the same length), hence
//!    `tip_offset`. The background subtracted from every voxel is the median of a shell around the needle, taken per
//!    2 mm along it, so a lesion or organ boundary crossing the windows does not tilt the balance; in the slices the
//!    needle crosses, once the tube fit has found the shaft, it is read on the voxel's own metal-streak ray instead
//!    (angular sectors about the needle's trace in that slice; see `background.rs`), since streaks do not cancel in the
//!    tube and, along a needle at a shallow angle to the slices, run ahead of the tip.
//!
//! Thick slices: a needle lying within a few degrees of the slice plane stays inside one slice over centimetres, and a
//! box slice profile hides where in that slice it is; only slice-boundary crossings locate it. The fit length therefore
//! grows with the slice thickness (13 thicknesses, at least 20 mm) to catch such crossings.

use nalgebra::{Matrix3, Point3, SymmetricEigen, Unit, Vector3};

use super::background::{streak_background, Slices, Trace};
use super::NeedleError;
use crate::frames::{Ct, Point};
use crate::registration::CtVolume;

/// Where to look for the needle, and what it is. Lengths in metres.
#[derive(Clone, Debug, PartialEq)]
pub struct NeedleSearch {
    /// Skin entry point (guide tip, RCM) in CT, from the robot's forward kinematics through the registration.
    pub entry: Point<Ct>,
    /// Expected needle direction into the patient, in CT.
    pub direction: Unit<Vector3<f64>>,
    /// Metal farther than this from the expected axis is ignored (default 5 mm).
    pub search_radius: f64,
    /// Length of the axis searched behind the entry (shaft in the guide; default 30 mm).
    pub behind: f64,
    /// Length of the axis searched beyond the entry (default 210 mm: the insertion range and a margin).
    pub max_depth: f64,
    /// Needle shaft radius (default 0.635 mm, 18 G).
    pub needle_radius: f64,
    /// Distance from the mass-equivalent end of the metal to the physical tip (default `needle_radius / 3`, a round
    /// end; a bevel of length `b` has about `b/2`).
    pub tip_offset: f64,
    /// The brightest voxel near the axis must reach this for there to be metal, HU (default 1000); lower on slices so
    /// thick that the needle's partial volume cannot reach it (half the contrast of a shaft lying in the slice plane).
    pub min_peak_hu: f64,
    /// Attenuation of the needle's metal as the scanner reports it, HU (default 3000), for the cross-section check.
    pub needle_hu: f64,
    /// Length of shaft behind the tip used for the line fit; `None` (default): 20 mm or 13 slice thicknesses, whichever
    /// is longer. Thick slices quantise the position of a needle lying in the slice plane, so the fit needs a longer
    /// baseline there; thin slices favour a short one, which follows the needle's curvature.
    pub fit_length: Option<f64>,
}

impl NeedleSearch {
    /// Defaults for an 18 G needle along `direction` from `entry`.
    pub fn new(entry: Point<Ct>, direction: Unit<Vector3<f64>>) -> Self {
        let needle_radius = 0.635e-3;
        Self {
            entry,
            direction,
            search_radius: 5.0e-3,
            behind: 0.03,
            max_depth: 0.21,
            needle_radius,
            tip_offset: needle_radius / 3.0,
            min_peak_hu: 1000.0,
            needle_hu: 3000.0,
            fit_length: None,
        }
    }

    fn validate(&self) -> Result<(), NeedleError> {
        if !self.entry.is_finite() || !self.direction.iter().all(|c| c.is_finite()) {
            return Err(NeedleError::InvalidParameter {
                name: "expected axis",
                value: f64::NAN,
            });
        }
        let positive = [
            ("search_radius", self.search_radius),
            ("needle_radius", self.needle_radius),
            ("fit_length", self.fit_length.unwrap_or(1.0)),
            ("max_depth", self.max_depth),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(NeedleError::InvalidParameter { name, value });
            }
        }
        let finite = [
            ("behind", self.behind),
            ("tip_offset", self.tip_offset),
            ("min_peak_hu", self.min_peak_hu),
            ("needle_hu", self.needle_hu),
        ];
        for (name, value) in finite {
            if !value.is_finite() || (name == "behind" && value < 0.0) {
                return Err(NeedleError::InvalidParameter { name, value });
            }
        }
        Ok(())
    }
}

/// The needle as seen in a check scan, with figures to judge the measurement by.
#[derive(Clone, Debug, PartialEq)]
pub struct NeedleObservation {
    /// The needle tip (physical point), CT.
    pub tip: Point<Ct>,
    /// Direction of the shaft over the last `fit_length` before the tip, pointing towards the tip.
    pub direction: Unit<Vector3<f64>>,
    /// Length of shaft behind the tip that `direction` was fitted over (the fit length used), m.
    pub shaft_length: f64,
    /// A point of that shaft line (its weighted centroid).
    pub axis_point: Point<Ct>,
    /// Tip's distance from the expected axis, m.
    pub lateral_offset: f64,
    /// Tip's position along the expected axis from the entry, m.
    pub depth_along_axis: f64,
    /// Angle between the fitted shaft and the expected axis, rad.
    pub axis_angle: f64,
    /// Metal voxels in the needle run.
    pub metal_voxels: usize,
    /// Brightest voxel near the axis, HU.
    pub peak_hu: f64,
    /// Metal threshold used, HU.
    pub threshold_hu: f64,
    /// Tissue around the tip (median of a shell around the needle), HU.
    pub background_hu: f64,
    /// Image noise around the tip (robust σ of that shell), HU.
    pub noise_hu: f64,
    /// RMS distance of the metal voxels near the tip from the fitted line, m.
    pub fit_rms: f64,
    /// Measured attenuation per length of the shaft over that of a full needle cross-section: ≈ 1 for a needle of the
    /// expected size and material, well below 1 for something thinner or partly outside the tube.
    pub cross_section_ratio: f64,
    /// Estimated 1σ of the tip position along the shaft from image noise, m.
    pub tip_sigma: f64,
}

/// A voxel near the line: position (CT), HU, weight (HU above the local background) and slice index.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    pub(super) p: Vector3<f64>,
    pub(super) hu: f64,
    pub(super) w: f64,
    pub(super) k: usize,
}

/// Finds the needle near the expected axis and measures its tip (see the module docs for the method).
pub fn find_needle(volume: &CtVolume, search: &NeedleSearch) -> Result<NeedleObservation, NeedleError> {
    search.validate()?;
    let geometry = volume.geometry();
    let spacing = geometry.spacing;
    let extent = spacing.x.max(spacing.y).max(spacing.z).max(geometry.slice_thickness);
    let blur = 0.5 * (spacing.x.powi(2) + spacing.y.powi(2) + spacing.z.max(geometry.slice_thickness).powi(2)).sqrt();
    let tube = search.needle_radius + blur + 0.7e-3;
    let fit_length = search.fit_length.unwrap_or((13.0 * extent).max(20e-3));
    let (entry, u) = (search.entry.coords.coords, search.direction);

    // 1. The search cylinder.
    let (a, b) = (
        entry - u.into_inner() * search.behind,
        entry + u.into_inner() * search.max_depth,
    );
    let mut cylinder: Vec<Sample> = Vec::new();
    gather(volume, &a, &b, search.search_radius, &mut cylinder);
    if cylinder.is_empty() {
        return Err(NeedleError::AxisOutsideVolume {
            length_mm: (search.behind + search.max_depth) * 1e3,
        });
    }
    let peak = cylinder.iter().map(|s| s.hu).fold(f64::NEG_INFINITY, f64::max);
    let background = median(cylinder.iter().map(|s| s.hu).collect());
    for s in &mut cylinder {
        s.w = s.hu - background;
    }
    // A thin needle lying in the plane of a thick slice fills a fraction π r² / (pixel × slice) of its voxels: on 5 mm
    // slices an 18 G shaft peaks near 1000 HU before any blur. Ask for half of that worst case when it is below the
    // configured floor (thin slices keep the floor).
    let pixel = spacing.x.max(spacing.y);
    let slice = spacing.z.max(geometry.slice_thickness);
    let fill = (core::f64::consts::PI * search.needle_radius.powi(2) / (pixel * slice)).min(1.0);
    let min_peak = search
        .min_peak_hu
        .min(background + 0.5 * fill * (search.needle_hu - background));
    if peak < min_peak {
        return Err(NeedleError::NoMetal {
            radius_mm: search.search_radius * 1e3,
            peak_hu: peak,
            min_hu: min_peak,
        });
    }
    // 2. Metal, and its heaviest gap-free run along the axis.
    let threshold = background + (0.15 * (peak - background)).max(300.0);
    let metal: Vec<Sample> = cylinder.into_iter().filter(|s| s.hu > threshold).collect();
    let along = |s: &Sample| (s.p - a).dot(&u);
    let run = heaviest_run(&metal, &along, 2.0 * extent + 1e-3);
    let metal: Vec<Sample> = metal
        .into_iter()
        .filter(|s| (run.0..=run.1).contains(&along(s)))
        .collect();
    let metal_voxels = metal.len();

    // 3. Shaft line near the far end: first on metal, then on the tube around it.
    let (mut origin, mut axis) = principal_axis(&metal, &u)?;
    let mut far = metal
        .iter()
        .map(|s| (s.p - origin).dot(&axis))
        .fold(f64::NEG_INFINITY, f64::max);
    for _ in 0..2 {
        let near: Vec<Sample> = metal
            .iter()
            .copied()
            .filter(|s| (s.p - origin).dot(&axis) >= far - fit_length && lateral(s, &origin, &axis) < 2.0 * tube)
            .collect();
        (origin, axis) = principal_axis(&near, &axis)?;
        far = near
            .iter()
            .map(|s| (s.p - origin).dot(&axis))
            .fold(f64::NEG_INFINITY, f64::max);
    }
    let visible = far
        - metal
            .iter()
            .map(|s| (s.p - origin).dot(&axis))
            .fold(f64::INFINITY, f64::min);
    let needed = 14e-3 + extent;
    if visible < needed {
        return Err(NeedleError::TooShort {
            visible_mm: visible * 1e3,
            needed_mm: needed * 1e3,
        });
    }

    // Every voxel of a wide tube around the distal shaft: the tube itself plus a shell for the local background.
    let span_back = fit_length.max(14e-3) + 3.0 * extent + 4e-3;
    let span_fore = 8e-3 + 4.0 * extent;
    let (a2, b2) = (
        origin + axis.into_inner() * (far - span_back),
        origin + axis.into_inner() * (far + span_fore),
    );
    let mut local: Vec<Sample> = Vec::new();
    gather(volume, &a2, &b2, tube + 3e-3, &mut local);
    // The windows of the mass measurement must lie inside the scan (the line fit may use less shaft than it asks for).
    check_inside(
        volume,
        &(origin + axis.into_inner() * (far - 14e-3 - 2.0 * extent)),
        &b2,
        tube,
    )?;
    // Local background: median of a shell around the needle, per 2 mm along it (a lesion edge or an organ boundary
    // crossing the windows would otherwise bias the mass balance).
    let bin = extent.max(2e-3);
    let t0 = far - span_back;
    let bins = ((span_back + span_fore) / bin).ceil() as usize + 1;
    let mut shells: Vec<Vec<f64>> = vec![Vec::new(); bins];
    let mut shell: Vec<f64> = Vec::new();
    let bin_of = |s: &Sample| (((s.p - origin).dot(&axis) - t0) / bin).clamp(0.0, (bins - 1) as f64) as usize;
    for s in &local {
        if (tube + 0.5e-3..tube + 3e-3).contains(&lateral(s, &origin, &axis)) {
            shells[bin_of(s)].push(s.hu);
            shell.push(s.hu);
        }
    }
    if shell.len() < 20 {
        return Err(NeedleError::Fit(format!(
            "{} tissue voxels around the tip for the background",
            shell.len()
        )));
    }
    let bg = median(shell.clone());
    let noise = 1.4826 * median(shell.iter().map(|h| (h - bg).abs()).collect());
    let bg_bins: Vec<f64> = shells
        .into_iter()
        .map(|v| if v.len() >= 8 { median(v) } else { bg })
        .collect();
    let shell_bg: Vec<f64> = local.iter().map(|s| bg_bins[bin_of(s)]).collect();
    let slices = Slices {
        normal: geometry.normal.into_inner(),
        row: geometry.row_dir.into_inner(),
        col: geometry.col_dir.into_inner(),
        thickness: slice,
    };

    let mut end = far;
    for pass in 0..4 {
        // Background per voxel: on its streak ray in the slices the needle crosses, the shell median elsewhere. The
        // first pass uses the shell median only: the streak rays need the needle's trace, which the metal's line (pulled
        // by any other metal in the search cylinder) may not give yet.
        let trace = Trace {
            origin,
            axis,
            end,
            end_margin: search.tip_offset + 0.5e-3,
            radius: search.needle_radius,
            clear: 2.0 * pixel,
            ring: 4.0 * pixel,
            // Beyond this (a needle within ~4° of a 1 mm slice's plane, ~11° of a 3 mm one) the needle's place in the
            // slab is too poorly known to centre the rays on it.
            max_length: 0.015,
        };
        let streaks = if pass == 0 {
            vec![None; local.len()]
        } else {
            streak_background(&local, &slices, &trace)
        };
        for ((s, b), shell) in local.iter_mut().zip(streaks).zip(&shell_bg) {
            s.w = s.hu - b.unwrap_or(*shell);
        }
        // Tube line fit on the shaft (the blurred end excluded), weights HU − background.
        let shaft: Vec<Sample> = local
            .iter()
            .copied()
            .filter(|s| {
                let t = (s.p - origin).dot(&axis);
                t >= end - fit_length && t <= end - 1.5e-3 - extent && lateral(s, &origin, &axis) <= tube
            })
            .collect();
        let (o, ax) = principal_axis(&shaft, &axis)?;
        // Keep `end` on the same physical point when the origin moves.
        end = (origin + axis.into_inner() * end - o).dot(&ax);
        (origin, axis) = (o, ax);
        end = mass_end(&local, &origin, &axis, tube, end, extent)?.0;
    }
    let (_, rho, tip_sigma_mass) = mass_end(&local, &origin, &axis, tube, end, extent)?;
    let tip = origin + axis.into_inner() * (end + search.tip_offset);

    let tip_region: Vec<&Sample> = local
        .iter()
        .filter(|s| {
            let t = (s.p - origin).dot(&axis);
            s.hu > threshold && t >= end - fit_length && t <= end && lateral(s, &origin, &axis) <= tube
        })
        .collect();
    let (mut wsum, mut d2) = (0.0, 0.0);
    for s in &tip_region {
        let w = s.w;
        wsum += w;
        d2 += w * lateral(s, &origin, &axis).powi(2);
    }
    let fit_rms = if wsum > 0.0 { (d2 / wsum).sqrt() } else { f64::NAN };
    let voxel_volume = geometry.index_to_ct_matrix().determinant().abs();
    let full = core::f64::consts::PI * search.needle_radius.powi(2) * (search.needle_hu - bg);
    let offset = tip - entry;
    Ok(NeedleObservation {
        tip: Point::new(Point3::from(tip)),
        direction: axis,
        shaft_length: fit_length.min(visible),
        axis_point: Point::new(Point3::from(origin)),
        lateral_offset: (offset - u.into_inner() * offset.dot(&u)).norm(),
        depth_along_axis: offset.dot(&u),
        axis_angle: axis.dot(&u).clamp(-1.0, 1.0).acos(),
        metal_voxels,
        peak_hu: peak,
        threshold_hu: threshold,
        background_hu: bg,
        noise_hu: noise,
        fit_rms,
        cross_section_ratio: rho * voxel_volume / full,
        tip_sigma: noise * tip_sigma_mass,
    })
}

/// Trapezoid window along the axis: 1 on `[lo, hi]`, linear ramps of width `2h` centred on `lo` and `hi` (integral
/// `hi − lo`).
fn window(t: f64, lo: f64, hi: f64, h: f64) -> f64 {
    (((t - lo + h) / (2.0 * h)).clamp(0.0, 1.0)) * (((hi + h - t) / (2.0 * h)).clamp(0.0, 1.0))
}

/// The mass-equivalent end of the metal near `end` (module docs, step 4), the shaft's attenuation per metre (HU·voxels
/// per metre) and the end's sensitivity to per-voxel noise (metres per HU).
fn mass_end(
    local: &[Sample],
    origin: &Vector3<f64>,
    axis: &Unit<Vector3<f64>>,
    tube: f64,
    end: f64,
    h: f64,
) -> Result<(f64, f64, f64), NeedleError> {
    let (s_lo, s_hi) = (end - 14e-3, end - 3e-3 - h);
    let (t_lo, t_hi) = (s_hi, end + 3e-3 + 2.0 * h);
    let (f_lo, f_hi) = (end + 2e-3 + 2.0 * h, end + 6e-3 + 3.0 * h);
    let (mut shaft, mut tip, mut far, mut tip_w2) = (0.0, 0.0, 0.0, 0.0);
    for s in local {
        let rel = s.p - origin;
        let t = rel.dot(axis);
        if (rel - axis.into_inner() * t).norm() > tube {
            continue;
        }
        let w = s.w;
        shaft += w * window(t, s_lo, s_hi, h);
        let wt = window(t, t_lo, t_hi, h);
        tip += w * wt;
        tip_w2 += wt * wt;
        far += w * window(t, f_lo, f_hi, h);
    }
    let rho_s = shaft / (s_hi - s_lo);
    let rho_f = far / (f_hi - f_lo);
    let contrast = rho_s - rho_f;
    if !(contrast.is_finite() && contrast > 0.0) {
        return Err(NeedleError::Fit(format!(
            "no metal contrast along the shaft ({:.0} HU·voxel/mm on the shaft, {:.0} beyond the tip)",
            rho_s * 1e-3,
            rho_f * 1e-3
        )));
    }
    let found = t_lo + (tip - rho_f * (t_hi - t_lo)) / contrast;
    Ok((found, contrast, tip_w2.sqrt() / contrast))
}

/// Distance of a sample from the line through `origin` along `axis`.
fn lateral(s: &Sample, origin: &Vector3<f64>, axis: &Unit<Vector3<f64>>) -> f64 {
    let rel = s.p - origin;
    (rel - axis.into_inner() * rel.dot(axis)).norm()
}

/// Weighted centroid and principal axis (oriented along `reference`) of samples.
fn principal_axis(
    samples: &[Sample],
    reference: &Unit<Vector3<f64>>,
) -> Result<(Vector3<f64>, Unit<Vector3<f64>>), NeedleError> {
    let wsum: f64 = samples.iter().map(|s| s.w).sum();
    if samples.len() < 3 || !(wsum.is_finite() && wsum > 0.0) {
        return Err(NeedleError::Fit(format!(
            "{} voxels with total weight {wsum:.0} HU on the shaft",
            samples.len()
        )));
    }
    let centroid = samples.iter().fold(Vector3::zeros(), |acc, s| acc + s.p * s.w) / wsum;
    let cov = samples.iter().fold(Matrix3::zeros(), |acc, s| {
        let d = s.p - centroid;
        acc + d * d.transpose() * s.w
    });
    let eig = SymmetricEigen::new(cov);
    let i = eig.eigenvalues.imax();
    let mut dir = eig.eigenvectors.column(i).into_owned();
    if dir.dot(reference) < 0.0 {
        dir = -dir;
    }
    let dir = Unit::try_new(dir, 1e-12).ok_or_else(|| NeedleError::Fit("degenerate shaft direction".into()))?;
    Ok((centroid, dir))
}

/// The heaviest run of metal along the axis (bins of 0.5 mm, gaps up to `gap` bridged), as `[from, to]` in metres of
/// `along`.
fn heaviest_run(metal: &[Sample], along: &dyn Fn(&Sample) -> f64, gap: f64) -> (f64, f64) {
    let mut items: Vec<(f64, f64)> = metal.iter().map(|s| (along(s), s.w)).collect();
    items.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut best, mut best_w) = ((0.0, -1.0), f64::NEG_INFINITY);
    let mut i = 0;
    while i < items.len() {
        let (start, mut w, mut j) = (items[i].0, items[i].1, i);
        while j + 1 < items.len() && items[j + 1].0 - items[j].0 <= gap {
            j += 1;
            w += items[j].1;
        }
        if w > best_w {
            (best, best_w) = ((start, items[j].0), w);
        }
        i = j + 1;
    }
    best
}

/// Appends every voxel within `radius` of the segment `a`–`b` (positions in CT, metres).
fn gather(volume: &CtVolume, a: &Vector3<f64>, b: &Vector3<f64>, radius: f64, out: &mut Vec<Sample>) {
    let g = volume.geometry();
    let dims = volume.dims();
    let (Some(ia), Some(ib)) = (
        g.point_to_index(&Point::new(Point3::from(*a))),
        g.point_to_index(&Point::new(Point3::from(*b))),
    ) else {
        return;
    };
    let mut lo = [0usize; 3];
    let mut hi = [0usize; 3];
    for k in 0..3 {
        let margin = radius / g.spacing[k] + 1.0;
        let (l, h) = (ia[k].min(ib[k]) - margin, ia[k].max(ib[k]) + margin);
        if h < 0.0 || l > (dims[k] - 1) as f64 {
            return;
        }
        lo[k] = l.max(0.0).floor() as usize;
        hi[k] = (h.ceil() as usize).min(dims[k] - 1);
    }
    let ab = b - a;
    let len2 = ab.norm_squared().max(f64::MIN_POSITIVE);
    let hu = volume.hu();
    for k in lo[2]..=hi[2] {
        for j in lo[1]..=hi[1] {
            for i in lo[0]..=hi[0] {
                let p = volume.voxel_center(i, j, k).coords.coords;
                let t = ((p - a).dot(&ab) / len2).clamp(0.0, 1.0);
                if (p - a - ab * t).norm() <= radius {
                    let value = f64::from(hu[volume.linear_index(i, j, k)]);
                    out.push(Sample {
                        p,
                        hu: value,
                        w: value,
                        k,
                    });
                }
            }
        }
    }
}

/// Fails if the segment `a`–`b`, widened by `margin`, leaves the volume (so a window would be cut short).
fn check_inside(volume: &CtVolume, a: &Vector3<f64>, b: &Vector3<f64>, margin: f64) -> Result<(), NeedleError> {
    let g = volume.geometry();
    let dims = volume.dims();
    for (p, side) in [(a, "shaft"), (b, "tip")] {
        let Some(idx) = g.point_to_index(&Point::new(Point3::from(*p))) else {
            return Err(NeedleError::Fit("degenerate volume axes".into()));
        };
        let mut outside: f64 = 0.0;
        for k in 0..3 {
            let m = margin / g.spacing[k];
            let below = -0.5 - (idx[k] - m);
            let above = idx[k] + m - (dims[k] as f64 - 0.5);
            outside = outside.max(below * g.spacing[k]).max(above * g.spacing[k]);
        }
        if outside > 0.0 {
            return Err(NeedleError::TipAtEdge {
                side,
                outside_mm: outside * 1e3,
            });
        }
    }
    Ok(())
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, |x, y| x.total_cmp(y));
    *m
}
