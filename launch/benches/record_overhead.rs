//! What recording costs `acus sim` (issue 16: < 10 %): the same simulated biopsy (ideal world, one seed) run in pairs,
//! with and without the procedure record, alternating so that drift of the machine's load hits both alike. Prints the
//! wall time of each run, the medians and the overhead. `cargo bench -p acus-launch --bench record_overhead [-- PAIRS]`.

use std::path::PathBuf;
use std::time::Instant;

use acus_launch::run::{run, SimOptions};
use acus_launch::system::Drives;

fn biopsy(record: bool) -> f64 {
    let out = tempfile::tempdir().expect("temporary folder");
    let options = SimOptions {
        config: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.yaml")),
        out: out.path().to_path_buf(),
        realtime: false,
        seed: Some(3),
        world: Some("ideal".into()),
        drives: Drives::InProcess,
        record,
        pedal: None,
        igtl: None,
        external_registration: false,
        tracker: None,
    };
    let started = Instant::now();
    let summary = run(&options, |_| {}).expect("the biopsy");
    let wall = started.elapsed().as_secs_f64();
    if record {
        let r = summary.record.expect("a record");
        assert!(r.complete, "incomplete record");
    }
    wall
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // A ROS domain of its own (the tests' isolation is for tests; a bench run alone on the machine picks one).
    if std::env::var_os("ROS_DOMAIN_ID").is_none() {
        std::env::set_var("ROS_DOMAIN_ID", "97");
    }
    std::env::set_var("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST");
    let pairs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(7);
    let _ = biopsy(false); // warm-up: page cache, DDS discovery paths
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        // Alternate which goes first.
        let (a, b) = if i % 2 == 0 {
            let a = biopsy(true);
            (a, biopsy(false))
        } else {
            let b = biopsy(false);
            (biopsy(true), b)
        };
        println!("pair {i}: with record {a:.3} s, without {b:.3} s");
        with.push(a);
        without.push(b);
    }
    let mut ratios: Vec<f64> = with.iter().zip(&without).map(|(a, b)| a / b).collect();
    let r = median(&mut ratios);
    let (w, wo) = (median(&mut with), median(&mut without));
    println!(
        "record_overhead: median wall {w:.3} s with the record, {wo:.3} s without, over {pairs} pairs: {:+.1} %; \
         median of the pairs' ratios {:+.1} %",
        (w / wo - 1.0) * 100.0,
        (r - 1.0) * 100.0
    );
}
