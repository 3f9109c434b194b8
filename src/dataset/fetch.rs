//! Downloads an archive over HTTP(S): streamed to a uniquely named temporary file beside it
//! while its MD5 is computed, renamed into place only when the checksum matches, so an
//! interrupted or corrupt download never looks finished, and the temporary file is removed on
//! every exit path, signals included. No network wait (lookup, connection, response, each read
//! of the body) lasts longer than the timeout. Proxies come from `--proxy` or the usual
//! environment variables (ALL_PROXY, HTTPS_PROXY, HTTP_PROXY, NO_PROXY).

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
    /// The longest any one network wait may last: the name lookup, connecting, sending the
    /// request, the response headers, each read of the body (a slow but moving transfer may
    /// take longer in all).
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
    let way_out = way_out(d, proxy.as_ref());
    let t = Some(d.timeout);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(proxy)
        .timeout_resolve(t)
        .timeout_connect(t)
        .timeout_send_request(t)
        .timeout_recv_response(t)
        .timeout_per_read(t)
        .timeout_per_write(t)
        .build()
        .into();
    let response = agent.get(&d.url).call().map_err(|e| {
        let hint = match e {
            ureq::Error::Io(_) | ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) => way_out.as_str(),
            _ => "",
        };
        fail(format!("{e}{hint}"))
    })?;
    let length = response.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    // Unique, so two fetches into one folder never write one file.
    let part_path = crate::files::temp_name(dest);
    let (part, mut file) = crate::files::Temporary::file(&part_path).map_err(io(&part_path))?;
    let bar = indicatif::ProgressBar::new(length.unwrap_or(0));
    bar.set_style(indicatif::ProgressStyle::with_template("{bytes}/{total_bytes} [{bar:30}] {bytes_per_sec} ETA {eta}").expect("valid template").progress_chars("=> "));
    let mut reader = response.into_body().into_reader();
    let mut hasher = Md5::new();
    let mut buf = vec![0; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            let e = ureq::Error::from(e);
            let what = match e {
                ureq::Error::Timeout(_) => format!("no data for {} s (--timeout)", d.timeout.as_secs_f32()),
                e => e.to_string(),
            };
            fail(format!("the transfer broke off after {total} bytes: {what}{way_out}"))
        })?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(io(&part_path))?;
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
    file.sync_all().map_err(io(&part_path))?;
    part.persist(dest).map_err(io(dest))?;
    Ok(true)
}

/// What to try when the server cannot be reached or the transfer stalls, naming the proxy in
/// use (and where it came from) when there is one.
fn way_out(d: &Download, proxy: Option<&ureq::Proxy>) -> String {
    let local = "or use `gpu-cnn dataset import` with a local copy";
    let used = proxy.filter(|p| d.url.parse().is_ok_and(|uri| !p.is_no_proxy(&uri)));
    match used {
        Some(p) => {
            let from = match &d.proxy {
                Some(_) => "--proxy".to_string(),
                None => PROXY_VARIABLES.iter().find(|v| std::env::var(v).is_ok_and(|s| ureq::Proxy::new(&s).is_ok())).map_or("the environment".into(), |v| format!("${v}")),
            };
            format!(" (through the proxy {}:{} from {from}: check that it is running and reaches the internet, pass another with --proxy, raise --timeout, {local})", p.host(), p.port())
        }
        None => format!(" (offline? behind a proxy? set HTTPS_PROXY or pass --proxy, raise --timeout, {local})"),
    }
}

/// The variables ureq reads a proxy from, in its order.
const PROXY_VARIABLES: [&str; 6] = ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"];
