//! The shared server state behind one lock, and the app registration's fixed identity.

use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::config::SimConfig;
use crate::faults::Faults;
use crate::identity::AuthStore;
use crate::model::World;
use crate::stats::Stats;
use crate::sync::Sync;
use crate::throttle::Throttle;

pub struct State {
    pub cfg: SimConfig,
    pub world: World,
    pub sync: Sync,
    /// Dice for ids of created items, tokens, replays and empty pages.
    pub rng: StdRng,
    /// Dice for faults (separate so faults do not shift the world's ids).
    pub fault_rng: StdRng,
    pub throttle: Throttle,
    pub faults: Faults,
    pub stats: Stats,
    pub auth: AuthStore,
}

pub struct Shared {
    pub state: Mutex<State>,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub url: String,
    /// Recorded delta pages ([`crate::replay`]).
    pub replay: crate::replay::Replay,
}

impl State {
    pub fn new(cfg: SimConfig) -> State {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let world = crate::seed::world(&cfg, &mut rng);
        State {
            fault_rng: StdRng::seed_from_u64(cfg.seed ^ 0x5eed_fa17),
            rng: StdRng::seed_from_u64(cfg.seed.wrapping_add(1)),
            world,
            sync: Sync::default(),
            throttle: Throttle::default(),
            faults: Faults::default(),
            stats: Stats::default(),
            auth: AuthStore::default(),
            cfg,
        }
    }

    /// Index of the signed-in user for delegated flows.
    pub fn signed_in_user(&self) -> Option<usize> {
        match &self.cfg.signed_in_user {
            Some(k) => self.world.user_index(k),
            None => self.world.users.iter().position(|u| u.mailbox.is_some()),
        }
    }

    /// Whether `key` (id or UPN) names user `ui` in one of the configured lists.
    pub fn listed(&self, list: &[String], ui: usize) -> bool {
        let u = &self.world.users[ui];
        list.iter().any(|k| *k == u.id || k.eq_ignore_ascii_case(&u.upn))
    }
}
