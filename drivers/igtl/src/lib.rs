//! acus-igtl: an OpenIGTLink (v1/v2/v3 header) codec and a bounded tokio TCP server for 3D Slicer.
//!
//! The codec is our own rather than `openigtlink-rust` 0.4.1: that crate panics in `IgtlMessage::decode` on metadata
//! sizes beyond the body and on BODY_SIZE near `u64::MAX`, and its readers allocate the declared body size unbounded.
//! Here every size read from the wire is checked against a [`Limits`] bound or the bytes actually present before it is
//! used, so hostile input yields a typed [`IgtlError`], never a panic or a large allocation.
//!
//! Standard OpenIGTLink types we do not decode, well formed (size within the limit, CRC good), are skipped and reported
//! as a [`server::Event::Skipped`]: Slicer sends types we do not use (e.g. GET_*, CAPABILITY, POSITION). A type name
//! that is not OpenIGTLink at all ([`header::is_standard_type`]), like any malformed input, closes the connection with
//! the error as the reason.
//!
//! Units: the wire carries Slicer's RAS in mm; [`convert`] is the only place that turns it into LPS metres.
pub mod convert;
pub mod header;
pub mod message;
pub mod server;

pub use header::{crc64, Header, IgtlError, Limits, HEADER_SIZE};
pub use message::{Body, Coordinate, IgtlString, Image, Message, MetaEntry, PointItem, ScalarType, Status};
pub use server::{ClientId, CloseReason, Event, Server, ServerConfig};
