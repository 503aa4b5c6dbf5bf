//! The runtime every bridge service runs on. Services supply configuration and logic;
//! the runtime owns the process concerns, once, for all of them.
//!
//! Layout: [`config`] loads layered TOML + `BRIDGE__SECTION__KEY` environment settings;
//! [`telemetry`] sets up structured JSON logs and OTLP trace export, [`trace`] carries
//! the W3C trace context through records and [`http_trace`] through HTTP; [`health`] serves `/healthz`, `/readyz`
//! and `/metrics`; [`shutdown`] turns SIGTERM / Ctrl-C into a [`shutdown::Shutdown`]
//! signal; [`service`] ties them together for a service's `run`.
//! [`handler`] is what a service implements (events in, events out, state, timers, with
//! classified errors); [`state`] holds per-partition state (memory and sled) behind a
//! transaction overlay whose writes are the changelog; [`step`] is one unit of work —
//! dedupe, handle, timers, TTL sweep — shared by the runtime and [`driver::TestDriver`];
//! [`guard`] rate-limits calls to systems outside Kafka and breaks the circuit while they
//! are down.
//! [`processor`] is the Kafka exactly-once loop that commits steps; [`service`] runs it.
//! At the edges: [`listener`] serves a public HTTP route with connection, request, size
//! and time limits and optional TLS; [`http_body`] reads an outside system's answer with a
//! size bound; [`secret`] keeps credentials out of every printout and reads them from files.

pub mod changelog;
pub mod config;
pub mod driver;
pub mod guard;
pub mod handler;
pub mod health;
pub mod http_body;
pub mod http_trace;
pub mod json_state;
pub mod listener;
pub mod metrics;
pub mod parking;
pub mod process_metrics;
pub mod processor;
pub mod retry;
pub use config::secret;
pub mod service;
pub mod shutdown;
pub mod source;
pub mod state;
pub mod step;
pub mod telemetry;
pub mod trace;

/// The version every binary reports (`--version`, `--check-config`): the
/// workspace version and, when the build was given one (`make image` does), the source
/// revision in `BRIDGE_REVISION`.
pub const VERSION: &str = env!("BRIDGE_VERSION");

/// The allocator every service binary installs (`#[global_allocator]`): mimalloc. The loop
/// allocates per record (decode, state overlay, changelog) and glibc's malloc was a fifth of
/// its time in the runtime benchmark; mimalloc made the aggregator about 20 % faster.
pub type Allocator = mimalloc::MiMalloc;

/// `e` and every cause under it, joined by `: ` — what a one-line error report needs (a
/// `thiserror` message names what failed; its source says why).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    parts.join(": ")
}
