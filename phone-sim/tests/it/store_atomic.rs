//! Store atomicity and locking: a child process writes the store in a loop and is killed
//! mid-write again and again, and every load afterwards succeeds and loses nothing that was
//! saved; two processes adding credentials at once lose none of them; a temporary file a
//! killed writer left (it holds the root secret and private keys) is gone at the next open.

use std::path::Path;
use std::time::Duration;

use phone_sim::store::SecretHex;
use phone_sim::{Store, StoredCredential};
use test_support::race;

const CHILD_ENV: &str = "PHONE_SIM_STORE_WRITER";
const ADDER_ENV: &str = "PHONE_SIM_STORE_ADDER";

/// A credential with a distinct ID.
fn credential(id: String, n: u64) -> StoredCredential {
    StoredCredential {
        id,
        rp_id: "example.com".into(),
        rp_name: Some("Example".into()),
        user_id: "dXNlcg".into(),
        user_name: Some("x".repeat(200)),
        user_display_name: Some("X".into()),
        discoverable: true,
        kind: Default::default(),
        created_at: n,
        private_key: SecretHex::new(&[0x42; 32]),
        prf_secret: SecretHex::new(&[0x43; 32]),
    }
}

/// The body of the child process: the same test binary, started by
/// `store_survives_kill_mid_write` with `CHILD_ENV` set, writes until it is killed.
fn store_writer_child(path: &str) -> ! {
    let path = std::path::PathBuf::from(path);
    let mut store = Store::load(&path).unwrap();
    let mut n = store.credentials().len();
    loop {
        store.add_credential(credential(format!("cred{n:06}"), n as u64));
        store.save().unwrap();
        // Announce what is durable.
        std::fs::write(path.with_extension("saved"), n.to_string()).unwrap();
        n += 1;
    }
}

#[test]
fn store_survives_kill_mid_write() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        store_writer_child(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.json");
    let root = Store::open_or_create(&path, &mut rand_core::OsRng)
        .unwrap()
        .root_secret();
    let mut last = 0usize;
    for round in 0..15u64 {
        let mut child = race::this_test(
            "store_atomic::store_survives_kill_mid_write",
            CHILD_ENV,
            &path,
        )
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        // Let it save at least once more, then kill it at a varying point of its loop.
        let announced = || -> usize {
            std::fs::read_to_string(path.with_extension("saved"))
                .ok()
                .and_then(|s| s.parse().ok())
                .map_or(0, |n: usize| n + 1)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while announced() <= last && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis((round * 7) % 23));
        child.kill().unwrap();
        child.wait().unwrap();
        let store = Store::load(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(store.root_secret(), root);
        let saved = announced();
        let n = store.credentials().len();
        assert!(
            n >= saved,
            "round {round}: {n} credentials, {saved} announced as saved"
        );
        assert!(
            n >= last,
            "round {round}: credentials went from {last} to {n}"
        );
        for (i, c) in store.credentials().iter().enumerate() {
            assert_eq!(c.id, format!("cred{i:06}"));
        }
        last = n;
    }
    assert!(last > 15, "the child wrote something ({last})");
    let temps = temp_files(dir.path());
    assert!(
        temps.is_empty(),
        "temporary files left after an open: {temps:?}"
    );
}

/// Files in `dir` other than the store, its lock and the test's marker.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            !matches!(
                n.as_str(),
                "phone.json" | ".phone.json.lock" | "phone.saved"
            )
        })
        .collect()
}

/// The body of an adder process: `PER_PROCESS` times what a makeCredential does (refresh,
/// add, save), at the same moment as the other adder.
fn store_adder_child(path: &Path, tag: &str) -> ! {
    let mut store = Store::open_or_create(path, &mut rand_core::OsRng).unwrap();
    for i in 0..PER_PROCESS {
        store.refresh().unwrap();
        store.add_credential(credential(format!("{tag}{i:03}"), i as u64));
        store.save().unwrap();
    }
    std::process::exit(0);
}

const PER_PROCESS: usize = 30;

#[test]
fn two_processes_adding_credentials_lose_none() {
    if let Some((path, tag)) = race::child(ADDER_ENV) {
        store_adder_child(&path, &tag);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.json");
    // Neither process creates it: both start on the same identity.
    let root = Store::open_or_create(&path, &mut rand_core::OsRng)
        .unwrap()
        .root_secret();
    let tags = ["a", "b"];
    race::race(
        "store_atomic::two_processes_adding_credentials_lose_none",
        ADDER_ENV,
        &path,
        &tags,
    );
    let store = Store::load(&path).unwrap();
    assert_eq!(store.root_secret(), root);
    let ids: Vec<&str> = store.credentials().iter().map(|c| c.id.as_str()).collect();
    let want = race::names(&tags, PER_PROCESS);
    race::assert_none_lost(&ids, &want, "credentials");
    assert_eq!(ids.len(), want.len(), "no credential twice");
}

#[test]
fn a_stale_temporary_file_is_removed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.json");
    let store = Store::open_or_create(&path, &mut rand_core::OsRng).unwrap();
    // What a writer killed between creating its temporary file and renaming it leaves.
    let stale = dir.path().join(".phone.json.3f9a1c.tmp");
    std::fs::copy(&path, &stale).unwrap();
    drop(store);
    Store::open_or_create(&path, &mut rand_core::OsRng).unwrap();
    assert!(
        !stale.exists(),
        "the stale temporary file (root secret inside) is still there"
    );
    std::fs::copy(&path, &stale).unwrap();
    Store::load(&path).unwrap();
    assert!(!stale.exists(), "load leaves the stale temporary file");
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
}

#[test]
fn a_removed_credential_stays_removed_and_a_concurrent_addition_survives() {
    // `phone-sim credentials delete` loads, deletes and saves; another process added one in
    // between: both changes hold.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.json");
    let mut a = Store::open_or_create(&path, &mut rand_core::OsRng).unwrap();
    a.add_credential(credential("old".into(), 1));
    a.save().unwrap();
    let mut cli = Store::load(&path).unwrap();
    a.refresh().unwrap();
    a.add_credential(credential("new".into(), 2));
    a.save().unwrap();
    cli.delete_credential("old").unwrap();
    cli.save().unwrap();
    let ids: Vec<String> = Store::load(&path)
        .unwrap()
        .credentials()
        .iter()
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(ids, ["new"]);
}

/// Loading a store of 2,000 credentials, as every registration does (refresh before its
/// save). Prints the time; asserts only that the keys are still checked where they are used.
#[test]
fn loading_a_large_store_is_cheap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.json");
    let mut store = Store::open_or_create(&path, &mut rand_core::OsRng).unwrap();
    for i in 0..2000 {
        let mut key = [0x42u8; 32];
        key[..4].copy_from_slice(&(i as u32).to_be_bytes());
        let mut c = credential(format!("c{i:04}"), i);
        c.private_key = SecretHex::new(&key);
        store.add_credential(c);
    }
    store.save().unwrap();
    let start = std::time::Instant::now();
    for _ in 0..5 {
        store.refresh().unwrap();
    }
    println!(
        "loading a store of 2,000 credentials: {:?} each",
        start.elapsed() / 5
    );
    assert_eq!(store.credentials().len(), 2000);
}
