//! Running the `acus` binary from a test: spawned as a child that is killed if the test fails, waited on until it says
//! it serves, and stopped with SIGTERM as a launch system would.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use acus_nodes::testing::KillOnDrop;

/// Spawn `acus <args>` (with `--out <out>` if given) and wait for the line that says it serves (its stdout, read until
/// then, then drained so that it never blocks on a full pipe).
pub fn spawn_serving(args: &[&str], out: Option<&std::path::Path>) -> KillOnDrop {
    let mut command = Command::new(env!("CARGO_BIN_EXE_acus"));
    command.args(args);
    if let Some(out) = out {
        command.arg("--out").arg(out);
    }
    let mut child = KillOnDrop(command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("acus {args:?} exited before serving"))
            .unwrap();
        if line.contains("serving") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

/// SIGTERM, then its exit status.
pub fn terminate(child: &mut KillOnDrop) -> std::process::ExitStatus {
    // SAFETY: kill(2) with a child's pid.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    child.0.wait().unwrap()
}
