//! Seeded fault injection for Graph requests.
//!
//! Each request URL (path and query) is faulted at most once: a retry of the same URL is never
//! faulted again, so every transient fault clears on retry. A fault is decided before the
//! request touches any state, so it never advances sync-state generations. Kinds are picked
//! from the per-kind rates in [`crate::FaultRates`], or, with the global `fault_rate`, uniformly
//! from all of them.

use std::collections::HashSet;

use rand::Rng;
use rand::rngs::StdRng;

use crate::config::SimConfig;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// 503; `retry_after` and `empty_body` vary.
    ServiceUnavailable {
        retry_after: bool,
        empty_body: bool,
    },
    GatewayTimeout {
        retry_after: bool,
        empty_body: bool,
    },
    ConnectionReset,
    TruncatedJson,
    Slow,
    TokenRevocation,
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::ServiceUnavailable { .. } => "service_unavailable",
            Fault::GatewayTimeout { .. } => "gateway_timeout",
            Fault::ConnectionReset => "connection_reset",
            Fault::TruncatedJson => "truncated_json",
            Fault::Slow => "slow",
            Fault::TokenRevocation => "token_revocation",
        }
    }
}

#[derive(Default)]
pub struct Faults {
    faulted: HashSet<String>,
}

impl Faults {
    /// Decides whether this URL gets a fault now.
    pub fn decide(&mut self, url: &str, cfg: &SimConfig, rng: &mut StdRng) -> Option<Fault> {
        let f = &cfg.faults;
        let any = f.service_unavailable + f.gateway_timeout + f.connection_reset + f.truncated_json + f.slow + f.token_revocation;
        if (cfg.fault_rate <= 0.0 && any <= 0.0) || self.faulted.contains(url) {
            return None;
        }
        let mut kind: Option<u32> = None;
        if cfg.fault_rate > 0.0 && rng.random::<f64>() < cfg.fault_rate {
            kind = Some(rng.random_range(0..6));
        } else {
            for (i, r) in [f.service_unavailable, f.gateway_timeout, f.connection_reset, f.truncated_json, f.slow, f.token_revocation].into_iter().enumerate() {
                if r > 0.0 && rng.random::<f64>() < r {
                    kind = Some(i as u32);
                    break;
                }
            }
        }
        let fault = match kind? {
            0 => Fault::ServiceUnavailable { retry_after: rng.random_bool(0.5), empty_body: rng.random_bool(0.3) },
            1 => Fault::GatewayTimeout { retry_after: rng.random_bool(0.3), empty_body: rng.random_bool(0.3) },
            2 => Fault::ConnectionReset,
            3 => Fault::TruncatedJson,
            4 => Fault::Slow,
            _ => Fault::TokenRevocation,
        };
        self.faulted.insert(url.to_string());
        Some(fault)
    }
}
