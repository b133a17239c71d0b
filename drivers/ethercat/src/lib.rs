//! acus EtherCAT drive stack: CiA 402 servo drives in cyclic synchronous position mode.
//!
//! - [`config`]: drive YAML (encoder, gear, lead, acceleration, following-error window, homing
//!   offset) merged with URDF limits and masses; SI ↔ counts.
//! - [`cia402`]: PDO layout, statusword/controlword.
//! - [`cycle`]: the pure cycle — check, interpolate, CiA 402 sequencing; no IO, no allocation.
//! - [`bus`]: the trait the cycle thread drives; [`ethercrab_bus`] implements it with ethercrab
//!   (PDO mapping by SDO at PRE-OP, DC SYNC0, OP); with the `igh` feature, [`igh`] with the IgH
//!   master (needs the IgH kernel module on the target).
//! - [`safety`]: the safety supervisor evaluated inside the cycle (watchdogs, sources, limits, overruns).
//! - [`rt`]: SCHED_FIFO and locked memory for the cycle thread.
//! - [`runner`]: the cycle thread, lock-free handoffs, typestate [`runner::Controller`].
#![deny(missing_docs)]

pub mod bus;
pub mod cia402;
pub mod config;
pub mod cycle;
mod cycle_types;
mod error;
pub mod ethercrab_bus;
#[cfg(feature = "igh")]
pub mod igh;
mod profile;
pub mod rt;
pub mod runner;
pub mod safety;

pub use error::Error;
