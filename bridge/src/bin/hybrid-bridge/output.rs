//! The result of a ceremony: the W3C response JSON on stdout or in `--out FILE`, and with
//! `--events json` a closing `result` event on stderr saying where it went. The phone has done
//! its part by then, so a result that cannot be written to its file still goes to stdout.

use std::path::PathBuf;

use bridge::{BridgeError, ProgressStyle};

/// Writes the result to `out` (or stdout). If `out` cannot be written after all, the result
/// goes to stdout before the error is returned: the phone already did its part. `kind` and
/// `id` (the credential's) go in the `result` event.
pub(crate) fn emit_json(
    out: Option<&PathBuf>,
    value: &impl serde::Serialize,
    style: ProgressStyle,
    kind: &str,
    id: &str,
) -> Result<(), BridgeError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| BridgeError::Internal(e.to_string()))?;
    let written = match out {
        Some(p) => match std::fs::write(p, format!("{text}\n")) {
            Ok(()) => Ok(Some(p.display().to_string())),
            Err(e) => {
                println!("{text}");
                Err(BridgeError::file(
                    "writing the result (printed to stdout instead)",
                    p,
                    e,
                ))
            }
        },
        None => {
            println!("{text}");
            Ok(None)
        }
    };
    if style == ProgressStyle::Json {
        let (out, ok) = match &written {
            Ok(path) => (path.clone(), true),
            Err(_) => (None, false),
        };
        eprintln!(
            "{}",
            serde_json::json!({"event": "result", "kind": kind, "id": id, "out": out, "stdout": !ok || out.is_none()})
        );
    }
    written.map(|_| ())
}
