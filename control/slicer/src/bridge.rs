//! The node: endpoints created once, the node moved to its spinner, then one loop task that owns the bridge's state (the
//! registration, the status, the connected clients, the hold) and serves the server's events, the subscriptions and the
//! hold ticker in turn. Service calls and DICOM reads run in tasks of their own and reply through the shared server.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acus_igtl::message::ENCODING_UTF8;
use acus_igtl::{Body, ClientId, Event, IgtlString, Message, ScalarType, Server};
use acus_nodes::{msg, wire, RunningNode, Spinner};
use futures::StreamExt;
use nalgebra::Isometry3;
use r2r::geometry_msgs::msg::{PointStamped, PoseStamped, TransformStamped};
use r2r::std_msgs::msg::String as StringMsg;
use r2r::std_srvs::srv::{SetBool, Trigger};
use r2r::QosProfile;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::commands::{self, Call, Outcome};
use crate::geometry::{self, PlanPoint};
use crate::status::RobotStatus;
use crate::{Bridge, BridgeConfig, ConnectionHold, SlicerError};

/// Device names on the wire.
const ACK: &str = "ACK";
const NEEDLE_TIP: &str = "NeedleTip";
const T_ROBOT_CT: &str = "T_robot_ct";
const ROBOT: &str = "Robot";

fn ros<T>(r: Result<T, r2r::Error>, context: &str) -> Result<T, SlicerError> {
    r.map_err(|source| SlicerError::Ros {
        context: context.to_owned(),
        source,
    })
}

/// Start the `slicer_bridge` node and its OpenIGTLink server (inside a tokio runtime).
pub async fn start(ctx: &r2r::Context, config: BridgeConfig) -> Result<Bridge, SlicerError> {
    let addr = config.server.addr;
    let (server, events) = Server::bind(config.server)
        .await
        .map_err(|source| SlicerError::Bind { addr, source })?;
    let local_addr = server.local_addr();

    let mut node = ros(
        r2r::Node::create(ctx.clone(), "slicer_bridge", ""),
        "create node slicer_bridge",
    )?;
    let latched = QosProfile::default().transient_local().keep_last(1);
    let mut points = HashMap::new();
    for which in [PlanPoint::Entry, PlanPoint::Target] {
        let publisher = ros(
            node.create_publisher::<PointStamped>(which.topic(), latched.clone()),
            which.topic(),
        )?;
        points.insert(which.topic(), publisher);
    }
    let mut triggers = HashMap::new();
    for service in commands::trigger_services() {
        let client = ros(
            node.create_client::<Trigger::Service>(service, QosProfile::services_default()),
            service,
        )?;
        triggers.insert(service, Arc::new(client));
    }
    let power = Arc::new(ros(
        node.create_client::<SetBool::Service>("/enable", QosProfile::services_default()),
        "/enable",
    )?);
    let streams = Streams {
        tip: Box::new(ros(
            node.subscribe::<PoseStamped>("/needle/tip", QosProfile::default()),
            "subscribe /needle/tip",
        )?),
        registration: Box::new(ros(
            node.subscribe::<TransformStamped>("/registration/transform", latched.clone()),
            "subscribe /registration/transform",
        )?),
        state: Box::new(ros(
            node.subscribe::<StringMsg>(wire::STATE_TOPIC, latched),
            "subscribe /procedure/state",
        )?),
        faults: Box::new(ros(
            node.subscribe::<StringMsg>(wire::FAULTS_TOPIC, QosProfile::default().keep_last(100)),
            "subscribe /procedure/faults",
        )?),
        scans: Box::new(ros(
            node.subscribe::<StringMsg>(wire::SCANS_TOPIC, QosProfile::default().keep_last(100)),
            "subscribe /scans",
        )?),
    };
    let spinner = Spinner::start(node)?;

    let state = Loop {
        server: Arc::new(server),
        points,
        triggers,
        power,
        timeout: config.service_timeout,
        hold: config.hold,
        hold_period: config.hold_period,
        clients: BTreeSet::new(),
        greet: BTreeSet::new(),
        t_robot_ct: None,
        status: RobotStatus::default(),
        shown: None,
    };
    let task = tokio::spawn(state.run(events, streams));
    Ok(Bridge {
        node: RunningNode::new(spinner, vec![task]),
        local_addr,
    })
}

type Stream<T> = Box<dyn futures::Stream<Item = T> + Unpin + Send>;

struct Streams {
    tip: Stream<PoseStamped>,
    registration: Stream<TransformStamped>,
    state: Stream<StringMsg>,
    faults: Stream<StringMsg>,
    scans: Stream<StringMsg>,
}

struct Loop {
    server: Arc<Server>,
    points: HashMap<&'static str, r2r::Publisher<PointStamped>>,
    triggers: HashMap<&'static str, Arc<r2r::Client<Trigger::Service>>>,
    power: Arc<r2r::Client<SetBool::Service>>,
    timeout: Duration,
    hold: Option<Box<dyn ConnectionHold>>,
    hold_period: Duration,
    /// Connected clients, by the server's events.
    clients: BTreeSet<ClientId>,
    /// Clients still to be sent the registration and status (the server enters a client into its table just after
    /// reporting it connected, so the first send can miss; retried every tick).
    greet: BTreeSet<ClientId>,
    t_robot_ct: Option<Isometry3<f64>>,
    status: RobotStatus,
    /// The STATUS last broadcast.
    shown: Option<acus_igtl::Status>,
}

