//! The oblique slice a check-scan picture shows: its plane, its pixel grid, and the reformat of the CT onto it.
//!
//! SVG user units are image pixels, so a marker drawn at SVG `(x, y)` sits over image pixel `(⌊x − ox⌋, ⌊y − oy⌋)`
//! where `(ox, oy)` is the image's offset in the SVG. `SlicePlane` is the one mapping between the CT frame and those
//! coordinates; the renderer draws every overlay through it and the tests check geometry through it, so the picture
//! and the tests cannot disagree about where a point is.

use acus_control::frames::{Ct, Point};
use acus_control::registration::CtVolume;
use nalgebra::{Unit, Vector3};

/// Below this distance of the tip from the planned line (m), the line and the tip do not determine a plane.
const COLLINEAR_M: f64 = 1e-5;

/// A rectangle of pixels on a plane in the CT frame, placed in SVG coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct SlicePlane {
    /// CT point at the top-left corner of the image (the outer corner of pixel (0, 0), not its centre).
    pub corner: Point<Ct>,
    /// CT direction of SVG +x (to the right).
    pub u: Unit<Vector3<f64>>,
    /// CT direction of SVG +y (downwards).
    pub v: Unit<Vector3<f64>>,
    /// Pixel size, metres (square pixels).
    pub pixel_m: f64,
    /// Image width and height in pixels.
    pub size_px: (usize, usize),
    /// Where the image's top-left corner sits in SVG user units.
    pub offset: (f64, f64),
}

impl SlicePlane {
    /// Unit normal of the plane, `u × v` (the sign of `to_pixel`'s out-of-plane distance).
    pub fn normal(&self) -> Vector3<f64> {
        self.u.cross(&self.v)
    }

    /// SVG coordinates of the orthogonal projection of `p` onto the plane, and `p`'s signed distance from the plane
    /// along [`normal`](Self::normal), metres.
    pub fn to_pixel(&self, p: &Point<Ct>) -> (f64, f64, f64) {
        let d = p.coords - self.corner.coords;
        (
            self.offset.0 + d.dot(&self.u) / self.pixel_m,
            self.offset.1 + d.dot(&self.v) / self.pixel_m,
            d.dot(&self.normal()),
        )
    }

    /// The CT point on the plane at SVG coordinates `(px, py)`.
    pub fn to_world(&self, px: f64, py: f64) -> Point<Ct> {
        let a = (px - self.offset.0) * self.pixel_m;
        let b = (py - self.offset.1) * self.pixel_m;
        Point::new(self.corner.coords + self.u.into_inner() * a + self.v.into_inner() * b)
    }

    /// The image pixel (column, row) under SVG coordinates `(px, py)`, if inside the image.
    pub fn pixel_at(&self, px: f64, py: f64) -> Option<(usize, usize)> {
        let (c, r) = ((px - self.offset.0).floor(), (py - self.offset.1).floor());
        let inside = c >= 0.0 && r >= 0.0 && c < self.size_px.0 as f64 && r < self.size_px.1 as f64;
        inside.then_some((c as usize, r as usize))
    }
}

/// In-plane axes for the line `entry → target` and the tip: `u` along the planned path (entry on the left), `v` the
/// in-plane perpendicular. When the tip is on the line (or the points coincide) the plane is the one through the line
/// and CT z, or CT y when the line runs along z. `v` is signed to point posterior (+y, LPS), or inferior (−z) when
/// the plane is axial-perpendicular, so that successive check scans of one path come out the same way round.
pub(crate) fn plane_axes(
    entry: &Point<Ct>,
    target: &Point<Ct>,
    tip: &Point<Ct>,
) -> (Unit<Vector3<f64>>, Unit<Vector3<f64>>) {
    let finite = |v: Vector3<f64>| v.iter().all(|c| c.is_finite());
    let path = target.coords - entry.coords;
    let u = if finite(path) && path.norm() > COLLINEAR_M {
        Unit::new_normalize(path)
    } else {
        // No planned direction: fall back to the needle as found, then to CT x.
        let t = tip.coords - entry.coords;
        if finite(t) && t.norm() > COLLINEAR_M {
            Unit::new_normalize(t)
        } else {
            Vector3::x_axis()
        }
    };
    let off = tip.coords - entry.coords;
    let mut perp = off - u.into_inner() * off.dot(&u);
    if !finite(perp) || perp.norm() <= COLLINEAR_M {
        let helper = if u.z.abs() < 0.9 { Vector3::z() } else { Vector3::y() };
        perp = helper - u.into_inner() * helper.dot(&u);
    }
    let mut v = Unit::new_normalize(perp);
    let sign_ref = if v.y.abs() > 1e-6 { v.y } else { -v.z };
    if sign_ref < 0.0 {
        v = -v;
    }
    (u, v)
}

