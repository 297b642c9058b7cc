//! `coresip`: the proxy binary. The runtime (issue 3) replaces this placeholder.

fn main() {
    eprintln!("coresip: the runtime is not built yet; see README.md");
    std::process::exit(1);
}
