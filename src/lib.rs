//! regtrust: can this node pull from that registry — and if not, exactly why?
//!
//! # Layout (the data flow, top to bottom; ARCHITECTURE.md draws it)
//! - [`hostroot`]: the one place node paths are re-rooted under the mounted host root; regular
//!   files only, bounded.
//! - [`pem`], [`cert`], [`gonames`]: PEM as Go's `pem.Decode` + `AppendCertsFromPEM` read it; one
//!   certificate parsed as Go's `x509.ParseCertificate` parses it (per Go version); Go's name syntax.
//! - [`trust`]: the runtime's trust — containerd hosts dirs, containers/image and Docker
//!   certs.d, system roots — with findings. Pure file reading.
//! - [`probe`]: TCP, TLS through a recording verifier, `GET /v2/`, per-phase timings. The only
//!   network I/O.
//! - [`verify`]: Go crypto/x509's verdict (not webpki's). Pure.
//! - [`diagnose`]: a probe's result → a stable reason, the runtime's words and the next step. Pure.
//! - [`outcome`]: what a check found, as domain data: every view and sink reads it.
//! - [`check`]: loads trust, probes, decides the runtime's way; returns the outcome.
//! - [`report`]: every view of an outcome: text, JSON, the npd line, the status page, staging, demo.
//! - [`agent`]: `regtrust run`, a fold over outcomes ([`agent::drift`]) applied by sinks to
//!   [`metrics`], logs and state; [`config`] is its settings.
//! - [`stage`]: installing a corrected CA: plan, verify against the live chain, write, confirm.
//! - [`offload`]: the blocking boundary: file I/O and CPU-heavy work leave the event loop.
//! - [`demo`]: the incident replayed on loopback, through the same code as `check`.
//!
//! `unsafe` is forbidden: nothing here needs it.
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

pub mod agent;
pub mod cert;
pub mod check;
pub mod config;
pub mod demo;
pub mod diagnose;
pub mod gonames;
pub mod hostroot;
pub mod metrics;
pub mod offload;
pub mod outcome;
pub mod pem;
pub mod probe;
pub mod report;
pub mod stage;
pub mod trust;
pub mod verify;
