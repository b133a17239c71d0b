//! System-test plumbing lives with the emulator (`acus_sim_ecat::veth`), shared with the launch crate's tests.
#![allow(unused_imports)]
pub use acus_sim_ecat::veth::*;
