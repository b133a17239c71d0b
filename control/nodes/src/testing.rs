//! Test harness for ROS 2 tests (feature `testing`): each test in its own ROS domain, and rclpy peers from the project venv.
//!
//! r2r keeps one ROS context per process, read from the environment once, so two tests in one test binary would share a
//! domain and hear each other. [`isolated`] therefore re-runs the calling test alone in a child process of the same test
//! binary, with a `ROS_DOMAIN_ID` leased exclusively (a lock file per domain, released when the lease drops, also when a
//! run crashes). Tests stay ordinary `#[test]` functions and run in parallel as usual.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the child process that runs the test body.
const CHILD_ENV: &str = "ACUS_ROS_TEST_CHILD";
/// Domain IDs handed out: 0..=101 is the range Fast DDS's port scheme keeps clear of Linux's ephemeral ports; the low ones
/// are left for people's own ROS graphs on a shared machine.
const DOMAINS: std::ops::RangeInclusive<u16> = 20..=101;

/// An exclusive ROS domain for one test run, held as an OS file lock.
pub struct DomainLease {
    id: u16,
    _lock: File,
}

impl DomainLease {
    /// Lease a domain no other acus test on this machine is using.
    pub fn acquire() -> Self {
        let span = DOMAINS.end() - DOMAINS.start() + 1;
        let start = (std::process::id() % u32::from(span)) as u16;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            for k in 0..span {
                let id = DOMAINS.start() + (start + k) % span;
                let path = std::env::temp_dir().join(format!("acus-ros-domain-{id}.lock"));
                let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path);
                let file = file.unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
                if file.try_lock().is_ok() {
                    return Self { id, _lock: file };
                }
            }
            assert!(
                Instant::now() < deadline,
                "all ROS domains {DOMAINS:?} stayed leased for 120 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The leased `ROS_DOMAIN_ID`.
    pub fn id(&self) -> u16 {
        self.id
    }
}

/// Whether this process is a child started by [`isolated`] (the place where ROS may be used).
pub fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Run the calling test's body in its own ROS domain.
///
/// In the test process this re-runs the current test (named by libtest's thread name) alone in a child process with a fresh
/// lease and fails if the child fails; in that child it runs `body`. Call it as the whole body of a `#[test]`.
pub fn isolated(body: impl FnOnce()) {
    if in_child() {
        body();
        return;
    }
    let lease = DomainLease::acquire();
    let status = child_command(&current_test_name(), &lease)
        .status()
        .expect("cannot start the test child process");
    assert!(
        status.success(),
        "test body failed in ROS domain {} ({status})",
        lease.id()
    );
}

/// Command that runs one test of this test binary alone, in the lease's domain, as an [`isolated`] child. Also for tests
/// that start several children on purpose (for example in one shared domain).
pub fn child_command(test_name: &str, lease: &DomainLease) -> Command {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let mut command = Command::new(exe);
    command
        .args([
            test_name,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_ENV, "1")
        .env("ROS_DOMAIN_ID", lease.id().to_string())
        .env("ACUS_TEST_PARENT_PID", std::process::id().to_string());
    command
}

/// The running test's name, as libtest gives it to the test thread (`module::test`).
pub fn current_test_name() -> String {
    std::thread::current()
        .name()
        .map(str::to_owned)
        .expect("called from a libtest test thread (which is named)")
}

/// Python of the project venv (launch/setup.sh makes it; `.cargo/config.toml` exports its path as `ACUS_VENV`).
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("ACUS_VENV").expect("ACUS_VENV is unset: run launch/setup.sh and test through cargo");
    let python = Path::new(&venv).join("bin/python");
    assert!(python.exists(), "{} is missing: run launch/setup.sh", python.display());
    python
}

/// An rclpy peer: a Python script run from the project venv in this process's ROS domain. Killed when dropped.
pub struct Peer {
    child: Child,
    script: String,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Peer {
    /// Start `script` (a path) with `args`; its stdout is captured for [`Peer::finish`], its stderr goes to the test log.
    pub fn spawn(script: impl AsRef<Path>, args: &[&str]) -> Self {
        let script = script.as_ref();
        assert!(
            in_child(),
            "start ROS peers inside `isolated`, so they share the test's private domain"
        );
        let mut child = Command::new(venv_python())
            .arg("-u")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start peer {}: {e}", script.display()));
        // Drain stdout as it comes, so a chatty peer never blocks on a full pipe.
        let stdout = child.stdout.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut out = String::new();
                let _ = pipe.read_to_string(&mut out);
                out
            })
        });
        Self {
            child,
            script: script.display().to_string(),
            stdout,
        }
    }

    /// Whether the peer has exited already (for tests that must notice a peer that died early).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Wait for the peer to exit by itself and return its stdout; fails the test if it exits non-zero or outlives
    /// `timeout` (then it is killed).
    pub fn finish(mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("peer status") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("peer {} still running after {timeout:?}", self.script);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = self
            .stdout
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        assert!(
            status.success(),
            "peer {} failed ({status}); its stdout:\n{out}",
            self.script
        );
        out
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Path of a peer script in a crate's `tests/peers/` folder.
pub fn peer_script(manifest_dir: &str, name: &str) -> PathBuf {
    Path::new(manifest_dir).join("tests/peers").join(name)
}

/// A child process killed (SIGKILL) and reaped when dropped, so that a test that fails half-way (a panic unwinds
/// through it) leaves no `acus` running behind it. Stop it orderly first where the test needs its exit.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
