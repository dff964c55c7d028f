//! The limits on minting contact IDs (README "Threat model", "Contact registry"): token
//! buckets, each refilled at its rate per minute up to that rate, per client key
//! (`--registrations-per-ip-per-minute`), per IPv6 /48 and per IPv6 /32 (one tunnel broker's
//! /48 holds 65,536 /64 clients, each a client of its own), and one for the whole relay
//! (`--registrations-per-minute`). A mint takes a token from every bucket its address counts
//! against, or from none when any is empty, so a refused mint costs the client's other
//! buckets nothing. Resuming a contact ID is not limited. Buckets are dropped once full
//! (idle) when there are too many, so the maps stay bounded.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::config::Limits;

/// Buckets kept per map before full (idle) ones are dropped.
const MAX_BUCKETS: usize = 10_000;

/// A token bucket refilled at `rate` per minute up to `rate` tokens.
#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: f64, now: Instant) -> Self {
        Self {
            tokens: rate,
            at: now,
        }
    }

    /// The tokens at `now`.
    fn level(&self, rate: f64, now: Instant) -> f64 {
        let minutes = now.saturating_duration_since(self.at).as_secs_f64() / 60.0;
        (self.tokens + minutes * rate).min(rate)
    }
}

/// Which limit refused a mint (the most specific one that was empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limited {
    /// `--registrations-per-ip-per-minute`, for the client key.
    Client,
    /// `--registrations-per-ipv6-48-per-minute`.
    Ipv6Slash48,
    /// `--registrations-per-ipv6-32-per-minute`.
    Ipv6Slash32,
    /// `--registrations-per-minute`, the whole relay.
    Relay,
}

/// One level of buckets: a rate per minute (0: unlimited) and a bucket per key.
#[derive(Default)]
struct Level {
    buckets: HashMap<IpAddr, Bucket>,
}

impl Level {
    fn level(&mut self, key: IpAddr, rate: f64, now: Instant) -> f64 {
        if self.buckets.len() >= MAX_BUCKETS {
            self.buckets.retain(|_, b| b.level(rate, now) < rate);
        }
        self.buckets
            .entry(key)
            .or_insert(Bucket::full(rate, now))
            .level(rate, now)
    }

    fn take(&mut self, key: IpAddr, tokens: f64, now: Instant) {
        self.buckets.insert(
            key,
            Bucket {
                tokens: tokens - 1.0,
                at: now,
            },
        );
    }
}

#[derive(Default)]
struct Levels {
    client: Level,
    slash48: Level,
    slash32: Level,
    relay: Level,
}

/// Token buckets for minting contact IDs, per client key, per IPv6 /48 and /32, and for the
/// relay.
#[derive(Default)]
pub(crate) struct MintLimiter {
    levels: Mutex<Levels>,
}

impl MintLimiter {
    /// Whether the client `client` (its client key, `state::client_key`) at address `peer`
    /// may mint another contact ID now under `limits`; takes a token from each of its buckets
    /// if so, and none otherwise.
    pub(crate) fn handle_mint(
        &self,
        client: IpAddr,
        peer: IpAddr,
        limits: &Limits,
        now: Instant,
    ) -> Result<(), Limited> {
        let mut wanted = vec![(
            Limited::Client,
            client,
            limits.registrations_per_ip_per_minute,
        )];
        if let IpAddr::V6(v6) = peer.to_canonical() {
            wanted.push((
                Limited::Ipv6Slash48,
                v6_prefix(v6, 48),
                limits.registrations_per_ipv6_48_per_minute,
            ));
            wanted.push((
                Limited::Ipv6Slash32,
                v6_prefix(v6, 32),
                limits.registrations_per_ipv6_32_per_minute,
            ));
        }
        let unspecified = IpAddr::from([0u8; 16]);
        wanted.push((Limited::Relay, unspecified, limits.registrations_per_minute));

        let mut levels = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
        let mut take = Vec::with_capacity(wanted.len());
        for (which, key, rate) in wanted {
            if rate == 0 {
                continue;
            }
            let rate = f64::from(rate);
            let tokens = levels.get(which).level(key, rate, now);
            if tokens < 1.0 {
                return Err(which);
            }
            take.push((which, key, tokens));
        }
        for (which, key, tokens) in take {
            levels.get(which).take(key, tokens, now);
        }
        Ok(())
    }
}

/// The leading `bits` of `a`, the rest zeroed.
fn v6_prefix(a: Ipv6Addr, bits: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(u128::from(a) & !(u128::MAX >> bits)))
}

