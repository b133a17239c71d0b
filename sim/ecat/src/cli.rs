//! The emulator program (`acus-ecat-emulator`), as a library function so tests can run the very
//! same program in a child process.
//!
//! `acus-ecat-emulator --iface IFACE [--drives N] [--params FILE.yaml] [--drop-percent P] [--clock wall|lockstep]
//! [--sm-watchdog-ms MS]`:
//! serves a line of emulated CiA 402 drives on a network interface (raw AF_PACKET socket,
//! EtherType 0x88A4). Needs CAP_NET_RAW; meant to run inside a network namespace on one end of a
//! veth pair. `--params` is a YAML list of [`DriveParams`] (one per drive; overrides `--drives`).
//! The drives run on the emulator's wall clock by default (`--clock wall`: they move, and their SM watchdog expires,
//! whether or not frames come); `--clock lockstep` steps them one SYNC0 period per process-data frame. The SM watchdog
//! starts at 100 ms as on real ESCs (`--sm-watchdog-ms`, 0 = off; the master may program registers 0x0400/0x0420).
//! Without `--params` the drives are generic ([`DriveParams::default`]): feed `acus emulator-params` output to
//! `--params` to emulate the positioner's drives, or its bring-up refuses them (identity and unit objects differ).
//! Prints `acus-ecat-emulator: ready, N drives on IFACE` to stderr once the socket is bound.

use crate::{raw, Clock, DriveParams, Error, Faults, Network};

/// Run the program with `args` (without the program name). Returns only on error.
pub fn run(args: &[String]) -> Result<(), Error> {
    let mut iface = None;
    let mut drives = 6usize;
    let mut params_file = None;
    let mut drop_percent = 0u8;
    let mut clock = Clock::Wall;
    let mut watchdog_ms: Option<u64> = None;
    let mut it = args.iter();
    let bad = |m: String| Error::Params(m);
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| bad(format!("{a} needs a value")));
        match a.as_str() {
            "--iface" => iface = Some(value()?),
            "--drives" => drives = value()?.parse().map_err(|e| bad(format!("--drives: {e}")))?,
            "--params" => params_file = Some(value()?),
            "--drop-percent" => drop_percent = value()?.parse().map_err(|e| bad(format!("--drop-percent: {e}")))?,
            "--clock" => {
                clock = match value()?.as_str() {
                    "wall" => Clock::Wall,
                    "lockstep" => Clock::Lockstep,
                    c => return Err(bad(format!("--clock {c:?}: wall or lockstep"))),
                }
            }
            "--sm-watchdog-ms" => {
                watchdog_ms = Some(value()?.parse().map_err(|e| bad(format!("--sm-watchdog-ms: {e}")))?)
            }
            other => return Err(bad(format!("unknown argument {other:?}"))),
        }
    }
    let iface = iface.ok_or_else(|| bad("--iface is required".into()))?;
    let params: Vec<DriveParams> = match params_file {
        Some(f) => {
            let text = std::fs::read_to_string(&f).map_err(|e| bad(format!("reading {f}: {e}")))?;
            serde_yaml::from_str(&text).map_err(|e| bad(format!("parsing {f}: {e}")))?
        }
        None => vec![DriveParams::default(); drives],
    };
    let mut network = Network::new(&params)?;
    network.set_clock(clock);
    if let Some(ms) = watchdog_ms {
        network.set_sm_watchdog(std::time::Duration::from_millis(ms));
    }
    network.set_faults(Faults {
        drop_percent: drop_percent.min(100),
        ..Faults::default()
    });
    let socket = raw::RawSocket::open(&iface)?;
    eprintln!("acus-ecat-emulator: ready, {} drives on {iface}", params.len());
    raw::serve(&socket, &mut network)
}
