//! Every binary that links r2r needs libpython (the ROS 2 wheels' librcl pulls in the Python bindings); see
//! control/nodes/build.rs for why it is linked with the toggle.
//!
//! `ACUS_SKIP_NETNS_TESTS=1` at build time marks the network-namespace tests ignored (they need root), so a skipped test
//! reports as ignored, never as passed.
fn main() {
    println!("cargo:rustc-link-arg=-Wl,--push-state,--no-as-needed,-lpython3.11,--pop-state");
    println!("cargo::rustc-check-cfg=cfg(acus_skip_netns)");
    println!("cargo:rerun-if-env-changed=ACUS_SKIP_NETNS_TESTS");
    if std::env::var("ACUS_SKIP_NETNS_TESTS").is_ok_and(|v| v == "1") {
        println!("cargo:rustc-cfg=acus_skip_netns");
    }
}
