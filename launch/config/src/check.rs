//! The range checks of the sim file: every number finite and in a range that makes physical sense for a CT-guided needle
//! robot (so a slip of the unit, mm for m, is refused rather than simulated), every name usable. Pure functions of the
//! parsed file (and of the robot model for the start pose), so they run the same in the fuzzer as at start-up.

use acus_control::kinematics::{Joint, PositionerModel};

use crate::{ConfigError, ScanFile, SimFile};

/// An interval with its unit; `open_min` excludes the lower bound (a radius of 0 is no radius).
#[derive(Clone, Copy)]
pub(crate) struct Range {
    min: f64,
    max: f64,
    open_min: bool,
    unit: &'static str,
}

/// (min, max] in `unit`.
const fn above(min: f64, max: f64, unit: &'static str) -> Range {
    Range {
        min,
        max,
        open_min: true,
        unit,
    }
}

/// [min, max] in `unit`.
pub(crate) const fn within(min: f64, max: f64, unit: &'static str) -> Range {
    Range {
        min,
        max,
        open_min: false,
        unit,
    }
}

impl Range {
    fn contains(&self, v: f64) -> bool {
        let low = if self.open_min { v > self.min } else { v >= self.min };
        low && v <= self.max
    }

    fn text(&self) -> String {
        let open = if self.open_min { '(' } else { '[' };
        let unit = if self.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", self.unit)
        };
        format!("{open}{}, {}]{unit}", self.min, self.max)
    }
}

