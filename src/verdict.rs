//! Verdicts that respect seed noise: an arm is compared with a baseline seed by seed (paired),
//! and a difference counts only when its 95% interval leaves out zero.

use std::fmt;

/// Mean and sample standard deviation (n - 1) of one arm's results over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub mean: f64,
    /// 0 for one value.
    pub std: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        Spread { n, mean, std: var.sqrt() }
    }
}

/// Two-sided 95% quantiles of Student's t for 1..=30 degrees of freedom; beyond, the normal 1.96.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093,
    2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// What a paired comparison allows one to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// One seed has no spread to judge the noise by.
    OneSeed,
    /// The interval holds zero.
    WithinNoise,
    Better,
    Worse,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::OneSeed => "one seed: not conclusive",
            Verdict::WithinNoise => "difference within seed noise",
            Verdict::Better => "better, outside seed noise",
            Verdict::Worse => "worse, outside seed noise",
        })
    }
}

/// The per-seed differences arm - baseline: their mean and the half-width of its 95% interval
/// (t over n - 1 degrees of freedom; `None` for one seed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    pub n: usize,
    pub mean: f64,
    pub half_width: Option<f64>,
}

impl Paired {
    /// `arm` and `baseline` hold one value per seed, in the same seed order.
    pub fn of(arm: &[f64], baseline: &[f64]) -> Self {
        assert_eq!(arm.len(), baseline.len(), "paired results need the same seeds");
        assert!(!arm.is_empty(), "a comparison needs a seed");
        let diffs: Vec<f64> = arm.iter().zip(baseline).map(|(a, b)| a - b).collect();
        let s = Spread::of(&diffs);
        let half_width = (s.n > 1).then(|| T_975.get(s.n - 2).copied().unwrap_or(1.96) * s.std / (s.n as f64).sqrt());
        Paired { n: s.n, mean: s.mean, half_width }
    }

    pub fn verdict(&self) -> Verdict {
        match self.half_width {
            None => Verdict::OneSeed,
            Some(h) if self.mean - h > 0.0 => Verdict::Better,
            Some(h) if self.mean + h < 0.0 => Verdict::Worse,
            Some(_) => Verdict::WithinNoise,
        }
    }

    /// `+0.55 ± 0.80 points (95%, 3 seeds): difference within seed noise`, for accuracies in [0, 1].
    pub fn points(&self) -> String {
        let interval = self.half_width.map_or(String::new(), |h| format!(" ± {:.2}", 100.0 * h));
        format!("{:+.2}{interval} points (95%, {} seed{}): {}", 100.0 * self.mean, self.n, if self.n == 1 { "" } else { "s" }, self.verdict())
    }
}
