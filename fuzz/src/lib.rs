//! Fuzzing of every parser of outside data, on the stable toolchain.
//!
//! Each [`Target`] is one parser (or one family of parsers fed the same bytes) and a `run`
//! function that feeds it one input and asserts what must hold: no panic, errors are values
//! (typed or strings, never a crash), and where meaningful a round trip (serialize → parse
//! gives the same value). The [`engine`] drives a target with inputs made three ways: real
//! fixtures as seeds, byte-level mutations of them (AFL-style havoc: flips, inserts, splices,
//! dictionary tokens, huge numbers, multi-byte characters), and structured inputs built by
//! [`arbitrary`] from random bytes (JSON documents whose keys are the parser's own field names).
//! Each input gets a time bound: one that runs longer is reported as a hang and aborts the run
//! (a parser that never returns cannot be unwound).
//!
//! Invariant: `run` never panics on any input; a panic, or an input slower than the bound, is
//! a bug of the parser (or of the target's assertion), never of the input.
//!
//! Why not `cargo fuzz`: it needs a nightly toolchain and `cargo install cargo-fuzz` on every
//! CI machine, and an instrumented build of the whole dependency graph (2 cores here). The
//! targets are `fn(&[u8])`, so a `fuzz_target!(|d| (target.run)(d))` wrapper is all a
//! coverage-guided run would need.

// The parsers fuzzed here are the Linux builds (the ClamAV and Armadito backends are Unix-only).
#![cfg(unix)]

pub mod engine;
pub mod make;
pub mod targets;

pub use engine::{Outcome, Settings, fuzz};
pub use targets::{Target, all, find};
