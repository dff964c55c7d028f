//! The open-file limit (`RLIMIT_NOFILE`) against `max_connections`: every client connection
//! is a file descriptor, so a cap above the limit makes a flood end in `accept` failing with
//! EMFILE (the listener then backs off and nobody is served) instead of in the connection cap
//! (the listener accepts and drops at once, and the next real client gets the first free
//! slot). At startup the binary raises the soft limit as far as the cap needs and the hard
//! limit allows, and lowers the cap to what the limit can hold if that is not enough. [`plan`]
//! is the decision, [`reconcile`] applies it.

use tracing::{info, warn};

/// Descriptors kept for everything that is not a client connection: the listener, the one a
/// refused connection holds while it is dropped, epoll, the runtime's wakers, the contact
/// store, standard streams.
pub const HEADROOM: u64 = 64;

/// What to do about the open-file limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The soft limit to set, if it should be raised.
    pub raise_to: Option<u64>,
    /// The connection cap to run with (lower than asked if the limit cannot hold it).
    pub max_connections: usize,
}

/// Decides, for a soft and hard limit (`None`: unlimited) and the configured cap, how far to
/// raise the soft limit (to what the cap needs plus [`HEADROOM`], at most the hard limit) and
/// which cap that limit can hold.
pub fn plan(soft: Option<u64>, hard: Option<u64>, max_connections: usize) -> Plan {
    let want = (max_connections as u64).saturating_add(HEADROOM);
    let soft = soft.unwrap_or(u64::MAX);
    if soft >= want {
        return Plan {
            raise_to: None,
            max_connections,
        };
    }
    let limit = want.min(hard.unwrap_or(u64::MAX));
    let raise_to = (limit > soft).then_some(limit);
    let fits = usize::try_from(limit.saturating_sub(HEADROOM)).unwrap_or(usize::MAX);
    Plan {
        raise_to,
        max_connections: max_connections.min(fits).max(1),
    }
}

/// Applies [`plan`] to this process and returns the cap to run with, logging what it did: an
/// INFO line when it raised the soft limit, a WARN line when it had to lower the cap.
#[cfg(unix)]
pub fn reconcile(max_connections: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let before = getrlimit(Resource::Nofile);
    let mut p = plan(before.current, before.maximum, max_connections);
    let mut soft = before.current;
    if let Some(to) = p.raise_to {
        let new = rustix::process::Rlimit {
            current: Some(to),
            maximum: before.maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => {
                info!(
                    from = before.current,
                    to, "raised the open-file limit (RLIMIT_NOFILE) for max connections"
                );
                soft = Some(to);
            }
            Err(e) => {
                warn!(error = %e, "cannot raise the open-file limit (RLIMIT_NOFILE)");
                p = plan(soft, soft, max_connections);
            }
        }
    }
    if p.max_connections < max_connections {
        warn!(
            open_file_limit = soft,
            hard_limit = before.maximum,
            configured = max_connections,
            max_connections = p.max_connections,
            "the open-file limit cannot hold max connections; lowered max connections to fit \
             (raise LimitNOFILE or ulimit -n to at least {})",
            (max_connections as u64).saturating_add(HEADROOM)
        );
    }
    p.max_connections
}

/// Elsewhere the limit is not checked.
#[cfg(not(unix))]
pub fn reconcile(max_connections: usize) -> usize {
    max_connections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_already_changes_nothing() {
        let p = plan(Some(200_000), Some(200_000), 100_000);
        assert_eq!(p.raise_to, None);
        assert_eq!(p.max_connections, 100_000);
        assert_eq!(plan(None, None, 100_000).raise_to, None);
    }

    #[test]
    fn soft_limit_is_raised_as_far_as_the_cap_needs() {
        let p = plan(Some(1024), Some(1_048_576), 100_000);
        assert_eq!(p.raise_to, Some(100_000 + HEADROOM));
        assert_eq!(p.max_connections, 100_000);
        let p = plan(Some(1024), None, 5_000);
        assert_eq!(p.raise_to, Some(5_000 + HEADROOM));
        assert_eq!(p.max_connections, 5_000);
    }

    #[test]
    fn a_low_hard_limit_lowers_the_cap() {
        let p = plan(Some(1024), Some(20_000), 100_000);
        assert_eq!(p.raise_to, Some(20_000));
        assert_eq!(p.max_connections, 20_000 - HEADROOM as usize);
        let p = plan(Some(512), Some(512), 100_000);
        assert_eq!(p.raise_to, None);
        assert_eq!(p.max_connections, 512 - HEADROOM as usize);
        // Absurdly low limits still leave one connection.
        assert_eq!(plan(Some(10), Some(10), 100).max_connections, 1);
    }
}
