//! The boundary between Slicer (RAS, mm) and acus (LPS, m). Pure functions; nothing else converts.
use crate::message::{Coordinate, Image, ScalarType};
use nalgebra::{Isometry3, Matrix4, Point3, Vector4};

/// RAS and LPS differ by the sign of x and y; the map is its own inverse.
fn flip() -> Matrix4<f64> {
    Matrix4::from_diagonal(&Vector4::new(-1.0, -1.0, 1.0, 1.0))
}

pub fn m_to_mm(v: f64) -> f64 {
    v * 1000.0
}
pub fn mm_to_m(v: f64) -> f64 {
    v / 1000.0
}

/// A Slicer point (RAS, mm) as an acus point (LPS, m).
pub fn lps_m_from_ras_mm(p: &Point3<f64>) -> Point3<f64> {
    Point3::new(-mm_to_m(p.x), -mm_to_m(p.y), mm_to_m(p.z))
}

/// An acus point (LPS, m) as a Slicer point (RAS, mm).
pub fn ras_mm_from_lps_m(p: &Point3<f64>) -> Point3<f64> {
    Point3::new(-m_to_mm(p.x), -m_to_mm(p.y), m_to_mm(p.z))
}

/// A pose in the CT/LPS world (metres), e.g. T_ct_tip, as the RAS-mm matrix a TRANSFORM carries.
pub fn transform_ras_mm(t_lps_m: &Isometry3<f64>) -> Matrix4<f64> {
    let mut m = t_lps_m.to_homogeneous();
    for r in 0..3 {
        m[(r, 3)] = m_to_mm(m[(r, 3)]);
    }
    flip() * m * flip()
}

/// A volume's IJK→LPS (m) matrix as the IJK→RAS (mm) matrix Slicer expects. Columns are spacing-scaled directions.
pub fn ijk_to_ras_mm(ijk_to_lps_m: &Matrix4<f64>) -> Matrix4<f64> {
    let mut m = flip() * ijk_to_lps_m;
    for r in 0..3 {
        for c in 0..4 {
            m[(r, c)] = m_to_mm(m[(r, c)]);
        }
    }
    m
}

/// An IMAGE of a scalar volume (pixels i fastest, little endian) from its IJK→LPS (m) geometry.
/// Returns `None` when the pixel block does not match the size and scalar type.
pub fn image_from_volume(
    ijk_to_lps_m: &Matrix4<f64>,
    size: [u16; 3],
    scalar_type: ScalarType,
    pixels: Vec<u8>,
) -> Option<Image> {
    let image = Image {
        components: 1,
        scalar_type,
        big_endian: false,
        coordinate: Coordinate::Ras,
        size,
        ijk_to_world: ijk_to_ras_mm(ijk_to_lps_m),
        subvolume_offset: [0; 3],
        subvolume_size: size,
        pixels,
    };
    (image.expected_pixel_bytes() == Some(image.pixels.len())).then_some(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Translation3, UnitQuaternion, Vector3};

    #[test]
    fn transform_maps_points_like_the_point_conversion() {
        let t = Isometry3::from_parts(
            Translation3::new(0.01, -0.02, 0.3),
            UnitQuaternion::from_axis_angle(&Vector3::y_axis(), 0.4),
        );
        let p = Point3::new(0.05, 0.01, -0.02);
        let via_lps = ras_mm_from_lps_m(&(t * p));
        let via_ras = transform_ras_mm(&t).transform_point(&ras_mm_from_lps_m(&p));
        assert!((via_lps - via_ras).norm() < 1e-9);
        assert!((lps_m_from_ras_mm(&ras_mm_from_lps_m(&p)) - p).norm() < 1e-15);
    }

    #[test]
    fn ijk_to_ras_gives_the_voxel_ras_position() {
        let mut g = Matrix4::from_diagonal(&Vector4::new(0.0005, 0.0007, 0.002, 1.0));
        g[(0, 3)] = -0.1;
        g[(1, 3)] = 0.05;
        g[(2, 3)] = 0.2;
        let v = Point3::new(3.0, 4.0, 5.0);
        let lps = g.transform_point(&v);
        let ras = ijk_to_ras_mm(&g).transform_point(&v);
        assert!((ras - ras_mm_from_lps_m(&lps)).norm() < 1e-9);
        assert!(image_from_volume(&g, [2, 2, 2], ScalarType::I16, vec![0; 16]).is_some());
        assert!(image_from_volume(&g, [2, 2, 2], ScalarType::I16, vec![0; 15]).is_none());
    }
}
