//! End-to-end tests of the `outlake` binary against the Graph simulator. One test binary for
//! the whole root crate (link time on 2 cores).

mod auth;
mod calendars;
mod check;
mod commands;
mod crash;
mod deploy;
mod engine;
mod faults;
mod hostile;
mod operator;
mod regression;
mod report;
mod scale;
mod scaleout;
mod scope;
mod storage;
mod support;
mod sync_e2e;
mod terminal;
mod truth;
