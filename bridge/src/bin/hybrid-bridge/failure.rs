//! How a failed command is reported: one `error: …` line for a person, or with `--events
//! json` an `error` event (message, exit code, and the phase the ceremony was in), the message
//! escaped for the terminal since it may quote what a phone or relying party chose. The exit
//! code is [`BridgeError::exit_code`]'s (listed in `hybrid-bridge --help`).

use bridge::{BridgeError, Phase};

use crate::flags::EventsFormat;

/// Reports `e` on stderr and returns the process exit code; `phase` is the last phase a
/// ceremony entered, if one started.
pub(crate) fn report(e: &BridgeError, events: EventsFormat, phase: Option<Phase>) -> i32 {
    let code = e.exit_code();
    let message = bridge::sanitize::for_terminal(&e.to_string());
    if events == EventsFormat::Json {
        let phase = match e {
            BridgeError::Timeout { phase, .. } => Some(*phase),
            _ => phase,
        };
        eprintln!(
            "{}",
            serde_json::json!({"event": "error", "message": message, "exit_code": code, "phase": phase})
        );
    } else {
        eprintln!("error: {message}");
    }
    code
}
