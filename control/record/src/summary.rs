//! A record read back as the procedure's timeline: requests, answers, state changes, faults, scans and check-scan errors,
//! with a message count per topic. Reads finished records and truncated ones (a killed recorder's: no summary, no footer)
//! alike, by streaming the data section; a truncated record says so.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use mcap::read::MessageStream;
use r2r::WrappedTypesupport;

use crate::error::RecordError;
use crate::formats::{self, Answer, Fault, Request, Scan};

/// One event of the procedure.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Request(Request),
    Answer(Answer),
    /// The procedure entered this state.
    State(String),
    Fault(Fault),
    Scan(Scan),
    /// A check scan's tip-to-target distance, m, from `/diagnostics` (`name`: the status's name).
    CheckScan {
        name: String,
        tip_to_target: f64,
    },
    /// A message of a timeline topic that does not parse (kept, not dropped: the record is an audit trail).
    Unreadable {
        topic: String,
        reason: String,
    },
}

/// An event at its log time.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// ns since the UNIX epoch.
    pub time_ns: u64,
    pub event: Event,
}

/// What [`summary`] found in a record.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub path: PathBuf,
    /// Messages per topic.
    pub counts: BTreeMap<String, u64>,
    pub timeline: Vec<Entry>,
    /// Log time of the first and last message, ns since the UNIX epoch.
    pub span_ns: Option<(u64, u64)>,
    /// Why reading stopped before a proper end (a killed recorder): everything before it was read.
    pub truncated: Option<String>,
}

impl Summary {
    /// The last state the procedure entered.
    pub fn final_state(&self) -> Option<&str> {
        self.timeline.iter().rev().find_map(|e| match &e.event {
            Event::State(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// Messages in the record.
    pub fn messages(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// Read the record at `path`.
pub fn summary(path: &Path) -> Result<Summary, RecordError> {
    let bytes = std::fs::read(path).map_err(|source| RecordError::Io {
        what: "cannot read",
        path: path.to_owned(),
        source,
    })?;
    summarize(path, &bytes)
}

/// [`summary`] of a record already in memory.
pub fn summarize(path: &Path, bytes: &[u8]) -> Result<Summary, RecordError> {
    let stream = MessageStream::new(bytes).map_err(|e| RecordError::NotARecord {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut out = Summary {
        path: path.to_owned(),
        counts: BTreeMap::new(),
        timeline: Vec::new(),
        span_ns: None,
        truncated: None,
    };
    for message in stream {
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                out.truncated = Some(e.to_string());
                break;
            }
        };
        let topic = message.channel.topic.as_str();
        *out.counts.entry(topic.to_owned()).or_insert(0) += 1;
        let t = message.log_time;
        out.span_ns = Some(out.span_ns.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
        for event in events(topic, &message.data) {
            out.timeline.push(Entry { time_ns: t, event });
        }
    }
    if out.counts.is_empty() && out.truncated.is_some() {
        return Err(RecordError::NotARecord {
            path: path.to_owned(),
            reason: out.truncated.unwrap_or_default(),
        });
    }
    out.timeline.sort_by_key(|e| e.time_ns);
    Ok(out)
}

/// The timeline events in one message (none for topics that are not part of the timeline).
fn events(topic: &str, cdr: &[u8]) -> Vec<Event> {
    let unreadable = |reason: String| {
        vec![Event::Unreadable {
            topic: topic.to_owned(),
            reason,
        }]
    };
    if topic == formats::DIAGNOSTICS_TOPIC {
        return match r2r::diagnostic_msgs::msg::DiagnosticArray::from_serialized_bytes(cdr) {
            Ok(array) => array
                .status
                .iter()
                .flat_map(|s| {
                    s.values
                        .iter()
                        .filter(|kv| kv.key == formats::TIP_TO_TARGET_KEY)
                        .map(|kv| match kv.value.trim().parse::<f64>() {
                            Ok(mm) => Event::CheckScan {
                                name: s.name.clone(),
                                tip_to_target: mm * 1e-3,
                            },
                            Err(e) => Event::Unreadable {
                                topic: topic.to_owned(),
                                reason: format!("{:?} = {:?}: {e}", kv.key, kv.value),
                            },
                        })
                })
                .collect(),
            Err(e) => unreadable(format!("not a DiagnosticArray: {e}")),
        };
    }
    let json = [
        formats::STATE_TOPIC,
        formats::REQUESTS_TOPIC,
        formats::ANSWERS_TOPIC,
        formats::FAULTS_TOPIC,
        formats::SCANS_TOPIC,
    ];
    if !json.contains(&topic) {
        return Vec::new();
    }
    let text = match r2r::std_msgs::msg::String::from_serialized_bytes(cdr) {
        Ok(s) => s.data,
        Err(e) => return unreadable(format!("not a std_msgs/String: {e}")),
    };
    let parsed = match topic {
        formats::STATE_TOPIC => Ok(Event::State(text.clone())),
        formats::REQUESTS_TOPIC => serde_json::from_str(&text).map(Event::Request),
        formats::ANSWERS_TOPIC => serde_json::from_str(&text).map(Event::Answer),
        formats::FAULTS_TOPIC => serde_json::from_str(&text).map(Event::Fault),
        _ => serde_json::from_str(&text).map(Event::Scan),
    };
    match parsed {
        Ok(event) => vec![event],
        Err(e) => unreadable(format!("{text:?}: {e}")),
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Request(r) => write!(f, "request #{} from {}: {} {}", r.id, r.from, r.request, r.detail),
            Event::Answer(a) => {
                let verdict = if a.accepted { "accepted" } else { "refused" };
                write!(f, "answer  #{} {verdict}: {}", a.id, a.answer)
            }
            Event::State(s) => write!(f, "state   {s}"),
            Event::Fault(x) => write!(f, "FAULT   {}: {}", x.fault, x.cause),
            Event::Scan(s) => write!(
                f,
                "scan    {} {} ({}) series {}",
                s.kind, s.n, s.series_dir, s.series_uid
            ),
            Event::CheckScan { name, tip_to_target } => {
                write!(f, "check   {name}: tip {:.2} mm from the target", tip_to_target * 1e3)
            }
            Event::Unreadable { topic, reason } => write!(f, "?       {topic}: unreadable: {reason}"),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (start, end) = self.span_ns.unwrap_or((0, 0));
        writeln!(
            f,
            "record {}: {} messages over {:.1} s{}",
            self.path.display(),
            self.messages(),
            end.saturating_sub(start) as f64 * 1e-9,
            if self.truncated.is_some() {
                " (truncated: the recorder did not finish)"
            } else {
                ""
            }
        )?;
        for e in &self.timeline {
            writeln!(
                f,
                "  {:>9.3} s  {}",
                e.time_ns.saturating_sub(start) as f64 * 1e-9,
                e.event
            )?;
        }
        writeln!(f, "final state: {}", self.final_state().unwrap_or("(none recorded)"))?;
        writeln!(f, "messages per topic:")?;
        for (topic, n) in &self.counts {
            writeln!(f, "  {topic:<28} {n}")?;
        }
        if let Some(reason) = &self.truncated {
            writeln!(f, "reading stopped at: {reason}")?;
        }
        Ok(())
    }
}
