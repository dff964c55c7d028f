//! The `tunnel-server domain` helper (docs/PROTOCOL.md#tunnel-domains): the host name a domain
//! number stands for, and the reverse search, so an operator can pick a hashed name they can
//! register.

use hybrid_protocol::tunnel::Domain;

/// One line per number: `<number> <name>`, or why it has no name.
pub fn describe(id: u16) -> String {
    match Domain(id).name() {
        Ok(name) => format!("{id} {name}"),
        Err(_) => format!("{id} (reserved: numbers 2..=255 have no name; use 0, 1 or 256..=65535)"),
    }
}

/// The numbers in `range` whose name contains `needle` (case-insensitive), with the names.
pub fn search(range: std::ops::RangeInclusive<u16>, needle: &str) -> Vec<(u16, String)> {
    let needle = needle.to_ascii_lowercase();
    range
        .filter_map(|v| Domain(v).name().ok().map(|n| (v, n)))
        .filter(|(_, n)| n.contains(&needle))
        .collect()
}

/// The number whose name is exactly `host`.
pub fn find(host: &str) -> Option<u16> {
    Domain::from_name(host).map(|d| d.0)
}

/// Parses `A..B`, `A..=B` or a single number, decimal or `0x` hex.
pub fn parse_range(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let num = |t: &str| {
        let t = t.trim();
        let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u16::from_str_radix(h, 16),
            None => t.parse(),
        };
        parsed.map_err(|_| format!("{t:?} is not a number from 0 to 65535"))
    };
    if let Some((a, b)) = s.split_once("..=") {
        Ok(num(a)?..=num(b)?)
    } else if let Some((a, b)) = s.split_once("..") {
        let end = num(b)?;
        let end = end
            .checked_sub(1)
            .ok_or_else(|| "an exclusive range must end above 0".to_string())?;
        Ok(num(a)?..=end)
    } else {
        let n = num(s)?;
        Ok(n..=n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_search() {
        assert_eq!(describe(266), "266 cable.wufkweyy3uaxb.com");
        assert_eq!(describe(0), "0 cable.ua5v.com");
        assert!(describe(7).contains("reserved"));
        assert_eq!(find("cable.wufkweyy3uaxb.com"), Some(266));
        assert_eq!(parse_range("256..258"), Ok(256..=257));
        assert_eq!(parse_range("0x100..=0x101"), Ok(256..=257));
        let hits = search(256..=300, "wufk");
        assert_eq!(hits, vec![(266, "cable.wufkweyy3uaxb.com".to_string())]);
    }
}
