//! The fleet test: `deploy/kubernetes/` run for real without a cluster. Three `tunnel-server`
//! processes stand in for the StatefulSet's pods (the shipped `relay.toml`, routing IDs from
//! their host names, a contact store each), Debian's nginx runs the shipped `router.conf` in
//! front of them, phone-sim phones and the bridge use the fleet only through the router, and
//! webauthn-rs verifies every ceremony. It checks, and prints the counts of:
//! - QR ceremonies land on every pod, and linked phones registered on every pod are woken;
//! - a rolling update (each pod in turn: SIGTERM, readiness 503, a phone's waiting tunnel
//!   still joined, exit, restart with the same routing ID and store) under a steady stream of
//!   ceremonies loses none, and every linked phone is reachable afterwards;
//! - a pod killed with SIGKILL fails its in-flight ceremonies with a relay error, new ones go
//!   to the others, and once it is back its linked phones can be woken again.
//!
//! It needs nginx (scripts/test.sh installs it) and `unshare` (util-linux) for the UTS
//! namespaces; as a user other than root, unprivileged user namespaces.

mod cluster;
mod people;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hybrid_protocol::tunnel::{RoutingId, TunnelId, TunnelPath};
use tokio::time::Instant;

use crate::support::send;
use cluster::{open, Relay, Router, WAIT};
use people::{relying_party, Desk, Failed, Linked};
use test_support::ws::{recv_binary, refused_status};

