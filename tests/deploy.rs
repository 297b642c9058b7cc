//! The deploy/ kit stays in step with the binary: the systemd unit verifies, the
//! example files name only flags that exist, the sysctl file explains every value, and
//! the Grafana dashboard queries only metrics coresip exports.

use std::path::{Path, PathBuf};
use std::process::Command;

use coresip::{exposition, render, ShardHealth, ShardMetrics};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

/// Words starting with `prefix` and going on with `[A-Za-z0-9_-]`.
fn words(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let tail = &rest[i..];
        let end = prefix.len()
            + tail[prefix.len()..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(tail.len() - prefix.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out.sort();
    out.dedup();
    out
}

/// Runs `systemd-analyze verify` on `unit` (a copy whose ExecStart points at the built
/// binary, since verify checks that it exists). `None` when systemd-analyze is missing.
fn verify(unit: &str) -> Option<(bool, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coresip.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/coresip", env!("CARGO_BIN_EXE_coresip")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .ok()?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn systemd_unit_verifies() {
    let unit = read("coresip.service");
    let Some((ok, stderr)) = verify(&unit) else {
        eprintln!("note: systemd-analyze is not installed; unit not verified");
        return;
    };
    // verify exits 0 even for unknown keys; it reports them on stderr, naming the file.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("coresip.service"))
        .collect();
    assert!(ok && about_unit.is_empty(), "{stderr}");

    // And the check does catch a mistake.
    let broken = unit.replace("LimitNOFILE=", "LimitNOFIEL=");
    let (_, stderr) = verify(&broken).unwrap();
    assert!(stderr.contains("LimitNOFIEL"), "{stderr}");
}

#[test]
fn systemd_unit_has_what_coresip_needs() {
    let unit = read("coresip.service");
    for line in [
        "EnvironmentFile=/etc/coresip/coresip.env",
        "LimitMEMLOCK=",
        "LimitNOFILE=",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/coresip",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "User=coresip",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line} missing");
    }
    // io_uring and pinning must survive the system call filter.
    assert!(unit.contains("SystemCallFilter=@system-service\n"));
}

#[test]
fn deploy_files_name_only_flags_that_exist() {
    let help = Command::new(env!("CARGO_BIN_EXE_coresip"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for file in [
        "coresip.env",
        "coresip.service",
        "Containerfile",
        "README.md",
    ] {
        let text = read(file);
        for var in words(&text, "CORESIP_")
            .into_iter()
            .filter(|v| v != "CORESIP_")
        {
            assert!(
                help.contains(&format!("env: {var}=")),
                "deploy/{file} names {var}, which no flag reads"
            );
        }
        for line in text.lines() {
            for flag in words(line, "--") {
                let name = flag.trim_start_matches('-');
                if name.is_empty() || OTHER_TOOLS_FLAGS.contains(&name) || line.contains("planned")
                {
                    continue;
                }
                assert!(
                    help.contains(&format!("--{name} ")),
                    "deploy/{file} names --{name}, which coresip does not have:\n{line}"
                );
            }
        }
    }
}

/// Flags of cargo, useradd, podman, apt-get and systemd-analyze that the deploy files
/// use in their commands.
const OTHER_TOOLS_FLAGS: &[&str] = &[
    "release",
    "locked",
    "bin",
    "system",
    "user",
    "user_group",
    "user-group",
    "home",
    "home-dir",
    "shell",
    "now",
    "man",
    "uid",
    "create-home",
    "no-install-recommends",
    "network",
    "ulimit",
    "security-opt",
    "rm",
    "name",
    "help",
    "offline",
    "from",
    "combined",
];

#[test]
fn every_sysctl_value_is_explained_and_exists() {
    let text = read("sysctl.d/60-coresip.conf");
    let mut commented = false;
    let mut settings = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            commented = true;
        } else if line.is_empty() {
            commented = false;
        } else {
            let (key, value) = line.split_once('=').expect("key = value");
            assert!(commented, "{key} has no comment above it");
            assert!(!value.trim().is_empty());
            settings += 1;
            let proc = Path::new("/proc/sys").join(key.trim().replace('.', "/"));
            if Path::new("/proc/sys/net").exists() {
                assert!(proc.exists(), "{} is not a sysctl here", key.trim());
            }
        }
    }
    assert!(settings >= 8);
}

/// True when the brackets of `json` balance outside strings (a cheap well-formedness
/// check; the file is generated, this guards hand edits).
fn balanced(json: &str) -> bool {
    let mut stack = Vec::new();
    let mut in_str = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => stack.push(c),
            '}' if stack.pop() != Some('{') => return false,
            ']' if stack.pop() != Some('[') => return false,
            _ => {}
        }
    }
    stack.is_empty() && !in_str
}

#[test]
fn grafana_dashboard_queries_only_exported_metrics() {
    let json = read("grafana/coresip.json");
    assert!(balanced(&json));
    let text = render(
        &ShardMetrics::new().snapshot(),
        ShardHealth {
            shards: 1,
            fresh: 1,
        },
    );
    let exp = exposition::parse(&text).unwrap();
    let used = words(&json, "coresip_");
    assert!(used.len() > 15, "{used:?}");
    for name in used {
        assert!(
            exp.samples.iter().any(|s| s.name == name),
            "the dashboard queries {name}, which /metrics does not export"
        );
    }
    // README's metric table too.
    for name in words(&read("README.md"), "coresip_") {
        assert!(
            exp.samples.iter().any(|s| s.name == name)
                || exp.families.iter().any(|f| f.name == name),
            "deploy/README.md names {name}, which /metrics does not export"
        );
    }
}
