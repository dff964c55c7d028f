//! The real CTAP 2.3 BLE data channel (docs/PROTOCOL.md#ble-data-channel): an LE credit-based L2CAP
//! connection-oriented channel through the kernel's Bluetooth sockets (`bluer`'s `l2cap`
//! module, no D-Bus). The phone listens on a PSM the kernel allocates from the LE dynamic
//! range and announces it in its advert's suffix; the desktop connects to the advertiser's
//! address and that PSM. Both leave the socket at the kernel's default security level
//! (`BT_SECURITY_LOW`: no pairing, no link encryption), as libwebauthn does against Android:
//! the Noise handshake that follows authenticates and encrypts the channel, and pairing would
//! put a dialog on both screens for nothing.

use std::str::FromStr as _;
use std::time::Duration;

use bluer::l2cap::{Socket, SocketAddr, Stream, StreamListener};
pub use bluer::{Address, AddressType};

use crate::{ChannelError, ChannelKind, StreamChannel};

/// How long to wait for a connection in progress to be accepted (the caller's own bound, the
/// bridge's `--ble-connect-timeout`, is usually shorter).
const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// The channel over a connected L2CAP stream.
pub type L2capChannel = StreamChannel<Stream>;

/// Parses `AA:BB:CC:DD:EE:FF`.
pub fn parse_address(text: &str) -> Result<Address, ChannelError> {
    Address::from_str(text).map_err(|e| ChannelError::Ble {
        doing: format!("reading the address {text:?}"),
        error: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
    })
}

/// Whether this kernel gives us LE L2CAP sockets (it has Bluetooth and lets this user open
/// them): what the BLE channel needs besides an adapter.
pub fn sockets_available() -> Result<(), ChannelError> {
    Socket::<Stream>::new_stream()
        .map(drop)
        .map_err(ChannelError::ble("opening an L2CAP socket"))
}

/// Connects to the phone at `peer` (of type `peer_type`) on `psm`, from the adapter whose
/// address is `local` (any adapter when `None`).
pub async fn connect(
    local: Option<Address>,
    peer: Address,
    peer_type: AddressType,
    psm: u16,
) -> Result<L2capChannel, ChannelError> {
    let doing = format!("connecting to {peer} PSM {psm:#06x}");
    let socket = Socket::<Stream>::new_stream().map_err(ChannelError::ble(doing.clone()))?;
    let local_type = AddressType::LePublic;
    socket
        .bind(SocketAddr::new(
            local.unwrap_or(Address::any()),
            local_type,
            0,
        ))
        .map_err(ChannelError::ble(doing.clone()))?;
    let stream = socket
        .connect(SocketAddr::new(peer, peer_type, psm))
        .await
        .map_err(ChannelError::ble(doing.clone()))?;
    wait_until_connected(&stream)
        .await
        .map_err(ChannelError::ble(doing))?;
    Ok(StreamChannel::new(stream, ChannelKind::Ble))
}

/// Waits until the channel is up and the peer's receive MTU is known. `connect` can return
/// while the LE credit-based connection request is still out: the phone may yet refuse the
/// PSM (the socket then has no peer any more), and until the MTU is known bluer cuts writes
/// to 16 bytes, so the 81-byte Noise message 1 would go out in pieces.
async fn wait_until_connected(stream: &Stream) -> std::io::Result<()> {
    let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
    loop {
        if let Ok(mtu) = stream.as_ref().send_mtu() {
            if mtu > 0 {
                tracing::debug!(mtu, "L2CAP channel up");
                return Ok(());
            }
        }
        // Still connecting keeps the peer address; a refused or dropped channel loses it.
        stream.peer_addr()?;
        if tokio::time::Instant::now() >= deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the phone did not complete the L2CAP connection",
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The phone's side: a listening L2CAP socket on a dynamically allocated LE PSM.
#[derive(Debug)]
pub struct Listener {
    inner: StreamListener,
    psm: u16,
}

impl Listener {
    /// Listens on the adapter whose public address is `local` (any adapter when `None`), on
    /// a PSM the kernel picks from 0x0080–0x00FF.
    pub async fn bind(local: Option<Address>) -> Result<Self, ChannelError> {
        let doing = "listening for the desktop";
        let inner = StreamListener::bind(SocketAddr::new(
            local.unwrap_or(Address::any()),
            AddressType::LePublic,
            0,
        ))
        .await
        .map_err(ChannelError::ble(doing))?;
        let psm = inner
            .as_ref()
            .local_addr()
            .map_err(ChannelError::ble(doing))?
            .psm;
        Ok(Self { inner, psm })
    }

    /// The PSM to announce.
    pub fn psm(&self) -> u16 {
        self.psm
    }

    /// The next desktop that connects, and its address.
    pub async fn accept(&self) -> Result<(L2capChannel, Address), ChannelError> {
        let (stream, peer) = self
            .inner
            .accept()
            .await
            .map_err(ChannelError::ble("accepting the desktop"))?;
        wait_until_connected(&stream)
            .await
            .map_err(ChannelError::ble("accepting the desktop"))?;
        Ok((StreamChannel::new(stream, ChannelKind::Ble), peer.addr))
    }
}
