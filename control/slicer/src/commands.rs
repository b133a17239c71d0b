//! The operator's STRING commands and their replies: a fixed table from what Slicer types to the ROS service the
//! procedure serves, and the one-line reply Slicer shows. Pure (no IO), so the table is tested without ROS.

use std::time::Duration;

/// The ROS service a command calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A std_srvs/Trigger service.
    Trigger(&'static str),
    /// A std_srvs/SetBool service with this value.
    SetBool(&'static str, bool),
}

impl Call {
    /// The service's name.
    pub fn service(&self) -> &'static str {
        match self {
            Call::Trigger(s) | Call::SetBool(s, _) => s,
        }
    }
}

/// A recognised command: its canonical name (what the reply starts with) and the call it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// Canonical text, e.g. `plan` or `power on`.
    pub name: &'static str,
    /// What it calls.
    pub call: Call,
}

/// Every command Slicer may send (as the text of a STRING message), and the service it calls.
pub const COMMANDS: [Command; 12] = [
    trigger("scan", "/procedure/scan"),
    trigger("register", "/registration/register"),
    trigger("plan", "/plan"),
    trigger("align", "/align"),
    trigger("insert", "/insert_step"),
    trigger("confirm", "/confirm"),
    trigger("retract", "/retract"),
    trigger("abort", "/abort"),
    trigger("reset", "/reset_fault"),
    trigger("new", "/procedure/new"),
    Command {
        name: "power on",
        call: Call::SetBool("/enable", true),
    },
    Command {
        name: "power off",
        call: Call::SetBool("/enable", false),
    },
];

const fn trigger(name: &'static str, service: &'static str) -> Command {
    Command {
        name,
        call: Call::Trigger(service),
    }
}

/// The Trigger services of [`COMMANDS`] (one client each).
pub fn trigger_services() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().filter_map(|c| match c.call {
        Call::Trigger(s) => Some(s),
        Call::SetBool(..) => None,
    })
}

/// Recognise `text`: case and surrounding or repeated whitespace do not matter (`"  Power   ON "` is `power on`).
/// `Err` carries the text, normalised, for the reply that names it.
pub fn parse(text: &str) -> Result<Command, String> {
    let normalised = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    COMMANDS
        .iter()
        .find(|c| c.name == normalised)
        .copied()
        .ok_or(normalised)
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The service answered.
    Answered {
        /// Its `success`.
        success: bool,
        /// Its `message`.
        message: String,
    },
    /// No answer (or the service never appeared) within the bound.
    Timeout {
        /// The service.
        service: &'static str,
        /// The bound.
        after: Duration,
    },
    /// The middleware refused the call.
    Failed(String),
}

/// The reply for `command`: `<command>: ok[: message]`, `<command>: refused: <message>`, `<command>: timeout: ...`.
pub fn reply(command: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Answered { success: true, message } if message.is_empty() => format!("{command}: ok"),
        Outcome::Answered { success: true, message } => format!("{command}: ok: {message}"),
        Outcome::Answered {
            success: false,
            message,
        } => format!("{command}: refused: {message}"),
        Outcome::Timeout { service, after } => {
            format!(
                "{command}: timeout: {service} did not answer within {:.1} s",
                after.as_secs_f64()
            )
        }
        Outcome::Failed(e) => format!("{command}: refused: call failed: {e}"),
    }
}

/// The reply to text that is no command: it names the text and lists the commands.
pub fn unknown_reply(normalised: &str) -> String {
    let known: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
    format!("{normalised}: refused: unknown command (known: {})", known.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_maps_to_its_service() {
        let expect = [
            ("scan", "/procedure/scan"),
            ("register", "/registration/register"),
            ("plan", "/plan"),
            ("align", "/align"),
            ("insert", "/insert_step"),
            ("confirm", "/confirm"),
            ("retract", "/retract"),
            ("abort", "/abort"),
            ("reset", "/reset_fault"),
            ("new", "/procedure/new"),
        ];
        for (text, service) in expect {
            assert_eq!(parse(text).unwrap().call, Call::Trigger(service), "{text}");
        }
        assert_eq!(parse("power on").unwrap().call, Call::SetBool("/enable", true));
        assert_eq!(parse("power off").unwrap().call, Call::SetBool("/enable", false));
        assert_eq!(trigger_services().count(), 10);
    }

    #[test]
    fn case_and_whitespace_do_not_matter_and_unknown_text_is_named() {
        assert_eq!(parse("  Power   ON \n").unwrap().name, "power on");
        assert_eq!(parse("PLAN").unwrap().name, "plan");
        assert_eq!(parse("Launch  Rocket"), Err("launch rocket".to_owned()));
        assert_eq!(parse(""), Err(String::new()));
        let r = unknown_reply("launch rocket");
        assert!(r.starts_with("launch rocket: refused: unknown command"), "{r}");
        assert!(r.contains("insert") && r.contains("power off"), "{r}");
    }

    #[test]
    fn replies_carry_the_outcome() {
        let ok = |success, message: &str| Outcome::Answered {
            success,
            message: message.into(),
        };
        assert_eq!(reply("plan", &ok(true, "")), "plan: ok");
        assert_eq!(reply("plan", &ok(true, "depth 62.0 mm")), "plan: ok: depth 62.0 mm");
        assert_eq!(
            reply("insert", &ok(false, "not aligned")),
            "insert: refused: not aligned"
        );
        let t = Outcome::Timeout {
            service: "/align",
            after: Duration::from_secs(60),
        };
        assert_eq!(
            reply("align", &t),
            "align: timeout: /align did not answer within 60.0 s"
        );
        assert!(reply("new", &Outcome::Failed("gone".into())).starts_with("new: refused: call failed"));
    }
}
