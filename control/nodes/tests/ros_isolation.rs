//! Tests that start ROS nodes run in parallel without hearing each other (each in its own leased ROS domain), and the
//! negative control: two parties in one domain do hear each other within the same observation window, so the window is
//! long enough to catch cross talk.
//!
//! Every party publishes its token on the same topic and records every token it hears. Parties meet at a file barrier once
//! each has heard itself (so all are up and talking at the same time), then listen for `WINDOW`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use acus_nodes::testing::{child_command, in_child, isolated, DomainLease};
use acus_nodes::Spinner;
use futures::StreamExt;
use r2r::std_msgs::msg::String as StringMsg;
use r2r::QosProfile;

/// How long parties listen once all are up.
const WINDOW: Duration = Duration::from_secs(3);

fn barrier_dir(group: &str) -> PathBuf {
    let parent = std::env::var("ACUS_TEST_PARENT_PID").expect("set by the harness");
    let dir = std::env::temp_dir().join(format!("acus-isolation-{parent}-{group}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Publish `token`, hear what is said on the topic; returns every token heard.
fn exchange(token: &str, barrier: PathBuf, parties: usize) -> BTreeSet<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ctx = r2r::Context::create().unwrap();
        let mut node = r2r::Node::create(ctx, &format!("party_{token}"), "").unwrap();
        let publisher = node
            .create_publisher::<StringMsg>("/acus_test/token", QosProfile::default())
            .unwrap();
        let mut heard_stream = node
            .subscribe::<StringMsg>("/acus_test/token", QosProfile::default())
            .unwrap();
        let _spinner = Spinner::start(node).unwrap();

        let mut heard = BTreeSet::new();
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        let give_up = Instant::now() + Duration::from_secs(60);
        let mut window_end: Option<Instant> = None;
        loop {
            tokio::select! {
                msg = heard_stream.next() => { heard.insert(msg.expect("subscription open").data); }
                _ = ticker.tick() => {
                    publisher.publish(&StringMsg { data: token.to_owned() }).unwrap();
                    let now = Instant::now();
                    match window_end {
                        Some(end) if now >= end => return heard,
                        Some(_) => {}
                        None => {
                            if heard.contains(token) {
                                std::fs::write(barrier.join(token), b"up").unwrap();
                                if std::fs::read_dir(&barrier).unwrap().count() >= parties {
                                    window_end = Some(now + WINDOW);
                                }
                            }
                            assert!(now < give_up, "party {token}: not all {parties} parties reached the barrier \
                                in 60 s (these tests need ≥ 2 test threads)");
                        }
                    }
                }
            }
        }
    })
}

#[test]
fn parallel_test_a_hears_only_itself() {
    isolated(|| {
        let heard = exchange("a", barrier_dir("parallel"), 2);
        assert_eq!(heard, BTreeSet::from(["a".to_owned()]));
    });
}

#[test]
fn parallel_test_b_hears_only_itself() {
    isolated(|| {
        let heard = exchange("b", barrier_dir("parallel"), 2);
        assert_eq!(heard, BTreeSet::from(["b".to_owned()]));
    });
}

/// One party of the negative control; started twice, in one domain, by `one_domain_parties_hear_each_other`.
#[test]
#[ignore = "a party started by one_domain_parties_hear_each_other"]
fn control_party() {
    if !in_child() {
        return;
    }
    let token = std::env::var("ACUS_PARTY_TOKEN").unwrap();
    let heard = exchange(&token, barrier_dir("control"), 2);
    assert_eq!(
        heard,
        BTreeSet::from(["c1".to_owned(), "c2".to_owned()]),
        "party {token}"
    );
}

#[test]
fn one_domain_parties_hear_each_other() {
    if in_child() {
        return;
    }
    let lease = DomainLease::acquire();
    let mut parties: Vec<_> = ["c1", "c2"]
        .iter()
        .map(|token| {
            child_command("control_party", &lease)
                .env("ACUS_PARTY_TOKEN", token)
                .spawn()
                .unwrap()
        })
        .collect();
    for party in &mut parties {
        assert!(
            party.wait().unwrap().success(),
            "a party in the shared domain missed the other's token"
        );
    }
}
