//! Assembling slices into a volume: consistency checks, sorting along the normal, spacing checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use acus_control::frames::Point;
use acus_control::registration::{push_bright, BrightVoxels, CtVolume, VolumeGeometry};
use nalgebra::{Point3, Unit, Vector3};
use rayon::prelude::*;

use crate::slice::{has_dicom_magic, read_header, read_header_from_bytes, SliceHeader as Slice};
use crate::DicomError;

/// Cosines may differ by this much (≈ 0.006°) and still count as one orientation.
const ORIENTATION_TOLERANCE: f64 = 1e-4;
/// Positions closer than this along the normal are the same slice, mm.
const DUPLICATE_TOLERANCE_MM: f64 = 1e-3;
/// Largest volume imported, voxels (2^31: 4 GiB of HU, e.g. 1024 × 1024 × 2048; a CT series is ≤ ~0.3 × 2^30). The
/// detector indexes voxels with u32, and a header claiming more is corrupt.
pub const MAX_VOXELS: u64 = 1 << 31;

/// What the import found besides the volume.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesReport {
    /// Series Instance UID.
    pub series_uid: String,
    /// Study Instance UID of the series (its first slice), if given.
    pub study_uid: Option<String>,
    /// Frame of Reference UID of the series (its first slice), if given.
    pub frame_of_reference_uid: Option<String>,
    /// Slices read.
    pub slices: usize,
    /// Files skipped (not DICOM, or DICOM without pixel data).
    pub skipped: usize,
    /// Voxels above the threshold asked for (empty, threshold i16::MAX, if none was asked).
    pub bright: BrightVoxels,
}

