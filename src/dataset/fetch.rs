//! Downloads an archive over HTTP(S): streamed to a uniquely named temporary file beside it
//! while its MD5 is computed, renamed into place only when the checksum matches, so an
//! interrupted or corrupt download never looks finished. Proxies come from `--proxy` or the usual environment variables
//! (HTTPS_PROXY, ALL_PROXY, NO_PROXY).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use md5::{Digest, Md5};

use super::{io, DatasetError};

pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
pub const CIFAR10_BYTES: u64 = 170_052_171;

#[derive(Debug, Clone)]
pub struct Download {
    pub url: String,
    /// Expected MD5 (hex); None skips the check.
    pub md5: Option<String>,
    /// Connecting and waiting for the response (not the whole transfer).
    pub timeout: Duration,
    /// Overrides the proxy environment variables.
    pub proxy: Option<String>,
}

pub fn md5_file(path: &Path) -> Result<String, DatasetError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fetches `d.url` into `dest` unless `dest` already holds a file with the expected checksum.
/// Any other file there is the user's, and is never replaced. Returns whether anything was
/// downloaded.
pub fn fetch(d: &Download, dest: &Path) -> Result<bool, DatasetError> {
    if dest.exists() {
        if dest.is_file() && d.md5.as_ref().is_some_and(|m| md5_file(dest).is_ok_and(|a| &a == m)) {
            return Ok(false);
        }
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        return Err(DatasetError::Occupied(dest.parent().unwrap_or(Path::new(".")).to_path_buf(), format!("a {name} that is not the expected download; import it with `gpu-cnn dataset import`, or move it away")));
    }
    let fail = |message: String| DatasetError::Download { url: d.url.clone(), message };
    let proxy = match &d.proxy {
        Some(p) => Some(ureq::Proxy::new(p).map_err(|e| fail(format!("bad --proxy '{p}': {e}")))?),
        None => ureq::Proxy::try_from_env(),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(proxy)
        .timeout_connect(Some(d.timeout))
        .timeout_recv_response(Some(d.timeout))
        .build()
        .into();
    let response = agent.get(&d.url).call().map_err(|e| {
        let hint = match e {
            ureq::Error::Io(_) | ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) => {
                " (offline? behind a proxy? set HTTPS_PROXY or --proxy, or use `gpu-cnn dataset import` with a local copy)"
            }
            _ => "",
        };
        fail(format!("{e}{hint}"))
    })?;
    let length = response.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // Unique, so two fetches into one folder never write one file.
    let part = crate::files::temp_name(dest);
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let result = (|| {
        let mut file = std::fs::File::create(&part).map_err(io(&part))?;
        let bar = indicatif::ProgressBar::new(length.unwrap_or(0));
        bar.set_style(indicatif::ProgressStyle::with_template("{bytes}/{total_bytes} [{bar:30}] {bytes_per_sec} ETA {eta}").expect("valid template").progress_chars("=> "));
        let mut reader = response.into_body().into_reader();
        let mut hasher = Md5::new();
        let mut buf = vec![0; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(|e| fail(format!("the transfer broke off after {total} bytes: {e}")))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(io(&part))?;
            hasher.update(&buf[..n]);
            total += n as u64;
            bar.set_position(total);
        }
        bar.finish_and_clear();
        if length.is_some_and(|l| l != total) {
            return Err(fail(format!("got {total} of {} bytes", length.unwrap_or(0))));
        }
        let actual = hex(&hasher.finalize());
        if let Some(expected) = &d.md5 {
            if &actual != expected {
                let hint = " (the download was discarded; try again, or check --url)";
                return Err(DatasetError::Checksum { path: dest.to_path_buf(), expected: expected.clone(), actual, hint });
            }
        }
        file.sync_all().map_err(io(&part))?;
        std::fs::rename(&part, dest).map_err(io(dest))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result.map(|()| true)
}