impl Levels {
    fn get(&mut self, which: Limited) -> &mut Level {
        match which {
            Limited::Client => &mut self.client,
            Limited::Ipv6Slash48 => &mut self.slash48,
            Limited::Ipv6Slash32 => &mut self.slash32,
            Limited::Relay => &mut self.relay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;
    use std::time::Duration;

    fn limits() -> Limits {
        Limits::default()
    }

    /// As `ConnGuard` calls it with the default client prefixes: an IPv4 address or an
    /// IPv6 /64 is one client.
    fn mint(m: &MintLimiter, peer: IpAddr, l: &Limits, now: Instant) -> Result<(), Limited> {
        assert_eq!((l.ipv4_client_prefix, l.ipv6_client_prefix), (32, 64));
        let client = match peer {
            IpAddr::V4(_) => peer,
            IpAddr::V6(a) => v6_prefix(a, 64),
        };
        m.handle_mint(client, peer, l, now)
    }

    /// Every /64 of one /48 is a client of its own, but the /48 shares one bucket: a flood
    /// from 65,536 /64s gets the /48's rate, not 65,536 times the per-client rate.
    #[test]
    fn a_slash_48_flood_gets_the_slash_48_rate() {
        let l = limits();
        let m = MintLimiter::default();
        let now = Instant::now();
        let mut minted = 0;
        for subnet in 0..=u16::MAX {
            let peer = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x48, subnet, 0, 0, 0, 1));
            for _ in 0..2 {
                if mint(&m, peer, &l, now).is_ok() {
                    minted += 1;
                }
            }
        }
        assert_eq!(minted, l.registrations_per_ipv6_48_per_minute);
        let next = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x48, 7, 0, 0, 0, 9));
        assert_eq!(mint(&m, next, &l, now), Err(Limited::Ipv6Slash48));
        // A minute later the /48 has a minute's worth again.
        let later = now + Duration::from_secs(60);
        assert_eq!(mint(&m, next, &l, later), Ok(()));
        // Another /48 of the same /32 is counted apart (up to the /32's rate).
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x49, 1, 0, 0, 0, 1));
        assert_eq!(mint(&m, other, &l, now), Ok(()));
    }

    #[test]
    fn the_slash_32_and_the_relay_cap_many_prefixes() {
        let l = limits();
        let m = MintLimiter::default();
        let now = Instant::now();
        // One /32, many /48s: the /32's rate.
        let minted = (0..=u16::MAX)
            .filter(|&n| {
                let peer = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, n, 1, 0, 0, 0, 1));
                mint(&m, peer, &l, now).is_ok()
            })
            .count();
        assert_eq!(minted as u32, l.registrations_per_ipv6_32_per_minute);
        // Many IPv4 addresses: the relay's rate, all clients together.
        let m = MintLimiter::default();
        let minted = (0..=u16::MAX)
            .filter(|&n| {
                let [a, b] = n.to_be_bytes();
                let peer = IpAddr::from([198, 51, a, b]);
                mint(&m, peer, &l, now).is_ok()
            })
            .count();
        assert_eq!(minted as u32, l.registrations_per_minute);
        let refused = mint(&m, IpAddr::from([192, 0, 2, 1]), &l, now);
        assert_eq!(refused, Err(Limited::Relay));
    }

    /// A refused mint takes nothing: the client's own bucket keeps its tokens for later.
    #[test]
    fn a_refused_mint_takes_no_token() {
        let mut l = limits();
        l.registrations_per_ip_per_minute = 2;
        l.registrations_per_minute = 1;
        let m = MintLimiter::default();
        let now = Instant::now();
        let (a, b) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        assert_eq!(mint(&m, a, &l, now), Ok(()));
        assert_eq!(mint(&m, b, &l, now), Err(Limited::Relay));
        let later = now + Duration::from_secs(60);
        // b's own bucket is still full: two mints over the next two minutes.
        assert_eq!(mint(&m, b, &l, later), Ok(()));
        assert_eq!(mint(&m, b, &l, later + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn zero_is_unlimited_and_buckets_stay_bounded() {
        let mut l = limits();
        l.registrations_per_ip_per_minute = 0;
        l.registrations_per_ipv6_48_per_minute = 0;
        l.registrations_per_ipv6_32_per_minute = 0;
        l.registrations_per_minute = 0;
        let m = MintLimiter::default();
        let now = Instant::now();
        for n in 0..1000u32 {
            assert_eq!(mint(&m, IpAddr::from(n.to_be_bytes()), &l, now), Ok(()));
        }
        let l = limits();
        let m = MintLimiter::default();
        for n in 0..3 * MAX_BUCKETS as u32 {
            let _ = mint(
                &m,
                IpAddr::from(n.to_be_bytes()),
                &l,
                now + Duration::from_secs(u64::from(n)),
            );
        }
        let levels = m.levels.lock().unwrap();
        assert!(levels.client.buckets.len() <= MAX_BUCKETS + 1);
    }
}
