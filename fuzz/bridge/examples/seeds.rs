//! Writes the bridge targets' seed inputs ([`bridge_targets::seeds`]) to
//! `corpus/<target>/seed-<name>`; `FUZZ_DIR=fuzz/bridge bash scripts/fuzz.sh seeds` runs it
//! and minimizes each corpus.

use std::path::PathBuf;

use hybrid_bridge_fuzz::bridge_targets;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seeds = bridge_targets::seeds();
    for (target, name, bytes) in &seeds {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
    }
    println!("wrote {} seeds under {}", seeds.len(), root.display());
    Ok(())
}
