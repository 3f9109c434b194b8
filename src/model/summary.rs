//! Keras-style `model.summary()` table.

use std::fmt::Write;

use super::ModelSpec;

/// 4195457 -> "4,195,457".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

pub fn summary(name: &str, spec: &ModelSpec) -> String {
    let shapes = spec.shapes().expect("validated spec");
    let params = spec.params();
    let labels: Vec<String> = spec.layers.iter().map(|l| format!("{} ({})", l.name, l.kind.ops().class())).collect();
    let width = labels.iter().map(|l| l.len() + 2).max().unwrap_or(0).max(34);
    let rule = "_".repeat(width + 38);
    let mut out = format!("Model: \"{name}\"\n{rule}\n {:<width$}{:<26}{}\n{}\n", "Layer (type)", "Output Shape", "Param #", "=".repeat(width + 38));
    for (i, (label, shape)) in labels.iter().zip(&shapes).enumerate() {
        let count: u64 = params.iter().filter(|p| p.layer == i).map(|p| p.len()).sum();
        let _ = writeln!(out, " {label:<width$}{:<26}{}", shape.keras(), thousands(count));
    }
    let (total, trainable) = (spec.param_count(), spec.trainable_count());
    let _ = write!(
        out,
        "{}\nTotal params: {}\nTrainable params: {}\nNon-trainable params: {}\n{rule}\n",
        "=".repeat(width + 38),
        thousands(total),
        thousands(trainable),
        thousands(total - trainable)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(896), "896");
        assert_eq!(thousands(9248), "9,248");
        assert_eq!(thousands(4_195_457), "4,195,457");
    }

    #[test]
    fn model1_summary_lists_the_write_ups_counts() {
        let s = summary("model1", &ModelSpec::model1(64));
        for line in ["conv2d_1 (Conv2D)", "(None, 64, 64, 32)", "896", "4,194,432", "129", "Total params: 4,195,457"] {
            assert!(s.contains(line), "missing {line} in\n{s}");
        }
    }

    /// Keras counts a BatchNorm over C channels as 4C parameters, 2C of them non-trainable.
    #[test]
    fn model3_summary_counts_batchnorm_as_keras_does() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/model3.toml");
        let cfg = crate::config::Config::load(&path).unwrap();
        let s = summary("model3", &cfg.model);
        for line in ["batch_normalization_1 (BatchNormalization)", "128", "(None, 8, 8, 64)", "524,416", "Total params: 553,697", "Trainable params: 553,441", "Non-trainable params: 256"] {
            assert!(s.contains(line), "missing {line} in\n{s}");
        }
    }
}
