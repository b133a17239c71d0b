//! A CT volume in Hounsfield units with its patient geometry (DICOM LPS, metres).
//!
//! Voxel `(i, j, k)` is column `i`, row `j` of slice `k`. Its centre in the CT frame is
//! `origin + i·Δc·row_dir + j·Δr·col_dir + k·Δs·normal`, where `row_dir`/`col_dir` are the two direction cosines of
//! DICOM ImageOrientationPatient (the direction along a row, i.e. of increasing column index, and the direction down a
//! column), `normal` points from slice 0 towards slice 1, and `origin` is ImagePositionPatient of slice 0.
//! HU are stored as `i16` (the range CT scanners export), which halves memory traffic against `f32`.

use nalgebra::{Matrix3, Point3, Unit, Vector3};

use super::RegistrationError;
use crate::frames::{Ct, Point};

/// Where the voxels of a volume sit in the CT (LPS) frame.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeGeometry {
    /// Centre of voxel (0, 0, 0), metres (ImagePositionPatient of the first slice).
    pub origin: Point<Ct>,
    /// Direction of increasing column index `i` (first triple of ImageOrientationPatient).
    pub row_dir: Unit<Vector3<f64>>,
    /// Direction of increasing row index `j` (second triple of ImageOrientationPatient).
    pub col_dir: Unit<Vector3<f64>>,
    /// Direction of increasing slice index `k` (± row_dir × col_dir).
    pub normal: Unit<Vector3<f64>>,
    /// Centre-to-centre spacing along `i`, `j`, `k`, metres. Note DICOM PixelSpacing lists `j` (row) spacing first.
    pub spacing: Vector3<f64>,
    /// Reconstructed slice thickness, metres (may differ from the spacing along `k`).
    pub slice_thickness: f64,
}

impl VolumeGeometry {
    /// Axial geometry (row = +x, column = +y, normal = +z) with the given origin, spacing and slice thickness.
    pub fn axial(origin: Point<Ct>, spacing: Vector3<f64>, slice_thickness: f64) -> Self {
        Self {
            origin,
            row_dir: Vector3::x_axis(),
            col_dir: Vector3::y_axis(),
            normal: Vector3::z_axis(),
            spacing,
            slice_thickness,
        }
    }

    /// Matrix whose columns are the three index steps in metres: point = origin + M · (i, j, k).
    pub fn index_to_ct_matrix(&self) -> Matrix3<f64> {
        Matrix3::from_columns(&[
            self.row_dir.into_inner() * self.spacing.x,
            self.col_dir.into_inner() * self.spacing.y,
            self.normal.into_inner() * self.spacing.z,
        ])
    }

    /// The CT point at a (possibly fractional) voxel index.
    pub fn index_to_point(&self, index: &Vector3<f64>) -> Point<Ct> {
        Point::new(self.origin.coords + self.index_to_ct_matrix() * index)
    }

    /// The (fractional) voxel index of a CT point; `None` if the axes are degenerate.
    pub fn point_to_index(&self, p: &Point<Ct>) -> Option<Vector3<f64>> {
        let m = self.index_to_ct_matrix().try_inverse()?;
        Some(m * (p.coords - self.origin.coords))
    }

    /// Checks that directions are orthonormal, spacings positive and everything finite.
    pub fn validate(&self) -> Result<(), RegistrationError> {
        let finite = self.origin.is_finite()
            && self.spacing.iter().all(|s| s.is_finite())
            && self.slice_thickness.is_finite()
            && [self.row_dir, self.col_dir, self.normal]
                .iter()
                .all(|d| d.iter().all(|c| c.is_finite()));
        if !finite {
            return Err(RegistrationError::InvalidGeometry(
                "non-finite origin, direction or spacing".into(),
            ));
        }
        if self.spacing.iter().any(|&s| s <= 0.0) || self.slice_thickness < 0.0 {
            return Err(RegistrationError::InvalidGeometry(format!(
                "spacing ({:.4}, {:.4}, {:.4}) mm must be positive",
                self.spacing.x * 1e3,
                self.spacing.y * 1e3,
                self.spacing.z * 1e3
            )));
        }
        let dots = [
            self.row_dir.dot(&self.col_dir),
            self.row_dir.dot(&self.normal),
            self.col_dir.dot(&self.normal),
        ];
        if dots.iter().any(|d| d.abs() > 1e-4) {
            return Err(RegistrationError::InvalidGeometry(format!(
                "axes not orthogonal (dot products {:.2e}, {:.2e}, {:.2e})",
                dots[0], dots[1], dots[2]
            )));
        }
        Ok(())
    }
}

/// A CT volume: Hounsfield units on a regular grid, with its geometry.
#[derive(Clone, Debug)]
pub struct CtVolume {
    dims: [usize; 3],
    hu: Vec<i16>,
    geometry: VolumeGeometry,
}