impl Loop {
    async fn run(mut self, mut events: UnboundedReceiver<Event>, mut s: Streams) {
        let mut ticker = tokio::time::interval(self.hold_period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Any stream ending means the node is going away: stop here, and the hold (dropped with us) goes silent.
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.on_event(event),
                    None => break,
                },
                _ = ticker.tick() => self.tick(),
                tip = s.tip.next() => match tip {
                    Some(tip) => self.on_tip(&tip),
                    None => break,
                },
                t = s.registration.next() => match t {
                    Some(t) => self.on_registration(&t),
                    None => break,
                },
                state = s.state.next() => match state {
                    Some(state) => {
                        self.status.state(&state.data, std::time::Instant::now());
                        self.show_status();
                    }
                    None => break,
                },
                fault = s.faults.next() => match fault {
                    Some(fault) => self.on_fault(&fault.data),
                    None => break,
                },
                scan = s.scans.next() => match scan {
                    Some(scan) => self.on_scan(&scan.data),
                    None => break,
                },
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected { client, peer } => {
                tracing::info!("Slicer client {client} connected from {peer}");
                self.clients.insert(client);
                if let Some(hold) = self.hold.as_mut() {
                    hold.refresh(true);
                }
                self.greet.insert(client);
                self.greet_pending();
            }
            Event::Closed { client, reason } => {
                tracing::info!("Slicer client {client} gone: {reason}");
                self.clients.remove(&client);
                self.greet.remove(&client);
                if self.clients.is_empty() {
                    // Now, not at the next tick: the cycle halts within its next period.
                    if let Some(hold) = self.hold.as_mut() {
                        hold.refresh(false);
                    }
                }
            }
            Event::Skipped { .. } => {}
            Event::Message { client, message } => match message.body {
                Body::Point(items) => {
                    for item in &items {
                        let text = self.on_point(item);
                        self.server.send_to(client, string(ACK, text));
                    }
                }
                Body::String(s) => self.on_command(client, &s.text),
                other => tracing::debug!("ignoring a {} from Slicer client {client}", other.type_name()),
            },
        }
    }

    fn tick(&mut self) {
        let connected = !self.clients.is_empty();
        if let Some(hold) = self.hold.as_mut() {
            hold.refresh(connected);
        }
        self.greet_pending();
    }

    fn greet_pending(&mut self) {
        let pending: Vec<ClientId> = self.greet.iter().copied().collect();
        for client in pending {
            if self.server.send_to(client, status_message(self.status.status())) {
                if let Some(t) = &self.t_robot_ct {
                    self.server
                        .send_to(client, transform(T_ROBOT_CT, geometry::robot_ct_mm(t)));
                }
                self.greet.remove(&client);
            }
        }
    }

    fn on_point(&self, item: &acus_igtl::PointItem) -> String {
        let (which, p) = match geometry::plan_point(item) {
            Ok(v) => v,
            Err(refusal) => return refusal,
        };
        let Some(publisher) = self.points.get(which.topic()) else {
            return format!("{}: refused: no publisher", which.name());
        };
        let m = PointStamped {
            header: msg::header("ct"),
            point: r2r::geometry_msgs::msg::Point { x: p.x, y: p.y, z: p.z },
        };
        match publisher.publish(&m) {
            Ok(()) => format!("{}: ok", which.name()),
            Err(e) => format!("{}: refused: publishing {} failed: {e}", which.name(), which.topic()),
        }
    }

    fn on_command(&self, client: ClientId, text: &str) {
        let command = match commands::parse(text) {
            Ok(c) => c,
            Err(unknown) => {
                self.server
                    .send_to(client, string(ACK, commands::unknown_reply(&unknown)));
                return;
            }
        };
        // Weak: a task still running when the bridge stops must not keep its server (and port) alive.
        let server = Arc::downgrade(&self.server);
        let timeout = self.timeout;
        let service = command.call.service();
        let call = match command.call {
            Call::Trigger(name) => match self.triggers.get(name) {
                Some(c) => Caller::Trigger(Arc::clone(c)),
                None => return,
            },
            Call::SetBool(_, data) => Caller::SetBool(Arc::clone(&self.power), data),
        };
        tokio::spawn(async move {
            let outcome = match tokio::time::timeout(timeout, call.call()).await {
                Ok(Ok((success, message))) => Outcome::Answered { success, message },
                Ok(Err(e)) => Outcome::Failed(e.to_string()),
                Err(_) => Outcome::Timeout {
                    service,
                    after: timeout,
                },
            };
            if let Some(server) = server.upgrade() {
                server.send_to(client, string(ACK, commands::reply(command.name, &outcome)));
            }
        });
    }

    fn on_tip(&self, tip: &PoseStamped) {
        let Some(t_robot_ct) = &self.t_robot_ct else { return };
        if tip.header.frame_id != "robot_base" {
            tracing::warn!(
                "ignoring a needle tip in frame '{}': expected 'robot_base'",
                tip.header.frame_id
            );
            return;
        }
        let (p, q) = (&tip.pose.position, &tip.pose.orientation);
        let Some(t_robot_tip) = geometry::isometry([p.x, p.y, p.z], [q.x, q.y, q.z, q.w]) else {
            return;
        };
        self.server
            .broadcast(&transform(NEEDLE_TIP, geometry::tip_ras_mm(t_robot_ct, &t_robot_tip)));
    }

    fn on_registration(&mut self, t: &TransformStamped) {
        if t.header.frame_id != "robot_base" || t.child_frame_id != "ct" {
            tracing::warn!(
                "ignoring a registration {} ← {}: expected robot_base ← ct",
                t.header.frame_id,
                t.child_frame_id
            );
            return;
        }
        let (p, q) = (&t.transform.translation, &t.transform.rotation);
        let Some(iso) = geometry::isometry([p.x, p.y, p.z], [q.x, q.y, q.z, q.w]) else {
            return;
        };
        if self.t_robot_ct.is_some_and(|old| !geometry::changed(&old, &iso)) {
            return;
        }
        self.t_robot_ct = Some(iso);
        self.server
            .broadcast(&transform(T_ROBOT_CT, geometry::robot_ct_mm(&iso)));
    }

    fn on_fault(&mut self, data: &str) {
        match serde_json::from_str::<wire::Fault>(data) {
            Ok(f) => self.status.fault(&f.fault, &f.cause, std::time::Instant::now()),
            Err(_) => self.status.fault("fault", data, std::time::Instant::now()),
        }
        self.show_status();
    }

    fn show_status(&mut self) {
        let now = self.status.status();
        if self.shown.as_ref() != Some(&now) {
            self.server.broadcast(&status_message(now.clone()));
            self.shown = Some(now);
        }
    }

    fn on_scan(&self, data: &str) {
        let scan: wire::Scan = match serde_json::from_str(data) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("ignoring a /scans message that is not a scan record ({e}): {data}");
                return;
            }
        };
        let device = if scan.kind == "planning" {
            "planning".to_owned()
        } else {
            format!("check-{}", scan.n)
        };
        // Weak: a task still running when the bridge stops must not keep its server (and port) alive.
        let server = Arc::downgrade(&self.server);
        tokio::spawn(async move {
            let dir = PathBuf::from(&scan.series_dir);
            match tokio::task::spawn_blocking(move || read_image(&dir)).await {
                Ok(Ok(image)) => {
                    if let Some(server) = server.upgrade() {
                        server.broadcast(&Message::new(device, Body::Image(image)));
                    }
                }
                Ok(Err(e)) => tracing::warn!("not sending {device} to Slicer: {e}"),
                Err(e) => tracing::warn!("reading {device} failed: {e}"),
            }
        });
    }
}

