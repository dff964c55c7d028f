//! `hybrid-demo`: the whole hybrid story on one machine with nothing else started — an
//! embedded tunnel relay on loopback, a simulated phone with its own credential store, and
//! the bridge, connected through the simulated BLE medium (an advert file). It registers a
//! passkey for a demo relying party, signs in with it, signs in again as a linked phone
//! without a QR code, registers a device-bound credential (the RP reports synced or
//! device-bound from the BE/BS flags it sees), verifies every result as a relying party would
//! ([`verify`]: packed attestation with an x5c chain checked against the phone's CA), and ends
//! with a summary. `--repeat N` instead runs N registrations and prints p50/p99 per stage;
//! `--soak N` runs N sign-ins back to back in this one process and samples it ([`soak`]).
//!
//! It lives in its own crate so that the desktop client a person installs (`hybrid-bridge`,
//! the `bridge` crate) carries neither the relay nor the simulated phone.

pub mod proximity;
pub mod soak;
pub mod stack;
pub mod verify;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use phone_sim::{Attestation, CredentialKind, MediumKnobs, PhoneConfig};
use rand_core::{OsRng, RngCore as _};

use bridge::progress::{Phase, Progress, ProgressStyle, Silent, StderrProgress};
use bridge::webauthn::{AuthenticationOptions, RegistrationOptions};
use bridge::BridgeError;
pub use stack::{Run, Stack};

/// The demo relying party.
pub const RP_ID: &str = "demo.hybrid-bridge.test";
/// Its origin.
pub const ORIGIN: &str = "https://demo.hybrid-bridge.test";

/// `hybrid-demo` arguments.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "hybrid-demo", version, after_help = cli_support::DURATION_FORMS)]
pub struct DemoArgs {
    /// Print no progress (the QR codes and the summary still show).
    #[arg(long, short)]
    pub quiet: bool,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(long, short, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Instead of the story, run N complete registrations through the embedded stack and
    /// print p50/p99 per stage (QR to advert, advert to tunnel, handshake, CTAP, total).
    #[arg(long, value_name = "N")]
    pub repeat: Option<usize>,
    /// Keep the demo's files here (default: a new folder under the system's temp dir).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The simulated phone's advert interval in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub advert_interval: u64,
    #[command(flatten)]
    pub proximity: proximity::ProximityArgs,
    #[command(flatten)]
    pub soak: soak::SoakArgs,
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    OsRng.fill_bytes(&mut v);
    v
}

/// Registration options as the demo RP sends them (W3C JSON), with a fresh challenge.
pub fn registration_options(
    user: &str,
    challenge: &[u8],
) -> Result<RegistrationOptions, BridgeError> {
    let json = serde_json::json!({
        "rp": {"id": RP_ID, "name": "hybrid-bridge demo"},
        "user": {"id": b64(user.as_bytes()), "name": user, "displayName": user},
        "challenge": b64(challenge),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
        "attestation": "direct",
        "extensions": {"credProps": true},
    });
    RegistrationOptions::from_json(&json.to_string(), Some(ORIGIN))
}

/// Sign-in options (W3C JSON) allowing `credential_id`, with a fresh challenge.
pub fn authentication_options(
    credential_id: &[u8],
    challenge: &[u8],
) -> Result<AuthenticationOptions, BridgeError> {
    let json = serde_json::json!({
        "rpId": RP_ID,
        "challenge": b64(challenge),
        "allowCredentials": [{"type": "public-key", "id": b64(credential_id)}],
        "userVerification": "required",
    });
    AuthenticationOptions::from_json(&json.to_string(), Some(ORIGIN))
}

fn demo_dir(args: &DemoArgs) -> PathBuf {
    args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "hybrid-bridge-demo-{}-{}",
            std::process::id(),
            b64(&random(4))
        ))
    })
}

fn knobs(args: &DemoArgs) -> MediumKnobs {
    MediumKnobs {
        interval: Duration::from_millis(args.advert_interval.max(1)),
        ..MediumKnobs::default()
    }
}

/// A ceremony's result as JSON, as the relying party receives it.
fn as_json(v: &impl serde::Serialize) -> Result<serde_json::Value, BridgeError> {
    serde_json::to_value(v).map_err(|e| BridgeError::Internal(e.to_string()))
}

/// What the demo's relying party expects of a response to `challenge`.
fn rp_expects<'a>(challenge: &'a [u8], attestation_ca: Option<&'a [u8]>) -> verify::Expected<'a> {
    verify::Expected {
        rp_id: RP_ID,
        origin: ORIGIN,
        challenge,
        attestation_ca,
    }
}

fn demo_failed(what: &str, e: String) -> BridgeError {
    BridgeError::Internal(format!("demo: {what} failed verification: {e}"))
}

