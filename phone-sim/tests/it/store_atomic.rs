//! Store atomicity: a child process writes the store in a loop and is killed mid-write again
//! and again; every load afterwards succeeds and loses nothing that was saved.

use std::process::Command;
use std::time::Duration;

use phone_sim::store::SecretHex;
use phone_sim::{Store, StoredCredential};

const CHILD_ENV: &str = "PHONE_SIM_STORE_WRITER";

/// The body of the child process: the same test binary, started by
/// `store_survives_kill_mid_write` with `CHILD_ENV` set, writes until it is killed.
fn store_writer_child(path: &str) -> ! {
    let path = std::path::PathBuf::from(path);
    let mut store = Store::load(&path).unwrap();
    let mut n = store.credentials().len();
    loop {
        store.add_credential(StoredCredential {
            id: format!("cred{n:06}"),
            rp_id: "example.com".into(),
            rp_name: Some("Example".into()),
            user_id: "dXNlcg".into(),
            user_name: Some("x".repeat(200)),
            user_display_name: Some("X".into()),
            discoverable: true,
            created_at: n as u64,
            private_key: SecretHex::new(&[0x42; 32]),
            prf_secret: SecretHex::new(&[0x43; 32]),
        });
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
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "store_atomic::store_survives_kill_mid_write",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD_ENV, &path)
            .stdout(std::process::Stdio::null())
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
}
