//! A missing prerequisite makes `launch/setup.sh` stop with one line on stderr that says what to do, and change nothing:
//! no root for a missing Debian package, no python3.11, a broken venv (two ways).

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn setup() -> Command {
    let mut command = Command::new("/bin/bash");
    command.arg(repo().join("launch/setup.sh"));
    command
}

/// The one stderr line of a failed run.
fn one_line_error(out: Output) -> String {
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "setup.sh should fail with 1; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    lines[0].to_owned()
}

fn is_root() -> bool {
    String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        == "0"
}

#[test]
fn missing_package_without_root_prints_the_apt_line() {
    let mut command = setup();
    if is_root() {
        // Drop to `nobody` for this run (setpriv is util-linux, always on Debian).
        command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash"]);
        command.arg(repo().join("launch/setup.sh"));
    }
    let line = one_line_error(
        command
            .env("ACUS_SETUP_APT_PACKAGES", "clang acus-test-absent-package")
            .output()
            .unwrap(),
    );
    assert_eq!(
        line,
        "acus setup: missing Debian packages; as root run: apt-get install -y acus-test-absent-package"
    );
}

#[test]
fn missing_python311_says_how_to_install_it() {
    // A PATH with the tools the script uses before it looks for Python, and no python3.11.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["dpkg-query", "grep", "id", "cat", "sha256sum", "cut", "dirname"] {
        let found = String::from_utf8(Command::new("which").arg(tool).output().unwrap().stdout).unwrap();
        symlink(found.trim(), bin.path().join(tool)).unwrap();
    }
    let venv = tempfile::tempdir().unwrap();
    let line = one_line_error(
        setup()
            .env("PATH", bin.path())
            .env("ACUS_SETUP_VENV", venv.path().join("venv"))
            .output()
            .unwrap(),
    );
    assert!(
        line.starts_with("acus setup: python3.11 not found; install it"),
        "{line}"
    );
    assert!(!venv.path().join("venv").exists(), "nothing was created");
}

#[test]
fn a_folder_that_is_not_a_venv_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    std::fs::create_dir(&venv).unwrap();
    std::fs::write(venv.join("precious.txt"), "data").unwrap();
    let line = one_line_error(setup().env("ACUS_SETUP_VENV", &venv).output().unwrap());
    assert_eq!(
        line,
        format!(
            "acus setup: {} exists but is not a Python venv; rm -rf {} and re-run",
            venv.display(),
            venv.display()
        )
    );
    assert!(venv.join("precious.txt").exists(), "nothing was deleted");
}

#[test]
fn a_venv_without_ros_is_reported_broken() {
    // A real venv marked as set up (the stamp of the current set-up) but without rclpy: the quick check notices.
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    assert!(Command::new("python3.11")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap()
        .success());
    let stamp = std::fs::read_to_string(repo().join(".venv/.acus-setup-stamp")).expect("launch/setup.sh has run");
    std::fs::write(venv.join(".acus-setup-stamp"), stamp).unwrap();
    let line = one_line_error(setup().env("ACUS_SETUP_VENV", &venv).output().unwrap());
    assert_eq!(
        line,
        format!(
            "acus setup: the venv {} is broken (import rclpy fails); rm -rf {} and re-run",
            venv.display(),
            venv.display()
        )
    );
}