/// Runs the demo.
pub async fn run(args: &DemoArgs, style: ProgressStyle) -> Result<(), BridgeError> {
    if let Some(n) = args.repeat {
        return repeat(args, n).await;
    }
    if args.proximity.proximity {
        return proximity::run(args).await;
    }
    if let Some(n) = args.soak.soak {
        return soak::run(args, n).await;
    }
    let dir = demo_dir(args);
    let phone = PhoneConfig {
        attestation: Attestation::PackedX5c,
        name: "Demo phone".into(),
        ..PhoneConfig::default()
    };
    let mut stack = Stack::start(dir.clone(), phone, knobs(args)).await?;
    let shown = StderrProgress::new(style);
    let display = QrShower {
        inner: &shown,
        quiet: style != ProgressStyle::Text,
    };
    let say = |s: &str| {
        if style == ProgressStyle::Text {
            eprintln!("\n== {s}");
        }
    };
    say(&format!(
        "relay listening on {} (routing ID {})",
        stack.relay_url,
        stack
            .relay
            .as_ref()
            .map(|r| r.routing_id().to_hex())
            .unwrap_or_default()
    ));

    // The RP trusts the demo phone's attestation CA, as an RP would trust a phone maker's.
    let attestation_ca = stack
        .phone_mut()
        .ok_or_else(|| BridgeError::Internal("demo: no phone".into()))?
        .make_attestation_ca()
        .map_err(|e| BridgeError::Internal(format!("demo: {e}")))?
        .ca_der()
        .to_vec();

    // 1. Register.
    say("1/4  register a passkey for demo.hybrid-bridge.test: scan this QR code with the (simulated) phone");
    let challenge = random(32);
    let reg = stack
        .register(&registration_options("alice@demo", &challenge)?, &display)
        .await?;
    let reg_json = as_json(&reg.bridge.json)?;
    let expected = rp_expects(&challenge, Some(&attestation_ca));
    let mut credential =
        verify::registration(&reg_json, &expected).map_err(|e| demo_failed("registration", e))?;
    say(&format!(
        "     the relying party verified the registration: challenge, origin, RP ID hash, UP+UV \
         flags, {}\n     it got a {}",
        credential.attestation,
        credential.kind()
    ));

    // 2. Sign in with a QR code.
    say("2/4  sign in with the phone (QR code again)");
    let challenge = random(32);
    let auth = stack
        .sign_in(
            &authentication_options(&credential.id, &challenge)?,
            &display,
        )
        .await?;
    let auth_json = as_json(&auth.bridge.json)?;
    let expected = rp_expects(&challenge, None);
    verify::assertion(&auth_json, &expected, &mut credential)
        .map_err(|e| demo_failed("sign-in", e))?;
    say("     the relying party verified the assertion: signature, challenge, origin, RP ID hash, flags, counter");

    // 3. Sign in as a linked phone, no QR code.
    let link = auth
        .bridge
        .outcome
        .linked
        .clone()
        .or(reg.bridge.outcome.linked.clone())
        .ok_or_else(|| {
            BridgeError::Internal("demo: the phone sent no linking information".into())
        })?;
    say(&format!(
        "3/4  sign in again with the linked phone {link:?}: no QR code, the relay wakes the phone"
    ));
    let challenge = random(32);
    let linked = stack
        .sign_in_linked(
            &link,
            &authentication_options(&credential.id, &challenge)?,
            &display,
        )
        .await?;
    let linked_json = as_json(&linked.bridge.json)?;
    let expected = rp_expects(&challenge, None);
    verify::assertion(&linked_json, &expected, &mut credential)
        .map_err(|e| demo_failed("linked sign-in", e))?;
    say("     the relying party verified the linked sign-in");

    // 4. A device-bound credential: the phone makes this one with BE and BS clear.
    say(
        "4/4  register a device-bound credential (the phone keeps it; no backup): scan the QR code",
    );
    if let Some(p) = stack.phone_mut() {
        p.config_mut().credential_kind = CredentialKind::DeviceBound;
    }
    let challenge = random(32);
    let bound = stack
        .register(&registration_options("bob@demo", &challenge)?, &display)
        .await?;
    let bound_json = as_json(&bound.bridge.json)?;
    let expected = rp_expects(&challenge, Some(&attestation_ca));
    let bound_credential = verify::registration(&bound_json, &expected)
        .map_err(|e| demo_failed("device-bound registration", e))?;
    say(&format!(
        "     the relying party verified it and got a {}",
        bound_credential.kind()
    ));
    stack.stop_relay().await;

    // Summary.
    println!("\nhybrid-bridge demo: all four ceremonies succeeded and verified");
    println!("credentials for {RP_ID}, as the relying party saw them:");
    for c in [&credential, &bound_credential] {
        println!("  {}  {}", b64(&c.id), c.kind());
    }
    println!();
    print!(
        "{}",
        summary_table(&[
            ("register", &reg.bridge.outcome.stages),
            ("sign in", &auth.bridge.outcome.stages),
            ("linked", &linked.bridge.outcome.stages),
            ("register 2", &bound.bridge.outcome.stages),
        ])
    );
    println!("\nlinked phone: {link:?}");
    println!("files: {}", dir.display());
    println!("  phone.json   the phone's passkeys");
    println!("  links.json   the desktop's linked phones");
    println!("  adverts.txt  the simulated Bluetooth medium");
    Ok(())
}

