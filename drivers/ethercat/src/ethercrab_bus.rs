//! ethercrab backend: bring-up (discovery, PDO assignment and mapping by SDO at PRE-OP, DC SYNC0,
//! SAFE-OP, OP) and the cyclic exchange (`tx_rx_dc`: one LRW plus the DC system-time FRMW).

use std::time::Duration;

use ethercrab::{
    error::Error as EcError,
    std::ethercat_now,
    subdevice_group::{DcConfiguration, HasDc, Op},
    DcSync, DefaultLock, MainDevice, MainDeviceConfig, PduLoop, PduRx, PduStorage, PduTx, RetryBehaviour,
    SubDeviceGroup, Timeouts,
};
use futures_lite::future::block_on;

use crate::bus::Bus;
use crate::cia402::{
    decode_si_unit, DriveInputs, DriveObject, DriveOutputs, ObjectValue, UnitKind, MODE_CSP, QUICK_STOP_OPTION_HOLD,
    RX_LEN, RX_MAPPING, TX_LEN, TX_MAPPING,
};
use crate::config::JointKind;
use crate::config::{AxisConfig, MAX_AXES};
use crate::cycle::BusHealth;
use crate::Error;

/// Frames in flight (power of two).
const MAX_FRAMES: usize = 16;
/// Largest frame payload.
const MAX_PDU_DATA: usize = PduStorage::element_size(1100);
/// Largest process image: 8 drives × (15 + 7) bytes, rounded up.
const MAX_PDI: usize = 256;

type Group = SubDeviceGroup<MAX_AXES, MAX_PDI, DefaultLock, Op, HasDc>;

/// ethercrab's frame storage, split into its TX/RX halves and the loop the `MainDevice` owns.
/// The storage lives for the rest of the process (one bus per process in production).
pub fn pdu_storage() -> Result<(PduTx<'static>, PduRx<'static>, PduLoop<'static>), Error> {
    let storage: &'static PduStorage<MAX_FRAMES, MAX_PDU_DATA> = Box::leak(Box::new(PduStorage::new()));
    storage
        .try_split()
        .map_err(|_| Error::Master("PDU storage already split".into()))
}

/// Timing of the bring-up and the cycle.
#[derive(Debug, Clone, Copy)]
pub struct BusTiming {
    /// Cycle period (SYNC0 period).
    pub cycle: Duration,
    /// How long one bring-up frame (discovery, EEPROM, SDO, state changes) may take before it counts as lost: long,
    /// nothing moves yet.
    pub pdu_timeout: Duration,
    /// How long the cycle waits for its process-data frame before it reports [`BusHealth::Lost`]. On real time keep
    /// it under 2 periods ([`BusTiming::real_time`]: 1.5), so a lost frame or link is reported within 2 periods of
    /// wall time and the cycle is not blocked longer. On a simulated clock (`Pacing::Simulated`) a late frame is the
    /// machine being busy, not a link lost, and wall time is not the drives' time: [`BusTiming::simulated`] waits
    /// [`SIMULATED_PD_TIMEOUT`].
    pub process_data_timeout: Duration,
    /// SM watchdog time to program into every drive at PRE-OP (ESC registers 0x0400/0x0420); `None` keeps the
    /// device's own (100 ms on ESCs at power-on).
    pub sm_watchdog: Option<Duration>,
    /// FRMW iterations of the static DC drift compensation at start-up.
    pub dc_static_sync_iterations: u32,
}

/// Process-data wait on a simulated clock (see [`BusTiming::process_data_timeout`]). Half a second: with seven
/// simulated biopsies on two shared cores (a test binary's parallel tests) a 50 ms wait latched "frame lost" 4 times in
/// 10 runs of launch/tests/guards.rs, a host stall reported as a link fault.
pub const SIMULATED_PD_TIMEOUT: Duration = Duration::from_millis(500);

impl BusTiming {
    /// Real-time pacing with period `cycle`: process data is lost after 1.5 periods.
    pub fn real_time(cycle: Duration) -> Self {
        Self {
            cycle,
            process_data_timeout: cycle * 3 / 2,
            ..Self::default()
        }
    }

