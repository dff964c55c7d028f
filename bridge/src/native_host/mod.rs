//! The native messaging host (`hybrid-bridge native-host`): the browser extension's way to
//! the bridge. The browser starts it per connection and speaks [`framing`] on stdin/stdout;
//! each `create`/`get` request runs one ceremony ([`driver`]) whose progress streams back as
//! events ([`messages`]) and which ends with the W3C response JSON or a [`dom`] error. A
//! `cancel` message or the browser closing stdin drops the ceremony at once. Logs go to
//! stderr only. An `unknown-credential` message (a site's `signalUnknownCredential`) is
//! answered at once with the linked phone that holds that passkey, if any. The message protocol is specified in `browser/PROTOCOL.md`. The
//! `hybrid-bridge native-host` command serves stdin and stdout with [`serve`]; installing the
//! host for the browsers is the binary's `browser` command.

pub mod dom;
pub mod driver;
pub mod framing;
pub mod messages;

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::BridgeError;
use crate::progress::Event;

use dom::DomError;
use driver::HostConfig;
use framing::{FrameError, FrameWriter, MAX_REQUEST};
use messages::{BadRequest, Request};

/// The host's name in the browsers' manifests and `runtime.connectNative`.
pub const HOST_NAME: &str = "org.hybridbridge.host";

/// The extension's Chromium ID, pinned by the `key` in its Chromium manifest
/// (`CHROMIUM_KEY` in browser/tools/build.mjs; the ID is the first 32 hex digits of the
/// key's SHA-256, written with the letters a–p).
pub const CHROMIUM_EXTENSION_ID: &str = "kbehonokcoobakmaiaaeeiedfmmjlope";

/// The extension's Firefox (gecko) ID.
pub const FIREFOX_EXTENSION_ID: &str = "hybrid-bridge@hybridbridge.org";

/// What the reader thread hands over.
enum Incoming {
    Request(Request),
    Bad(BadRequest),
    Fatal(FrameError),
    Eof,
}

/// The shared, locked writer: events come from inside a ceremony, replies from the loop.
#[derive(Clone)]
struct Out(Arc<Mutex<FrameWriter<Box<dyn Write + Send>>>>);

impl Out {
    /// Sends; `false` when the browser is gone.
    fn send(&self, v: &Value) -> bool {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match w.send(v) {
            Ok(()) => true,
            Err(e) => {
                tracing::info!("cannot write to the browser ({e}); it has gone");
                false
            }
        }
    }
}

type Ceremony<'a> = Pin<Box<dyn Future<Output = Result<Value, DomError>> + 'a>>;

