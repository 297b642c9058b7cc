//! `coresip`: flags → [`Config`](coresip::Config) → [`coresip::run`].

use std::io::IsTerminal;

fn main() {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cfg = coresip::parse_or_exit(cpus);
    let level = cfg
        .log_level
        .parse::<tracing::Level>()
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    if let Err(e) = coresip::run(cfg) {
        // The log may be filtered; the reason to stop is always printed, on one line.
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
