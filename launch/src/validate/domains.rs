//! ROS domains for the trial processes. Two `acus sim` processes in one ROS domain hear each other's services, so every
//! worker runs its trials in a domain of its own, held for the whole study.
//!
//! A domain is leased with the same lock files as the test harness (`acus_nodes::testing::DomainLease`:
//! `<temp>/acus-ros-domain-<id>.lock`, an exclusive OS file lock), so a study and the test suite can run side by side
//! on a shared machine without crossing. The range stops at 101: above it Fast DDS's ports (7400 + 250 × domain + …)
//! enter Linux's ephemeral port range, where another socket may already hold them.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use anyhow::{bail, Result};

/// Domains a study may lease, highest first (the test harness starts at a pseudo-random one: they rarely meet).
const DOMAINS: std::ops::RangeInclusive<u16> = 20..=101;

/// One leased `ROS_DOMAIN_ID`; released when dropped (the OS drops the lock of a crashed process too).
#[derive(Debug)]
pub struct DomainLease {
    id: u16,
    _lock: File,
}

impl DomainLease {
    /// The `ROS_DOMAIN_ID`.
    pub fn id(&self) -> u16 {
        self.id
    }
}

fn lock_path(id: u16) -> PathBuf {
    std::env::temp_dir().join(format!("acus-ros-domain-{id}.lock"))
}

/// Lease `n` domains no other acus process (study or test) holds now; fails if fewer are free (nothing waits).
pub fn lease(n: usize) -> Result<Vec<DomainLease>> {
    let mut leases = Vec::with_capacity(n);
    for id in DOMAINS.rev() {
        if leases.len() == n {
            break;
        }
        let path = lock_path(id);
        let file = match OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
            Ok(f) => f,
            Err(e) => bail!("cannot open the domain lock {}: {e}", path.display()),
        };
        if file.try_lock().is_ok() {
            leases.push(DomainLease { id, _lock: file });
        }
    }
    if leases.len() < n {
        bail!(
            "{n} ROS domains wanted, {} free in {DOMAINS:?} (others are leased by running acus studies or tests)",
            leases.len()
        );
    }
    Ok(leases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leased_domains_are_distinct_and_held_until_dropped() {
        let a = lease(3).unwrap();
        let mut ids: Vec<u16> = a.iter().map(DomainLease::id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 3);
        let b = lease(2).unwrap();
        assert!(
            b.iter().all(|l| !ids.contains(&l.id())),
            "a held domain is not leased again"
        );
        // A held domain's lock cannot be taken by anyone else.
        let file = OpenOptions::new().write(true).open(lock_path(ids[0])).unwrap();
        assert!(file.try_lock().is_err());
    }
}
