//! The `controller.tracker` section: the NDI tracker's calibration as a lab configures it (from the rig's drawings or a
//! pivot calibration), used by `acus sim --tracker`. The reference tool's mount on the fiducial frame and the needle tip
//! in the needle tool; never read from the simulated world.

use acus_control::frames::{Point, Transform};
use acus_control::tracking::{TrackerCalibration, MAX_OFFSET_M};
use nalgebra::{Isometry3, Translation3, UnitQuaternion};
use serde::Deserialize;

use crate::check::{number, within};
use crate::ConfigError;

/// The tracker section (all lengths in metres, angles in radians).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrackerFile {
    /// The reference tool's pose on the fiducial frame, `T_frame_ref` (URDF convention: `xyz`, then fixed-axis `rpy`).
    pub reference_on_frame: MountFile,
    /// The needle tip in the needle tool's frame, m.
    pub tip_in_tool: [f64; 3],
    /// The port handle the tracker gives the reference tool (the simulated tracker's first tool: 10, i.e. 0x0A).
    #[serde(default = "default_reference_handle")]
    pub reference_handle: u8,
    /// The port handle of the needle tool (the simulated tracker's second tool: 11, i.e. 0x0B).
    #[serde(default = "default_needle_handle")]
    pub needle_handle: u8,
}

/// A rigid mount: translation, then roll–pitch–yaw about the fixed axes (as a URDF `<origin>`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MountFile {
    /// m.
    pub xyz: [f64; 3],
    /// rad.
    pub rpy: [f64; 3],
}

fn default_reference_handle() -> u8 {
    0x0A
}

fn default_needle_handle() -> u8 {
    0x0B
}

const SECTION: &str = "controller.tracker";

impl TrackerFile {
    /// Every value finite and in range (each offset within [`MAX_OFFSET_M`]: a tool sits on the frame or on the hub,
    /// never a metre off; a value in mm is refused), the two handles distinct and non-zero.
    pub fn check(&self) -> Result<(), ConfigError> {
        let m = within(-MAX_OFFSET_M, MAX_OFFSET_M, "m");
        let pi = std::f64::consts::PI;
        let rad = within(-pi, pi, "rad");
        for (k, axis) in ["x", "y", "z"].iter().enumerate() {
            let xyz = self.reference_on_frame.xyz[k];
            number(&format!("{SECTION}.reference_on_frame.xyz[{axis}]"), xyz, m)?;
            let tip = self.tip_in_tool[k];
            number(&format!("{SECTION}.tip_in_tool[{axis}]"), tip, m)?;
        }
        for (k, angle) in ["roll", "pitch", "yaw"].iter().enumerate() {
            let rpy = self.reference_on_frame.rpy[k];
            number(&format!("{SECTION}.reference_on_frame.rpy[{angle}]"), rpy, rad)?;
        }
        for (field, offset) in [
            ("reference_on_frame.xyz", norm(&self.reference_on_frame.xyz)),
            ("tip_in_tool", norm(&self.tip_in_tool)),
        ] {
            if offset > MAX_OFFSET_M {
                return Err(ConfigError::OutOfRange {
                    field: format!("{SECTION}.{field}"),
                    value: offset,
                    range: format!("a length of at most {MAX_OFFSET_M} m"),
                });
            }
        }
        for (field, handle) in [
            ("reference_handle", self.reference_handle),
            ("needle_handle", self.needle_handle),
        ] {
            if handle == 0 {
                return Err(ConfigError::Invalid {
                    field: format!("{SECTION}.{field}"),
                    reason: "0 is no port handle".into(),
                });
            }
        }
        if self.reference_handle == self.needle_handle {
            return Err(ConfigError::Invalid {
                field: format!("{SECTION}.needle_handle"),
                reason: format!("{} is the reference's handle too", self.needle_handle),
            });
        }
        Ok(())
    }

    /// The calibration the tracker node uses (checked by [`TrackerFile::check`] when the file was read).
    pub fn calibration(&self) -> TrackerCalibration {
        let [x, y, z] = self.reference_on_frame.xyz;
        let [roll, pitch, yaw] = self.reference_on_frame.rpy;
        let [tx, ty, tz] = self.tip_in_tool;
        TrackerCalibration {
            t_frame_ref: Transform::from_isometry(Isometry3::from_parts(
                Translation3::new(x, y, z),
                UnitQuaternion::from_euler_angles(roll, pitch, yaw),
            )),
            tip_in_tool: Point::xyz(tx, ty, tz),
        }
    }
}

fn norm(v: &[f64; 3]) -> f64 {
    v.iter().map(|c| c * c).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> TrackerFile {
        TrackerFile {
            reference_on_frame: MountFile {
                xyz: [0.04, 0.03, 0.06],
                rpy: [0.0, 0.0, 0.3],
            },
            tip_in_tool: [0.0069, 0.0174, 0.2624],
            reference_handle: 0x0A,
            needle_handle: 0x0B,
        }
    }

    #[test]
    fn bad_values_are_refused_by_field() {
        assert!(good().check().is_ok());
        type Spoil = fn(&mut TrackerFile);
        let cases: [(Spoil, &str); 6] = [
            (|t| t.tip_in_tool[2] = 262.4, "controller.tracker.tip_in_tool[z]"),
            (|t| t.tip_in_tool[0] = f64::NAN, "controller.tracker.tip_in_tool[x]"),
            (
                |t| t.reference_on_frame.rpy[1] = 7.0,
                "controller.tracker.reference_on_frame.rpy[pitch]",
            ),
            (|t| t.tip_in_tool = [0.8, 0.8, 0.0], "controller.tracker.tip_in_tool"),
            (|t| t.needle_handle = 0x0A, "controller.tracker.needle_handle"),
            (|t| t.reference_handle = 0, "controller.tracker.reference_handle"),
        ];
        for (spoil, field) in cases {
            let mut t = good();
            spoil(&mut t);
            let e = t.check().unwrap_err().to_string();
            assert!(e.starts_with(field), "{e}");
        }
    }

    #[test]
    fn the_calibration_is_the_urdf_convention() {
        let c = good().calibration();
        assert!(c.validate().is_ok());
        // Yaw 0.3 about z: the frame's x axis seen from the reference's.
        let p = c.t_frame_ref.apply(&Point::xyz(1.0, 0.0, 0.0));
        let want = [0.04 + 0.3f64.cos(), 0.03 + 0.3f64.sin(), 0.06];
        for (got, want) in p.coords.coords.iter().zip(want) {
            assert!((got - want).abs() < 1e-12);
        }
    }
}