/// Linked phones each pod must hold before the updates start.
const LINKED_PER_POD: usize = 2;
/// Desks running ceremonies back to back during the rolling update.
const LANES: usize = 4;
/// How long a restarted pod is ready before the next one drains: the manifests'
/// `minReadySeconds` is 5; the router tries a pod it marked failed again after 2 s.
const MIN_READY: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_routes_by_routing_id_and_updates_without_losing_a_ceremony_or_a_phone() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut relays = Vec::new();
    for n in 0..3 {
        let mut relay = Relay::new(n, root.path()).await;
        relay.start();
        relays.push(relay);
    }
    for relay in &mut relays {
        relay.wait_ready().await;
        let (_, announced) = relay.open_waiting(tunnel(0xF0)).await;
        assert_eq!(
            announced,
            relay.routing_id(),
            "{} serves relay.toml's routing ID + its ordinal",
            relay.name()
        );
    }
    let router = Router::start(&relays).await;
    let url = router.url();
    let rp = relying_party();

    // Linked phones: link phones through the router until every pod holds some.
    let mut linked: Vec<Linked> = Vec::new();
    for i in 0..8 * LINKED_PER_POD {
        let owned = owners(&linked);
        if relays
            .iter()
            .all(|r| owned.get(&r.routing_id()).copied().unwrap_or(0) >= LINKED_PER_POD)
        {
            break;
        }
        let name = format!("linked-{i}");
        let mut desk = Desk::new(&root.path().join(&name), &name, &url, true);
        desk.ceremony(&rp)
            .await
            .unwrap_or_else(|f| panic!("linking {name}: {f:?}"));
        linked.push(desk.into_linked());
    }
    let owned = owners(&linked);
    for relay in &relays {
        let n = owned.get(&relay.routing_id()).copied().unwrap_or(0);
        assert!(
            n >= LINKED_PER_POD,
            "{} holds {n} linked phones after {} links: the router did not spread \
             /cable/register ({owned:?})",
            relay.name(),
            linked.len()
        );
    }
    for phone in &linked {
        phone
            .sign_in(&rp)
            .await
            .expect("a linked phone is woken through the router");
    }
    println!(
        "fleet: {} linked phones ({} per pod), each woken through the router",
        linked.len(),
        LINKED_PER_POD
    );

    // QR ceremonies land on every pod.
    let mut lanes: Vec<Desk> = (0..LANES)
        .map(|i| {
            Desk::new(
                &root.path().join(format!("lane-{i}")),
                &format!("lane-{i}"),
                &url,
                false,
            )
        })
        .collect();
    for _ in 0..3 {
        for desk in &mut lanes {
            desk.ceremony(&rp)
                .await
                .expect("a QR ceremony through the router");
        }
    }
    for relay in &relays {
        let done = relay
            .metric("tunnel_server_ceremonies_completed_total")
            .await
            .unwrap_or(0);
        assert!(done >= 1, "{} relayed no QR ceremony", relay.name());
    }
    println!("fleet: {} QR ceremonies, on every pod", 3 * LANES);

    // The rolling update, highest ordinal first, under a steady stream of ceremonies.
    let stop = AtomicBool::new(false);
    let drains: std::sync::Mutex<Vec<Instant>> = std::sync::Mutex::new(Vec::new());
    let update = async {
        for relay in relays.iter_mut().rev() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            drains.lock().unwrap().push(Instant::now());
            rolling_restart(relay, &url).await;
            tokio::time::sleep(MIN_READY).await;
        }
        stop.store(true, Ordering::Relaxed);
    };
    let streams =
        futures_util::future::join_all(lanes.iter_mut().map(|desk| stream(desk, &rp, &stop)));
    let ((), records) = tokio::join!(update, streams);
    let records: Vec<Record> = records.into_iter().flatten().collect();
    let first_drain = drains.lock().unwrap()[0];
    let lost: Vec<&Record> = records.iter().filter(|r| r.result.is_err()).collect();
    let after_drain = records.iter().filter(|r| r.started >= first_drain).count();
    let lost_after_drain = lost.iter().filter(|r| r.started >= first_drain).count();
    let mut unreachable = Vec::new();
    for phone in &linked {
        if let Err(e) = phone.still_serving() {
            unreachable.push(e);
        } else if let Err(e) = phone.sign_in(&rp).await {
            unreachable.push(e);
        }
    }
    println!(
        "fleet: rolling update of {} pods: ceremonies started {}, succeeded {}, lost {} \
         (started after the first drain began: {}, lost {}); linked phones reachable {} of {}",
        relays.len(),
        records.len(),
        records.len() - lost.len(),
        lost.len(),
        after_drain,
        lost_after_drain,
        linked.len() - unreachable.len(),
        linked.len()
    );
    for r in &lost {
        println!("fleet: lost: {:?}", r.result);
    }
    for e in &unreachable {
        println!("fleet: unreachable: {e}");
    }
    assert!(after_drain > 0, "no ceremony ran during the update");
    assert!(lost.is_empty(), "the rolling update lost ceremonies");
    assert!(
        unreachable.is_empty(),
        "linked phones unreachable after the update"
    );

    // SIGKILL: one pod dies with ceremonies in flight.
    let victim = 1;
    let victim_id = relays[victim].routing_id();
    // A linked sign-in waiting for its phone (offline) on the victim...
    let offline = linked
        .iter()
        .position(|l| l.owner == victim_id)
        .expect("the victim holds linked phones");
    linked[offline].go_offline().await;
    // ...and QR ceremonies whose phones have opened their tunnels but not yet advertised.
    let mut slow: Vec<Desk> = (0..3)
        .map(|i| {
            Desk::with_delay(
                &root.path().join(format!("slow-{i}")),
                &format!("slow-{i}"),
                &url,
                false,
                Duration::from_secs(4),
            )
        })
        .collect();
    let in_flight = futures_util::future::join_all(slow.iter_mut().map(|d| d.ceremony(&rp)));
    let waiting_linked = linked[offline].sign_in(&rp);
    // Nothing else is open anywhere, so what is open on the victim is exactly in flight.
    let deadline = Instant::now() + WAIT;
    while tunnels_open(&relays).await != 0 {
        assert!(
            Instant::now() < deadline,
            "tunnels still open before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kill = async {
        // Every slow phone's tunnel and the linked client's are open somewhere.
        let deadline = Instant::now() + WAIT;
        loop {
            let open = tunnels_open(&relays).await;
            if open >= 4 {
                assert_eq!(open, 4, "only the in-flight tunnels are open");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the in-flight tunnels never opened ({open})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let on_victim = relays[victim]
            .metric("tunnel_server_tunnels_open")
            .await
            .expect("the victim answers");
        relays[victim].signal("KILL").await;
        let status = relays[victim].exited(WAIT).await;
        assert!(!status.success(), "killed: {status:?}");
        on_victim
    };
    let (qr_results, linked_result, on_victim) = tokio::join!(in_flight, waiting_linked, kill);
    let qr_failed: Vec<&Failed> = qr_results.iter().filter_map(|r| r.as_ref().err()).collect();
    let linked_failed = linked_result.as_ref().err();
    let failures = qr_failed.len() + usize::from(linked_failed.is_some());
    for f in &qr_failed {
        println!(
            "fleet: in flight on the killed pod (QR): bridge: {}; phone: {:?}",
            f.bridge, f.phone
        );
    }
    if let Some(e) = linked_failed {
        println!("fleet: in flight on the killed pod (linked): {e}");
    }
    assert!(on_victim >= 1, "nothing was in flight on the victim");
    assert_eq!(
        failures as u64, on_victim,
        "exactly the ceremonies whose tunnels were on the killed pod fail"
    );
    assert!(
        linked_failed.is_some(),
        "the linked sign-in waiting on the killed pod fails"
    );
    for f in &qr_failed {
        let text = format!("{} {:?}", f.bridge, f.phone);
        assert!(
            text.contains("relay"),
            "the failure names the relay: {text}"
        );
    }
    let e = linked_failed.expect("checked");
    assert!(e.contains("relay"), "the failure names the relay: {e}");

    // While it is down, new ceremonies go to the others.
    let mut while_down = 0;
    for desk in &mut lanes {
        desk.ceremony(&rp)
            .await
            .expect("a ceremony while a pod is down goes to another");
        while_down += 1;
    }
    // It comes back with its store; its linked phones resume and can be woken.
    relays[victim].start();
    relays[victim].wait_ready().await;
    linked[offline].go_online();
    let mut resumed = 0;
    let mut theirs = 0;
    for phone in linked.iter().filter(|l| l.owner == victim_id) {
        theirs += 1;
        let deadline = Instant::now() + WAIT;
        loop {
            match phone.sign_in(&rp).await {
                Ok(()) => {
                    resumed += 1;
                    break;
                }
                // The phone may still be in its backoff before resuming.
                Err(e) if Instant::now() < deadline && phone.still_serving().is_ok() => {
                    println!("fleet: {} not back yet: {e}", phone.name);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    println!(
        "fleet: SIGKILL {}: in-flight ceremonies on it {on_victim}, failed {failures} (with a relay \
         error); ceremonies while it was down {while_down}, succeeded {while_down}; its linked \
         phones reachable after it returned {resumed} of {theirs}",
        relays[victim].name()
    );
    assert_eq!(resumed, theirs);
    let starts: Vec<u32> = relays.iter().map(Relay::starts).collect();
    assert_eq!(starts, [2, 3, 2], "each pod restarted as planned");
    let errors = router.errors();
    assert!(
        !errors.contains("[emerg]") && !errors.contains("[crit]"),
        "nginx: {errors}"
    );
}

/// One ceremony of the steady stream.
struct Record {
    started: Instant,
    result: Result<(), String>,
}

/// Runs ceremonies on `desk` back to back until `stop`.
async fn stream(
    desk: &mut Desk,
    rp: &hybrid_tests::rp::RelyingParty,
    stop: &AtomicBool,
) -> Vec<Record> {
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let result = desk
            .ceremony(rp)
            .await
            .map_err(|f| format!("bridge: {}; phone: {:?}", f.bridge, f.phone));
        out.push(Record { started, result });
    }
    out
}

/// One pod's turn in a rolling update, as the StatefulSet controller and the kubelet do it,
/// with a phone whose tunnel is waiting on the pod when its drain begins.
async fn rolling_restart(relay: &mut Relay, router: &str) {
    let t = tunnel(relay.ordinal as u8 + 0x10);
    let (mut phone, routing) = relay.open_waiting(t).await;
    relay.signal("TERM").await;
    // Readiness goes 503 at once (the metrics listener answers through the drain).
    let deadline = Instant::now() + WAIT;
    loop {
        match relay.probe("/readyz").await {
            Some((503, body)) => {
                assert_eq!(body, "shutting down\n");
                break;
            }
            Some((200, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => panic!("{}: /readyz during the drain: {other:?}", relay.name()),
        }
    }
    // Nothing new starts there; the router sends it elsewhere (the streams see no loss).
    let direct = format!(
        "ws://127.0.0.1:{}{}",
        relay.port,
        TunnelPath::New(tunnel(0xEE)).to_path()
    );
    assert_eq!(
        refused_status(open(&direct, &[]).await),
        503,
        "{}: /cable/new while draining",
        relay.name()
    );
    // The tunnel waiting there is still joined, through the router, and relays.
    let join = format!("{router}{}", TunnelPath::Connect(routing, t).to_path());
    let (mut desktop, _) = open(&join, &[]).await.unwrap_or_else(|e| {
        panic!(
            "{}: joining a waiting tunnel during the drain: {e}",
            relay.name()
        )
    });
    send(&mut desktop, b"msg1").await;
    assert_eq!(recv_binary(&mut phone, WAIT).await, b"msg1");
    send(&mut phone, b"msg2").await;
    assert_eq!(recv_binary(&mut desktop, WAIT).await, b"msg2");
    desktop.close(None).await.expect("close");
    drop(phone);
    // It exits once its tunnels are done, and comes back with the same routing ID and store.
    let status = relay.exited(WAIT).await;
    assert!(status.success(), "{} exited with {status}", relay.name());
    relay.start();
    relay.wait_ready().await;
    let (_, announced) = relay.open_waiting(tunnel(0xF1)).await;
    assert_eq!(
        announced,
        relay.routing_id(),
        "{} kept its routing ID",
        relay.name()
    );
}

/// Tunnels open (waiting or paired) over the whole fleet.
async fn tunnels_open(relays: &[Relay]) -> u64 {
    let mut open = 0;
    for r in relays {
        open += r.metric("tunnel_server_tunnels_open").await.unwrap_or(0);
    }
    open
}

/// How many linked phones each pod holds.
fn owners(linked: &[Linked]) -> HashMap<RoutingId, usize> {
    let mut m = HashMap::new();
    for l in linked {
        *m.entry(l.owner).or_default() += 1;
    }
    m
}

/// A tunnel ID of this test's own (the streams' are random).
fn tunnel(n: u8) -> TunnelId {
    let mut id = [0u8; 16];
    id[0] = 0xF1;
    id[15] = n;
    id[1..9].copy_from_slice(&(std::process::id() as u64).to_be_bytes());
    TunnelId(id)
}
