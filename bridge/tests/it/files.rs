//! Files that hold secrets. The links file under concurrency and kills: two bridges storing
//! links at once lose none (each `store` holds the file's lock across read, modify, write), a
//! temporary file a killed writer left (link secrets inside) is removed at the next write,
//! and the file is 0600. The `--qr-file` (the QR secret) is 0600 too. A phone-chosen link name
//! reaches the terminal without its control characters.

use std::path::Path;
use std::process::Command;

use bridge::links::{LinkStore, StoredLink};
use test_support::race;

const ADDER_ENV: &str = "BRIDGE_LINKS_ADDER";
const PER_PROCESS: usize = 30;

fn link(name: String, key_byte: u8, n: usize) -> StoredLink {
    let mut key = vec![0x04, key_byte];
    key.extend_from_slice(&(n as u32).to_be_bytes());
    key.resize(65, 0x11);
    StoredLink {
        name,
        contact_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        link_id: "0011223344556677".into(),
        link_secret: "ab".repeat(32).into(),
        phone_public_key: hex::encode(key),
        tunnel_domain: "cable.ua5v.com".into(),
        linked_at: n as u64,
        credentials: Vec::new(),
        reported_unknown: Vec::new(),
    }
}

/// The body of an adder process: stores `PER_PROCESS` links (distinct phones), at the same
/// moment as the other adder.
fn links_adder_child(path: &Path, tag: &str) -> ! {
    let store = LinkStore::new(path);
    for i in 0..PER_PROCESS {
        store
            .store(link(format!("{tag}{i:03}"), tag.as_bytes()[0], i))
            .unwrap();
    }
    std::process::exit(0);
}

#[test]
fn two_bridges_storing_links_lose_none() {
    match race::child(ADDER_ENV) {
        Some((path, tag)) => links_adder_child(&path, &tag),
        None => two_bridges_race(),
    }
}

/// The parent's side of [`two_bridges_storing_links_lose_none`].
fn two_bridges_race() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("links.json");
    let tags = ["a", "b"];
    race::race(
        "files::two_bridges_storing_links_lose_none",
        ADDER_ENV,
        &path,
        &tags,
    );
    let names: Vec<String> = LinkStore::new(&path)
        .list()
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    let want = race::names(&tags, PER_PROCESS);
    race::assert_none_lost(&names, &want, "links");
    assert_eq!(names.len(), want.len());
}

#[test]
fn a_stale_temporary_file_is_removed_and_the_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("links.json");
    let store = LinkStore::new(&path);
    store.store(link("one".into(), 1, 1)).unwrap();
    // What a writer killed before its rename leaves, in both temp-name forms (random, legacy pid).
    let stale = [
        dir.path().join(".links.json.Xy12ab.tmp"),
        dir.path().join(".links.json.tmp4242"),
    ];
    for s in &stale {
        std::fs::copy(&path, s).unwrap();
    }
    store.store(link("two".into(), 2, 2)).unwrap();
    for s in &stale {
        assert!(
            !s.exists(),
            "{} (link secrets inside) is still there",
            s.display()
        );
    }
    store.forget("one").unwrap();
    let names: Vec<String> = store.list().unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["two"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

fn bridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hybrid-bridge"))
}

#[cfg(unix)]
#[test]
fn the_qr_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let qr = dir.path().join("qr.txt");
    let out = bridge()
        .args([
            "-q",
            "sign-in",
            "--rp-id",
            "example.com",
            "--advert-timeout",
            "0.2",
            "--no-link",
        ])
        .arg("--advert-file")
        .arg(dir.path().join("adverts"))
        .arg("--qr-file")
        .arg(&qr)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&qr).unwrap().starts_with("FIDO:/"));
    let mode = std::fs::metadata(&qr).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the QR file holds the QR secret: {mode:o}");
}

#[test]
fn phones_list_prints_no_control_characters_a_phone_chose() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("links.json");
    // Clear the screen, set the window title, ring the bell, C1 CSI.
    let hostile = "Pixel\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m";
    LinkStore::new(&path)
        .store(link(hostile.into(), 1, 1))
        .unwrap();
    let out = bridge()
        .arg("--links-file")
        .arg(&path)
        .args(["phones", "list"])
        .output()
        .unwrap();
    let shown = test_support::terminal::printed_safely(&out);
    assert!(shown.contains("Pixel"), "{shown}");
}

#[test]
fn a_stored_link_keeps_its_secret_in_zeroizing_memory() {
    let l = link("one".into(), 1, 1);
    // A compile-time property: the secret is wiped when the link is dropped.
    let secret: &zeroize::Zeroizing<String> = &l.link_secret;
    assert_eq!(secret.len(), 64);
    assert!(!format!("{l:?}").contains(secret.as_str()));
}

/// A linked sign-in whose relay cannot be reached prints the `/cable/contact/…` URL with the
/// contact ID cut to a prefix: the full contact ID would let anyone take the phone's wake-ups.
#[test]
fn a_relay_error_prints_no_full_contact_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("links.json");
    let mut l = link("Pixel".into(), 1, 1);
    l.contact_id = "p6enp6enp6enp6enp6enp6enp6enp6en".into();
    let phone = hybrid_protocol::keys::IdentityKey::from_bytes(&[7; 32]).unwrap();
    l.phone_public_key = hex::encode(phone.public_key().to_uncompressed());
    LinkStore::new(&path).store(l.clone()).unwrap();
    let port = test_support::net::closed_port().port();
    let out = bridge()
        .arg("--links-file")
        .arg(&path)
        .args([
            "-q",
            "sign-in",
            "--rp-id",
            "example.com",
            "--phone",
            "Pixel",
        ])
        .args(["--tunnel-override", &format!("ws://127.0.0.1:{port}")])
        .arg("--advert-file")
        .arg(dir.path().join("adverts"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("/cable/contact/p6enp6en"), "{err}");
    assert!(!err.contains(&l.contact_id), "the full contact ID: {err}");
}
