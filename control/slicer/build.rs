//! The ROS 2 wheels' librcl pulls in the Python-binding libraries, so every binary that links r2r needs libpython, even one
//! without Python code (else: `undefined symbol: PyExc_RuntimeError` at start). rustc links with `--as-needed`, which would
//! drop it, so it is linked with the toggle. Link arguments do not propagate to dependents: each package with binaries or
//! tests that link r2r repeats this line in its own build script.
fn main() {
    println!("cargo:rustc-link-arg=-Wl,--push-state,--no-as-needed,-lpython3.11,--pop-state");
}
