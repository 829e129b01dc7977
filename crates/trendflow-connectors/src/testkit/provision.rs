//! Installs what a test needs from the project's own files when it is missing, so that
//! `cargo test` alone works on a fresh machine: Debian's PostgreSQL package, and pinned Python
//! packages (`tests/requirements.txt`) in a cache directory outside the clone. `.ci/run` does
//! the same up front; these calls then find everything in place and do nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::postgres_server::find_bindir;

static LOCK: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// PostgreSQL's server programs, installed from Debian's `postgresql` package if missing
/// (as root, with apt-get).
pub fn ensure_postgres() -> Result<PathBuf, String> {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(p) = find_bindir() {
        return Ok(p);
    }
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        return Err(
            "PostgreSQL is not installed: install Debian's `postgresql` package (.ci/run does)"
                .into(),
        );
    }
    let install = |update: bool| {
        if update {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        }
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "postgresql",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install(false) && !install(true) {
        return Err("installing Debian's postgresql package failed".into());
    }
    find_bindir()
}

/// A directory holding the Python packages of `requirements` (pinned, one per line), installed
/// with pip on first use; put it on `PYTHONPATH`.
pub fn python_packages(requirements: &Path) -> Result<PathBuf, String> {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let text = std::fs::read_to_string(requirements)
        .map_err(|e| format!("{}: {e}", requirements.display()))?;
    let key: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = std::env::var_os("TRENDFLOW_PYTHON_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("trendflow-python")
        .join(key);
    let done = base.join(".installed");
    if done.exists() {
        return Ok(base);
    }
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&base)
        .arg("-r")
        .arg(requirements)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pip install -r {} failed:\n{}",
            requirements.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(&done, "").map_err(|e| e.to_string())?;
    Ok(base)
}
