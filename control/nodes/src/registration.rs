//! Registration node (next).
