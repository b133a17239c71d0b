//! System-test plumbing (for tests; it panics on failure): a veth pair between two fresh network namespaces (unique
//! names per test), the emulator program in a child process in one, the master in the other. Needs root.
//! Everything is torn down in `Drop`; processes are killed by their own PID.
#![allow(clippy::missing_panics_doc)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed: {st}");
}

/// Network-namespace tests need root. On a machine without it, build the tests with `ACUS_SKIP_NETNS_TESTS=1`: the
/// crates that hold such tests turn that into the `acus_skip_netns` cfg (their build.rs), which marks the tests ignored,
/// so a skipped test reports as ignored rather than passed. Without the variable and without root, the test fails here.
pub fn require_root() {
    // SAFETY: plain libc query.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "network-namespace tests need root (or build the tests with ACUS_SKIP_NETNS_TESTS=1 to mark them ignored)"
    );
}

/// Two network namespaces joined by a veth pair: the master's end and the SubDevices' end.
pub struct Veth {
    /// Namespace of the master.
    pub ns_master: String,
    /// Namespace of the emulated SubDevices.
    pub ns_sub: String,
    /// The master's interface.
    pub if_master: String,
    /// The SubDevices' interface.
    pub if_sub: String,
}

impl Veth {
    /// Create both namespaces and the pair, links up, IPv6 off.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let tag = format!(
            "{}{}",
            std::process::id() % 100_000,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let v = Self {
            ns_master: format!("acus_ecm_{tag}"),
            ns_sub: format!("acus_ecs_{tag}"),
            if_master: format!("ecm{tag}"),
            if_sub: format!("ecs{tag}"),
        };
        ip(&["netns", "add", &v.ns_master]);
        ip(&["netns", "add", &v.ns_sub]);
        ip(&["link", "add", &v.if_master, "type", "veth", "peer", "name", &v.if_sub]);
        ip(&["link", "set", &v.if_master, "netns", &v.ns_master]);
        ip(&["link", "set", &v.if_sub, "netns", &v.ns_sub]);
        for ns in [&v.ns_master, &v.ns_sub] {
            // No IPv6 chatter on the cable: only EtherCAT frames.
            let st = Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
                .status()
                .expect("sysctl");
            assert!(st.success());
        }
        ip(&["-n", &v.ns_master, "link", "set", &v.if_master, "up"]);
        ip(&["-n", &v.ns_sub, "link", "set", &v.if_sub, "up"]);
        v
    }
}

/// Move the calling thread into network namespace `ns` (sockets it opens afterwards live there).
pub fn enter_netns(ns: &str) {
    let path = std::ffi::CString::new(format!("/var/run/netns/{ns}")).unwrap();
    // SAFETY: open/setns/close on a valid path; affects only the calling thread.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        assert!(fd >= 0, "open netns {ns}");
        assert_eq!(libc::setns(fd, libc::CLONE_NEWNET), 0, "setns {ns}");
        libc::close(fd);
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting the namespaces destroys the veth pair with them.
        for ns in [&self.ns_master, &self.ns_sub] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The emulator program in a child process inside the SubDevice namespace. The child is this
/// test binary re-executed into [`emulator_child_main`], which runs `acus_sim_ecat::cli::run` —
/// the same code as the `acus-ecat-emulator` binary.
pub struct Emulator {
    child: Child,
    params_file: std::path::PathBuf,
}

/// Environment variable carrying the emulator's arguments to the re-executed test binary.
pub const CHILD_ENV: &str = "ACUS_ECAT_EMULATOR_ARGS";

impl Emulator {
    /// Start the emulator with `params_yaml` on the SubDevices' end, by re-running this test binary's `entry_test`
    /// (which must call [`emulator_child_main`]) inside that namespace; returns once the socket is bound. The drives run
    /// in lockstep (`--clock lockstep`: one period per process-data frame), what a master on a simulated clock needs;
    /// see [`Emulator::spawn_with`] for other options.
    pub fn spawn(veth: &Veth, params_yaml: &str, entry_test: &str) -> Self {
        Self::spawn_with(veth, params_yaml, entry_test, &["--clock", "lockstep"])
    }

    /// [`Emulator::spawn`] with further emulator arguments (e.g. `--clock wall`, `--sm-watchdog-ms 50`).
    pub fn spawn_with(veth: &Veth, params_yaml: &str, entry_test: &str, extra: &[&str]) -> Self {
        let file = std::env::temp_dir().join(format!("{}-drives.yaml", veth.if_sub));
        std::fs::write(&file, params_yaml).unwrap();
        let args = format!(
            "--iface {} --params {} {}",
            veth.if_sub,
            file.display(),
            extra.join(" ")
        );
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &veth.ns_sub])
            .arg(exe)
            .args(["--exact", entry_test, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn emulator");
        // Wait for the "ready" line: the socket is bound before the master starts.
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("acus-ecat-emulator: ready") => break,
                Some(Ok(_)) => continue,
                _ => panic!("emulator exited before becoming ready"),
            }
        }
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            params_file: file,
        }
    }

    /// The emulator's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // `ip netns exec` execs the program, so this PID is the emulator's own.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.params_file);
    }
}

/// Body of the child-process entry test: runs the emulator program if asked to, else nothing.
pub fn emulator_child_main() {
    if let Ok(args) = std::env::var(CHILD_ENV) {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        if let Err(e) = crate::cli::run(&args) {
            eprintln!("emulator: {e}");
            std::process::exit(2);
        }
    }
}
