//! The connectors crate's one integration-test binary: the Graph source against the simulator.

mod fuzz;
mod sim;
