//! `[train.schedule]`: the learning rate as a pure function of the global step, with Keras'
//! formulas (`CosineDecay` with its linear warm-up, `ExponentialDecay(staircase=True)` counted
//! in epochs). The trainer asks for every step's rate and writes it into the step uniform, so
//! nothing is rebuilt, and a resumed run, which knows its global step, gets the same rates.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

/// How the learning rate moves over the run; `type` names the kind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// `learning_rate` at every step.
    #[default]
    Constant,
    /// A linear warm-up from 0 to `learning_rate` over `warmup_epochs`, then a cosine from
    /// `learning_rate` down to `alpha * learning_rate` at the run's last step: Keras
    /// `CosineDecay(0, decay_steps = steps after the warm-up, alpha, warmup_target =
    /// learning_rate, warmup_steps)`, or `CosineDecay(learning_rate, all steps, alpha)` without
    /// a warm-up.
    Cosine {
        #[serde(default)]
        alpha: f32,
        #[serde(default)]
        warmup_epochs: u32,
    },
    /// `learning_rate * factor^floor(epoch / every)` (0-based epochs): Keras
    /// `ExponentialDecay(decay_rate = factor, decay_steps = every epochs' steps, staircase=True)`.
    Step { factor: f32, every: u32 },
}

impl Schedule {
    /// The rate of 0-based `step` in a run of `steps` steps, `steps_per_epoch` an epoch (the
    /// last epoch may be cut short by a budget), that starts from `base` (`learning_rate`, less
    /// any reduce-LR-on-plateau cuts). Computed in f64 (Keras uses the dtype of the rate,
    /// float32: they agree to float32 rounding); `Constant` returns `base` itself.
    pub fn lr(self, step: usize, steps_per_epoch: usize, steps: usize, base: f32) -> f32 {
        let steps_per_epoch = steps_per_epoch.max(1);
        let b = base as f64;
        let lr = match self {
            Self::Constant => return base,
            Self::Cosine { alpha, warmup_epochs } => {
                let warmup = warmup_epochs as usize * steps_per_epoch;
                if step < warmup {
                    b * step as f64 / warmup as f64
                } else {
                    // Keras clips the step to decay_steps; a run no longer than its warm-up
                    // (epochs lowered on the command line) has ended its decay.
                    let decay_steps = steps.saturating_sub(warmup);
                    let done = if decay_steps == 0 { 1.0 } else { (step - warmup).min(decay_steps) as f64 / decay_steps as f64 };
                    let cosine = 0.5 * (1.0 + (PI * done).cos());
                    let alpha = alpha as f64;
                    b * ((1.0 - alpha) * cosine + alpha)
                }
            }
            Self::Step { factor, every } => {
                let cuts = step / steps_per_epoch / every.max(1) as usize;
                b * (factor as f64).powi(cuts.min(i32::MAX as usize) as i32)
            }
        };
        lr as f32
    }

    /// The same schedule starting at its peak.
    pub fn without_warmup(self) -> Self {
        match self {
            Self::Cosine { alpha, .. } => Self::Cosine { alpha, warmup_epochs: 0 },
            s => s,
        }
    }

    /// Checks the fields against a run of `epochs`; an error names the field and says why.
    pub fn validate(self, epochs: u32) -> Result<(), (&'static str, String)> {
        match self {
            Self::Constant => Ok(()),
            Self::Cosine { alpha, .. } if !(0.0..=1.0).contains(&alpha) => Err(("alpha", format!("expected a value in [0, 1], got {alpha}"))),
            Self::Cosine { warmup_epochs, .. } if warmup_epochs >= epochs => Err(("warmup_epochs", format!("expected fewer than the run's {epochs} epochs, got {warmup_epochs}"))),
            Self::Cosine { .. } => Ok(()),
            Self::Step { factor, .. } if !(factor > 0.0 && factor <= 1.0) => Err(("factor", format!("expected a value in (0, 1], got {factor}"))),
            Self::Step { every: 0, .. } => Err(("every", "expected at least 1 (epochs between cuts)".into())),
            Self::Step { .. } => Ok(()),
        }
    }
}

