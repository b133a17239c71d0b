//! Acceptance 5 (system test, as root): an independent master — SOEM through pysoem — finds the
//! emulated drives over veth, reads their identity (SII and SDO 0x1018) and takes them to OP.
#![allow(clippy::needless_range_loop)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use acus_sim_ecat::network::{PRODUCT_CODE, VENDOR_ID};
use acus_sim_ecat::DriveParams;
use common::veth::{emulator_child_main, require_root, Emulator, Veth};

#[test]
fn emulator_child() {
    emulator_child_main();
}

fn field(json: &str, key: &str) -> Vec<i64> {
    // Numbers following `"key": ` anywhere in the one-line JSON (serde_json is not a dependency).
    let pat = format!("\"{key}\": ");
    json.match_indices(&pat)
        .filter_map(|(i, _)| {
            let rest = &json[i + pat.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

#[test]
#[cfg_attr(acus_skip_netns, ignore = "ACUS_SKIP_NETNS_TESTS=1: network-namespace test not run")]
fn soem_enumerates_reads_identity_and_reaches_op() {
    require_root();
    let venv = std::env::var("ACUS_VENV").expect("ACUS_VENV must point at the venv with pysoem (launch/setup.sh)");
    let python = PathBuf::from(venv).join("bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pysoem_probe.py");
    let _serial = common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let params = vec![DriveParams::default(); 6];
    let veth = Veth::new();
    let _emu = Emulator::spawn(&veth, &serde_yaml::to_string(&params).unwrap(), "emulator_child");
    let out = Command::new("ip")
        .args(["netns", "exec", &veth.ns_master])
        .arg(&python)
        .arg(&script)
        .arg(&veth.if_master)
        .output()
        .expect("run pysoem probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "probe failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    assert_eq!(field(&stdout, "found"), vec![6]);
    assert_eq!(field(&stdout, "sii_vendor"), vec![i64::from(VENDOR_ID); 6]);
    assert_eq!(field(&stdout, "sii_product"), vec![i64::from(PRODUCT_CODE); 6]);
    assert_eq!(field(&stdout, "sdo_vendor"), vec![i64::from(VENDOR_ID); 6]);
    assert_eq!(field(&stdout, "sdo_serial"), (1..=6).collect::<Vec<i64>>());
    assert!(
        stdout.matches("\"name\": \"ACUS-SIM-CSP\"").count() == 6,
        "names: {stdout}"
    );
    // SAFE-OP = 4, OP = 8 (ETG1000.6 Table 9); every drive in OP, full working counter.
    assert_eq!(field(&stdout, "safeop"), vec![4]);
    assert_eq!(field(&stdout, "op"), vec![8]);
    let wkc = field(&stdout, "wkc");
    assert_eq!(wkc, field(&stdout, "wkc_expected"), "working counter");
    assert_eq!(wkc, vec![18]);
}
