//! The contact channel (README "Contact channel"): this relay's own way to wake a linked phone,
//! the leg docs/PROTOCOL.md#linking leaves open (Google uses FCM). A phone holds a registration socket
//! (`/cable/register`), through which a desktop's `/cable/contact/<contact id>` wakes it to
//! join a fresh tunnel. Everything the relay does for it lives here:
//!
//! - `registry`: the contact IDs this instance minted, their sockets and pending wake-ups, a
//!   plain struct with no sockets and no clock (it shares the state lock with the routing
//!   table, so a wake-up and its tunnel slot are made together);
//! - `secret`: the phone-only registration secret that resuming and revoking require;
//! - `mint_limit`: the per-client limit on minting contact IDs;
//! - `store`: the optional file that keeps contact IDs across restarts;
//! - `endpoints`: what `/cable/register` and `/cable/contact` decide (`http` answers);
//! - `socket`: the registration socket's task.
//!
//! Imports run one way: `http` → this module's `endpoints` and `socket` → `state` → the plain
//! parts (`registry`, `store`, `mint_limit`), which use neither.

mod endpoints;
pub(crate) mod mint_limit;
pub(crate) mod registry;
mod secret;
pub(crate) mod socket;
pub(crate) mod store;

pub(crate) use endpoints::{register, wake, NotRegistered};
