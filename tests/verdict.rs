//! Seed-noise verdicts on made-up result sets, against hand computations.

use gpu_cnn::verdict::{Paired, Spread, Verdict};

#[test]
fn spread_is_the_sample_standard_deviation() {
    let s = Spread::of(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!((s.n, s.mean), (4, 2.5));
    assert!((s.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(Spread::of(&[0.7]).std, 0.0);
}

#[test]
fn one_seed_is_not_conclusive() {
    let p = Paired::of(&[0.80], &[0.70]);
    assert_eq!((p.mean, p.half_width, p.verdict()), ((0.80f64 - 0.70), None, Verdict::OneSeed));
    assert_eq!(p.points(), "+10.00 points (95%, 1 seed): one seed: not conclusive");
}

#[test]
fn equal_arms_are_within_the_noise() {
    let same = [0.75, 0.76, 0.74];
    assert_eq!(Paired::of(&same, &same).verdict(), Verdict::WithinNoise);
}

#[test]
fn a_small_gain_on_three_noisy_seeds_is_within_the_noise() {
    // Differences 1, 2, 3 points: mean 2, std 1, t(2) = 4.303, half-width 4.303 / sqrt(3) = 2.484.
    let p = Paired::of(&[0.76, 0.77, 0.78], &[0.75, 0.75, 0.75]);
    assert!((p.mean - 0.02).abs() < 1e-12);
    assert!((p.half_width.unwrap() - 0.04303 / 3f64.sqrt()).abs() < 1e-9);
    assert_eq!(p.verdict(), Verdict::WithinNoise);
    assert_eq!(p.points(), "+2.00 ± 2.48 points (95%, 3 seeds): difference within seed noise");
}

#[test]
fn a_clear_winner_and_a_clear_loser() {
    let scratch = [0.760, 0.752, 0.771, 0.765, 0.758];
    let grown: Vec<f64> = scratch.iter().zip([0.030, 0.031, 0.029, 0.030, 0.032]).map(|(s, d)| s + d).collect();
    assert_eq!(Paired::of(&grown, &scratch).verdict(), Verdict::Better);
    assert_eq!(Paired::of(&scratch, &grown).verdict(), Verdict::Worse);
}

#[test]
fn pairing_by_seed_sees_a_gain_smaller_than_the_seed_spread() {
    // Half a point on every seed, under seeds that spread 0.7 points: paired, a clear gain
    // (half-width 2.776 * 0.0707 / sqrt(5) = 0.088 points); the same values paired with the
    // wrong seeds are noise.
    let scratch = [0.760, 0.752, 0.771, 0.765, 0.758];
    let grown: Vec<f64> = scratch.iter().zip([0.005, 0.006, 0.004, 0.005, 0.005]).map(|(s, d)| s + d).collect();
    let p = Paired::of(&grown, &scratch);
    assert!((p.half_width.unwrap() - 0.000878).abs() < 1e-6);
    assert_eq!(p.verdict(), Verdict::Better);
    let shuffled = [grown[2], grown[4], grown[0], grown[3], grown[1]];
    assert_eq!(Paired::of(&shuffled, &scratch).verdict(), Verdict::WithinNoise);
}
