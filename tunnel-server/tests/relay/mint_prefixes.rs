//! Minting contact IDs from many IPv6 addresses, with real sockets: the test runs itself
//! again inside a user and network namespace of its own (`unshare`), where the whole of
//! 2001:db8::/32 is local on the loopback interface, so each client socket can bind its own
//! source address and the relay on [::1] sees it as the peer.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Error as WsError;
use tunnel_server::RunningServer;

use crate::support::*;

/// Set in the namespace, where the test does its work.
const IN_NAMESPACE: &str = "HYBRID_BRIDGE_TEST_IN_NETNS";

/// Runs the named test of this binary again in a fresh user and network namespace whose
/// loopback serves 2001:db8::/32 (and lets sockets bind any address in it).
fn in_namespace(test: &str) {
    let setup = "ip link set lo up && ip -6 route add local 2001:db8::/32 dev lo \
                 && echo 1 > /proc/sys/net/ipv6/ip_nonlocal_bind && exec \"$0\" \"$@\"";
    run_alone(
        test,
        IN_NAMESPACE,
        &[
            "unshare",
            "--user",
            "--map-root-user",
            "--net",
            "--",
            "sh",
            "-c",
            setup,
        ],
        "a network namespace: `unshare --user --net` from util-linux, and `ip`",
    );
}

/// Opens `/cable/register` from source address `from`; the HTTP status.
async fn mint_from(server: &RunningServer, from: Ipv6Addr) -> u16 {
    let socket = TcpSocket::new_v6().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V6(from), 0))
        .expect("bind a source address in 2001:db8::/32");
    let tcp = socket.connect(server.addr()).await.expect("connect");
    let req =
        test_support::ws::fido_cable_request(&format!("{}/cable/register", server.ws_url()), &[]);
    let handshake = tokio_tungstenite::client_async(req, tcp);
    match tokio::time::timeout(WAIT, handshake)
        .await
        .expect("bounded")
    {
        Ok(_) => 101,
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("mint from {from}: {e}"),
    }
}

/// One /48 from a tunnel broker is 65,536 /64 clients, each with its own per-client mint
/// limit; the /48 shares one bucket. 64 of its /64s trying two mints each get the /48's 30
/// (the default) between them, and the rest 429; another /48 of the same /32 and another
/// network still mint.
#[test]
fn a_slash_48_mint_flood_gets_the_slash_48_rate() {
    if std::env::var_os(IN_NAMESPACE).is_none() {
        in_namespace("mint_prefixes::a_slash_48_mint_flood_gets_the_slash_48_rate");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let server = RunningServer::start_on(listener, config()).await.unwrap();
        let mut statuses = Vec::new();
        for subnet in 0..64u16 {
            let client = Ipv6Addr::new(0x2001, 0xdb8, 0x48, subnet, 0, 0, 0, 1);
            for _ in 0..2 {
                statuses.push(mint_from(&server, client).await);
            }
        }
        let minted = statuses.iter().filter(|&&s| s == 101).count();
        let limited = statuses.iter().filter(|&&s| s == 429).count();
        assert_eq!((minted, limited), (30, 98), "{statuses:?}");
        assert_eq!(
            metric(
                &server,
                "tunnel_server_rejected_total{reason=\"registration_rate\"}"
            )
            .await,
            98
        );
        let other_48 = Ipv6Addr::new(0x2001, 0xdb8, 0x49, 1, 0, 0, 0, 1);
        assert_eq!(mint_from(&server, other_48).await, 101);
        assert_eq!(mint_from(&server, Ipv6Addr::LOCALHOST).await, 101);
    });
}