/// The stage timings of each ceremony as a table that fits 80 columns: waiting for the
/// phone (its advert, or waking a linked phone), the relay connection, the handshake, the
/// time on the phone (CTAP), and the total, in milliseconds.
pub fn summary_table(rows: &[(&str, &[(Phase, Duration)])]) -> String {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let mut out = format!(
        "{:<10} {:>12} {:>9} {:>10} {:>13} {:>9}\n",
        "ceremony", "phone heard", "connect", "handshake", "on the phone", "total"
    );
    out += &format!(
        "{:<10} {:>12} {:>9} {:>10} {:>13} {:>9}\n",
        "", "ms", "ms", "ms", "ms", "ms"
    );
    for (name, stages) in rows {
        let sum = |phases: &[Phase]| -> Duration {
            stages
                .iter()
                .filter(|(p, _)| phases.contains(p))
                .map(|(_, d)| *d)
                .sum()
        };
        let connect = sum(&[Phase::Connecting]);
        out += &format!(
            "{:<10} {:>12} {:>9} {:>10} {:>13} {:>9}\n",
            name,
            ms(sum(&[Phase::AwaitingAdvert, Phase::ContactingPhone])),
            if connect.is_zero() {
                "-".into()
            } else {
                ms(connect)
            },
            ms(sum(&[Phase::Handshaking])),
            ms(sum(&[Phase::AwaitingUser])),
            ms(stages.iter().map(|(_, d)| *d).sum()),
        );
    }
    out
}

/// Prints the QR code when the bridge reports it, then forwards events.
struct QrShower<'a> {
    inner: &'a dyn Progress,
    quiet: bool,
}

impl Progress for QrShower<'_> {
    fn on_event(&self, event: &bridge::progress::Event, elapsed: Duration) {
        if let bridge::progress::Event::QrCode { url } = event {
            if !self.quiet {
                // Colour only on a terminal and without NO_COLOR, as hybrid-bridge does.
                use std::io::IsTerminal as _;
                let color = cli_support::ColorChoice::Auto.enabled(std::io::stderr().is_terminal());
                let drawn = if color {
                    bridge::render::terminal(url)
                } else {
                    bridge::render::terminal_plain(url)
                };
                if let Ok(q) = drawn {
                    eprintln!("{q}{url}");
                }
            }
        }
        self.inner.on_event(event, elapsed);
    }
}

/// `--repeat N`: N registrations, p50/p99 per stage.
async fn repeat(args: &DemoArgs, n: usize) -> Result<(), BridgeError> {
    let dir = demo_dir(args);
    let mut stack = Stack::start(dir.clone(), PhoneConfig::default(), knobs(args)).await?;
    stack.config.links = None;
    let mut rows: Vec<Vec<(Phase, Duration)>> = Vec::new();
    let mut totals = Vec::new();
    for i in 0..n.max(1) {
        let challenge = random(32);
        let t = Instant::now();
        let run = stack
            .register(
                &registration_options(&format!("user{i}@demo"), &challenge)?,
                &Silent,
            )
            .await?;
        totals.push(t.elapsed());
        rows.push(run.bridge.outcome.stages.clone());
    }
    stack.stop_relay().await;
    let pct = |mut v: Vec<Duration>, p: f64| -> f64 {
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
    };
    println!(
        "{} registrations through the embedded stack (advert interval {} ms)",
        rows.len(),
        args.advert_interval
    );
    println!("{:<40} {:>10} {:>10}", "stage", "p50 ms", "p99 ms");
    for phase in [
        Phase::AwaitingAdvert,
        Phase::Connecting,
        Phase::Handshaking,
        Phase::AwaitingUser,
    ] {
        let v: Vec<Duration> = rows
            .iter()
            .map(|r| r.iter().filter(|(p, _)| *p == phase).map(|(_, d)| *d).sum())
            .collect();
        println!(
            "{:<40} {:>10.2} {:>10.2}",
            phase.describe(),
            pct(v.clone(), 0.5),
            pct(v, 0.99)
        );
    }
    println!(
        "{:<40} {:>10.2} {:>10.2}",
        "total (bridge call, wall time)",
        pct(totals.clone(), 0.5),
        pct(totals, 0.99)
    );
    println!("files: {}", dir.display());
    Ok(())
}
