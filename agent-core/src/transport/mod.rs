//! HTTP transport to the Armadito plugin of a GLPI server.
//!
//! Invariants (each one fixes a defect of the old Perl agent, reference-agent.md §5.1/§12, or a
//! trap of the PHP server, server-api.md §0/§1):
//! - URLs are `<server>/api/<name>/` with the trailing slash, never `//`; redirects are never
//!   followed (a POST would be turned into an empty GET) and are reported with the fix;
//! - every request carries `Content-Type: application/json`, `Accept: application/json` and
//!   `User-Agent: armadito-agent/<version>`;
//! - success is decided on the status code only (2xx); error bodies are opaque text from which
//!   a message is extracted leniently, never parsed strictly (they are often invalid JSON or
//!   HTML);
//! - `timeout`, `connect_timeout`, CA, client certificate, proxy and basic-auth options all take
//!   effect, bad files fail at build with their name;
//! - a request that is not replay-safe (enrollment, `GET jobs`) is never re-sent once it may have
//!   reached the server;
//! - secrets never reach logs or `Debug`: passwords are [`Secret`]s, proxy URLs are redacted,
//!   enrollment bodies are never logged at any level and keys echoed by the server are masked.

mod body;
mod client;
mod endpoint;
mod error;
mod options;
mod retry;
mod secret;
mod tls;
mod urls;

pub use body::{EXCERPT_MAX_CHARS, MESSAGE_MAX_CHARS, json_object_start, server_message};
pub use client::{GlpiClient, MAX_BODY_BYTES, Reply, SleepFuture, USER_AGENT};
pub use endpoint::{Endpoint, Method, ReplaySafety};
pub use error::{TlsProblem, TransportError, is_deterministic_plugin_error};
pub use options::{HttpOptions, RetryPolicy};
pub use retry::{backoff_delay, parse_retry_after, retry_delay, should_retry};
pub use secret::Secret;
pub use urls::{endpoint_url, endpoint_url_for_agent, normalize_server_url, redact_url};
