//! Text the desktop chose (an RP ID, a user or RP name) made safe to print on the phone's
//! terminal: every control character (C0 but newline, DEL, C1), which could start an escape
//! sequence that clears the screen, sets the window title or moves the cursor, is shown as a
//! `\u{…}` escape, so what is printed is what was sent and never an instruction to the terminal.

/// `s` with its control characters escaped.
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_unicode());
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
        let s = shown("example.com\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\u{7f}");
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert!(s.starts_with("example.com\\u{1b}[2J"), "{s}");
        assert_eq!(shown("bücher.example — Ana"), "bücher.example — Ana");
    }
}
