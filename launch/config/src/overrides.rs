//! A study's changes to one run (`acus sim --lesion --entry-xz --check-slice`, what `acus validate sim` varies per
//! trial): the world's lesion, the operator's entry and the check scans' slice. They go through the same checks as the
//! file's own values, and the operator's plan is derived again from them, so an overridden run is one a file could
//! have described.

use crate::check::{number, within};
use crate::{ConfigError, SimConfig};

/// What to change; `None` keeps the configuration's value. SI (m).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Overrides {
    /// The lesion's centre, CT (LPS): the world's truth (`patient.lesion` of the world file).
    pub lesion: Option<[f64; 3]>,
    /// The operator's skin entry (x, z), CT (`entry_xz`).
    pub entry_xz: Option<[f64; 2]>,
    /// The check scans' slice thickness and spacing (`check_scan.slice`).
    pub check_slice: Option<f64>,
}

impl SimConfig {
    /// Apply `o`, check the result as a loaded file is checked (plus: the lesion wholly inside the body), and derive
    /// the operator's plan again. On an error the configuration may be half-changed: do not use it.
    pub fn apply_overrides(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        if let Some(lesion) = o.lesion {
            self.world.patient.lesion = lesion;
            self.world.validate().map_err(|error| ConfigError::World {
                path: self.world_path.display().to_string(),
                error,
            })?;
        }
        if let Some(entry) = o.entry_xz {
            self.file.entry_xz = entry;
        }
        if let Some(slice) = o.check_slice {
            self.file.check_scan.slice = slice;
        }
        self.file.check()?;
        self.apply_world()?;
        self.check_lesion_in_body()
    }

    /// The lesion, with its radius, inside the body's skin: a needle aimed at a lesion in the air proves nothing.
    fn check_lesion_in_body(&self) -> Result<(), ConfigError> {
        let body = self.patient.body();
        let l = self.patient.lesion.coords - body.center.coords;
        let r = self.patient.lesion_radius;
        let (a, b) = (body.semi_x - r, body.semi_y - r);
        let across = (l.x / a).powi(2) + (l.y / b).powi(2);
        // Written so that NaN fails too.
        if !(a > 0.0 && b > 0.0 && across < 1.0) {
            return Err(ConfigError::OutOfRange {
                field: "patient.lesion (x, y)".into(),
                value: l.x.hypot(l.y),
                range: format!(
                    "the body's cross-section less the lesion radius {r} m (semi-axes {} × {} m about ({}, {}))",
                    body.semi_x, body.semi_y, body.center.coords.x, body.center.coords.y
                ),
            });
        }
        let (zc, half) = (body.center.coords.z, body.length / 2.0 - r);
        number(
            "patient.lesion[z]",
            self.patient.lesion.coords.z,
            within(zc - half, zc + half, "m"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acus_control::frames::{Ct, Point};

    fn config() -> SimConfig {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sim.yaml");
        SimConfig::load_in(&path, Some("realistic")).unwrap()
    }

    #[test]
    fn overrides_move_the_lesion_entry_and_slice_and_replan() {
        let mut c = config();
        let o = Overrides {
            lesion: Some([-0.01, -0.02, 0.03]),
            entry_xz: Some([-0.02, 0.025]),
            check_slice: Some(0.003),
        };
        c.apply_overrides(&o).unwrap();
        assert_eq!(c.patient.lesion.coords, Point::<Ct>::xyz(-0.01, -0.02, 0.03).coords);
        assert_eq!(c.file.check_scan.slice, 0.003);
        // The entry on the skin above (x, z); the operator's target within a few σ of the new lesion.
        let e = c.controller.entry.coords;
        assert!(
            (e.x + 0.02).abs() < 1e-12 && (e.z - 0.025).abs() < 1e-12 && e.y < -0.1,
            "{e:?}"
        );
        assert!((c.controller.target.coords - c.patient.lesion.coords).norm() < 0.005);
        // The seed re-derives the plan from the overridden world.
        c.set_seed(7).unwrap();
        assert!((c.controller.target.coords - Point::<Ct>::xyz(-0.01, -0.02, 0.03).coords).norm() < 0.005);
    }

    #[test]
    fn overrides_are_checked_like_the_file() {
        let refused = |o: Overrides| config().apply_overrides(&o).unwrap_err().to_string();
        let e = refused(Overrides {
            check_slice: Some(0.02),
            ..Default::default()
        });
        assert!(e.contains("check_scan.slice"), "{e}");
        let e = refused(Overrides {
            entry_xz: Some([0.2, 0.0]),
            ..Default::default()
        });
        assert!(e.contains("entry_xz[x]"), "{e}");
        // Outside the body's cross-section (above the anterior skin), and beyond its end.
        let e = refused(Overrides {
            lesion: Some([0.0, -0.118, 0.0]),
            ..Default::default()
        });
        assert!(e.contains("patient.lesion (x, y)"), "{e}");
        let e = refused(Overrides {
            lesion: Some([0.0, 0.0, 0.128]),
            ..Default::default()
        });
        assert!(e.contains("patient.lesion[z]"), "{e}");
        let e = refused(Overrides {
            lesion: Some([f64::NAN, 0.0, 0.0]),
            ..Default::default()
        });
        assert!(e.contains("patient.lesion[x]"), "{e}");
    }
}
