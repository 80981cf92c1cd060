//! Test support: the GLPI plugin double.
pub mod agent;
