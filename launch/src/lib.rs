//! acus composition root: the simulated system and the `acus` command line's building blocks.
#![deny(missing_docs)]

/// The sim configuration, in its own ROS-free crate so that it can be fuzzed and tested without ROS.
pub use acus_launch_config as config;
pub mod breathing;
pub mod operator;
pub mod run;
pub mod scanner;
pub mod system;
pub mod tracker;
pub mod validate;
pub mod withdrawal;