/// The rate a schedule runs from after a callback moved the rate in force from `from` to `to`
/// (reduce-LR-on-plateau at an epoch's end): `base` scaled by the same ratio, so every later
/// step is cut alike. Exactly `to` when `base == from` (a constant schedule): `base * to` is
/// exact in f64 and the quotient then rounds to `to`.
pub fn rescale(base: f32, from: f32, to: f32) -> f32 {
    (base as f64 * to as f64 / from as f64) as f32
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn close(got: f32, want: f64) -> bool {
        (got as f64 - want).abs() <= 1e-6 * want.abs().max(1e-9)
    }

    fn check(s: Schedule, steps_per_epoch: usize, epochs: u32, want: &[(usize, f64)]) {
        for &(step, w) in want {
            let got = s.lr(step, steps_per_epoch, epochs as usize * steps_per_epoch, 1e-3);
            assert!(close(got, w), "{s:?} step {step}: {got} vs Keras {w}");
        }
    }

    // The expected values are Keras 3's formulas (keras/src/optimizers/schedules/
    // learning_rate_schedule.py, `CosineDecay.__call__` and `ExponentialDecay.__call__`)
    // transcribed to Python and evaluated in float64, e.g.
    //   def decay(step, decay_steps, frm):  # CosineDecay._decay_function
    //       c = 0.5 * (1.0 + math.cos(math.pi * step / decay_steps))
    //       return frm * ((1 - alpha) * c + alpha)
    //   no warm-up: decay(min(step, decay_steps), decay_steps, initial)
    //   warm-up: s = min(step, decay_steps + warmup_steps)
    //            (warmup_target - initial) * s / warmup_steps + initial if s < warmup_steps
    //            else decay(s - warmup_steps, decay_steps, warmup_target)

    /// `CosineDecay(1e-3, decay_steps=100, alpha=0.1)`: 10 epochs of 10 steps.
    #[test]
    fn cosine_follows_keras() {
        let want = [(0, 1e-3), (25, 0.0008681980515339464), (50, 0.00055), (99, 0.00010022204783542078), (100, 1e-4), (150, 1e-4)];
        check(Schedule::Cosine { alpha: 0.1, warmup_epochs: 0 }, 10, 10, &want);
        // A run cut short by a budget (7 epochs and 4 steps of 10) decays over its 74 steps.
        let cut = Schedule::Cosine { alpha: 0.0, warmup_epochs: 0 };
        assert_eq!((cut.lr(37, 10, 74, 1e-3), cut.lr(74, 10, 74, 1e-3)), (5e-4, 0.0));
    }

    /// `CosineDecay(0.0, decay_steps=80, warmup_target=1e-3, warmup_steps=20)`: 10 epochs of
    /// 10 steps, 2 of them warming up from 0.
    #[test]
    fn cosine_warm_up_follows_keras() {
        let want = [(0, 0.0), (10, 5e-4), (19, 0.00095), (20, 1e-3), (60, 5e-4), (99, 3.854818796385495e-07), (100, 0.0), (130, 0.0)];
        check(Schedule::Cosine { alpha: 0.0, warmup_epochs: 2 }, 10, 10, &want);
        // Only warm-up left (epochs lowered to the warm-up's): the decay has ended.
        assert_eq!(Schedule::Cosine { alpha: 0.5, warmup_epochs: 2 }.lr(25, 10, 20, 1e-3), 5e-4);
    }

    /// `ExponentialDecay(1e-3, decay_steps=30, decay_rate=0.5, staircase=True)`: halved every 3
    /// epochs of 10 steps.
    #[test]
    fn step_follows_keras_staircase_decay() {
        let want = [(0, 1e-3), (29, 1e-3), (30, 5e-4), (61, 2.5e-4), (95, 1.25e-4)];
        check(Schedule::Step { factor: 0.5, every: 3 }, 10, 20, &want);
    }

    #[test]
    fn constant_is_the_base_rate_bit_for_bit() {
        for base in [1e-3, 3e-3, 0.1, 7.7e-5] {
            assert_eq!(Schedule::Constant.lr(12345, 7, 21, base), base);
            // A plateau cut on a constant schedule gives exactly Keras' cut rate.
            let cut = (base * 0.1f32).max(2e-5);
            assert_eq!(rescale(base, base, cut), cut);
        }
        assert_eq!(rescale(1e-3, 5e-4, 2.5e-4), 5e-4);
    }

    const MODEL: &str = "[model]\ninput = [4, 4, 1]\nlayers = [{ type = \"flatten\" }, { type = \"dense\", units = 1, activation = \"sigmoid\" }]\n[train]\nepochs = 5\n";

    fn parse(schedule: &str) -> Result<Schedule, String> {
        Config::parse(Path::new("s.toml"), &format!("{MODEL}[train.schedule]\n{schedule}\n")).map(|c| c.train.schedule).map_err(|e| e.to_string())
    }

    #[test]
    fn configs_parse_and_errors_name_the_field() {
        assert_eq!(Config::parse(Path::new("s.toml"), MODEL).unwrap().train.schedule, Schedule::Constant);
        assert_eq!(parse("type = \"constant\""), Ok(Schedule::Constant));
        assert_eq!(parse("type = \"cosine\""), Ok(Schedule::Cosine { alpha: 0.0, warmup_epochs: 0 }));
        assert_eq!(parse("type = \"cosine\"\nalpha = 0.1\nwarmup_epochs = 1"), Ok(Schedule::Cosine { alpha: 0.1, warmup_epochs: 1 }));
        assert_eq!(parse("type = \"step\"\nfactor = 0.5\nevery = 2"), Ok(Schedule::Step { factor: 0.5, every: 2 }));

        for (text, wanted) in [
            ("type = \"cosine\"\nalpha = 1.5", "field `train.schedule.alpha`"),
            ("type = \"cosine\"\nwarmup_epochs = 5", "field `train.schedule.warmup_epochs`"),
            ("type = \"step\"\nfactor = 0.0\nevery = 2", "field `train.schedule.factor`"),
            ("type = \"step\"\nfactor = 0.5\nevery = 0", "field `train.schedule.every`"),
            ("type = \"step\"\nfactor = 0.5", "missing field `every`"),
            ("type = \"cosine\"\nalfa = 0.1", "unknown field `alfa`"),
            ("type = \"linear\"", "unknown variant `linear`"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains("s.toml") && e.contains(wanted), "{text}: {e}");
        }
    }
}