    /// A simulated clock with period `cycle`: a bring-up frame and process data may each take
    /// [`SIMULATED_PD_TIMEOUT`] of wall time (drives emulated on a lockstep clock do not age while a frame is late).
    pub fn simulated(cycle: Duration) -> Self {
        Self {
            cycle,
            pdu_timeout: SIMULATED_PD_TIMEOUT,
            process_data_timeout: SIMULATED_PD_TIMEOUT,
            ..Self::default()
        }
    }
}

impl Default for BusTiming {
    /// Real time at 1 kHz.
    fn default() -> Self {
        Self {
            cycle: Duration::from_millis(1),
            pdu_timeout: Duration::from_millis(20),
            process_data_timeout: Duration::from_micros(1500),
            sm_watchdog: None,
            dc_static_sync_iterations: 1000,
        }
    }
}

/// A line of CiA 402 drives in OP on an ethercrab `MainDevice`.
pub struct EthercrabBus {
    maindevice: &'static MainDevice<'static>,
    group: Group,
    n: usize,
    expected_wkc: u16,
    next_wait: Option<Duration>,
    frame_wait: FrameWait,
    pd_timeout: Duration,
    /// Actual positions (counts) read at PRE-OP by SDO, one per drive.
    pub initial_positions: [i32; MAX_AXES],
}

/// Run the ethercrab TX/RX task for a real interface on its own thread.
pub fn spawn_nic_task(
    iface: &str,
    tx: PduTx<'static>,
    rx: PduRx<'static>,
) -> Result<std::thread::JoinHandle<()>, Error> {
    spawn_nic_task_rt(iface, tx, rx, None)
}

/// As [`spawn_nic_task`], the thread on SCHED_FIFO at `fifo_priority` if given (and permitted). A cycle thread on
/// SCHED_FIFO polls for its frame with `sched_yield`, which yields to no normal thread: the thread that carries the
/// frames must then be real-time too, above the cycle's priority ([`TXRX_FIFO_PRIORITY`]).
pub fn spawn_nic_task_rt(
    iface: &str,
    tx: PduTx<'static>,
    rx: PduRx<'static>,
    fifo_priority: Option<i32>,
) -> Result<std::thread::JoinHandle<()>, Error> {
    let task = ethercrab::std::tx_rx_task(iface, tx, rx).map_err(|e| Error::Master(format!("opening {iface}: {e}")))?;
    std::thread::Builder::new()
        .name("ethercat-txrx".into())
        .spawn(move || {
            if let Some(p) = fifo_priority {
                crate::rt::set_current_thread_fifo(p, "EtherCAT TX/RX");
            }
            if let Err(e) = block_on(task) {
                tracing::error!(error = %e, "EtherCAT TX/RX task ended");
            }
        })
        .map_err(|e| Error::Thread(e.to_string()))
}

async fn map_pdos(
    sd: &ethercrab::SubDeviceRef<'_, &mut ethercrab::SubDevice>,
    axis: &AxisConfig,
) -> Result<(), EcError> {
    sd.sdo_write(0x6060, 0, MODE_CSP).await?;
    // ETG1000.6 §5.6.7.4: disable the assignment, rewrite the mapping, enable again.
    for (assign, pdo, entries) in [
        (0x1C12u16, 0x1600u16, &RX_MAPPING[..]),
        (0x1C13, 0x1A00, &TX_MAPPING[..]),
    ] {
        sd.sdo_write(assign, 0, 0u8).await?;
        sd.sdo_write(pdo, 0, 0u8).await?;
        for (i, e) in entries.iter().enumerate() {
            sd.sdo_write(pdo, i as u8 + 1, *e).await?;
        }
        sd.sdo_write(pdo, 0, entries.len() as u8).await?;
        sd.sdo_write(assign, 1, pdo).await?;
        sd.sdo_write(assign, 0, 1u8).await?;
    }
    sd.sdo_write(0x6065, 0, axis.following_error_window_counts()).await?;
    sd.sdo_write(0x605A, 0, QUICK_STOP_OPTION_HOLD).await?;
    sd.sdo_write(0x607C, 0, axis.to_counts(axis.homing_offset)).await?;
    Ok(())
}

