//! Serial devices: their protocols, pure and IO-free ([`pedal`], [`ndi`]), and the async readers that put them on a
//! real tty ([`pedal_port`], on tokio-serial).
//!
//! # Enable pedal line protocol
//! The pedal sends, at 50 Hz, `$PED,<seq>,<H|R>*<XX>\r\n`: `seq` a decimal u32 that increments by one per frame
//! (wrapping), `H` held / `R` released, `XX` the NMEA-style XOR of every byte between `$` and `*`, two upper-case hex
//! digits. A line longer than [`pedal::MAX_LINE`] bytes is rejected. Only a valid frame may refresh the safety source;
//! silence is handled by the cycle's deadline (a silent enable counts as released).
//!
//! # NDI combined API
//! Commands are `NAME:params<CRC16 as 4 hex>\r`, CRC-16/ARC (poly 0x8005 reflected, init 0) over `NAME:params`.
//! Replies end with the same CRC over the reply text, then CR; the reset reply is `RESETBE6F\r`.

pub mod ndi;
pub mod pedal;
pub mod pedal_port;
