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
    /// The lookup of a key not known yet travels with the snapshot's `BEGIN` instead of
    /// after its answer (`db::tenant::begin_request_snapshot`).
    PipelinedBegin,
    /// A document that passed the full validation before runs without it when its
    /// variables cannot fail it (`graphql::variables`).
    ValidationSkip,
    /// A `customers`, `leads` or `campaigns` page reads every relation its nodes'
    /// selection asks for in the page's own statement, around the list's query
    /// (`db::nested::read_page`, and the `*_page` functions of
    /// `domain::customers::prefetch`, `domain::leads::prefetch` and
    /// `domain::campaigns::prefetch`), instead of one loader batch per relation and level
    /// after the page.
    PageRelations,
    /// Identical queries of one read group (same key, document, operation and variables,
    /// asked while one of them runs) run once and each gets its answer
    /// (`db::tenant::group::Runs`).
    IdenticalQueries,
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

    /// Every mechanism but the ones `names` lists (comma-separated; empty: none).
    pub fn parse(names: &str) -> Result<Speed, String> {
        use clap::ValueEnum;
        let off = names
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| Mechanism::from_str(name, true))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Speed::without(&off))
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
        let speed = Speed::without(&[Mechanism::ValidationSkip, Mechanism::KnownKeys]);
        assert!(!speed.on(Mechanism::ValidationSkip));
        assert!(!speed.on(Mechanism::KnownKeys));
        assert!(speed.on(Mechanism::PipelinedBegin));
        assert!(Speed::default().on(Mechanism::ValidationSkip));
    }

    #[test]
    fn a_list_of_names_parses_and_an_unknown_name_is_refused() {
        assert_eq!(Speed::parse(""), Ok(Speed::default()));
        assert_eq!(
            Speed::parse("known-keys, validation-skip"),
            Ok(Speed::without(&[
                Mechanism::KnownKeys,
                Mechanism::ValidationSkip
            ]))
        );
        assert!(Speed::parse("known-keys,warp-drive").is_err());
    }
}
