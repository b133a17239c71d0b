//! Binaries and tests that link r2r need libpython (the ROS wheels' librcl pulls in the Python bindings); see
//! control/nodes/build.rs.
fn main() {
    println!("cargo:rustc-link-arg=-Wl,--push-state,--no-as-needed,-lpython3.11,--pop-state");
}
