//! One module per task or inspection command. Tasks turn local state and backend data into
//! wire payloads and hand them to the transport; they hold no protocol details themselves.

pub mod alerts;
pub mod avconfig;
pub mod enrollment;
pub mod inspect;
pub mod plugins;
pub mod scan;
pub mod scheduler;
pub mod state;
pub mod status;
