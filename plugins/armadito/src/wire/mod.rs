//! Armadito AV's messages, parsed without I/O (tested on the reference fixtures).

pub mod event;
pub mod framing;
pub mod info;
