//! The desktop notification when the key asks a linked phone: "Check your phone: Pixel 8",
//! sent to `org.freedesktop.Notifications` on the session bus (GNOME, KDE, and every
//! notification daemon implement it). [`Notifying`] adds it to any [`KeyUi`], the window's or
//! the terminal's: the phone buzzes, and the person may be looking at another window.
//!
//! Sending never blocks the key's event loop (it runs on a blocking thread with a 5 s D-Bus
//! timeout) and a desktop without a session bus or a notification daemon costs one debug line.

use std::sync::Mutex;
use std::time::Duration;

use dbus::arg::PropMap;
use dbus::blocking::Connection;

use super::device::BoxFuture;
use super::ui::{Choice, KeyUi, UiRequest, UiUpdate};

/// The D-Bus name, object path and interface of the notification service.
const SERVICE: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// How long a notification daemon may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A notification, as the person reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The title: "Check your phone: Pixel 8".
    pub summary: String,
    /// One sentence more.
    pub body: String,
}

impl Notification {
    /// The notification for a linked phone asked about `request`.
    pub fn asking_phone(name: &str, request: Option<&UiRequest>) -> Self {
        let what = request.map_or_else(|| "sign in".to_string(), UiRequest::describe);
        Self {
            summary: format!("Check your phone: {name}"),
            body: format!(
                "A program on this computer asks to {what}; confirm on {name}, or cancel there."
            ),
        }
    }
}

/// Sends `n` through the bus at `address` (`None`: the session bus); returns the
/// notification's ID. The error says what failed.
pub fn send(address: Option<&str>, n: &Notification) -> Result<u32, dbus::Error> {
    let connection = match address {
        Some(a) => {
            let mut channel = dbus::channel::Channel::open_private(a)?;
            channel.register()?;
            Connection::from(channel)
        }
        None => Connection::new_session()?,
    };
    let proxy = connection.with_proxy(SERVICE, PATH, TIMEOUT);
    let actions: Vec<&str> = Vec::new();
    let (id,): (u32,) = proxy.method_call(
        SERVICE,
        "Notify",
        (
            "hybrid-bridge",
            0_u32,
            "phone",
            n.summary.as_str(),
            n.body.as_str(),
            actions,
            PropMap::new(),
            -1_i32,
        ),
    )?;
    Ok(id)
}

/// Any [`KeyUi`], plus a desktop notification when a linked phone is asked.
#[derive(Debug)]
pub struct Notifying<U> {
    inner: U,
    /// The bus (`None`: the session bus).
    address: Option<String>,
    /// The request being served, for the notification's words.
    request: Mutex<Option<UiRequest>>,
}

impl<U: KeyUi> Notifying<U> {
    /// `inner`, notifying on the session bus.
    pub fn new(inner: U) -> Self {
        Self {
            inner,
            address: None,
            request: Mutex::new(None),
        }
    }

    /// `inner`, notifying on the bus at `address` (tests: a private bus).
    pub fn on_bus(inner: U, address: String) -> Self {
        Self {
            address: Some(address),
            ..Self::new(inner)
        }
    }

    /// The UI it wraps.
    pub fn inner(&self) -> &U {
        &self.inner
    }
}

impl<U: KeyUi> KeyUi for Notifying<U> {
    fn choose<'a>(&'a self, request: &'a UiRequest) -> BoxFuture<'a, Choice> {
        *self.request.lock().unwrap_or_else(|e| e.into_inner()) = Some(request.clone());
        self.inner.choose(request)
    }

    fn show(&self, update: UiUpdate) {
        if let UiUpdate::AskingPhone { name } = &update {
            let n = Notification::asking_phone(
                name,
                self.request
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref(),
            );
            let address = self.address.clone();
            let sent = move || match send(address.as_deref(), &n) {
                Ok(id) => tracing::debug!("notification {id}: {}", n.summary),
                Err(e) => tracing::debug!("no desktop notification ({e})"),
            };
            match tokio::runtime::Handle::try_current() {
                Ok(h) => drop(h.spawn_blocking(sent)),
                Err(_) => drop(std::thread::spawn(sent)),
            }
        }
        self.inner.show(update);
    }

    fn cancelled(&self) -> BoxFuture<'_, ()> {
        self.inner.cancelled()
    }
}

#[cfg(test)]
mod tests {
    use hybrid_protocol::ctap::Command;

    use super::*;

    #[test]
    fn the_notification_names_the_phone_and_who_asks() {
        let r = UiRequest {
            command: Command::MakeCredential,
            rp_id: Some("github.com".into()),
            phones: vec![],
            suggested: Choice::Qr,
        };
        let n = Notification::asking_phone("Pixel 8", Some(&r));
        assert_eq!(n.summary, "Check your phone: Pixel 8");
        assert!(
            n.body.contains("create a passkey for github.com"),
            "{}",
            n.body
        );
    }

    #[test]
    fn no_bus_is_an_error_not_a_hang() {
        let n = Notification::asking_phone("Pixel 8", None);
        let e = send(Some("unix:path=/nonexistent/bus"), &n).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
}
