//! The job engine: Getjobs fills the durable queue, Runjobs drains it, the outbox (delivered by
//! [`crate::session::delivery`]) carries every result to the server. See `store::jobs` and `store::outbox` for the invariants.

pub mod execute;
pub mod getjobs;
pub mod runjobs;
