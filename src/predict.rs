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

/// Precision, recall and F1 of one class (or their macro average, over the classes).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassScores {
    pub class: String,
    #[serde(flatten)]
    pub scores: Scores,
    /// Images of this class.
    pub support: u64,
}

/// Per-class scores from a confusion matrix (confusion[true][predicted]), and their macro
/// average. A class never predicted has precision 0, as scikit-learn's default.
pub fn scores(classes: &[String], confusion: &[Vec<u64>]) -> (Vec<ClassScores>, Scores) {
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassScores> = classes
        .iter()
        .enumerate()
        .map(|(i, class)| {
            let tp = confusion[i][i];
            let support: u64 = confusion[i].iter().sum();
            let predicted: u64 = confusion.iter().map(|row| row[i]).sum();
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            ClassScores { class: class.clone(), scores: Scores { precision, recall, f1 }, support }
        })
        .collect();
    let mean = |f: fn(&Scores) -> f64| per_class.iter().map(|c| f(&c.scores)).sum::<f64>() / per_class.len().max(1) as f64;
    let macro_avg = Scores { precision: mean(|s| s.precision), recall: mean(|s| s.recall), f1: mean(|s| s.f1) };
    (per_class, macro_avg)
}

/// One labelled image's result.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub file: PathBuf,
    /// The true class.
    pub label: String,
    pub predicted: String,
    /// The predicted class's probability.
    pub probability: f64,
    /// Class name -> probability, in class order.
    pub probabilities: serde_json::Map<String, serde_json::Value>,
    /// Classes ranked above the true one (0: predicted right).
    #[serde(skip)]
    rank: usize,
}

/// Accuracy counting a prediction right when the true class is among the k most probable.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TopK {
    pub k: usize,
    pub accuracy: f64,
}

/// What `evaluate` reports beyond the scores: top-k accuracy (`None`: k = 5, at most
/// classes - 1, when there are more than 2 classes) and how many of the most confidently wrong
/// images to list.
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    pub top_k: Option<usize>,
    pub wrong: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { top_k: None, wrong: 10 }
    }
}

impl EvalOptions {
    /// The k of top-k accuracy for `classes` classes, if any; a k the model cannot rank is refused.
    pub fn k(&self, classes: usize) -> Result<Option<usize>, String> {
        match self.top_k {
            Some(k) if k == 0 || k >= classes => Err(format!("--top-k {k}: the model has {classes} classes; k must be from 1 to {}", classes - 1)),
            Some(k) => Ok(Some(k)),
            None => Ok((classes > 2).then(|| 5.min(classes - 1))),
        }
    }
}

/// A checkpoint's scores on a class folder: loss, accuracy, per-class precision, recall and
/// F1 and their macro average, top-k accuracy, the confusion matrix, the most confidently
/// wrong images, and every image's result.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub data: PathBuf,
    pub loss: f64,
    pub accuracy: f64,
    pub images: usize,
    pub classes: Vec<String>,
    pub per_class: Vec<ClassScores>,
    pub macro_avg: Scores,
    pub top_k: Option<TopK>,
    /// confusion[true][predicted]
    pub confusion: Vec<Vec<u64>>,
    /// The most confidently wrong images, most confident first.
    pub wrong: Vec<Scored>,
    /// Every image, in the folder's order.
    pub files: Vec<Scored>,
}

impl EvalReport {
    pub fn report(&self) -> String {
        let mut out = format!("{} images: loss {:.4}, accuracy {:.4}", self.images, self.loss, self.accuracy);
        if let Some(t) = self.top_k {
            out += &format!(", top-{} accuracy {:.4}", t.k, t.accuracy);
        }
        let width = self.classes.iter().map(String::len).max().unwrap_or(5).max(9);
        out += &format!("\n\n  {:<width$} precision    recall  f1-score   support\n", "");
        let row = |name: &str, s: &Scores, support: u64| format!("  {name:<width$} {:>9.4} {:>9.4} {:>9.4} {support:>9}\n", s.precision, s.recall, s.f1);
        for c in &self.per_class {
            out += &row(&c.class, &c.scores, c.support);
        }
        out += &row("macro avg", &self.macro_avg, self.images as u64);
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
        if !self.wrong.is_empty() {
            out += &format!("\n{} most confidently wrong (file: true class -> predicted, probability):\n", self.wrong.len());
            for w in &self.wrong {
                out += &format!("  {}: {} -> {} ({:.4})\n", w.file.display(), w.label, w.predicted, w.probability);
            }
        }
        out
    }

