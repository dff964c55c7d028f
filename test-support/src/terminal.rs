//! What a command printed, checked the way a terminal would take it: a run's stdout, after
//! asserting that the run succeeded and that no control character but the layout ones (newline,
//! tab) is in it: any other would start an escape sequence the terminal obeys, from a
//! peer-chosen name that was not escaped.

use std::process::Output;

/// The stdout of `out`, which must have succeeded and printed no control character but newline
/// and tab.
pub fn printed_safely(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8");
    assert!(
        !shown
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "a control character reached the terminal: {shown:?}"
    );
    shown
}
