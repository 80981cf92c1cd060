//! `armadito-agent daemon`: one long-lived process that runs every task on its schedule.
//! (Skeleton: the loop is being written.)

pub use crate::session::Stop;

use crate::session::{AgentError, Context};

/// Runs the daemon until `stop` is requested.
pub async fn run(_ctx: &Context, stop: Stop) -> Result<(), AgentError> {
    stop.requested().await;
    Ok(())
}
