#!/usr/bin/env bash
# The README's main command: set up (idempotent), build the `acus` binary (release) and run the simulated biopsy.
# Arguments go to `acus sim` (e.g. --seed 3, --realtime, --out DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash launch/setup.sh
cargo build --release --quiet -p acus-launch
exec ./target/release/acus sim "$@"
