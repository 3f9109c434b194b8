//! `evaluate` and `predict` from a checkpoint alone: the checkpoint carries the model, the
//! input size and the class names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::data::folder::CorruptPolicy;
use crate::data::loader::BatchStream;
use crate::data::{folder, DataError};
use crate::gpu::{GpuContext, Kernels};
use crate::network::{Network, Pass};

/// Class probabilities from one example's logits (1 logit: the sigmoid head).
pub fn probabilities(logits: &[f32]) -> Vec<f64> {
    if let [z] = logits {
        let p = 1.0 / (1.0 + (-(*z as f64)).exp());
        return vec![1.0 - p, p];
    }
    let m = logits.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
    let e: Vec<f64> = logits.iter().map(|&z| (z as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

fn argmax(p: &[f64]) -> usize {
    (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b })
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub images: usize,
    pub classes: Vec<String>,
    pub per_class_accuracy: Vec<f64>,
    /// confusion[true][predicted]
    pub confusion: Vec<Vec<u64>>,
}

impl Evaluation {
    pub fn report(&self) -> String {
        let mut out = format!("{} images: loss {:.4}, accuracy {:.4}\n\nper class:\n", self.images, self.loss, self.accuracy);
        let width = self.classes.iter().map(String::len).max().unwrap_or(5).max(9);
        for (c, acc) in self.classes.iter().zip(&self.per_class_accuracy) {
            out += &format!("  {c:<width$} {acc:.4}\n");
        }
        out += &format!("\nconfusion matrix (rows: true class, columns: predicted):\n  {:<width$}", "");
        for c in &self.classes {
            out += &format!(" {c:>width$}");
        }
        out.push('\n');
        for (c, row) in self.classes.iter().zip(&self.confusion) {
            out += &format!("  {c:<width$}");
            for n in row {
                out += &format!(" {n:>width$}");
            }
            out.push('\n');
        }
        out
    }
}

/// A network holding `ckpt`'s weights for batches of `batch` (its sizes checked first).
pub fn network(ctx: &GpuContext, ckpt: &Checkpoint, batch: u32) -> anyhow::Result<Network> {
    crate::sizes::check_network(ctx, &ckpt.model, batch)?;
    let kernels = Kernels::new(ctx);
    let mut net = Network::new(ctx, &kernels, &ckpt.model, batch, 0)?;
    ckpt.apply(ctx, &mut net, false)?;
    Ok(net)
}

/// Loss, accuracy, per-class accuracy and confusion matrix of a checkpoint on a class folder.
pub fn evaluate(ctx: &GpuContext, ckpt: &Checkpoint, dir: &Path, batch: u32, workers: usize) -> anyhow::Result<Evaluation> {
    let ds = folder::load(dir, ckpt.model.input, None, CorruptPolicy::Skip, workers)?;
    if ds.classes != ckpt.classes {
        return Err(DataError::ClassMismatch { dir: dir.to_path_buf(), found: ds.classes, expected: ckpt.classes.clone() }.into());
    }
    let mut net = network(ctx, ckpt, batch)?;
    let k = ckpt.classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    net.reset_metrics(ctx);
    let labels = ds.labels.clone();
    let ds = Arc::new(ds);
    let mut seen = 0;
    for b in BatchStream::new(ds.clone(), (0..ds.len()).collect(), batch as usize, None, workers, 0) {
        net.upload(ctx, &b.images, &b.labels)?;
        net.run(ctx, Pass::Evaluate, 0.0);
        let logits = net.read_logits(ctx)?;
        for (row, z) in logits.chunks(ckpt.model.logits() as usize).enumerate() {
            confusion[labels[seen + row] as usize][argmax(&probabilities(z))] += 1;
        }
        seen += b.labels.len();
    }
    let m = net.read_metrics(ctx)?;
    let per_class_accuracy = confusion.iter().enumerate().map(|(i, row)| row[i] as f64 / row.iter().sum::<u64>().max(1) as f64).collect();
    Ok(Evaluation { loss: m.loss(), accuracy: m.accuracy(), images: seen, classes: ckpt.classes.clone(), per_class_accuracy, confusion, })
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub file: PathBuf,
    pub class: String,
    /// Class name -> probability, in class order.
    pub probabilities: serde_json::Map<String, serde_json::Value>,
}

/// Class name -> probability, in class order (serde_json's `preserve_order`).
fn by_class(classes: &[String], p: &[f64]) -> serde_json::Map<String, serde_json::Value> {
    classes.iter().zip(p).map(|(c, &v)| (c.clone(), serde_json::json!(v))).collect()
}

/// The predicted class and class probabilities of each image file.
pub fn predict(ctx: &GpuContext, ckpt: &Checkpoint, files: &[PathBuf], batch: u32) -> anyhow::Result<(Vec<Prediction>, Vec<DataError>)> {
    let mut net = network(ctx, ckpt, batch)?;
    let (mut out, mut unreadable) = (Vec::new(), Vec::new());
    for chunk in files.chunks(batch as usize) {
        let (mut images, mut read) = (Vec::new(), Vec::new());
        for f in chunk {
            match folder::decode(f, ckpt.model.input) {
                Ok(pixels) => {
                    images.extend(pixels.into_iter().map(|v| v as f32 / 255.0));
                    read.push(f);
                }
                Err(e) => unreadable.push(e),
            }
        }
        if read.is_empty() {
            continue;
        }
        net.upload(ctx, &images, &vec![0; read.len()])?;
        net.run(ctx, Pass::Evaluate, 0.0);
        let logits = net.read_logits(ctx)?;
        for (f, z) in read.into_iter().zip(logits.chunks(ckpt.model.logits() as usize)) {
            let p = probabilities(z);
            out.push(Prediction { file: f.clone(), class: ckpt.classes[argmax(&p)].clone(), probabilities: by_class(&ckpt.classes, &p) });
        }
    }
    Ok((out, unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_from_logits() {
        assert_eq!(probabilities(&[0.0]), vec![0.5, 0.5]);
        let p = probabilities(&[2.0]);
        assert!((p[1] - 0.880797).abs() < 1e-6 && (p[0] + p[1] - 1.0).abs() < 1e-12);
        let p = probabilities(&[1.0, 1.0, 1000.0]);
        assert!(p[2] > 0.999999 && p.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn json_probabilities_keep_the_class_order() {
        let json = serde_json::to_string(&by_class(&["dogs".into(), "cats".into()], &[0.25, 0.75])).unwrap();
        assert_eq!(json, r#"{"dogs":0.25,"cats":0.75}"#);
    }
}
