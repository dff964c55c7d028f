//! What `register` and `sign-in` share: before the QR code shows, the ceremony settings from
//! the flags, every check that can fail without the phone's help, the scanner and the terminal
//! display ([`prepare`]); after the phone answered, the result JSON ([`crate::output`]).

use std::path::PathBuf;

use bridge::{BridgeConfig, BridgeError, Scanner, StderrProgress};

use crate::display::{CliProgress, PhaseTracker};
use crate::flags::{open_scanner, ConnectArgs, Settings};

/// Sets up one QR or linked ceremony: the [`BridgeConfig`] from the flags, everything checked
/// that can be before the QR code shows (`out`, the result's file, among it), the scanner,
/// and the progress display (which shows the QR code and the "next time" hint for `rp_id`).
pub(crate) async fn prepare<'a>(
    s: &Settings,
    conn: &'a ConnectArgs,
    out: Option<&PathBuf>,
    rp_id: &'a str,
    phase: &'a PhaseTracker,
) -> Result<(BridgeConfig, Box<dyn Scanner>, CliProgress<'a>), BridgeError> {
    let config = conn.config(Some(s.links()?));
    conn.check(out)?;
    let scanner = open_scanner(conn.advert_file.as_ref(), conn.adapter.as_deref(), false).await?;
    let progress = CliProgress {
        inner: StderrProgress::new(s.style),
        style: s.style,
        color: s.color,
        conn,
        rp_id,
        phase,
    };
    Ok((config, scanner, progress))
}
