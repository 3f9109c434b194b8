//! Keras-style `model.summary()` table.

use std::fmt::Write;

use super::graph::MODEL_INPUT;
use super::{ModelSpec, Shape};

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

/// The table; a model with skip connections gets Keras' functional form: its input as a row and
/// a "Connected to" column.
pub fn summary(name: &str, spec: &ModelSpec) -> String {
    let shapes = spec.shapes().expect("validated spec");
    let params = spec.params();
    let graph = spec.graph();
    let functional = !graph.is_sequential();
    let value_name = |v: usize| if v == 0 { MODEL_INPUT.to_string() } else { spec.layers[v - 1].name.clone() };
    let mut rows: Vec<[String; 4]> = Vec::new();
    if functional {
        rows.push([format!("{MODEL_INPUT} (InputLayer)"), Shape::Image(spec.input).keras(), "0".into(), String::new()]);
    }
    for (i, (l, shape)) in spec.layers.iter().zip(&shapes).enumerate() {
        let count: u64 = params.iter().filter(|p| p.layer == i).map(|p| p.len()).sum();
        let connected = graph.inputs[i].iter().map(|&v| value_name(v)).collect::<Vec<_>>().join(", ");
        rows.push([format!("{} ({})", l.name, l.kind.ops().class()), shape.keras(), thousands(count), connected]);
    }
    let width = rows.iter().map(|r| r[0].len() + 2).max().unwrap_or(0).max(34);
    let connected_width = if functional { rows.iter().map(|r| r[3].len()).max().unwrap_or(0).max(12) + 2 } else { 0 };
    let line = |r: &[String; 4]| match functional {
        true => format!(" {:<width$}{:<26}{:<12}{}", r[0], r[1], r[2], r[3]),
        false => format!(" {:<width$}{:<26}{}", r[0], r[1], r[2]),
    };
    let header = ["Layer (type)", "Output Shape", "Param #", "Connected to"].map(String::from);
    let (rule, double) = ("_".repeat(width + 38 + connected_width), "=".repeat(width + 38 + connected_width));
    let mut out = format!("Model: \"{name}\"\n{rule}\n{}\n{double}\n", line(&header).trim_end());
    for r in &rows {
        let _ = writeln!(out, "{}", line(r).trim_end());
    }
    let (total, trainable) = (spec.param_count(), spec.trainable_count());
    let _ = write!(out, "{double}\nTotal params: {}\nTrainable params: {}\nNon-trainable params: {}\n{rule}\n", thousands(total), thousands(trainable), thousands(total - trainable));
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

    /// A skip connection gets Keras' functional columns: the input as a row, "Connected to".
    #[test]
    fn a_residual_model_shows_what_each_layer_reads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/resnet.toml");
        let cfg = crate::config::Config::load(&path).unwrap();
        let s = summary("resnet", &cfg.model);
        assert!(s.contains("Connected to"), "{s}");
        let row = |name: &str| s.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_else(|| panic!("no row {name} in\n{s}")).to_string();
        assert!(row("input (InputLayer)").contains("(None, 32, 32, 3)"), "{s}");
        assert!(row("conv2d_1 (Conv2D)").trim_end().ends_with("input"), "{s}");
        let add = row("add_1 (Add)");
        assert!(add.contains("(None, 32, 32, 16)") && add.trim_end().ends_with("batch_normalization_3, batch_normalization_1"), "{add}");
        // A sequential model keeps the sequential table.
        assert!(!summary("model1", &ModelSpec::model1(64)).contains("Connected to"));
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
