//! SIGTERM mid-insertion: `acus sim` halts the motion, disables the drives, waits until every drive reports it is
//! disabled, says so, and exits with a failure code — instead of dying with the drives enabled.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acus_nodes::testing::DomainLease;

#[test]
fn sigterm_mid_insertion_halts_disables_then_exits() {
    let lease = DomainLease::acquire();
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_acus"))
        .args(["sim", "--world", "ideal", "--out"])
        .arg(out.path())
        .env("ROS_DOMAIN_ID", lease.id().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    // Aligned: the next request is the first insertion step. SIGTERM now lands while it runs (its motion, or the check
    // scan that ends it); either way the process must stop the robot in order.
    for line in stdout.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("/align") {
            assert!(line.contains(" ok: "), "alignment refused: {line}");
            break;
        }
    }
    if !seen.iter().any(|l| l.contains("/align")) {
        let mut stderr = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
        panic!("never aligned ({:?}):\n{}\n{stderr}", child.wait(), seen.join("\n"));
    }
    // SAFETY: plain libc call on our own child's PID.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "acus sim still running 60 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    println!("{}\n{stderr}", seen.join("\n"));
    // Exited by itself (a code, not killed by the signal), failing, having seen the drives disabled.
    assert_eq!(status.code(), Some(1), "{status}");
    assert!(
        stderr.contains("interrupted by SIGTERM: motion halted, every drive reports it is disabled"),
        "{stderr}"
    );
}