/// The files of `dir` (not recursing), sorted by name.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, DicomError> {
    let io = |source| DicomError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_type().map_err(io)?.is_file() {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

/// The header of the first image (by file name) in `dir`: a series' identity (series, study and frame-of-reference UIDs)
/// without reading its pixels. Files that are not DICOM images are skipped, as the series reader skips them.
pub fn first_header(dir: &Path) -> Result<Slice, DicomError> {
    let paths = files_in(dir)?;
    let mut skipped = 0;
    for path in &paths {
        match read_header(path) {
            Ok(Some(header)) => return Ok(header),
            Ok(None) | Err(DicomError::Parse { .. }) => skipped += 1,
            Err(e) => return Err(e),
        }
    }
    Err(DicomError::NoImages {
        dir: dir.display().to_string(),
        skipped,
    })
}

/// Reads every file of `dir` (not recursing) as one CT series.
pub fn read_ct_series(dir: &Path) -> Result<(CtVolume, SeriesReport), DicomError> {
    read_ct_series_indexed(dir, None, Vec::new())
}

/// As [`read_ct_series`], also listing the voxels above `bright_threshold` HU in the report (for
/// `register_volume_seeded`, which then skips its own pass over the volume), and decoding into `buffer` (a previous
/// volume's `into_hu()`, or an empty Vec) to avoid a fresh allocation.
pub fn read_ct_series_indexed(
    dir: &Path,
    bright_threshold: Option<i16>,
    buffer: Vec<i16>,
) -> Result<(CtVolume, SeriesReport), DicomError> {
    let paths = files_in(dir)?;
    read_ct_files(&paths, &dir.display().to_string(), bright_threshold, buffer)
}

/// True if the file carries the DICOM Part 10 magic ("DICM" after the 128-byte preamble).
fn is_dicom_file(path: &Path) -> Result<bool, DicomError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|source| DicomError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut head = [0u8; 132];
    match f.read_exact(&mut head) {
        Ok(()) => Ok(&head[128..] == b"DICM"),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(source) => Err(DicomError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Reads the given files as one CT series (`label` names the source in errors), optionally listing voxels above
/// `bright_threshold` HU, decoding into `buffer` (recycled; see [`read_ct_series_indexed`]). Files without the DICOM
/// magic and DICOM objects that are not images are skipped.
pub fn read_ct_files(
    paths: &[PathBuf],
    label: &str,
    bright_threshold: Option<i16>,
    buffer: Vec<i16>,
) -> Result<(CtVolume, SeriesReport), DicomError> {
    let decoded: Vec<Option<Slice>> = paths
        .par_iter()
        .map(|path| {
            if is_dicom_file(path)? {
                read_header(path)
            } else {
                Ok(None)
            }
        })
        .collect::<Result<_, _>>()?;
    assemble(decoded, label, bright_threshold, buffer, |_, s, out| s.decode_into(out))
}

/// As [`read_ct_files`], from files held in memory: `(name, bytes)` pairs, the name standing for the path in errors.
/// The same checks and assembly as from a folder (the fuzzer's entry point for a whole series).
pub fn read_ct_buffers(
    files: &[(PathBuf, &[u8])],
    label: &str,
    bright_threshold: Option<i16>,
    buffer: Vec<i16>,
) -> Result<(CtVolume, SeriesReport), DicomError> {
    let decoded: Vec<Option<Slice>> = files
        .par_iter()
        .map(|(name, bytes)| {
            if has_dicom_magic(bytes) {
                read_header_from_bytes(bytes, name)
            } else {
                Ok(None)
            }
        })
        .collect::<Result<_, _>>()?;
    assemble(decoded, label, bright_threshold, buffer, |i, s, out| {
        s.decode_from_bytes(files[i].1, out)
    })
}

/// Checks the headers against each other, sorts them, allocates the volume (bounded by [`MAX_VOXELS`] and by the
/// pixel data each header was checked to hold) and decodes each slice with `decode(source index, header, out)`.
fn assemble(
    decoded: Vec<Option<Slice>>,
    label: &str,
    bright_threshold: Option<i16>,
    buffer: Vec<i16>,
    decode: impl Fn(usize, &Slice, &mut [i16]) -> Result<(), DicomError> + Sync,
) -> Result<(CtVolume, SeriesReport), DicomError> {
    let skipped = decoded.iter().filter(|s| s.is_none()).count();
    // Each slice keeps the index of its source, for decoding after the sort.
    let mut indexed: Vec<(usize, Slice)> = decoded
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (i, s)))
        .collect();
    let Some(first) = indexed.first().map(|(_, s)| s.clone()) else {
        return Err(DicomError::NoImages {
            dir: label.to_string(),
            skipped,
        });
    };

    let slices: Vec<&Slice> = indexed.iter().map(|(_, s)| s).collect();
    // One series.
    let mut by_series: BTreeMap<&str, (usize, &Path)> = BTreeMap::new();
    for s in slices.iter().copied() {
        by_series
            .entry(s.series_uid.as_str())
            .or_insert((0, s.path.as_path()))
            .0 += 1;
    }
    if by_series.len() > 1 {
        let a = first.series_uid.clone();
        let (b, count_b, path_b) = by_series
            .iter()
            .find(|(uid, _)| **uid != a)
            .map(|(u, v)| (u.to_string(), v.0, v.1.display().to_string()))
            .unwrap_or_default();
        return Err(DicomError::MixedSeries {
            count_a: by_series.get(a.as_str()).map(|v| v.0).unwrap_or(0),
            series_a: a,
            series_b: b,
            count_b,
            path_b,
        });
    }

    // One orientation, size and pixel spacing.
    let ori = first.orientation;
    let row = Vector3::new(ori[0], ori[1], ori[2]);
    let col = Vector3::new(ori[3], ori[4], ori[5]);
    // Each header was checked for unit, orthogonal cosines.
    for s in slices.iter().copied() {
        let d = (0..6).map(|i| (s.orientation[i] - ori[i]).abs()).fold(0.0, f64::max);
        if d > ORIENTATION_TOLERANCE {
            let angle = |a: Vector3<f64>, b: Vector3<f64>| a.angle(&b).to_degrees();
            let o = s.orientation;
            let angle_deg = angle(row, Vector3::new(o[0], o[1], o[2])).max(angle(col, Vector3::new(o[3], o[4], o[5])));
            return Err(DicomError::MixedOrientation {
                path: s.path.display().to_string(),
                first: first.path.display().to_string(),
                angle_deg,
            });
        }
        if s.rows != first.rows || s.columns != first.columns {
            return Err(DicomError::InconsistentSlices {
                path: s.path.display().to_string(),
                detail: format!(
                    "{}×{} pixels, first slice {}×{}",
                    s.columns, s.rows, first.columns, first.rows
                ),
            });
        }
        if (0..2).any(|i| (s.pixel_spacing[i] - first.pixel_spacing[i]).abs() > 1e-4) {
            return Err(DicomError::InconsistentSlices {
                path: s.path.display().to_string(),
                detail: format!(
                    "pixel spacing {:?} mm, first slice {:?} mm",
                    s.pixel_spacing, first.pixel_spacing
                ),
            });
        }
    }

    // Sort along the normal; check duplicates, gaps, spacing and shear.
    let normal = Unit::new_normalize(row.cross(&col));
    let along = |s: &Slice| Vector3::from(s.position).dot(&normal);
    drop(slices);
    indexed.sort_by(|a, b| along(&a.1).total_cmp(&along(&b.1)));
    let slices: Vec<&Slice> = indexed.iter().map(|(_, s)| s).collect();
    let pos: Vec<f64> = slices.iter().map(|s| along(s)).collect();
    for w in 0..pos.len().saturating_sub(1) {
        if pos[w + 1] - pos[w] < DUPLICATE_TOLERANCE_MM {
            return Err(DicomError::DuplicateSlice {
                position_mm: pos[w],
                path_a: slices[w].path.display().to_string(),
                path_b: slices[w + 1].path.display().to_string(),
            });
        }
    }
    let spacing_mm = if pos.len() >= 2 {
        let mut gaps: Vec<f64> = pos.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_by(f64::total_cmp);
        let nominal = gaps[gaps.len() / 2];
        let tol = (0.01 * nominal).max(0.01);
        for w in 0..pos.len() - 1 {
            let gap = pos[w + 1] - pos[w];
            if (gap - nominal).abs() <= tol {
                continue;
            }
            let ratio = (gap / nominal).round();
            if ratio >= 2.0 && (gap - ratio * nominal).abs() <= tol * ratio {
                return Err(DicomError::MissingSlices {
                    missing: ratio as usize - 1,
                    from_mm: pos[w],
                    to_mm: pos[w + 1],
                    spacing_mm: nominal,
                });
            }
            return Err(DicomError::NonUniformSpacing {
                gap_mm: gap,
                from_mm: pos[w],
                to_mm: pos[w + 1],
                spacing_mm: nominal,
            });
        }
        // Slice origins must lie on one line along the normal.
        let p0 = Vector3::from(slices[0].position);
        for s in slices.iter().copied() {
            let d = Vector3::from(s.position) - p0;
            let sideways = (d - normal.into_inner() * d.dot(&normal)).norm();
            if sideways > 0.01 + 1e-3 * d.norm() {
                return Err(DicomError::ShearedStack {
                    path: s.path.display().to_string(),
                    offset_mm: sideways,
                });
            }
        }
        (pos[pos.len() - 1] - pos[0]) / (pos.len() - 1) as f64
    } else {
        // A single slice: its spacing is only nominal.
        first_spacing(slices[0])?
    };

    let s0 = slices[0];
    let thickness_mm = s0.thickness.unwrap_or(spacing_mm);
    let geometry = VolumeGeometry {
        origin: Point::new(Point3::from(Vector3::from(s0.position) * 1e-3)),
        row_dir: Unit::new_normalize(row),
        col_dir: Unit::new_normalize(col),
        normal,
        // PixelSpacing is [row spacing (along a column), column spacing (along a row)].
        spacing: Vector3::new(s0.pixel_spacing[1], s0.pixel_spacing[0], spacing_mm) * 1e-3,
        slice_thickness: thickness_mm * 1e-3,
    };
    let dims = [s0.columns, s0.rows, slices.len()];
    let series_uid = s0.series_uid.clone();
    let study_uid = s0.study_uid.clone();
    let frame_of_reference_uid = s0.frame_of_reference_uid.clone();
    let count = slices.len();
    let voxels = (dims[0] as u64)
        .saturating_mul(dims[1] as u64)
        .saturating_mul(dims[2] as u64);
    if voxels > MAX_VOXELS {
        return Err(DicomError::TooLarge {
            path: label.to_string(),
            columns: dims[0],
            rows: dims[1],
            slices: dims[2],
            voxels,
            max: MAX_VOXELS,
        });
    }
    // Convert each slice straight into its place in the volume, in parallel.
    // Every voxel is overwritten below, so a recycled buffer of the right length is not zeroed again.
    let mut hu = buffer;
    let n = dims[0] * dims[1] * dims[2];
    if hu.len() != n {
        hu.clear();
        hu.resize(n, 0);
    }
    // With a threshold, list the bright voxels of each slice while it is still in cache (for the sphere detector).
    let plane = dims[0] * dims[1];
    let per_slice: Vec<Vec<u32>> = hu
        .par_chunks_mut(plane)
        .zip(indexed.par_iter())
        .enumerate()
        .map(|(k, (out, (source, s)))| {
            decode(*source, s, out)?;
            let Some(thr) = bright_threshold else {
                return Ok(Vec::new());
            };
            let mut list = Vec::new();
            push_bright(out, thr, (k * plane) as u32, &mut list);
            Ok(list)
        })
        .collect::<Result<_, DicomError>>()?;
    let bright = BrightVoxels {
        threshold_hu: bright_threshold.unwrap_or(i16::MAX),
        indices: per_slice.concat(),
    };
    let volume = CtVolume::new(dims, hu, geometry)?;
    Ok((
        volume,
        SeriesReport {
            series_uid,
            study_uid,
            frame_of_reference_uid,
            slices: count,
            skipped,
            bright,
        },
    ))
}

fn first_spacing(s: &Slice) -> Result<f64, DicomError> {
    s.spacing_between
        .or(s.thickness)
        .filter(|v| *v > 0.0)
        .ok_or_else(|| DicomError::MissingAttribute {
            path: s.path.display().to_string(),
            attribute: "SliceThickness (needed for a single-slice series)",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(k: usize, rows: usize, columns: usize) -> Slice {
        Slice {
            path: PathBuf::from(format!("slice{k}")),
            series_uid: "2.25.1".into(),
            study_uid: None,
            frame_of_reference_uid: None,
            position: [0.0, 0.0, k as f64],
            orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            pixel_spacing: [1.0, 1.0],
            rows,
            columns,
            thickness: Some(1.0),
            spacing_between: None,
            slope: 1.0,
            intercept: 0.0,
            bits_stored: 16,
            signed: true,
        }
    }

    #[test]
    fn volume_above_the_voxel_bound_is_refused_before_allocation_or_decoding() {
        // 2048 × 2048 × 513 = 2^31 + 2^22 voxels; each header alone is fine (files of that size would be too).
        let slices = (0..513).map(|k| Some(header(k, 2048, 2048))).collect();
        let err = assemble(slices, "big", None, Vec::new(), |_, _, _| panic!("decoded")).unwrap_err();
        match err {
            DicomError::TooLarge {
                voxels, max, slices, ..
            } => {
                assert_eq!((voxels, max, slices), ((1 << 31) + (1 << 22), MAX_VOXELS, 513));
            }
            other => panic!("expected TooLarge, got {other}"),
        }
    }
}