/// Relative tolerance of ratio comparisons (a ratio of integers against the YAML's decimal).
const RATIO_TOLERANCE: f64 = 1e-9;
/// Relative tolerance of the feed constant in SI (the drive's unit may round the lead, e.g. to 1 nm).
const FEED_TOLERANCE: f64 = 1e-6;

async fn read_u32(
    sd: &ethercrab::SubDeviceRef<'_, &mut ethercrab::SubDevice>,
    axis: usize,
    cfg: &AxisConfig,
    object: DriveObject,
    index: u16,
    sub: u8,
) -> Result<u32, Error> {
    sd.sdo_read::<u32>(index, sub)
        .await
        .map_err(|e| Error::DriveObjectUnreadable {
            axis,
            joint: cfg.joint.clone(),
            object,
            reason: e.to_string(),
        })
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}

/// Compare a drive, at PRE-OP, with its configuration: identity (0x1018, where the YAML names it) and the unit objects
/// it holds (0x608F, 0x6091, 0x6092 with its unit 0x60A8). The counts the cycle converts with follow from these, so a
/// drive that differs would move the joint by another distance than commanded.
async fn verify_drive(
    sd: &ethercrab::SubDeviceRef<'_, &mut ethercrab::SubDevice>,
    axis: usize,
    cfg: &AxisConfig,
) -> Result<(), Error> {
    let mismatch = |object, found, expected| Error::DriveMismatch {
        axis,
        joint: cfg.joint.clone(),
        object,
        found,
        expected,
    };
    for (object, sub, want) in [
        (DriveObject::VendorId, 1u8, cfg.vendor_id),
        (DriveObject::ProductCode, 2, cfg.product_code),
    ] {
        if let Some(want) = want {
            let got = read_u32(sd, axis, cfg, object, 0x1018, sub).await?;
            if got != want {
                return Err(mismatch(object, ObjectValue::Id(got), ObjectValue::Id(want)));
            }
        }
    }
    let ratio = |object, index| async move {
        let a = read_u32(sd, axis, cfg, object, index, 1).await?;
        let b = read_u32(sd, axis, cfg, object, index, 2).await?;
        Ok::<f64, Error>(if b == 0 { f64::NAN } else { f64::from(a) / f64::from(b) })
    };
    let encoder = ratio(DriveObject::EncoderResolution, 0x608F).await?;
    let want = f64::from(cfg.encoder_counts_per_rev);
    if !close(encoder, want, RATIO_TOLERANCE) {
        return Err(mismatch(
            DriveObject::EncoderResolution,
            ObjectValue::Number(encoder),
            ObjectValue::Number(want),
        ));
    }
    let gear = ratio(DriveObject::GearRatio, 0x6091).await?;
    if !close(gear, cfg.gear_ratio, RATIO_TOLERANCE) {
        return Err(mismatch(
            DriveObject::GearRatio,
            ObjectValue::Number(gear),
            ObjectValue::Number(cfg.gear_ratio),
        ));
    }
    let feed = ratio(DriveObject::FeedConstant, 0x6092).await?;
    let (kind, unit) = decode_si_unit(read_u32(sd, axis, cfg, DriveObject::PositionUnit, 0x60A8, 0).await?);
    let (want_kind, want_feed) = match (cfg.kind, cfg.lead_m_per_rev) {
        (JointKind::Prismatic, Some(lead)) => (UnitKind::Length, lead),
        _ => (UnitKind::Angle, std::f64::consts::TAU),
    };
    if kind != want_kind {
        return Err(mismatch(
            DriveObject::PositionUnit,
            ObjectValue::Kind(kind),
            ObjectValue::Kind(want_kind),
        ));
    }
    if !close(feed * unit, want_feed, FEED_TOLERANCE) {
        return Err(mismatch(
            DriveObject::FeedConstant,
            ObjectValue::Number(feed * unit),
            ObjectValue::Number(want_feed),
        ));
    }
    Ok(())
}

