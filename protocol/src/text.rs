//! Strings the other side chose (a phone's link name, an RP ID or user name from a CTAP
//! request, an error that quotes either) made safe to show: every control character (C0 but
//! newline, DEL, C1), which on a terminal could start an escape sequence that clears the
//! screen, sets the window title or moves the cursor, becomes a visible `\u{…}` escape, so what
//! is shown is what was sent and never an instruction to the terminal. Pure, so both sides
//! (bridge and phone-sim) show peer-chosen text the same way.

/// `s` with every control character but newline replaced by its `\u{…}` escape.
pub fn escape_controls(s: &str) -> String {
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
        let shown = escape_controls("Pixel\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\u{7f}\t");
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.starts_with("Pixel\\u{1b}[2J"), "{shown}");
        assert!(shown.ends_with("\\u{7f}\\u{9}"), "{shown}");
        assert_eq!(escape_controls("a\nb"), "a\nb", "newlines stay");
        assert_eq!(
            escape_controls("Pixel 9 Pro — Ana's, bücher.example"),
            "Pixel 9 Pro — Ana's, bücher.example"
        );
    }
}
