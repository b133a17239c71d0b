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
use crate::cia402::{DriveInputs, DriveOutputs, MODE_CSP, RX_LEN, RX_MAPPING, TX_LEN, TX_MAPPING};
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
    /// How long one frame may take before it counts as lost.
    pub pdu_timeout: Duration,
    /// FRMW iterations of the static DC drift compensation at start-up.
    pub dc_static_sync_iterations: u32,
}

impl Default for BusTiming {
    fn default() -> Self {
        Self {
            cycle: Duration::from_millis(1),
            pdu_timeout: Duration::from_millis(20),
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
    /// Actual positions (counts) read at PRE-OP by SDO, one per drive.
    pub initial_positions: [i32; MAX_AXES],
}

/// Run the ethercrab TX/RX task for a real interface on its own thread.
pub fn spawn_nic_task(
    iface: &str,
    tx: PduTx<'static>,
    rx: PduRx<'static>,
) -> Result<std::thread::JoinHandle<()>, Error> {
    let task = ethercrab::std::tx_rx_task(iface, tx, rx).map_err(|e| Error::Master(format!("opening {iface}: {e}")))?;
    std::thread::Builder::new()
        .name("ethercat-txrx".into())
        .spawn(move || {
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
    sd.sdo_write(0x607C, 0, axis.to_counts(axis.homing_offset)).await?;
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
                // ethercrab's 10 ms leaves no margin on a loaded machine; the EEPROM is read once, at bring-up.
                eeprom: Duration::from_millis(200),
                ..Timeouts::default()
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
        for (i, (mut sd, axis)) in group.iter_mut(md).zip(axes).enumerate() {
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
            initial_positions,
        })
    }
}

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
/// nothing; the exchange's own timeout bounds the wait.
struct FrameWait {
    waker: Option<(std::thread::ThreadId, std::task::Waker)>,
}

impl FrameWait {
    fn block_on<F: std::future::Future>(&mut self, future: F) -> F::Output {
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
                return out;
            }
            if started.elapsed() < FRAME_SPIN {
                std::thread::yield_now();
            } else {
                std::thread::park_timeout(Duration::from_millis(1));
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
        match self.frame_wait.block_on(self.group.tx_rx_dc(self.maindevice)) {
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