impl EthercrabBus {
    /// Bring the line up to OP with DC SYNC0 and CSP mapped; blocks until done.
    pub fn bring_up(pdu_loop: PduLoop<'static>, axes: &[AxisConfig], timing: BusTiming) -> Result<Self, Error> {
        let maindevice: &'static MainDevice<'static> = Box::leak(Box::new(MainDevice::new(
            pdu_loop,
            Timeouts {
                pdu: timing.pdu_timeout,
                state_transition: Duration::from_secs(10),
                wait_loop_delay: Duration::from_millis(1),
                mailbox_response: Duration::from_secs(1),
                // Bring-up only, like the EEPROM: a loaded machine must not fail the SDO exchange.
                mailbox_echo: Duration::from_secs(1),
                // ethercrab's 10 ms leaves no margin on a loaded machine; the EEPROM is read once, at bring-up.
                eeprom: Duration::from_millis(200),
            },
            MainDeviceConfig {
                dc_static_sync_iterations: timing.dc_static_sync_iterations,
                retry_behaviour: RetryBehaviour::None,
            },
        )));
        block_on(Self::bring_up_async(maindevice, axes, timing))
    }

    async fn bring_up_async(
        md: &'static MainDevice<'static>,
        axes: &[AxisConfig],
        timing: BusTiming,
    ) -> Result<Self, Error> {
        let mut group = md.init_single_group::<MAX_AXES, MAX_PDI>(ethercat_now).await?;
        if group.len() != axes.len() {
            return Err(Error::DriveCount {
                found: group.len(),
                expected: axes.len(),
            });
        }
        let mut initial_positions = [0i32; MAX_AXES];
        // Every drive is verified before any is configured: a line that does not match its configuration is refused
        // whole, at PRE-OP.
        for (i, (sd, axis)) in group.iter_mut(md).zip(axes).enumerate() {
            verify_drive(&sd, i, axis).await?;
        }
        for (i, (mut sd, axis)) in group.iter_mut(md).zip(axes).enumerate() {
            if let Some(wd) = timing.sm_watchdog {
                // Watchdog time unit 100 µs (divider 2498: (2498 + 2) × 40 ns), then the SM watchdog in those units.
                let units = wd.as_micros().div_ceil(100).clamp(1, u128::from(u16::MAX)) as u16;
                sd.register_write(0x0400u16, 2498u16).await?;
                sd.register_write(0x0420u16, units).await?;
            }
            map_pdos(&sd, axis).await?;
            initial_positions[i] = sd.sdo_read::<i32>(0x6064, 0).await?;
            sd.set_dc_sync(DcSync::Sync0);
            tracing::info!(axis = %axis.joint, name = sd.name(), position = initial_positions[i], "drive mapped");
        }
        let group = group.into_pre_op_pdi(md).await?;
        for (i, sd) in group.iter(md).enumerate() {
            let (inp, out) = (sd.inputs_raw().len(), sd.outputs_raw().len());
            if inp != TX_LEN || out != RX_LEN {
                return Err(Error::PdoSize {
                    axis: i,
                    inputs: inp,
                    outputs: out,
                    want_in: TX_LEN,
                    want_out: RX_LEN,
                });
            }
        }
        let group = group
            .configure_dc_sync(
                md,
                DcConfiguration {
                    start_delay: Duration::from_millis(100),
                    sync0_period: timing.cycle,
                    sync0_shift: timing.cycle / 2,
                },
            )
            .await?;
        let group = group.into_safe_op(md).await?;
        let group = group.request_into_op(md).await?;
        // Exchange process data until every SubDevice reports OP (DC devices need the cycle running).
        let limit = 5000u32;
        for k in 0.. {
            if k >= limit {
                return Err(Error::OpTimeout(limit));
            }
            let now = std::time::Instant::now();
            // Outputs stay zero (controlword 0 = disable voltage, mode 0) until the cycle starts.
            match group.tx_rx_dc(md).await {
                Ok(r) if r.all_op() => break,
                Ok(r) => std::thread::sleep(r.extra.next_cycle_wait.saturating_sub(now.elapsed()).min(timing.cycle)),
                Err(EcError::Timeout(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let n = axes.len();
        Ok(Self {
            maindevice: md,
            group,
            n,
            expected_wkc: 3 * n as u16,
            next_wait: None,
            frame_wait: FrameWait { waker: None },
            pd_timeout: timing.process_data_timeout,
            initial_positions,
        })
    }
}

/// SCHED_FIFO priority of the frame-carrying thread beside a real-time cycle thread (FIFO 80).
pub const TXRX_FIFO_PRIORITY: i32 = 85;

/// How long the cycle thread polls for its process-data frame before it parks.
const FRAME_SPIN: Duration = Duration::from_micros(200);

/// Wakes the thread that waits for a frame.
struct ThreadWaker(std::thread::Thread);

impl std::task::Wake for ThreadWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Waits for a process-data exchange the way a real-time master does: it polls (yielding the core between polls) while
/// the frame is usually on its way back, and parks only after [`FRAME_SPIN`]; parking and waking a thread costs as
/// much as the round trip. The waker is made once per thread (outside the loop's steady state), so waiting allocates
/// nothing. The wait ends at the process-data deadline: the exchange is dropped, which releases its frame (ethercrab's
/// `ReceiveFrameFut` frees its slot on drop), so a late reply finds no frame and is discarded.
struct FrameWait {
    waker: Option<(std::thread::ThreadId, std::task::Waker)>,
}

impl FrameWait {
    fn block_on<F: std::future::Future>(&mut self, future: F, timeout: Duration) -> Option<F::Output> {
        let me = std::thread::current();
        let waker = match &self.waker {
            Some((id, w)) if *id == me.id() => w,
            _ => {
                let w = std::task::Waker::from(std::sync::Arc::new(ThreadWaker(me.clone())));
                &self.waker.insert((me.id(), w)).1
            }
        };
        let mut cx = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        let started = std::time::Instant::now();
        loop {
            if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return Some(out);
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return None;
            }
            // Poll while the frame is usually on its way back and again just before the deadline (a parked thread
            // wakes late), park in between.
            let left = timeout - waited;
            if waited < FRAME_SPIN || left <= FRAME_SPIN {
                std::thread::yield_now();
            } else {
                std::thread::park_timeout((left - FRAME_SPIN).min(Duration::from_millis(1)));
            }
        }
    }
}

impl Bus for EthercrabBus {
    fn drives(&self) -> usize {
        self.n
    }

    fn exchange(&mut self, outputs: &[DriveOutputs], inputs: &mut [DriveInputs]) -> BusHealth {
        for (sd, o) in self.group.iter(self.maindevice).zip(outputs) {
            let mut raw = sd.outputs_raw_mut();
            o.encode(&mut raw);
        }
        let Some(result) = self
            .frame_wait
            .block_on(self.group.tx_rx_dc(self.maindevice), self.pd_timeout)
        else {
            self.next_wait = None;
            return BusHealth::Lost;
        };
        match result {
            Ok(r) => {
                self.next_wait = Some(r.extra.next_cycle_wait);
                if r.working_counter != self.expected_wkc {
                    return BusHealth::WorkingCounter {
                        got: r.working_counter,
                        expected: self.expected_wkc,
                    };
                }
                if !r.all_op() {
                    return BusHealth::NotOperational;
                }
                for (sd, i) in self.group.iter(self.maindevice).zip(inputs.iter_mut()) {
                    if let Some(d) = DriveInputs::decode(&sd.inputs_raw()) {
                        *i = d;
                    }
                }
                BusHealth::Ok
            }
            Err(EcError::WorkingCounter { expected, received }) => BusHealth::WorkingCounter {
                got: received,
                expected,
            },
            Err(_) => {
                self.next_wait = None;
                BusHealth::Lost
            }
        }
    }

    fn next_cycle_wait(&self) -> Option<Duration> {
        self.next_wait
    }
}
