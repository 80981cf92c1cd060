//! Test support: the GLPI plugin double.
pub mod agent;
pub mod chaos;
pub mod defender_fakes;

pub mod clamd;
pub mod daemon;
pub mod double;
pub mod fakes;
pub mod fleet;
pub mod fleet_sim;
pub mod outbox;
pub mod soak;
#[cfg(unix)]
pub mod tmpfs;
