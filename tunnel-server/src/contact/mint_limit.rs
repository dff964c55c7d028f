//! The per-client limit on minting contact IDs (`--registrations-per-ip-per-minute`, README
//! "Threat model"): one token bucket per client key, refilled at the rate per minute up to the
//! rate. Resuming a contact ID is not limited. Buckets are dropped once full (idle) when there
//! are too many, so the map stays bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Buckets kept before full (idle) ones are dropped.
const MAX_BUCKETS: usize = 10_000;

/// A token bucket refilled at `rate` per minute up to `rate` tokens.
#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets for minting contact IDs, per client key (`state::client_key`).
#[derive(Default)]
pub(crate) struct MintLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl MintLimiter {
    /// Whether `client` may mint another contact ID now at `rate` per minute (0: unlimited);
    /// takes a token if so.
    pub(crate) fn allow(&self, client: IpAddr, rate: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let rate = f64::from(rate);
        let refill = |b: &Bucket| {
            let minutes = now.saturating_duration_since(b.at).as_secs_f64() / 60.0;
            (b.tokens + minutes * rate).min(rate)
        };
        let mut map = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_BUCKETS {
            map.retain(|_, b| refill(b) < rate);
        }
        let bucket = map.entry(client).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let tokens = refill(bucket);
        if tokens < 1.0 {
            return false;
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        true
    }
}
