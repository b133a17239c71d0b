//! Each image-formation effect of the scanner is live: the point spread widens an edge by its FWHM, the noise has the σ
//! asked for, metal streaks appear around the needle in its slices only, and the table offset moves the whole image.

use acus_control::frames::Point;
use acus_control::registration::CtVolume;
use acus_sim_scanner::{scan, Needle, ScanProtocol, Scene, Shape, Streaks};
use nalgebra::{Point3, Vector3};

/// Water filling x > 0 (an edge at x = 0) in air.
fn edge_scene() -> Scene {
    let mut scene = Scene::new();
    scene.background_hu = -1000.0;
    // A 1 m cylinder's side: flat to 13 µm over the ±5 mm rows scanned.
    scene.add(
        Shape::EllipticCylinder {
            center: Point3::new(1.0, 0.0, 0.0),
            semi_x: 1.0,
            semi_y: 1.0,
            half_length: 0.05,
        },
        0.0,
    );
    scene
}

fn protocol(pixel: f64) -> ScanProtocol {
    let mut p = ScanProtocol::covering(
        Point::xyz(-0.01, -0.005, -0.001),
        Point::xyz(0.01, 0.005, 0.001),
        pixel,
        0.001,
        0.001,
    );
    p.noise_sigma_hu = 0.0;
    p
}

fn voxel(v: &CtVolume, i: usize, j: usize, k: usize) -> f64 {
    let [nx, ny, _] = v.dims();
    f64::from(v.hu()[k * nx * ny + j * nx + i])
}

/// 10–90 % rise distance of the edge along x in the middle row and slice, m.
fn edge_width(v: &CtVolume, pixel: f64) -> f64 {
    let [nx, ny, nz] = v.dims();
    let row: Vec<f64> = (0..nx).map(|i| voxel(v, i, ny / 2, nz / 2)).collect();
    let (lo, hi) = (-1000.0, 0.0);
    let at = |frac: f64| {
        let level = lo + frac * (hi - lo);
        let i = row.iter().position(|&h| h >= level).unwrap();
        // Linear interpolation between the samples around the crossing.
        let (a, b) = (row[i - 1], row[i]);
        (i as f64 - 1.0 + (level - a) / (b - a)) * pixel
    };
    at(0.9) - at(0.1)
}

#[test]
fn the_point_spread_widens_an_edge_as_a_gaussian_of_its_fwhm() {
    let pixel = 0.1e-3;
    let scene = edge_scene();
    let sharp = scan(&scene, &protocol(pixel)).unwrap();
    let mut p = protocol(pixel);
    p.psf_fwhm = 0.7e-3;
    let blurred = scan(&scene, &p).unwrap();
    let (w0, w1) = (edge_width(&sharp, pixel), edge_width(&blurred, pixel));
    // A Gaussian edge rises 10–90 % over 2.563 σ = 1.088 FWHM: 0.76 mm for 0.7 mm.
    let expected = 2.563 * 0.7e-3 / 2.3548;
    println!(
        "edge 10–90 %: {:.3} mm sharp, {:.3} mm blurred (expected {:.3})",
        w0 * 1e3,
        w1 * 1e3,
        expected * 1e3
    );
    assert!(w0 < 0.2e-3, "without PSF the edge is a pixel wide: {:.3} mm", w0 * 1e3);
    assert!((w1 - expected).abs() < 0.1e-3, "blurred edge {:.3} mm", w1 * 1e3);
}

