//! Installing a test's peer from Debian's packages when it is missing: `apt-get update` then
//! `apt-get install -y PACKAGES` (as root; waits for a held dpkg lock). Shared by the tests
//! that drive real programs (browsers, HAProxy, nginx), so that a fresh machine runs them
//! without a manual step; under `CI=true` a peer that still cannot run fails its test.

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// One installation at a time within a test binary (the test threads of one binary would
/// otherwise queue on dpkg's lock one after the other anyway, each with its own `update`).
static APT: Mutex<()> = Mutex::new(());

/// Whether `program --version`-like `probe` runs and succeeds.
fn runs(program: &str, probe: &str) -> bool {
    Command::new(program)
        .arg(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `apt-get update` then `apt-get install -y PACKAGES`; `who` names the caller in the log.
pub(crate) fn apt_install(who: &str, packages: &[&str]) -> Result<(), String> {
    let _one = APT.lock().unwrap_or_else(|e| e.into_inner());
    if !runs("apt-get", "--version") {
        return Err(format!("{} missing and no apt-get", packages.join(", ")));
    }
    eprintln!("{who}: apt-get install -y {}", packages.join(" "));
    let apt = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("apt-get")
            .args(["-q", "-o", "DPkg::Lock::Timeout=600"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "`apt-get {}` failed ({}): {err}",
                args.join(" "),
                out.status
            ))
        }
    };
    apt(&["update"])?;
    let mut args = vec!["install", "-y"];
    args.extend_from_slice(packages);
    apt(&args)
}

/// The program `$ENV` names, else `name` on the `PATH`, if `probe` succeeds on it; when it
/// does not, installs `package` and looks again.
pub(crate) fn find_or_install(
    env: &str,
    name: &str,
    probe: &str,
    package: &str,
) -> Result<PathBuf, String> {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(name), PathBuf::from);
    let found = |p: &PathBuf| p.to_str().is_some_and(|p| runs(p, probe));
    if found(&path) {
        return Ok(path);
    }
    apt_install(name, &[package])?;
    if found(&path) {
        Ok(path)
    } else {
        Err(format!(
            "{name} does not run after apt-get install {package}"
        ))
    }
}
