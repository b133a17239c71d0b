//! Emulated drives for a drive configuration, wired to an ethercrab master in process (no root, no NIC).

use acus_ethercat::config::{AxisConfig, DrivesConfig};
use acus_ethercat::ethercrab_bus::{pdu_storage, BusTiming, EthercrabBus};
use acus_sim_ecat::inproc::InProcessLink;
use acus_sim_ecat::{DriveParams, Network};

use crate::TwinError;

/// The emulated drive for `axis`: its URDF mass and the encoder the master expects; the motor a little stronger than the
/// limits the master plans with (as a real drive is sized), starting at `initial` (joint units).
/// Its unit objects (0x608F, 0x6091, 0x6092) are the configuration's, so the master's bring-up accepts it.
pub fn drive_params(axis: &AxisConfig, initial: f64) -> DriveParams {
    let units =
        DriveParams::with_units(axis.encoder_counts_per_rev, axis.gear_ratio, axis.lead_m_per_rev).unwrap_or_default();
    DriveParams {
        mass: axis.mass,
        max_velocity: axis.max_velocity * 1.5,
        max_acceleration: axis.max_acceleration * 2.0,
        rated_effort: axis.max_effort,
        initial_position: initial,
        ..units
    }
}

/// The emulator's parameters for `config`'s drives starting at `initial`, e.g. for an `acus-ecat-emulator --params`
/// file when the drives run in another process (over veth).
pub fn emulator_params(config: &DrivesConfig, initial: &[f64]) -> Result<Vec<DriveParams>, TwinError> {
    if initial.len() != config.axes.len() {
        return Err(TwinError::InitialPositions {
            got: initial.len(),
            axes: config.axes.len(),
        });
    }
    Ok(config
        .axes
        .iter()
        .zip(initial)
        .map(|(a, q)| drive_params(a, *q))
        .collect())
}

/// A line of emulated drives answering an ethercrab master in this process.
pub struct InProcessDrives {
    /// The link thread and the emulated line (lock it briefly to inject faults or read the true positions).
    pub link: InProcessLink,
    /// The master's bus, in OP, ready for the cycle thread.
    pub bus: EthercrabBus,
}

/// Emulate `config`'s drives, starting at `initial` (one joint position per axis, the robot's pose at power-on), and bring
/// an ethercrab master up on them (PDO mapping by SDO, DC, OP).
pub fn in_process(config: &DrivesConfig, initial: &[f64], timing: BusTiming) -> Result<InProcessDrives, TwinError> {
    if initial.len() != config.axes.len() {
        return Err(TwinError::InitialPositions {
            got: initial.len(),
            axes: config.axes.len(),
        });
    }
    let params: Vec<DriveParams> = config
        .axes
        .iter()
        .zip(initial)
        .map(|(a, q)| drive_params(a, *q))
        .collect();
    let (tx, rx, pdu_loop) = pdu_storage()?;
    let link = InProcessLink::spawn(Network::new(&params)?, tx, rx)?;
    let bus = EthercrabBus::bring_up(pdu_loop, &config.axes, timing)?;
    Ok(InProcessDrives { link, bus })
}
