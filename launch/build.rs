//! Every binary that links r2r needs libpython (the ROS 2 wheels' librcl pulls in the Python bindings); see
//! control/nodes/build.rs for why it is linked with the toggle.
fn main() {
    println!("cargo:rustc-link-arg=-Wl,--push-state,--no-as-needed,-lpython3.11,--pop-state");
}
