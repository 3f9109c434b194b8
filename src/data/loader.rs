//! Streams an epoch's batches from worker threads while the GPU trains on earlier ones.
//! Worker k builds batches k, k + W, k + 2W, ... into its own channel of depth 2, and the
//! consumer reads the channels round-robin: batches arrive in order, at most 2W are ever
//! buffered, and each image's augmentation is seeded by (seed, epoch, position), so the data a
//! step sees never depends on thread timing.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

use super::augment::{apply, AugmentConfig, Transform};
use super::Dataset;

/// Images as f32 NHWC in [0, 1] and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
}

/// SplitMix64: decorrelates nearby seeds.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The shuffled image order of one epoch (1-based), reproducible from the seed.
pub fn epoch_order(n: usize, seed: u64, epoch: u32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(mix(seed ^ mix(epoch as u64))));
    order
}

/// Augmentation settings and the seed of one epoch's draws.
#[derive(Debug, Clone, Copy)]
pub struct Augmentation {
    pub config: AugmentConfig,
    pub seed: u64,
}

/// Builds the batch of `positions` of `order`.
pub fn make_batch(ds: &Dataset, order: &[usize], positions: std::ops::Range<usize>, augment: Option<Augmentation>) -> Batch {
    let n = ds.image_len();
    let mut images = vec![0f32; positions.len() * n];
    let mut labels = Vec::with_capacity(positions.len());
    let [h, w, _] = ds.shape;
    for (slot, pos) in positions.enumerate() {
        let i = order[pos];
        let t = match augment {
            Some(a) => Transform::random(&a.config, h, w, &mut StdRng::seed_from_u64(mix(a.seed ^ mix(pos as u64)))),
            None => Transform::identity(),
        };
        apply(&t, ds.image(i), ds.shape, &mut images[slot * n..(slot + 1) * n]);
        labels.push(ds.labels[i]);
    }
    Batch { images, labels }
}

/// The batches of one pass over `order`, in order.
pub struct BatchStream {
    receivers: Vec<Receiver<Batch>>,
    next: usize,
    count: usize,
    workers: Vec<JoinHandle<()>>,
}

impl BatchStream {
    /// Starts `workers` threads producing the batches from `first` (0-based; a resumed epoch
    /// skips the ones it already did) to ceil(order.len() / batch).
    pub fn new(ds: Arc<Dataset>, order: Vec<usize>, batch: usize, augment: Option<Augmentation>, workers: usize, first: usize) -> Self {
        let count = order.len().div_ceil(batch).saturating_sub(first);
        let order = Arc::new(order);
        let workers_n = workers.clamp(1, count.max(1));
        let mut receivers = Vec::new();
        let mut handles = Vec::new();
        for k in 0..workers_n {
            let (tx, rx) = sync_channel(2);
            let (ds, order) = (ds.clone(), order.clone());
            handles.push(std::thread::spawn(move || {
                for b in (first + k..first + count).step_by(workers_n) {
                    let range = b * batch..((b + 1) * batch).min(order.len());
                    // The consumer hung up (training stopped): nothing more to do.
                    if tx.send(make_batch(&ds, &order, range, augment)).is_err() {
                        return;
                    }
                }
            }));
            receivers.push(rx);
        }
        Self { receivers, next: 0, count, workers: handles }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Iterator for BatchStream {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        if self.next == self.count {
            return None;
        }
        let batch = self.receivers[self.next % self.receivers.len()].recv().expect("a batch worker panicked");
        self.next += 1;
        Some(batch)
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.receivers.clear();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic;

    #[test]
    fn streams_every_image_once_in_order_whatever_the_workers() {
        let ds = Arc::new(synthetic::generate(23, [6, 5, 3], 4));
        let order = epoch_order(ds.len(), 1, 1);
        let aug = Some(Augmentation { config: AugmentConfig { horizontal_flip: true, zoom_range: 0.2, ..Default::default() }, seed: 5 });
        let one: Vec<Batch> = BatchStream::new(ds.clone(), order.clone(), 4, aug, 1, 0).collect();
        let three: Vec<Batch> = BatchStream::new(ds.clone(), order.clone(), 4, aug, 3, 0).collect();
        let tail: Vec<Batch> = BatchStream::new(ds.clone(), order.clone(), 4, aug, 2, 4).collect();
        assert_eq!(tail, one[4..], "a resumed epoch sees the same batches");
        assert_eq!(one.len(), 6);
        assert_eq!(one, three);
        let labels: Vec<u32> = one.iter().flat_map(|b| b.labels.clone()).collect();
        assert_eq!(labels, order.iter().map(|&i| ds.labels[i]).collect::<Vec<_>>());
        assert_eq!(one.last().unwrap().labels.len(), 3);
    }

    #[test]
    fn epochs_shuffle_differently_and_reproducibly() {
        assert_eq!(epoch_order(50, 7, 1), epoch_order(50, 7, 1));
        assert_ne!(epoch_order(50, 7, 1), epoch_order(50, 7, 2));
        let mut sorted = epoch_order(50, 7, 3);
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