/// HU at a fractional voxel index by trilinear interpolation; `None` outside the volume (more than half a voxel past
/// the outer voxel centres: the reformat shows that as black rather than inventing tissue). Core has `point_to_index` but no sampler, hence this one.
pub(crate) fn trilinear(volume: &CtVolume, idx: &Vector3<f64>) -> Option<f64> {
    let dims = volume.dims();
    let mut base = [0usize; 3];
    let mut frac = [0.0f64; 3];
    for k in 0..3 {
        let last = (dims[k] - 1) as f64;
        // A voxel covers ±½ spacing around its centre: the outer half-voxel takes the edge value (clamped).
        if !(idx[k] >= -0.5 && idx[k] <= last + 0.5) {
            return None;
        }
        let x = idx[k].clamp(0.0, last);
        // A single-voxel axis, or the last voxel: interpolate over [last-1, last] with weight 1 at the end.
        let b = x.floor().min((dims[k].saturating_sub(2)) as f64);
        base[k] = b as usize;
        frac[k] = if dims[k] == 1 { 0.0 } else { x - b };
    }
    let hu = volume.hu();
    let step = |k: usize| usize::from(dims[k] > 1);
    let mut acc = 0.0;
    for corner in 0..8usize {
        let o = [corner & 1, (corner >> 1) & 1, (corner >> 2) & 1];
        let mut w = 1.0;
        for k in 0..3 {
            w *= if o[k] == 1 { frac[k] } else { 1.0 - frac[k] };
        }
        if w == 0.0 {
            continue;
        }
        let i = volume.linear_index(
            base[0] + o[0] * step(0),
            base[1] + o[1] * step(1),
            base[2] + o[2] * step(2),
        );
        acc += w * f64::from(*hu.get(i)?);
    }
    Some(acc)
}

/// Samples the plane's pixel centres (trilinear) and maps HU to 8-bit grey through the window `lo..hi` HU, clipped.
/// Row-major, top row first (PNG order). Pixels outside the volume are 0.
pub(crate) fn reformat(volume: &CtVolume, plane: &SlicePlane, lo_hu: f64, hi_hu: f64) -> Vec<u8> {
    let (w, h) = plane.size_px;
    let mut out = vec![0u8; w * h];
    let g = volume.geometry();
    // The index is affine in the pixel: three `point_to_index` calls give it exactly, instead of one per pixel.
    let p00 = plane.to_world(plane.offset.0 + 0.5, plane.offset.1 + 0.5);
    let p10 = plane.to_world(plane.offset.0 + 1.5, plane.offset.1 + 0.5);
    let p01 = plane.to_world(plane.offset.0 + 0.5, plane.offset.1 + 1.5);
    let (Some(i00), Some(i10), Some(i01)) = (g.point_to_index(&p00), g.point_to_index(&p10), g.point_to_index(&p01))
    else {
        return out;
    };
    let (di, dj) = (i10 - i00, i01 - i00);
    let span = (hi_hu - lo_hu).max(1e-6);
    for r in 0..h {
        for c in 0..w {
            let idx = i00 + di * c as f64 + dj * r as f64;
            if let Some(hu) = trilinear(volume, &idx) {
                let grey = ((hu - lo_hu) / span * 255.0).round().clamp(0.0, 255.0);
                out[r * w + c] = grey as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use acus_control::registration::VolumeGeometry;

    fn ramp() -> CtVolume {
        // HU = 10 i + 100 j + 1000 k on a 4×3×2 grid.
        let dims = [4, 3, 2];
        let mut hu = Vec::new();
        for k in 0..2 {
            for j in 0..3 {
                for i in 0..4 {
                    hu.push((10 * i + 100 * j + 1000 * k) as i16);
                }
            }
        }
        let g = VolumeGeometry::axial(Point::xyz(0.0, 0.0, 0.0), Vector3::new(1e-3, 1e-3, 1e-3), 1e-3);
        CtVolume::new(dims, hu, g).unwrap()
    }

    #[test]
    fn trilinear_is_exact_on_a_linear_field_and_none_outside() {
        let v = ramp();
        for idx in [
            Vector3::new(0.0, 0.0, 0.0),
            Vector3::new(1.25, 0.5, 0.75),
            Vector3::new(3.0, 2.0, 1.0),
        ] {
            let want = 10.0 * idx.x + 100.0 * idx.y + 1000.0 * idx.z;
            let got = trilinear(&v, &idx).unwrap();
            assert!((got - want).abs() < 1e-9, "{idx:?}: {got} vs {want}");
        }
        // The outer half-voxel repeats the edge; beyond it is outside.
        assert!((trilinear(&v, &Vector3::new(-0.4, 0.0, 0.0)).unwrap()).abs() < 1e-9);
        assert!(trilinear(&v, &Vector3::new(-0.51, 0.0, 0.0)).is_none());
        assert!(trilinear(&v, &Vector3::new(0.0, 2.51, 0.0)).is_none());
        assert!(trilinear(&v, &Vector3::new(f64::NAN, 0.0, 0.0)).is_none());
    }

    #[test]
    fn axes_are_orthonormal_and_fall_back_when_collinear() {
        let e = Point::xyz(0.0, 0.0, 0.0);
        let t = Point::xyz(0.1, 0.0, 0.0);
        // Tip off the line towards −y: the plane contains it, v is still signed posterior (+y).
        let (u, v) = plane_axes(&e, &t, &Point::xyz(0.05, -0.01, 0.0));
        assert!((u.x - 1.0).abs() < 1e-12 && (v.y - 1.0).abs() < 1e-12);
        // Tip on the line: plane through the line and z.
        let (u, v) = plane_axes(&e, &t, &Point::xyz(0.05, 0.0, 0.0));
        assert!(u.dot(&v).abs() < 1e-12 && (v.z.abs() - 1.0).abs() < 1e-12);
        // Line along z: plane through it and y.
        let (u, v) = plane_axes(&e, &Point::xyz(0.0, 0.0, 0.1), &Point::xyz(0.0, 0.0, 0.05));
        assert!((u.z - 1.0).abs() < 1e-12 && (v.y - 1.0).abs() < 1e-12);
        // Everything coincident or NaN: still orthonormal axes, no panic.
        let nan = Point::xyz(f64::NAN, 0.0, 0.0);
        let (u, v) = plane_axes(&nan, &nan, &nan);
        assert!(u.dot(&v).abs() < 1e-12 && (v.norm() - 1.0).abs() < 1e-12);
    }
}
