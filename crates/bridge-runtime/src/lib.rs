//! The runtime every bridge service runs on. Services supply configuration and logic;
//! the runtime owns the process concerns, once, for all of them.
//!
//! Layout: [`config`] loads layered TOML + `BRIDGE__SECTION__KEY` environment settings;
//! [`telemetry`] sets up structured JSON logs; [`health`] serves `/healthz`, `/readyz`
//! and `/metrics`; [`shutdown`] turns SIGTERM / Ctrl-C into a [`shutdown::Shutdown`]
//! signal; [`service`] ties them together for a service's `run`.
//! The exactly-once loop, state stores, dedupe and parking arrive with issue 5.

pub mod config;
pub mod health;
pub mod service;
pub mod shutdown;
pub mod telemetry;
