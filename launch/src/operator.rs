//! The operator of the simulated biopsy: drives the procedure through its ROS 2 interface alone (services and topics over
//! DDS), as a console or 3D Slicer would, and keeps a log of every answer.

use std::collections::BTreeMap;
use std::time::Duration;

use acus_control::frames::{Ct, Point};
use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use r2r::diagnostic_msgs::msg::DiagnosticArray;
use r2r::geometry_msgs::msg::{Point as PointMsg, PointStamped};
use r2r::std_msgs::msg::{Bool, Header};
use r2r::std_srvs::srv::{SetBool, Trigger};
use r2r::QosProfile;

/// One answer of the procedure.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Service called.
    pub service: String,
    /// Its success flag.
    pub success: bool,
    /// Its one line.
    pub message: String,
}

/// What the operator saw.
#[derive(Clone, Debug, Default)]
pub struct BiopsyLog {
    /// Every answer, in order.
    pub answers: Vec<Answer>,
    /// Check-scan figures from `/diagnostics` (key → value), in order.
    pub check_scans: Vec<BTreeMap<String, String>>,
    /// Registration figures from `/diagnostics`.
    pub registration: BTreeMap<String, String>,
}

/// Services the operator uses.
const SERVICES: [&str; 8] = [
    "/procedure/scan",
    "/registration/register",
    "/plan",
    "/align",
    "/insert_step",
    "/confirm",
    "/retract",
    "/reset_fault",
];

/// Longest a request may take (a step with its check scan takes seconds; a real-time run a minute or two).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(900);

/// Steps beyond which the operator gives up (a plan has at most `depth / step` steps plus corrections).
const MAX_STEPS: usize = 20;

/// Check scans the operator takes again after one gave no answer, in one biopsy.
const MAX_RETAKES: usize = 2;

/// Steps the operator asks for again after one was held for want of a breath-hold in the gating window, in one biopsy
/// (each ask is the gate's tries over again, after coaching the patient).
const MAX_ASKS_AGAIN: usize = 2;

/// The operator's node: service clients, the e-stop heartbeat and the plan points.
pub struct Operator {
    clients: BTreeMap<&'static str, r2r::Client<Trigger::Service>>,
    enable: r2r::Client<SetBool::Service>,
    diagnostics: futures::channel::mpsc::Receiver<DiagnosticArray>,
    _spinner: acus_nodes::Spinner,
    heartbeat: tokio::task::JoinHandle<()>,
    console: String,
    estop_held: std::sync::Arc<std::sync::atomic::AtomicU8>,
    deadman_held: std::sync::Arc<std::sync::atomic::AtomicU8>,
    /// Called with each answer as it arrives (progress display).
    pub on_answer: Box<dyn FnMut(&Answer) + Send>,
    /// The operator's foot on a hardware enable pedal, if the system has one: pressed with the console's deadman.
    pub pedal: Option<Box<dyn Fn(bool) + Send>>,
}

impl Operator {
    /// Create the operator node of the console `operator` (the default configuration's one console).
    pub async fn start(ctx: &r2r::Context, entry: Point<Ct>, target: Point<Ct>) -> Result<Self> {
        Self::start_console(ctx, "operator", entry, target).await
    }

