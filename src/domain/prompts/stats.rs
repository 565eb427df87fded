//! The statistics of A/B tests: which arm a subject falls in, and whether two arms'
//! success rates differ.

use sha2::{Digest, Sha256};

/// Where a subject falls in a test: a number in 0..10 000 read from SHA-256 of the
/// test's id and the subject's key (the same subject, the same bucket, for ever).
pub fn bucket(test: uuid::Uuid, subject_key: &str) -> u32 {
    let mut hash = Sha256::new();
    hash.update(test.as_bytes());
    hash.update(subject_key.as_bytes());
    let digest = hash.finalize();
    let first = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (first % 10_000) as u32
}

/// The complementary error function, erfc(x) = 1 − erf(x) (Numerical Recipes' `erfcc`:
/// fractional error below 1.2 × 10⁻⁷ everywhere).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// One arm's tally.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Arm {
    pub executions: i64,
    pub successes: i64,
}

impl Arm {
    pub fn rate(&self) -> f64 {
        match self.executions {
            0 => 0.0,
            n => self.successes as f64 / n as f64,
        }
    }
}

/// The two-proportion z-test with the pooled proportion: `z` (treatment minus control)
/// and the two-sided p-value. Equal rates, or no variance at all, give p = 1.
pub fn two_proportion_z_test(control: Arm, treatment: Arm) -> (f64, f64) {
    let (n1, n2) = (control.executions as f64, treatment.executions as f64);
    if n1 == 0.0 || n2 == 0.0 {
        return (0.0, 1.0);
    }
    let pooled = (control.successes + treatment.successes) as f64 / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return (0.0, 1.0);
    }
    let z = (treatment.rate() - control.rate()) / se;
    (z, erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(executions: i64, successes: i64) -> Arm {
        Arm {
            executions,
            successes,
        }
    }

    /// Worked by hand: 100/200 against 130/200. Pooled p = 230/400 = 0.575; standard
    /// error √(0.575 × 0.425 × (1/200 + 1/200)) = √0.00244375 = 0.0494343; z = 0.15 /
    /// 0.0494343 = 3.03433; two-sided p = erfc(3.03433 / √2) = 0.00241.
    #[test]
    fn a_clear_difference_is_significant() {
        let (z, p) = two_proportion_z_test(arm(200, 100), arm(200, 130));
        assert!((z - 3.03433).abs() < 1e-4, "{z}");
        assert!((p - 0.00241).abs() < 1e-5, "{p}");
    }

    /// Worked by hand: 50/100 against 55/100. Pooled p = 0.525; standard error
    /// √(0.525 × 0.475 × 0.02) = √0.0049875 = 0.0706222; z = 0.05 / 0.0706222 = 0.70799;
    /// two-sided p = erfc(0.70799 / √2) = 0.47895.
    #[test]
    fn a_small_difference_is_not() {
        let (z, p) = two_proportion_z_test(arm(100, 50), arm(100, 55));
        assert!((z - 0.70799).abs() < 1e-4, "{z}");
        assert!((p - 0.47895).abs() < 1e-4, "{p}");
    }

    #[test]
    fn no_variance_or_no_data_is_no_evidence() {
        assert_eq!(two_proportion_z_test(arm(50, 50), arm(50, 50)).1, 1.0);
        assert_eq!(two_proportion_z_test(arm(0, 0), arm(10, 5)).1, 1.0);
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((erfc(-1.0) - 1.842_700_79).abs() < 1e-6);
    }

    #[test]
    fn buckets_are_stable_and_spread_evenly() {
        let test = uuid::Uuid::from_u128(42);
        assert_eq!(bucket(test, "lead-1"), bucket(test, "lead-1"));
        // A 30/70 split over 10 000 keys lands within 1 % of its shares.
        let control = (0..10_000)
            .filter(|i| bucket(test, &format!("subject-{i}")) < 3_000)
            .count();
        assert!((2_900..=3_100).contains(&control), "{control}");
    }
}