/// A CT series as an IMAGE (i16 HU, RAS mm geometry).
fn read_image(dir: &std::path::Path) -> Result<acus_igtl::Image, String> {
    let (volume, _) = acus_dicom::read_ct_series(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let d = volume.dims();
    let size = [d[0], d[1], d[2]].map(|n| u16::try_from(n).ok());
    let [Some(i), Some(j), Some(k)] = size else {
        return Err(format!(
            "{}: {d:?} voxels exceed an IMAGE's 65535 per axis",
            dir.display()
        ));
    };
    let m = geometry::ijk_to_lps_m(volume.geometry());
    acus_igtl::convert::image_from_volume(&m, [i, j, k], ScalarType::I16, geometry::pixels_le(volume.hu()))
        .ok_or_else(|| format!("{}: voxel count does not match {d:?}", dir.display()))
}

enum Caller {
    Trigger(Arc<r2r::Client<Trigger::Service>>),
    SetBool(Arc<r2r::Client<SetBool::Service>>, bool),
}

impl Caller {
    /// Wait for the service to appear, call it, and return its (success, message).
    async fn call(self) -> Result<(bool, String), r2r::Error> {
        match self {
            Caller::Trigger(client) => {
                r2r::Node::is_available(&*client)?.await?;
                let r = client.request(&Trigger::Request::default())?.await?;
                Ok((r.success, r.message))
            }
            Caller::SetBool(client, data) => {
                r2r::Node::is_available(&*client)?.await?;
                let r = client.request(&SetBool::Request { data })?.await?;
                Ok((r.success, r.message))
            }
        }
    }
}

fn string(device: &str, text: String) -> Message {
    Message::new(
        device,
        Body::String(IgtlString {
            encoding: ENCODING_UTF8,
            text,
        }),
    )
}

fn transform(device: &str, m: nalgebra::Matrix4<f64>) -> Message {
    Message::new(device, Body::Transform(m))
}

fn status_message(status: acus_igtl::Status) -> Message {
    Message::new(ROBOT, Body::Status(status))
}
