//! The sinks crate's one integration-test binary.
mod conformance;
mod failing;
mod golden;
mod local;
mod support;