#[test]
fn the_noise_has_the_sd_asked_for() {
    let scene = edge_scene();
    let mut p = protocol(0.5e-3);
    p.noise_sigma_hu = 15.0;
    p.psf_fwhm = 0.7e-3;
    let v = scan(&scene, &p).unwrap();
    let [nx, ny, nz] = v.dims();
    // Deep in the water (x > 3 mm): only the noise varies.
    let samples: Vec<f64> = (0..nz)
        .flat_map(|k| (0..ny).flat_map(move |j| (0..nx).map(move |i| (i, j, k))))
        .filter(|&(i, _, _)| i as f64 * 0.5e-3 - 0.01 > 0.003)
        .map(|(i, j, k)| voxel(&v, i, j, k))
        .collect();
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let sd = (samples.iter().map(|h| (h - mean).powi(2)).sum::<f64>() / (samples.len() - 1) as f64).sqrt();
    println!("noise SD {sd:.2} HU over {} voxels", samples.len());
    assert!((sd - 15.0).abs() < 1.0, "noise SD {sd:.2} HU");
}

/// A needle along y at z = 0 (lying in slice 0), through water.
fn needle_scene() -> Scene {
    let mut scene = Scene::new();
    scene.background_hu = 0.0;
    scene.add_needle(&Needle {
        hub: Point::xyz(0.0, -0.02, 0.0),
        tip: Point::xyz(0.0, 0.0, 0.0),
        radius: 0.6e-3,
        hu: 3000.0,
    });
    scene
}

#[test]
fn metal_streaks_appear_around_the_needle_in_its_slices_only() {
    let mut p = ScanProtocol::covering(
        Point::xyz(-0.02, -0.02, -0.01),
        Point::xyz(0.02, 0.02, 0.01),
        0.5e-3,
        0.002,
        0.002,
    );
    p.noise_sigma_hu = 0.0;
    let clean = scan(&needle_scene(), &p).unwrap();
    p.streaks = Streaks {
        amplitude_hu: 100.0,
        decay_length: 0.01,
        rays: 8,
    };
    let streaked = scan(&needle_scene(), &p).unwrap();
    let [nx, ny, nz] = clean.dims();
    let slice_dev = |k: usize| {
        (0..nx * ny)
            .map(|n| (f64::from(streaked.hu()[k * nx * ny + n]) - f64::from(clean.hu()[k * nx * ny + n])).abs())
            .fold(0.0, f64::max)
    };
    let needle_slice = nz / 2;
    println!(
        "largest streak: {:.0} HU in the needle's slice, {:.0} HU in the first",
        slice_dev(needle_slice),
        slice_dev(0)
    );
    assert!(slice_dev(needle_slice) > 40.0, "streaks in the needle's slice");
    assert!(slice_dev(0) < 1.0, "no streaks in a slice without the needle");
}

#[test]
fn the_table_offset_moves_the_whole_image() {
    let scene = {
        let mut s = Scene::new();
        s.add(
            Shape::Sphere {
                center: Point3::new(0.0, 0.0, 0.0),
                radius: 0.003,
            },
            1000.0,
        );
        s
    };
    let mut p = ScanProtocol::covering(
        Point::xyz(-0.008, -0.008, -0.008),
        Point::xyz(0.008, 0.008, 0.008),
        0.4e-3,
        0.5e-3,
        0.5e-3,
    );
    p.noise_sigma_hu = 0.0;
    let centroid = |v: &CtVolume| {
        let [nx, ny, nz] = v.dims();
        let (mut s, mut w) = (Vector3::zeros(), 0.0);
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let h = voxel(v, i, j, k) + 1000.0;
                    s += Vector3::new(i as f64 * 0.4e-3, j as f64 * 0.4e-3, k as f64 * 0.5e-3) * h;
                    w += h;
                }
            }
        }
        s / w
    };
    let before = centroid(&scan(&scene, &p).unwrap());
    p.table_offset = Vector3::new(0.0, 0.0, 0.25e-3);
    let after = centroid(&scan(&scene, &p).unwrap());
    let moved = after - before;
    println!("image moved by {:?} mm", moved * 1e3);
    assert!(
        (moved.z - 0.25e-3).abs() < 0.03e-3,
        "moved {:.3} mm along z",
        moved.z * 1e3
    );
    assert!(moved.xy().norm() < 0.01e-3);
}
