//! The bus seen by the cycle: one process-data exchange per period. Backends: ethercrab
//! ([`crate::ethercrab_bus`]) and, with the `igh` feature, the IgH master ([`crate::igh`]).

use crate::cia402::{DriveInputs, DriveOutputs};
use crate::cycle::BusHealth;

/// A configured bus in OP, ready for cyclic exchange.
pub trait Bus {
    /// Number of drives on the bus, in line order.
    fn drives(&self) -> usize;

    /// Send `outputs`, receive `inputs` (one entry per drive). On anything but
    /// [`BusHealth::Ok`] the inputs must be left untouched. Must not allocate in steady state.
    fn exchange(&mut self, outputs: &[DriveOutputs], inputs: &mut [DriveInputs]) -> BusHealth;

    /// Time to wait until the next exchange (aligned to SYNC0 when the bus knows the DC phase).
    fn next_cycle_wait(&self) -> Option<std::time::Duration> {
        None
    }
}
