//! Writes the seed inputs ([`protocol_targets::seeds`]: valid messages built with the targets'
//! fixed keys) to `corpus/<target>/seed-<name>`. `scripts/fuzz.sh seeds` runs it, then
//! minimizes each corpus with `cargo fuzz cmin`.

use std::path::PathBuf;

use hybrid_protocol_fuzz::protocol_targets;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seeds = protocol_targets::seeds();
    for (target, name, bytes) in &seeds {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
    }
    println!("wrote {} seeds under {}", seeds.len(), root.display());
    Ok(())
}
