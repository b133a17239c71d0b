//! acus EtherCAT twin: emulated SubDevices with CiA 402 drives that speak the real protocol.
//!
//! A [`Network`] is a line of [`esc::SubDevice`]s processing real EtherCAT frames: datagram
//! commands with auto-increment, configured and broadcast addressing and working counters, SII
//! EEPROM, AL state machine, FMMUs, DC time registers, a CoE mailbox with SDO over an object
//! dictionary, and a drive model (power state machine, CSP dynamics, following error, encoder
//! quantisation). Two wirings: [`inproc::InProcessLink`] (ethercrab's `PduTx`/`PduRx`, no root) and
//! [`raw::serve`] (AF_PACKET socket on an interface, e.g. one end of a veth pair).
#![deny(missing_docs)]

pub mod cli;
pub mod coe;
pub mod drive;
pub mod esc;
pub mod inproc;
pub mod network;
pub mod od;
pub mod raw;
pub mod sii;
pub mod veth;

pub use drive::DriveParams;
pub use esc::Clock;
pub use network::{Faults, Network};

/// Errors of the emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unsupported line length.
    #[error("emulated line must hold 1 to 64 drives, got {0}")]
    DriveCount(usize),
    /// Interface not found or unusable.
    #[error("network interface {0:?} not found")]
    Interface(String),
    /// Operating-system IO error (socket, thread).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Drive parameter file unreadable.
    #[error("drive parameters: {0}")]
    Params(String),
}
