//! The `controller.respiration` section: respiratory gating of scans and insertion steps on a belt (bellows) signal.
//! The belt's calibration is the lab's (a bellows reads the abdomen, not the liver: its gain is measured once against a
//! fluoroscopy or a 4D CT); never read from the simulated world.

use serde::Deserialize;

use crate::check::{number, within};
use crate::ConfigError;

/// The respiration section (SI units; the belt's own units for `gain`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RespirationFile {
    /// Belt units per metre of organ excursion.
    pub gain: f64,
    /// Half-width of the gating window about the level recorded at the last scan, m.
    pub window: f64,
    /// How long a hold must be steady before a scan or a step starts, s.
    pub settle: f64,
    /// The longest a patient is asked to hold, s.
    pub hold_limit: f64,
    /// Free breathing between two holds, s.
    pub recovery: f64,
    /// Holds asked for one scan or step before it is refused.
    pub attempts: u32,
    /// Check the belt against the window (false: the breath-hold technique without the belt, for comparison).
    #[serde(default = "gated_by_default")]
    pub gated: bool,
}

fn gated_by_default() -> bool {
    true
}

const SECTION: &str = "controller.respiration";

impl RespirationFile {
    /// Every value finite and in range.
    pub fn check(&self) -> Result<(), ConfigError> {
        number(&format!("{SECTION}.gain"), self.gain, within(1e-3, 1e9, "units/m"))?;
        number(&format!("{SECTION}.window"), self.window, within(1e-4, 0.01, "m"))?;
        number(&format!("{SECTION}.settle"), self.settle, within(0.1, 10.0, "s"))?;
        number(
            &format!("{SECTION}.hold_limit"),
            self.hold_limit,
            within(2.0, 60.0, "s"),
        )?;
        number(&format!("{SECTION}.recovery"), self.recovery, within(0.0, 60.0, "s"))?;
        number(
            &format!("{SECTION}.attempts"),
            f64::from(self.attempts),
            within(1.0, 100.0, ""),
        )?;
        if self.settle >= self.hold_limit {
            return Err(ConfigError::OutOfRange {
                field: format!("{SECTION}.settle"),
                value: self.settle,
                range: format!("below hold_limit ({} s)", self.hold_limit),
            });
        }
        Ok(())
    }
}