    /// Create the operator node of console `console`; it publishes the console's e-stop (released) and deadman (released)
    /// at 20 Hz from now on, like an e-stop box and a foot switch, and the entry and target (transient local).
    pub async fn start_console(ctx: &r2r::Context, console: &str, entry: Point<Ct>, target: Point<Ct>) -> Result<Self> {
        let mut node = r2r::Node::create(ctx.clone(), &format!("acus_console_{console}"), "")?;
        let mut clients = BTreeMap::new();
        for name in SERVICES {
            clients.insert(
                name,
                node.create_client::<Trigger::Service>(name, QosProfile::services_default())?,
            );
        }
        let enable = node.create_client::<SetBool::Service>("/enable", QosProfile::services_default())?;
        let estop = node.create_publisher::<Bool>(&format!("/estop/{console}"), QosProfile::default())?;
        let deadman = node.create_publisher::<Bool>(&format!("/deadman/{console}"), QosProfile::default())?;
        let latched = QosProfile::default().transient_local().keep_last(1);
        let entry_pub = node.create_publisher::<PointStamped>("/plan/entry", latched.clone())?;
        let target_pub = node.create_publisher::<PointStamped>("/plan/target", latched)?;
        let diagnostics = node.subscribe::<DiagnosticArray>("/diagnostics", QosProfile::default().keep_last(100))?;
        let available: Vec<_> = clients
            .values()
            .map(|c| r2r::Node::is_available(c))
            .chain(std::iter::once(r2r::Node::is_available(&enable)))
            .collect::<Result<_, _>>()?;
        let spinner = acus_nodes::Spinner::start(node)?;
        for wait in available {
            tokio::time::timeout(Duration::from_secs(30), wait)
                .await
                .map_err(|_| anyhow!("acus services not available within 30 s"))??;
        }
        let point = |p: &Point<Ct>| PointStamped {
            header: Header {
                stamp: acus_nodes::msg::now(),
                frame_id: "ct".into(),
            },
            point: PointMsg {
                x: p.coords.x,
                y: p.coords.y,
                z: p.coords.z,
            },
        };
        entry_pub.publish(&point(&entry))?;
        target_pub.publish(&point(&target))?;
        let estop_held = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(RELEASED));
        let deadman_held = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(RELEASED));
        let (held, foot) = (std::sync::Arc::clone(&estop_held), std::sync::Arc::clone(&deadman_held));
        let heartbeat = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(acus_nodes::procedure::CONSOLE_PERIOD);
            loop {
                ticker.tick().await;
                for (level, publisher) in [(&held, &estop), (&foot, &deadman)] {
                    let state = level.load(std::sync::atomic::Ordering::Relaxed);
                    if state != SILENT && publisher.publish(&Bool { data: state == PRESSED }).is_err() {
                        return;
                    }
                }
            }
        });
        let (tx, rx) = futures::channel::mpsc::channel(256);
        let mut diagnostics = diagnostics;
        tokio::spawn(async move {
            let mut tx = tx;
            while let Some(m) = diagnostics.next().await {
                if tx.try_send(m).is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            clients,
            enable,
            diagnostics: rx,
            _spinner: spinner,
            heartbeat,
            console: console.to_owned(),
            estop_held,
            deadman_held,
            on_answer: Box::new(|_| {}),
            pedal: None,
        })
    }

    /// Press (true) or release the e-stop: the next heartbeat (≤ 50 ms) carries it.
    pub fn hold_estop(&self, held: bool) {
        self.estop_button().hold(held);
    }

    /// The e-stop button of this console, to press from elsewhere (another task) while a request is in flight.
    pub fn estop_button(&self) -> EStopButton {
        EStopButton(std::sync::Arc::clone(&self.estop_held))
    }

    /// Call a Trigger service and log the answer.
    pub async fn call(&mut self, service: &'static str, log: &mut BiopsyLog) -> Result<Answer> {
        let client = self
            .clients
            .get(service)
            .ok_or_else(|| anyhow!("no client for {service}"))?;
        let response = tokio::time::timeout(ANSWER_TIMEOUT, client.request(&Trigger::Request {})?)
            .await
            .map_err(|_| anyhow!("{service} did not answer within {} s", ANSWER_TIMEOUT.as_secs()))?
            .with_context(|| format!("calling {service}"))?;
        let answer = Answer {
            service: service.into(),
            success: response.success,
            message: response.message,
        };
        (self.on_answer)(&answer);
        log.answers.push(answer.clone());
        Ok(answer)
    }

    /// The deadman (foot switch) of this console, to release or silence from elsewhere.
    pub fn deadman(&self) -> EStopButton {
        EStopButton(std::sync::Arc::clone(&self.deadman_held))
    }

    /// Hold the deadman and power the drives (true), or release the deadman (false; the drives stay powered and hold
    /// where the motion stopped).
    pub async fn set_enable(&mut self, held: bool, log: &mut BiopsyLog) -> Result<Answer> {
        self.deadman().hold(held);
        if let Some(pedal) = &self.pedal {
            pedal(held);
        }
        if !held {
            let answer = Answer {
                service: format!("/deadman/{}", self.console),
                success: true,
                message: "deadman released".into(),
            };
            (self.on_answer)(&answer);
            log.answers.push(answer.clone());
            return Ok(answer);
        }
        let response = tokio::time::timeout(ANSWER_TIMEOUT, self.enable.request(&SetBool::Request { data: held })?)
            .await
            .map_err(|_| anyhow!("/enable did not answer within {} s", ANSWER_TIMEOUT.as_secs()))?
            .context("calling /enable")?;
        let answer = Answer {
            service: "/enable".into(),
            success: response.success,
            message: response.message,
        };
        (self.on_answer)(&answer);
        log.answers.push(answer.clone());
        Ok(answer)
    }

    /// Run the whole biopsy: planning scan, registration, plan, align, steps with check scans until the procedure is
    /// ready to confirm, confirm, retract. Stops at the first refusal with its message.
    pub async fn biopsy(&mut self) -> Result<BiopsyLog> {
        let mut log = BiopsyLog::default();
        let scan = must(self.call("/procedure/scan", &mut log).await?)?;
        let series = scan
            .message
            .split("planning scan written to ")
            .nth(1)
            .and_then(|rest| rest.split(" → ").next())
            .ok_or_else(|| anyhow!("planning scan answer names no series: {}", scan.message))?
            .to_owned();
        // The scanner announces the series on /scan/series; the registration node may hear it a moment after we do.
        let mut registered = None;
        for _ in 0..100 {
            let answer = self.call("/registration/register", &mut log).await?;
            if answer.message.contains(&series) {
                registered = Some(answer);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        must(registered.ok_or_else(|| anyhow!("the registration never saw the planning scan {series}"))?)?;
        // A console that came up after the cycle finds the stop its silence latched: the operator clears it once, here,
        // as one presses reset at the start of a session (refused, and reported, if a cause persists).
        // (If a cause persists the reset is refused and powering the drives below says why.)
        self.call("/reset_fault", &mut log).await?;
        must(self.set_enable(true, &mut log).await?)?;
        must(self.call("/plan", &mut log).await?)?;
        must(self.call("/align", &mut log).await?)?;
        let (mut retakes, mut asked_again) = (0, 0);
        for _ in 0..MAX_STEPS + MAX_RETAKES + MAX_ASKS_AGAIN {
            let step = self.call("/insert_step", &mut log).await?;
            // A check scan that gave no answer (the needle not found, no breath-hold for it): the operator takes it once
            // more, as the procedure offers ("insert to scan again, or retract"), before giving up.
            if !step.success
                && step.message.ends_with("failed: insert to scan again, or retract")
                && retakes < MAX_RETAKES
            {
                retakes += 1;
                continue;
            }
            // A step held for want of a good breath-hold, the needle held: the operator coaches the patient and asks
            // again, as the answer says.
            if !step.success
                && step.message.ends_with("(no breath-hold within the gating window)")
                && asked_again < MAX_ASKS_AGAIN
            {
                asked_again += 1;
                continue;
            }
            let step = must(step)?;
            if step.message.ends_with("→ ready to confirm") {
                break;
            }
        }
        must(self.call("/confirm", &mut log).await?)?;
        must(self.call("/retract", &mut log).await?)?;
        must(self.set_enable(false, &mut log).await?)?;
        self.collect_diagnostics(&mut log);
        Ok(log)
    }

    /// Move the figures that arrived on `/diagnostics` into the log.
    pub fn collect_diagnostics(&mut self, log: &mut BiopsyLog) {
        while let Ok(array) = self.diagnostics.try_recv() {
            for status in array.status {
                let values: BTreeMap<String, String> = status.values.into_iter().map(|kv| (kv.key, kv.value)).collect();
                match status.name.as_str() {
                    "acus: registration" if status.level == 0 => log.registration = values,
                    "acus: check scan" => log.check_scans.push(values),
                    _ => {}
                }
            }
        }
    }
}

/// A button of an [`Operator`]'s console (its e-stop, or its deadman).
#[derive(Clone)]
pub struct EStopButton(std::sync::Arc<std::sync::atomic::AtomicU8>);

const RELEASED: u8 = 0;
const PRESSED: u8 = 1;
const SILENT: u8 = 2;

impl EStopButton {
    /// Press (true: e-stop pressed, deadman held) or release; the console's next heartbeat (≤ 50 ms) carries it.
    pub fn hold(&self, held: bool) {
        self.0.store(
            if held { PRESSED } else { RELEASED },
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Stop publishing its state (a cut cable, a crashed console).
    pub fn fall_silent(&self) {
        self.0.store(SILENT, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The answer, or an error with its message when it is a refusal.
fn must(answer: Answer) -> Result<Answer> {
    if !answer.success {
        bail!("{} refused: {}", answer.service, answer.message);
    }
    Ok(answer)
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}