impl CtVolume {
    /// Builds a volume from HU values ordered `i` fastest, then `j`, then `k` (the order of DICOM pixel data, slice by
    /// slice). Fails if the length does not match the dimensions or the geometry is invalid.
    pub fn new(dims: [usize; 3], hu: Vec<i16>, geometry: VolumeGeometry) -> Result<Self, RegistrationError> {
        let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if dims.contains(&0) || expected != Some(hu.len()) {
            return Err(RegistrationError::InvalidGeometry(format!(
                "{} voxel values for dimensions {}×{}×{}",
                hu.len(),
                dims[0],
                dims[1],
                dims[2]
            )));
        }
        if dims.iter().any(|&d| d > u32::MAX as usize / 2) {
            return Err(RegistrationError::InvalidGeometry(format!(
                "dimension too large: {:?}",
                dims
            )));
        }
        geometry.validate()?;
        Ok(Self { dims, hu, geometry })
    }

    /// Number of voxels along `i` (columns), `j` (rows) and `k` (slices).
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// The HU values, `i` fastest.
    pub fn hu(&self) -> &[i16] {
        &self.hu
    }

    /// Mutable HU values (for renderers and filters).
    pub fn hu_mut(&mut self) -> &mut [i16] {
        &mut self.hu
    }

    /// Gives the HU buffer back (to recycle it for the next import: a fresh 150 MB buffer costs tens of ms in page
    /// faults and zeroing).
    pub fn into_hu(self) -> Vec<i16> {
        self.hu
    }

    /// The volume's geometry.
    pub fn geometry(&self) -> &VolumeGeometry {
        &self.geometry
    }

    /// Linear index of voxel (i, j, k); the caller keeps indices in range.
    #[inline]
    pub fn linear_index(&self, i: usize, j: usize, k: usize) -> usize {
        (k * self.dims[1] + j) * self.dims[0] + i
    }

    /// HU at voxel (i, j, k), or `None` outside the volume.
    pub fn get(&self, i: usize, j: usize, k: usize) -> Option<i16> {
        if i < self.dims[0] && j < self.dims[1] && k < self.dims[2] {
            self.hu.get(self.linear_index(i, j, k)).copied()
        } else {
            None
        }
    }

    /// CT point of voxel centre (i, j, k).
    pub fn voxel_center(&self, i: usize, j: usize, k: usize) -> Point<Ct> {
        self.geometry
            .index_to_point(&Vector3::new(i as f64, j as f64, k as f64))
    }

    /// Centre of the volume's bounding box in the CT frame.
    pub fn center(&self) -> Point<Ct> {
        let c = Vector3::new(
            (self.dims[0] as f64 - 1.0) / 2.0,
            (self.dims[1] as f64 - 1.0) / 2.0,
            (self.dims[2] as f64 - 1.0) / 2.0,
        );
        self.geometry.index_to_point(&c)
    }
}

/// Convenience for tests and renderers: a point from millimetres.
pub fn point_mm(x: f64, y: f64, z: f64) -> Point<Ct> {
    Point::new(Point3::new(x, y, z) * 1e-3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_point_round_trip_with_oblique_axes() {
        let r = nalgebra::Rotation3::from_euler_angles(0.1, -0.2, 0.3);
        let g = VolumeGeometry {
            origin: point_mm(-120.0, -80.0, 30.0),
            row_dir: Unit::new_normalize(r * Vector3::x()),
            col_dir: Unit::new_normalize(r * Vector3::y()),
            normal: Unit::new_normalize(r * -Vector3::z()),
            spacing: Vector3::new(0.7e-3, 0.8e-3, 1.5e-3),
            slice_thickness: 1.5e-3,
        };
        g.validate().unwrap();
        let idx = Vector3::new(10.25, 3.5, 7.0);
        let p = g.index_to_point(&idx);
        assert!((g.point_to_index(&p).unwrap() - idx).norm() < 1e-9);
        // Moving one slice moves 1.5 mm along the (negative-z rotated) normal.
        let q = g.index_to_point(&(idx + Vector3::z()));
        assert!(((q.coords - p.coords).norm() - 1.5e-3).abs() < 1e-12);
    }

    #[test]
    fn rejects_wrong_length_and_bad_axes() {
        let g = VolumeGeometry::axial(point_mm(0.0, 0.0, 0.0), Vector3::new(1e-3, 1e-3, 1e-3), 1e-3);
        assert!(matches!(
            CtVolume::new([2, 2, 2], vec![0; 7], g.clone()),
            Err(RegistrationError::InvalidGeometry(_))
        ));
        let mut bad = g;
        bad.col_dir = Vector3::x_axis();
        let err = CtVolume::new([2, 2, 2], vec![0; 8], bad).unwrap_err();
        assert!(err.to_string().contains("orthogonal"), "{err}");
    }
}
