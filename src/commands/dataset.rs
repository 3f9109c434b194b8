//! `gpu-cnn dataset`: put data on disk in the class-folder layout, and look at it.

use std::path::PathBuf;

use crate::config::Config;
use crate::dataset::{cifar, fetch, stats};
use crate::files::{check_output_file, check_outside_data};

/// Put data on disk in the class-folder layout, and look at it.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Download CIFAR-10 (binary version, checksum verified) and write the chosen classes.
    ///
    /// Example: gpu-cnn dataset fetch cifar10 --classes cat,dog --out dataset/
    Fetch {
        /// Only cifar10 for now.
        #[arg(value_parser = ["cifar10"])]
        name: String,
        #[command(flatten)]
        cifar: CifarArgs,
        /// Mirror of the archive.
        #[arg(long, default_value = fetch::CIFAR10_URL)]
        url: String,
        /// Expected MD5 of the archive.
        #[arg(long, default_value = fetch::CIFAR10_MD5)]
        md5: String,
        /// Seconds any one network wait may last: connecting, the response, each read of the
        /// download (a slow but moving download may take longer in all).
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// HTTP(S) proxy (default: HTTPS_PROXY / ALL_PROXY from the environment).
        #[arg(long)]
        proxy: Option<String>,
    },
    /// Same as fetch, from a local copy: the .tar.gz or its extracted cifar-10-batches-bin/.
    ///
    /// Example: gpu-cnn dataset import ~/Downloads/cifar-10-binary.tar.gz --classes cat,dog --out dataset/
    Import {
        /// The archive (.tar.gz) or its extracted cifar-10-batches-bin/ folder.
        source: PathBuf,
        #[command(flatten)]
        cifar: CifarArgs,
        /// Check the archive against the official MD5 (local copies may be re-packed).
        #[arg(long)]
        verify: bool,
    },
    /// Write the built-in synthetic two-class set (crosses, rings) as PNG class folders.
    ///
    /// Example: gpu-cnn dataset synth --out synthetic/
    Synth {
        /// The folder to write training_set/ and test_set/ into.
        #[arg(long)]
        out: PathBuf,
        /// Training images (split evenly between the classes).
        #[arg(long, default_value_t = 1200)]
        train: usize,
        /// Test images (split evenly between the classes).
        #[arg(long, default_value_t = 400)]
        test: usize,
        /// Image side in pixels.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(4..=1024))]
        size: u32,
        /// Seed of the generated shapes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Class counts, image sizes, formats and corrupt files; optionally contact sheets.
    ///
    /// Example: gpu-cnn dataset stats dataset/ --out sheet.png --augment configs/model1.toml
    Stats {
        /// A folder with training_set/ and test_set/, or a class folder.
        dir: PathBuf,
        /// Contact sheet PNG of samples per class (of the training split).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write <out>-augmented.png: the same samples through this config's augmentation.
        #[arg(long, requires = "out")]
        augment: Option<PathBuf>,
        /// Replace existing contact sheets.
        #[arg(long)]
        overwrite: bool,
    },
}

#[derive(clap::Args)]
pub struct CifarArgs {
    /// Comma-separated class names (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck).
    #[arg(long, value_delimiter = ',', required = true)]
    classes: Vec<String>,
    /// The folder to write training_set/ and test_set/ into.
    #[arg(long, default_value = "dataset")]
    out: PathBuf,
    /// seed: 80/20 split of the training batches (the write-up's 8,000 / 2,000 for cat,dog);
    /// official: training batches / test batch.
    #[arg(long, value_enum, default_value = "seed")]
    split: cifar::Split,
    /// Seed of the 80/20 split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Writes the chosen classes of `batches` unless `out` already holds them.
fn export(batches: &cifar::Batches, source: &str, a: &CifarArgs) -> anyhow::Result<()> {
    if cifar::export(batches, source, &a.classes, a.split, a.seed, &a.out)? {
        outln!("Wrote {} ({:?} split)", a.out.display(), a.split);
        out!("{}", stats::report(&stats::stats(&a.out)?));
    } else {
        outln!("{} already holds this dataset: nothing to do", a.out.display());
    }
    Ok(())
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Fetch { name, cifar: a, url, md5, timeout, proxy } => {
            cifar::class_indices(&a.classes)?;
            let split = match a.split {
                cifar::Split::Seed => format!("seed {}", a.seed),
                cifar::Split::Official => "official".into(),
            };
            if crate::dataset::Marker::complete(&a.out, &name, &a.classes, &split)? {
                outln!("{} already holds {name} ({}, {split} split): nothing to do", a.out.display(), a.classes.join(","));
                return Ok(());
            }
            let archive = a.out.join("cifar-10-binary.tar.gz");
            let d = fetch::Download { url: url.clone(), md5: Some(md5), timeout: std::time::Duration::from_secs(timeout), proxy };
            if fetch::fetch(&d, &archive)? {
                outln!("Downloaded {url} (checksum verified)");
            }
            export(&cifar::read(&archive)?, &name, &a)?;
        }
        Command::Import { source, cifar: a, verify } => {
            cifar::class_indices(&a.classes)?;
            if verify && source.is_file() {
                let actual = fetch::md5_file(&source)?;
                if actual != fetch::CIFAR10_MD5 {
                    let hint = " (not the official archive; leave out --verify to import a re-packed copy)";
                    return Err(crate::dataset::DatasetError::Checksum { path: source, expected: fetch::CIFAR10_MD5.into(), actual, hint }.into());
                }
            }
            export(&cifar::read(&source)?, "cifar10", &a)?;
        }
        Command::Synth { out, train, test, size, seed } => {
            // The images are generated in memory, then copied for encoding.
            let bytes = (train as u64).saturating_add(test as u64).saturating_mul(size as u64 * size as u64 * 3 * 2);
            crate::sizes::check_host_bytes("the synthetic set", bytes)?;
            if crate::dataset::synth(&out, train, test, size, seed)? {
                outln!("Wrote the synthetic set to {}", out.display());
                out!("{}", stats::report(&stats::stats(&out)?));
            } else {
                outln!("{} already holds this synthetic set: nothing to do", out.display());
            }
        }
        Command::Stats { dir, out, augment, overwrite } => {
            let augmented = out.as_ref().map(|out| out.with_file_name(format!("{}-augmented.png", out.file_stem().unwrap_or_default().to_string_lossy())));
            for path in out.iter().chain(augmented.iter().filter(|_| augment.is_some())) {
                check_output_file(path, overwrite, &[])?;
                check_outside_data(path, &[&dir])?;
            }
            out!("{}", stats::report(&stats::stats(&dir)?));
            if let Some(out) = out {
                let (_, first) = crate::data::layout::class_folders(&dir)?.into_iter().next().expect("a data folder has at least one class folder");
                let (w, h) = stats::contact_sheet(&first, &out, None)?;
                outln!("Contact sheet: {} ({w}x{h})", out.display());
                if let (Some(cfg), Some(path)) = (augment, augmented) {
                    let cfg = Config::load(&cfg)?;
                    stats::contact_sheet(&first, &path, Some(&cfg.augment))?;
                    outln!("Augmented sheet: {}", path.display());
                }
            }
        }
    }
    Ok(())
}
