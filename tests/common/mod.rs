//! Shared by the end-to-end tests: the real `coresip` binary as a child process
//! ([`Server`]) and a small SIP user agent ([`ua::Ua`]), both on loopback, with
//! every wait bounded by [`WAIT`].

// Each test file uses a different part of this module.
#![allow(dead_code)]

pub mod ua;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The most any single wait in these tests lasts.
pub const WAIT: Duration = Duration::from_secs(15);

/// The domain every test proxy is responsible for (`--domain`).
pub const DOMAIN: &str = "example.com";

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `n` consecutive ports free for both UDP and TCP on 127.0.0.1 (a
/// TLS or metrics listener takes the next ones).
///
/// Chosen below the kernel's ephemeral range (32768 and up on Linux), so that client
/// sockets bound to port 0 by tests running in parallel cannot take them between
/// this check and the server's bind. The range is offset per process so test
/// binaries running at once rarely probe the same ports.
pub fn free_ports(n: u16) -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = 8000 + (std::process::id() % 1000) * 24;
    loop {
        let step = NEXT.fetch_add(u32::from(n), std::sync::atomic::Ordering::Relaxed);
        let port = (base + step % 20000) as u16;
        let free = (0..n).all(|i| {
            UdpSocket::bind(("127.0.0.1", port + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", port + i)).is_ok()
        });
        if free {
            return port;
        }
    }
}

/// The `coresip` binary with `args` and none of the tests' `CORESIP_*` variables.
pub fn command(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coresip"));
    cmd.args(args).stdin(Stdio::null());
    // The tests' environment must not leak flags in.
    for (k, _) in std::env::vars() {
        if k.starts_with("CORESIP_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A fresh, empty directory for one proxy's `--data-dir`.
pub fn data_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("coresip-e2e-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A `--users` file holding `lines`, inside `dir`.
pub fn users_file(dir: &Path, lines: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("users.txt");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// A running `coresip` on 127.0.0.1, UDP and TCP on the same port.
pub struct Server {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
    pub port: u16,
    pub data_dir: PathBuf,
    args: Vec<String>,
    /// Cleared by [`Server::restart`], whose next instance reuses the directory.
    remove_dir: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

impl Server {
    /// Starts coresip with `--domain example.com` and `extra` flags on a free port,
    /// keeping its state in `data_dir`, and waits until it says it is ready.
    pub fn start(cores: usize, data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_on(free_port(), cores, data_dir, DOMAIN, extra)
    }

    /// [`Server::start`] with `env` set for the child (test hooks).
    pub fn start_with_env(
        cores: usize,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let port = free_port();
        let mut args = Server::args(port, cores, data_dir, DOMAIN);
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::spawn_with_env(port, data_dir.to_path_buf(), args, env)
    }

    /// [`Server::start`] serving `domain` instead (e.g. an IP literal).
    pub fn start_in_domain(cores: usize, data_dir: &Path, domain: &str, extra: &[&str]) -> Server {
        Server::start_on(free_port(), cores, data_dir, domain, extra)
    }

    fn start_on(port: u16, cores: usize, data_dir: &Path, domain: &str, extra: &[&str]) -> Server {
        let mut args = Server::args(port, cores, data_dir, domain);
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::spawn(port, data_dir.to_path_buf(), args)
    }

    /// The flags every test server runs with.
    fn args(port: u16, cores: usize, data_dir: &Path, domain: &str) -> Vec<String> {
        vec![
            "--cores".into(),
            cores.to_string(),
            "--listen".into(),
            format!("udp:127.0.0.1:{port}"),
            "--listen".into(),
            format!("tcp:127.0.0.1:{port}"),
            "--domain".into(),
            domain.into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--stats-interval".into(),
            "0s".into(),
        ]
    }

    /// Starts coresip with exactly `args` (which name `port` and `data_dir`) and
    /// waits until it says it is ready.
    pub fn spawn(port: u16, data_dir: PathBuf, args: Vec<String>) -> Server {
        Server::spawn_with_env(port, data_dir, args, &[])
    }

    /// [`Server::spawn`] with `env` set in the child's environment (test hooks).
    pub fn spawn_with_env(
        port: u16,
        data_dir: PathBuf,
        args: Vec<String>,
        env: &[(&str, &str)],
    ) -> Server {
        let mut cmd = command(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn coresip");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            log: Vec::new(),
            port,
            data_dir,
            args,
            remove_dir: true,
        };
        server.wait_for_line(|l| l.contains(" ready "));
        server
    }

    /// Waits (at most [`WAIT`]) for a log line `want` accepts.
    pub fn wait_for_line(&mut self, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no such line from coresip; log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// The log lines read so far.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Where the proxy listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGTERM (to this child's PID only), then the rest of the log and the exit
    /// status.
    pub fn terminate(mut self) -> (Vec<String>, std::process::ExitStatus) {
        // SAFETY: kill(2) on the PID of our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "coresip did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.log.push(line);
        }
        (std::mem::take(&mut self.log), status)
    }

    /// SIGTERM, wait for the exit, and start again with the same flags (but
    /// `--cores cores`), port and data directory.
    pub fn restart(mut self, cores: usize) -> Server {
        self.remove_dir = false;
        let port = self.port;
        let data_dir = self.data_dir.clone();
        let mut args = self.args.clone();
        args[1] = cores.to_string();
        let (log, status) = self.terminate();
        assert!(
            status.success(),
            "exit status {status}:\n{}",
            log.join("\n")
        );
        Server::spawn(port, data_dir, args)
    }
}