/// Serves one browser connection: `input` and `output` are the browser's pipes. Returns
/// when the browser closes `input` (dropping a running ceremony) or stops reading `output`;
/// an unreadable frame is answered with an error and ends the connection with
/// [`BridgeError::Usage`].
pub async fn serve(
    input: impl Read + Send + 'static,
    output: impl Write + Send + 'static,
    config: &HostConfig,
) -> Result<(), BridgeError> {
    let out = Out(Arc::new(Mutex::new(FrameWriter::new(Box::new(output)))));
    let (tx, mut rx) = mpsc::channel(8);
    // A plain thread, not the runtime's blocking pool: a blocked read must not keep the
    // runtime (and the process) alive after we are done.
    std::thread::Builder::new()
        .name("native-host-stdin".into())
        .spawn(move || read_loop(input, tx))
        .map_err(|e| BridgeError::Internal(format!("cannot start the stdin reader: {e}")))?;
    let mut running: Option<(String, Ceremony<'_>)> = None;
    loop {
        let step = tokio::select! {
            m = rx.recv() => Ok(m.unwrap_or(Incoming::Eof)),
            r = async {
                match running.as_mut() {
                    Some((_, f)) => f.await,
                    None => std::future::pending().await,
                }
            } => Err(r),
        };
        let incoming = match step {
            Err(result) => {
                let (id, _) = running.take().expect("only polled while running");
                let reply = match result {
                    Ok(credential) => messages::result(&id, credential),
                    Err(e) => {
                        tracing::info!(code = e.code, "ceremony failed: {}", e.message);
                        messages::error(Some(&id), &e)
                    }
                };
                if !out.send(&reply) {
                    return Ok(());
                }
                continue;
            }
            Ok(m) => m,
        };
        let reply = match incoming {
            Incoming::Eof => {
                if let Some((id, _)) = running.take() {
                    tracing::info!(id, "the browser closed the connection; ceremony dropped");
                }
                return Ok(());
            }
            Incoming::Fatal(e) => {
                drop(running.take());
                out.send(&messages::error(
                    None,
                    &DomError::bad_request(e.to_string()),
                ));
                return Err(BridgeError::Usage(e.to_string()));
            }
            Incoming::Bad(b) => {
                tracing::warn!("bad message from the extension: {}", b.message);
                messages::error(b.id.as_deref(), &DomError::bad_request(b.message))
            }
            Incoming::Request(Request::Phones { id, rp }) => {
                match rp.as_ref().map_or(Ok(()), |rp| {
                    driver::check_rp_in(
                        &rp.origin,
                        &rp.rp_id,
                        driver::scope(rp.related_origins.as_deref()),
                    )
                }) {
                    Err(e) => messages::error(id.as_deref(), &e),
                    Ok(()) => match config.links.list() {
                        Ok(list) => messages::phones(id.as_deref(), &list),
                        Err(e) => messages::error(id.as_deref(), &DomError::from_bridge(&e)),
                    },
                }
            }
            Incoming::Request(Request::UnknownCredential(req)) => {
                match driver::unknown_credential(&req, &config.links) {
                    Ok(phone) => {
                        if let Some(p) = &phone {
                            tracing::info!(
                                phone = p,
                                "a site reported a passkey of this phone unknown"
                            );
                        }
                        messages::unknown_credential(req.id.as_deref(), phone.as_deref())
                    }
                    Err(e) => messages::error(req.id.as_deref(), &e),
                }
            }
            Incoming::Request(Request::Cancel { id }) => match &running {
                Some((current, _)) if id.as_deref().is_none_or(|i| i == current) => {
                    let (current, f) = running.take().expect("matched Some");
                    drop(f);
                    tracing::info!(id = current, "cancelled by the extension");
                    messages::error(Some(&current), &DomError::cancelled())
                }
                // Nothing (or another request) is running: the ceremony already ended.
                _ => continue,
            },
            Incoming::Request(Request::Ceremony(req)) => {
                if running.is_some() {
                    messages::error(
                        Some(&req.id),
                        &DomError::new(
                            dom::DomName::NotAllowedError,
                            "busy",
                            "another request is already running; finish or cancel it first",
                        ),
                    )
                } else {
                    let id = req.id.clone();
                    let sink = out.clone();
                    let events_id = id.clone();
                    let progress = move |e: &Event, _: Duration| {
                        if let Some(v) = messages::event(&events_id, e) {
                            sink.send(&v);
                        }
                    };
                    let fut: Ceremony<'_> =
                        Box::pin(async move { driver::run(&req, config, &progress).await });
                    running = Some((id, fut));
                    continue;
                }
            }
        };
        if !out.send(&reply) {
            return Ok(());
        }
    }
}

fn read_loop(mut input: impl Read, tx: mpsc::Sender<Incoming>) {
    loop {
        let msg = match framing::read_frame(&mut input, MAX_REQUEST) {
            Ok(None) => Incoming::Eof,
            Ok(Some(body)) => match Request::parse(&body) {
                Ok(r) => Incoming::Request(r),
                Err(b) => Incoming::Bad(b),
            },
            Err(e) => Incoming::Fatal(e),
        };
        let last = matches!(msg, Incoming::Eof | Incoming::Fatal(_));
        if tx.blocking_send(msg).is_err() || last {
            return;
        }
    }
}
