//! The speed mechanisms that can be switched off (`--speed-off`), so that what each buys
//! can be measured with the benchmark on one build, in alternated runs: the same binary
//! with and without it. Every mechanism is on unless switched off; the answers are the
//! same either way (only round trips, statements planned or work cached change), which
//! the tests check for each switch. What each bought when last measured is in
//! `docs/architecture.md` ("Speed mechanisms").

/// A mechanism `--speed-off` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mechanism {
    /// A key seen before is confirmed by a statement sent with the request's first one
    /// instead of being looked up first (`auth::KnownKeys`); read groups need it.
    KnownKeys,
    /// The confirmation of a known key is `EXECUTE` of a statement each pool connection
    /// prepared, instead of a `SELECT` parsed and planned per request (`db::CONFIRM_KEY`).
    PreparedConfirmation,
    /// The lookup of a key not known yet travels with the snapshot's `BEGIN` instead of
    /// after its answer (`db::tenant::begin_request_snapshot`).
    PipelinedBegin,
    /// A document without variables in its cost has its cost computed once, when it is
    /// parsed, instead of per request (`graphql::guard`).
    FixedCost,
    /// A document that passed the full validation before runs without it when its
    /// variables cannot fail it (`graphql::variables`).
    ValidationSkip,
}

/// Which mechanisms are in use: all but the ones switched off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Speed {
    /// One bit per [`Mechanism`] switched off.
    off: u32,
}

impl Speed {
    /// Every mechanism but `mechanisms`.
    pub fn without(mechanisms: &[Mechanism]) -> Speed {
        Speed {
            off: mechanisms.iter().fold(0, |off, m| off | bit(*m)),
        }
    }

    /// Whether `mechanism` is in use.
    pub fn on(self, mechanism: Mechanism) -> bool {
        self.off & bit(mechanism) == 0
    }
}

fn bit(mechanism: Mechanism) -> u32 {
    1 << mechanism as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_mechanisms_are_off() {
        let speed = Speed::without(&[Mechanism::FixedCost, Mechanism::KnownKeys]);
        assert!(!speed.on(Mechanism::FixedCost));
        assert!(!speed.on(Mechanism::KnownKeys));
        assert!(speed.on(Mechanism::PreparedConfirmation));
        assert!(speed.on(Mechanism::PipelinedBegin));
        assert!(speed.on(Mechanism::ValidationSkip));
        assert!(Speed::default().on(Mechanism::ValidationSkip));
    }
}
