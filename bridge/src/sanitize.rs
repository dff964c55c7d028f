//! Text from elsewhere (a phone's chosen link name, a relying party's RP ID, an error that
//! quotes either) made safe to print on a terminal: control characters — escape sequences
//! that could clear the screen, set the window title or move the cursor — are replaced, so
//! what is shown is what was sent, never an instruction to the terminal.

/// `s` with every control character (C0, DEL, C1) replaced by `\u{…}` escapes.
pub fn for_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\n' {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_cannot_reach_the_terminal() {
        let hostile = "Pixel\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m";
        let shown = for_terminal(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(shown.starts_with("Pixel\\u{1b}[2J"), "{shown}");
        assert_eq!(for_terminal("Pixel 9 Pro — Ana's"), "Pixel 9 Pro — Ana's");
    }
}