/// `value` finite and in `range`, or an error naming `field`.
pub(crate) fn number(field: &str, value: f64, range: Range) -> Result<(), ConfigError> {
    if !value.is_finite() {
        return Err(ConfigError::NotFinite {
            field: field.to_owned(),
            value,
        });
    }
    if !range.contains(value) {
        return Err(ConfigError::OutOfRange {
            field: field.to_owned(),
            value,
            range: range.text(),
        });
    }
    Ok(())
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// How far the CT frame's origin may be from anything in the patient: the scanner's bore is ~0.7 m across.
const CT_REACH: f64 = 0.3;

fn scan(name: &str, s: &ScanFile) -> Result<(), ConfigError> {
    number(&format!("{name}.pixel"), s.pixel, above(0.0, 0.005, "m"))?;
    number(&format!("{name}.slice"), s.slice, above(0.0, 0.01, "m"))?;
    number(&format!("{name}.seconds"), s.seconds, above(0.0, 600.0, "s"))
}

impl SimFile {
    /// Every value finite and in its range, every name usable. The start pose is only checked finite here: its range
    /// is the robot's joint limits ([`SimFile::check_robot`]).
    pub fn check(&self) -> Result<(), ConfigError> {
        for (field, path) in [
            ("robot", &self.robot),
            ("drives", &self.drives),
            ("controller.urdf", &self.controller.urdf),
        ] {
            if path.as_os_str().is_empty() {
                return Err(invalid(field, "empty path"));
            }
        }
        if self.world.is_empty() {
            return Err(invalid("world", "empty; give ideal, realistic or a world file"));
        }
        for (joint, &q) in Joint::ALL.iter().zip(&self.start_pose) {
            if !q.is_finite() {
                return Err(ConfigError::NotFinite {
                    field: format!("start_pose.{}", joint.name()),
                    value: q,
                });
            }
        }
        number("entry_xz[x]", self.entry_xz[0], within(-CT_REACH, CT_REACH, "m"))?;
        number("entry_xz[z]", self.entry_xz[1], within(-CT_REACH, CT_REACH, "m"))?;
        scan("planning_scan", &self.planning_scan)?;
        scan("check_scan", &self.check_scan)?;
        self.check_controller()
    }

    fn check_controller(&self) -> Result<(), ConfigError> {
        let c = &self.controller;
        number("controller.needle.diameter", c.needle.diameter, above(0.0, 0.005, "m"))?;
        // 3071 HU: the top of the 12-bit range scanners export.
        number("controller.needle.hu", c.needle.hu, above(0.0, 3071.0, "HU"))?;
        number("controller.lesion.radius", c.lesion.radius, above(0.0, 0.05, "m"))?;
        number(
            "controller.lesion.contrast_hu",
            c.lesion.contrast_hu,
            within(-1000.0, 1000.0, "HU"),
        )?;
        if c.lesion.contrast_hu == 0.0 {
            return Err(invalid(
                "controller.lesion.contrast_hu",
                "0: a lesion without contrast cannot be found on a check scan",
            ));
        }
        number(
            "controller.curvature_prior",
            c.curvature_prior,
            within(0.0, 20.0, "1/m"),
        )?;
        number("controller.axis_tilt_prior", c.axis_tilt_prior, above(0.0, 0.1, "rad"))?;
        number(
            "controller.axis_offset_prior",
            c.axis_offset_prior,
            above(0.0, 0.01, "m"),
        )?;
        number("controller.done_within", c.done_within, above(0.0, 0.01, "m"))?;
        number(
            "controller.min_correction_depth",
            c.min_correction_depth,
            above(0.0, 0.1, "m"),
        )?;
        number("controller.redirect.depth", c.redirect.depth, above(0.0, 0.1, "m"))?;
        number(
            "controller.redirect.max_angle",
            c.redirect.max_angle,
            above(0.0, 0.7, "rad"),
        )?;
        number(
            "controller.planning.max_step",
            c.planning.max_step,
            above(0.0, 0.2, "m"),
        )?;
        number(
            "controller.planning.insertion_margin",
            c.planning.insertion_margin,
            within(0.0, 0.05, "m"),
        )?;
        number(
            "controller.motion.align_speed",
            c.motion.align_speed,
            above(0.0, 1.0, ""),
        )?;
        number(
            "controller.motion.insertion_speed",
            c.motion.insertion_speed,
            above(0.0, 1.0, ""),
        )?;
        number("controller.console_deadline", c.console_deadline, above(0.0, 5.0, "s"))?;
        if let Some(tracker) = &c.tracker {
            tracker.check()?;
        }
        if let Some(respiration) = &c.respiration {
            respiration.check()?;
        }
        if let Some(g) = &c.registration_gate {
            // Fewer than 3 points fix no rigid transform; the frame has fewer than 64 spheres.
            if !(3..=64).contains(&g.min_fiducials) {
                return Err(ConfigError::OutOfRange {
                    field: "controller.registration_gate.min_fiducials".into(),
                    value: g.min_fiducials as f64,
                    range: "[3, 64]".into(),
                });
            }
            let gate = "controller.registration_gate";
            number(&format!("{gate}.max_fre_rms"), g.max_fre_rms, above(0.0, 0.005, "m"))?;
            number(
                &format!("{gate}.max_fiducial_residual"),
                g.max_fiducial_residual,
                above(0.0, 0.005, "m"),
            )?;
            number(
                &format!("{gate}.max_predicted_tre"),
                g.max_predicted_tre,
                above(0.0, 0.01, "m"),
            )?;
        }
        self.check_consoles()
    }

    fn check_consoles(&self) -> Result<(), ConfigError> {
        let consoles = &self.controller.consoles;
        if consoles.is_empty() || consoles.len() > 4 {
            return Err(invalid(
                "controller.consoles",
                format!("{} consoles; give 1 to 4", consoles.len()),
            ));
        }
        for (i, name) in consoles.iter().enumerate() {
            let field = format!("controller.consoles[{i}]");
            // The name becomes a ROS topic segment (`/estop/<name>`).
            let ros_name = name.chars().next().is_some_and(|ch| ch.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
            if !ros_name {
                return Err(invalid(
                    field,
                    format!("{name:?}: a console name is lowercase letters, digits and _, starting with a letter"),
                ));
            }
            if consoles[..i].contains(name) {
                return Err(invalid(field, format!("{name:?} is given twice")));
            }
        }
        Ok(())
    }

    /// The start pose within the joint limits of the robot the drives are built for (`model`, from the `robot` URDF):
    /// the emulated drives power up there, and a pose outside the limits would start the procedure in a fault.
    pub fn check_robot(&self, model: &PositionerModel) -> Result<(), ConfigError> {
        for joint in Joint::ALL {
            let q = self.start_pose[joint.index()];
            let limit = model.limit(joint);
            let unit = if joint.is_revolute() { "rad" } else { "m" };
            number(
                &format!("start_pose.{}", joint.name()),
                q,
                within(limit.lower, limit.upper, unit),
            )?;
        }
        Ok(())
    }
}
