//! acus composition root: the simulated system and the `acus` command line's building blocks.
#![deny(missing_docs)]

pub mod config;
pub mod operator;
pub mod run;
pub mod scanner;
pub mod system;