    /// The contact sheet of the wrong images: one row per (true, predicted) pair, most
    /// confident first, each image captioned with its probability.
    pub fn wrong_sheet(&self, out: &Path) -> Result<(u32, u32), crate::dataset::DatasetError> {
        use crate::dataset::stats::{draw_sheet, Row, PER_CLASS};
        let mut rows: Vec<Row> = Vec::new();
        for w in &self.wrong {
            let label = format!("{}\n-> {}", w.label, w.predicted);
            let tile = (w.file.clone(), Some(format!("{:.3}", w.probability)));
            match rows.iter_mut().find(|r| r.label == label && r.tiles.len() < PER_CLASS) {
                Some(r) => r.tiles.push(tile),
                None => rows.push(Row { label, tiles: vec![tile] }),
            }
        }
        draw_sheet(&rows, out, None)
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

/// [`EvalReport`] of a checkpoint on a class folder. Its classes are checked against the
/// checkpoint's before any image is decoded.
pub fn evaluate(ctx: &GpuContext, ckpt: &Checkpoint, dir: &Path, batch: u32, workers: usize, options: EvalOptions) -> anyhow::Result<EvalReport> {
    let k = options.k(ckpt.classes.len()).map_err(anyhow::Error::msg)?;
    let found: Vec<String> = folder::scan(dir)?.into_iter().map(|(c, _)| c).collect();
    if found != ckpt.classes {
        return Err(DataError::ClassMismatch { dir: dir.to_path_buf(), found, expected: ckpt.classes.clone() }.into());
    }
    let ds = folder::load(dir, ckpt.model.input, None, CorruptPolicy::Skip, workers)?;
    let mut net = network(ctx, ckpt, batch)?;
    let n = ckpt.classes.len();
    let mut confusion = vec![vec![0u64; n]; n];
    let mut files = Vec::with_capacity(ds.len());
    net.reset_metrics(ctx);
    let (labels, paths) = (ds.labels.clone(), ds.files.clone());
    let ds = Arc::new(ds);
    for b in BatchStream::new(ds.clone(), (0..ds.len()).collect(), batch as usize, None, workers, 0) {
        net.upload(ctx, &b.images, &b.labels)?;
        net.run(ctx, Pass::Evaluate, 0.0);
        let logits = net.read_logits(ctx)?;
        for z in logits.chunks(ckpt.model.logits() as usize).take(b.labels.len()) {
            let i = files.len();
            let (label, p) = (labels[i] as usize, probabilities(z));
            let predicted = argmax(&p);
            confusion[label][predicted] += 1;
            let rank = p.iter().filter(|&&v| v > p[label]).count();
            let (label, predicted_class) = (ckpt.classes[label].clone(), ckpt.classes[predicted].clone());
            files.push(Scored { file: paths[i].clone(), label, predicted: predicted_class, probability: p[predicted], probabilities: by_class(&ckpt.classes, &p), rank });
        }
    }
    let m = net.read_metrics(ctx)?;
    let (per_class, macro_avg) = scores(&ckpt.classes, &confusion);
    let top_k = k.map(|k| TopK { k, accuracy: files.iter().filter(|f| f.rank < k).count() as f64 / files.len().max(1) as f64 });
    let mut wrong: Vec<Scored> = files.iter().filter(|f| f.rank > 0).cloned().collect();
    wrong.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    wrong.truncate(options.wrong);
    Ok(EvalReport { data: dir.to_path_buf(), loss: m.loss(), accuracy: m.accuracy(), images: files.len(), classes: ckpt.classes.clone(), per_class, macro_avg, top_k, confusion, wrong, files })
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
    fn per_class_scores_and_macro_average_from_a_confusion_matrix() {
        let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        // a: 3 right, 1 taken for b; b: 2 right; c: never predicted, 1 taken for a.
        let (per, avg) = scores(&classes, &[vec![3, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]);
        let close = |x: f64, y: f64| (x - y).abs() < 1e-12;
        assert!(close(per[0].scores.precision, 0.75) && close(per[0].scores.recall, 0.75) && close(per[0].scores.f1, 0.75));
        assert!(close(per[1].scores.precision, 2.0 / 3.0) && close(per[1].scores.recall, 1.0) && close(per[1].scores.f1, 0.8));
        assert_eq!((per[2].scores, per[2].support), (Scores { precision: 0.0, recall: 0.0, f1: 0.0 }, 1));
        assert!(close(avg.f1, (0.75 + 0.8) / 3.0) && close(avg.recall, 1.75 / 3.0));
    }

    #[test]
    fn top_k_defaults_to_five_below_the_class_count_and_refuses_what_cannot_rank() {
        let default = EvalOptions::default();
        assert_eq!((default.k(2), default.k(4), default.k(10)), (Ok(None), Ok(Some(3)), Ok(Some(5))));
        assert_eq!(EvalOptions { top_k: Some(2), wrong: 0 }.k(2), Err("--top-k 2: the model has 2 classes; k must be from 1 to 1".into()));
    }

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
