//! Armadito agent core: everything except the antivirus itself.
//!
//! Layers, lowest first; a module uses only its own layer or lower ones, without cycles
//! (checked by `tests/layers.rs`):
//! 1. [`wire`] (the GLPI plugin's protocol as typed values, no I/O), [`store`], [`transport`],
//!    [`plugins`] (backend plugins: loader, isolation), [`identity`], [`schedule`] (the
//!    schedule model): they know nothing of tasks;
//! 2. [`config`], [`cli`] (command line, environment and `agent.toml`, merged once), [`logging`];
//! 3. [`session`]: one run's [`session::Context`], [`session::AgentError`] and the enrolled
//!    session with its outbox delivery;
//! 4. [`jobs`] (the job engine) and [`tasks`];
//! 5. [`daemon`]: the long-lived service that schedules tasks and jobs;
//! 6. [`service`]: the Windows service around the daemon;
//! 7. [`app`]: dispatch only.

pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod identity;
pub mod jobs;
pub mod logging;
pub mod plugins;
pub mod schedule;
pub mod service;
pub mod session;
pub mod store;
pub mod tasks;
pub mod transport;
pub mod wire;
