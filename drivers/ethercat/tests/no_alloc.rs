//! Acceptance 6: the cycle compute (decode inputs → check → interpolate → CiA 402 → encode
//! outputs) allocates nothing, across every mode: enabling, motion, fault, reset, re-enable.
#![allow(clippy::needless_range_loop)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use acus_ethercat::cycle::{BusHealth, Command, Mode};
use common::pure::PureRig;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn cycle_compute_allocates_nothing_in_any_mode() {
    let cfg = common::config();
    let dt = cfg.cycle_time_s;
    let mut rig = PureRig::new(&cfg.axes, dt);
    let mut cmd = Command::default();
    let mut seen = [false; 5];
    let mut cycles = 0u32;
    let mut counted = |rig: &mut PureRig, bus: BusHealth, cmd: &Command| {
        COUNTING.with(|c| c.set(true));
        let s = rig.master_step(bus, cmd);
        COUNTING.with(|c| c.set(false));
        rig.drives_step(dt);
        cycles += 1;
        s
    };
    // Sanity: the counter works (so a zero below means something).
    COUNTING.with(|c| c.set(true));
    let probe = vec![1u8; 16];
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCS.with(|a| a.get()), 1);
    drop(probe);
    ALLOCS.with(|a| a.set(0));

    // The supervisor's inputs in the loop too: a live e-stop source, a live enable source held, lateness now and then.
    for (i, kind) in [
        acus_ethercat::safety::SourceKind::EmergencyStop,
        acus_ethercat::safety::SourceKind::Enable,
    ]
    .into_iter()
    .enumerate()
    {
        rig.safety.sources[i] = acus_ethercat::safety::SourceSample {
            registered: true,
            kind,
            asserted: kind == acus_ethercat::safety::SourceKind::Enable,
            counter: 0,
            deadline: 50,
        };
        rig.live_sources[i] = true;
    }
    cmd.depth_limit[5] = 0.19;
    cmd.enable = true;
    cmd.enable_seq = 1;
    for _ in 0..50 {
        let s = counted(&mut rig, BusHealth::Ok, &cmd);
        seen[1] |= s.mode == Mode::Enabling;
    }
    cmd.goal[..6].copy_from_slice(&[0.05, -0.05, 0.1, 0.5, -0.5, 0.15]);
    cmd.goal_seq = 1;
    for k in 0..3000 {
        rig.safety.late = k % 50 == 0;
        // The enable released for a while mid-motion: the halt path.
        rig.safety.sources[1].asserted = !(1000..1500).contains(&k);
        let s = counted(&mut rig, BusHealth::Ok, &cmd);
        seen[2] |= s.mode == Mode::Enabled;
    }
    rig.safety.late = false;
    rig.inject_fault(3, 0x2310);
    for k in 0..300 {
        let bus = if k == 5 { BusHealth::Lost } else { BusHealth::Ok };
        let s = counted(&mut rig, bus, &cmd);
        seen[4] |= s.mode == Mode::Faulted;
    }
    cmd.enable = false;
    cmd.reset_seq = 1;
    for _ in 0..100 {
        let s = counted(&mut rig, BusHealth::Ok, &cmd);
        seen[3] |= s.mode == Mode::Resetting;
        seen[0] |= s.mode == Mode::Disabled;
    }
    cmd.enable = true;
    cmd.enable_seq = 2;
    cmd.enable_goal_seq = 1;
    let mut last = counted(&mut rig, BusHealth::Ok, &cmd);
    for _ in 0..100 {
        last = counted(&mut rig, BusHealth::Ok, &cmd);
    }
    assert_eq!(last.mode, Mode::Enabled);
    assert_eq!(
        seen, [true; 5],
        "modes Disabled, Enabling, Enabled, Resetting, Faulted must all be exercised"
    );
    assert_eq!(ALLOCS.with(|a| a.get()), 0, "allocations in {cycles} cycles");
}

/// The bus side of the cycle on ethercrab (in-process wire): one `tx_rx_dc` exchange with PDI
/// encode/decode allocates nothing on the cycle thread either (allocations are counted per
/// thread; the emulator's thread is not the master's).
#[test]
fn ethercrab_exchange_allocates_nothing_on_the_cycle_thread() {
    use acus_ethercat::bus::Bus;
    use acus_ethercat::cia402::{DriveInputs, DriveOutputs};
    use acus_ethercat::ethercrab_bus::{pdu_storage, BusTiming, EthercrabBus};
    use acus_sim_ecat::inproc::InProcessLink;
    use acus_sim_ecat::Network;

    let _serial = common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = common::config();
    let params: Vec<_> = cfg
        .axes
        .iter()
        .map(|a| common::sim_params(a, 0.5 * (a.lower + a.upper)))
        .collect();
    let (tx, rx, pdu_loop) = pdu_storage().unwrap();
    let _link = InProcessLink::spawn(Network::new(&params).unwrap(), tx, rx).unwrap();
    let mut bus = EthercrabBus::bring_up(
        pdu_loop,
        &cfg.axes,
        BusTiming {
            dc_static_sync_iterations: 50,
            // Counting allocations, not timing: a busy shared machine may answer a frame later than 1.5 periods.
            process_data_timeout: std::time::Duration::from_millis(50),
            ..BusTiming::default()
        },
    )
    .unwrap();
    let outputs = [DriveOutputs::default(); 6];
    let mut inputs = [DriveInputs::default(); 6];
    for _ in 0..100 {
        bus.exchange(&outputs, &mut inputs);
    }
    ALLOCS.with(|a| a.set(0));
    let mut ok = 0;
    for _ in 0..1000 {
        COUNTING.with(|c| c.set(true));
        let h = bus.exchange(&outputs, &mut inputs);
        COUNTING.with(|c| c.set(false));
        ok += usize::from(h == acus_ethercat::cycle::BusHealth::Ok);
    }
    assert_eq!(ok, 1000);
    assert_eq!(ALLOCS.with(|a| a.get()), 0, "allocations in 1000 exchanges");
}
