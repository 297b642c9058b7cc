//! Response steering in the kernel: a classic BPF program on each UDP listener's
//! SO_REUSEPORT group that hands a response to the core owning its transaction.
//!
//! Every core binds every UDP listener with SO_REUSEPORT, and the kernel picks the
//! socket by a hash of the packet's 4-tuple (DESIGN.md §3). A response comes from
//! the next hop's address, which has nothing to do with the core that sent the
//! request, so on N cores it lands on the wrong one (N-1)/N of the time and costs a
//! mesh hop. Our branch names the owning shard (`z9hG4bKc` + 4 hex digits,
//! [`crate::txn::key::BRANCH_PREFIX`]), and the top Via of a response is ours
//! (RFC 3261 §18.1.2), so the program scans the response for that prefix and
//! returns the shard as the socket index. Every core binds its sockets in core
//! order, so socket `i` of a group is core `i`'s.
//!
//! Anything else (a request, a branch not ours, a shard past 255, a prefix past the
//! scanned window) makes the program return an index past the group, which tells
//! the kernel to fall back to its hash (`reuseport_select_sock`). Steering is only
//! a hint: [`crate::shard::Shard::owner_of`] still decides, and forwards over the
//! mesh whatever lands elsewhere.

use std::io;
use std::os::unix::io::AsRawFd;

use libc::sock_filter;

use crate::txn::key::BRANCH_PREFIX;

/// "Let the kernel hash": any index past the sockets of the group.
const FALLBACK: u32 = u32::MAX;
/// The status line ("SIP/2.0 200 OK\r\n") comes before any Via: no need to look
/// for the prefix this early. A multiple of 4.
const SCAN_FROM: u32 = 16;
/// Bytes checked between two packet-length checks. A multiple of 4.
const STAGE: u32 = 64;
/// Bytes past a scanned word the program may read: the rest of the prefix and
/// the shard's 4 hex digits.
const READ_PAST: u32 = 12;
/// The largest scan window tried, in bytes from [`SCAN_FROM`]: the longest
/// program under the kernel's 4096 instructions (`BPF_MAXINSNS`).
pub(super) const MAX_WINDOW: u32 = 1216;
/// The smallest window worth attaching.
const MIN_WINDOW: u32 = 128;
/// The most cores the program can name: it reads the shard's two low hex digits
/// and requires the two high ones to be `00`.
pub(super) const MAX_CORES: usize = 256;

// Classic BPF opcodes (linux/bpf_common.h, linux/filter.h).
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
const LD_B_IND: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_IND) as u16;
const LD_W_LEN: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_LEN) as u16;
const LD_MEM: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_MEM) as u16;
const LDX_IMM: u16 = (libc::BPF_LDX | libc::BPF_W | libc::BPF_IMM) as u16;
const ST: u16 = libc::BPF_ST as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RSH_K: u16 = (libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K) as u16;
const LSH_K: u16 = (libc::BPF_ALU | libc::BPF_LSH | libc::BPF_K) as u16;
const MUL_K: u16 = (libc::BPF_ALU | libc::BPF_MUL | libc::BPF_K) as u16;
const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const ADD_X: u16 = (libc::BPF_ALU | libc::BPF_ADD | libc::BPF_X) as u16;
const TAX: u16 = (libc::BPF_MISC | libc::BPF_TAX) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const RET_A: u16 = (libc::BPF_RET | libc::BPF_A) as u16;

// Scratch memory cells.
const M_LEN: u32 = 0;
const M_HIGH: u32 = 1;
const M_LOW: u32 = 2;

fn op(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The big-endian word of 4 bytes, as `ld [k]` loads it.
fn word(b: &[u8]) -> u32 {
    b.iter().take(4).fold(0, |w, &x| (w << 8) | u32::from(x))
}

/// Appends: A = value of the lowercase hex digit in scratch cell `cell`, which
/// holds '0'..'9' or 'a'..'f' (anything else gives some number, which at worst
/// steers the packet to a wrong core: the shard corrects it).
fn hex_digit(p: &mut Vec<sock_filter>, cell: u32) {
    // ('0' & 0xf) + ('0' >> 6) * 9 = 0 … ('f' & 0xf) + ('f' >> 6) * 9 = 15.
    p.extend([
        op(LD_MEM, cell),
        op(RSH_K, 6),
        op(MUL_K, 9),
        op(TAX, 0),
        op(LD_MEM, cell),
        op(AND_K, 0xf),
        op(ADD_X, 0),
    ]);
}

/// The steering program (see the module documentation), looking for our prefix
/// in the `window` bytes after [`SCAN_FROM`].
///
/// It loads one aligned word per 4 bytes (the kernel's translation of each load is
/// the bulk of the program's size) and compares it with the four 4-byte windows at
/// the start of the 8-byte prefix: wherever the prefix starts, the aligned word
/// that follows its first byte lies within it. The first such match decides: the
/// first `z9hG4bK` of a response is its top Via's (§18.1.2), and when that branch
/// is not ours the kernel hashes.
pub(super) fn program(window: u32) -> Vec<sock_filter> {
    let window = window.min(MAX_WINDOW) / STAGE * STAGE;
    let windows: [u32; 4] = std::array::from_fn(|r| word(&BRANCH_PREFIX[r..]));
    let mut p = Vec::with_capacity(4096);
    // Responses only: they start "SIP/" (§7.2); requests start with a method.
    p.extend([
        op(LD_W_LEN, 0),
        op(ST, M_LEN),
        jump(JGE_K, SCAN_FROM, 1, 0),
        op(RET_K, FALLBACK),
        op(LD_W_ABS, 0),
        jump(JEQ_K, word(b"SIP/"), 1, 0),
        op(RET_K, FALLBACK),
    ]);
    // The scan. A load past the packet's end would end the program with 0 (core 0),
    // so each stage first checks that the packet covers every byte it may read.
    let mut found = Vec::new();
    for first in (SCAN_FROM..SCAN_FROM + window).step_by(STAGE as usize) {
        p.extend([
            op(LD_MEM, M_LEN),
            jump(JGE_K, first + STAGE + READ_PAST, 1, 0),
            op(RET_K, FALLBACK),
        ]);
        for at in (first..first + STAGE).step_by(4) {
            // The word at `at` is bytes r..r+4 of the prefix: it starts at at - r.
            p.push(op(LD_W_ABS, at));
            for (r, w) in windows.iter().enumerate() {
                let to_block = (3 - r + 2 * r) as u8;
                let next = if r == 3 { 8 } else { 0 };
                p.push(jump(JEQ_K, *w, to_block, next));
            }
            for r in 0..4 {
                p.push(op(LDX_IMM, at - r));
                found.push(p.len());
                p.push(op(JA, 0));
            }
        }
    }
    p.push(op(RET_K, FALLBACK));
    let tail = p.len();
    for at in found {
        p[at].k = (tail - at - 1) as u32;
    }
    // X = where the prefix starts: the tag, then the shard's 4 hex digits.
    let tag = u32::from(BRANCH_PREFIX[7]);
    p.extend([
        op(LD_B_IND, 7),
        jump(JEQ_K, tag, 1, 0),
        op(RET_K, FALLBACK),
        op(LD_H_IND, 8),
        jump(JEQ_K, word(b"\0\x0000"), 1, 0),
        op(RET_K, FALLBACK),
        op(LD_B_IND, 10),
        op(ST, M_HIGH),
        op(LD_B_IND, 11),
        op(ST, M_LOW),
    ]);
    hex_digit(&mut p, M_HIGH);
    p.extend([op(LSH_K, 4), op(ST, M_HIGH)]);
    hex_digit(&mut p, M_LOW);
    p.extend([op(TAX, 0), op(LD_MEM, M_HIGH), op(ADD_X, 0), op(RET_A, 0)]);
    p
}

/// Attaches the steering program to the SO_REUSEPORT group `sock` belongs to,
/// with the widest window the kernel accepts: it refuses programs larger than
/// `net.core.optmem_max` (ENOMEM): 20 KiB before Linux 6.9 (a window of 320
/// bytes: enough when Via is the first header, as most user agents write it),
/// 128 KiB since (the full window). `deploy/` raises it. Returns the window.
pub(super) fn attach(sock: &impl AsRawFd) -> io::Result<u32> {
    let mut window = MAX_WINDOW;
    loop {
        match attach_program(sock, program(window)) {
            Ok(()) => return Ok(window),
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && window - STAGE >= MIN_WINDOW => {
                window -= STAGE;
            }
            Err(e) => return Err(e),
        }
    }
}

fn attach_program(sock: &impl AsRawFd, mut prog: Vec<sock_filter>) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, alive for the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    #[test]
    fn the_program_fits_the_kernel_limit() {
        let p = program(MAX_WINDOW);
        assert!(p.len() <= libc::BPF_MAXINSNS as usize, "{}", p.len());
        // One stage more would not fit.
        let stage = p.len() - program(MAX_WINDOW - STAGE).len();
        assert!(p.len() + stage > libc::BPF_MAXINSNS as usize);
        assert_eq!(p.last().map(|i| i.code), Some(RET_A));
    }

    /// `n` SO_REUSEPORT sockets on one loopback port, bound in order (socket `i`
    /// is core `i`), nonblocking.
    fn group(n: usize) -> Vec<UdpSocket> {
        group_on(n, "127.0.0.1")
    }

    /// [`group`] on loopback address `ip`.
    fn group_on(n: usize, ip: &str) -> Vec<UdpSocket> {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let ip: std::net::IpAddr = ip.parse().unwrap();
        let domain = if ip.is_ipv6() {
            Domain::IPV6
        } else {
            Domain::IPV4
        };
        let mut port = 0;
        (0..n)
            .map(|_| {
                let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).unwrap();
                s.set_reuse_port(true).unwrap();
                let addr = std::net::SocketAddr::new(ip, port);
                s.bind(&SockAddr::from(addr)).unwrap();
                port = s.local_addr().unwrap().as_socket().unwrap().port();
                s.set_nonblocking(true).unwrap();
                s.into()
            })
            .collect()
    }

    /// Which socket of `g` received the one datagram in flight.
    fn receiver(g: &[UdpSocket]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        loop {
            for (i, s) in g.iter().enumerate() {
                if s.recv_from(&mut buf).is_ok() {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "datagram lost");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn response(shard: u16, headers_before: &str) -> String {
        format!(
            "SIP/2.0 180 Ringing\r\n{headers_before}\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKc{shard:04x}0123456789abcdef\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-uac-1\r\n\
Call-ID: steer@test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn responses_reach_the_core_named_in_our_branch() {
        let g = group(4);
        let window = attach(&g[0]).unwrap();
        eprintln!("steering window: {window} bytes");
        let to = g[0].local_addr().unwrap();
        // Several sources: the kernel's hash alone would spread them.
        let clients: Vec<UdpSocket> = (0..6)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        // Headers before our Via, up to the end of the window.
        let line = "Record-Route: <sip:p1.example.com;lr>\r\n";
        let padding = line.repeat((window as usize - 100) / line.len());
        for c in &clients {
            for shard in 0..4u16 {
                for before in ["", "From: <sip:a@x>;tag=1\r\n", padding.as_str()] {
                    c.send_to(response(shard, before).as_bytes(), to).unwrap();
                    assert_eq!(receiver(&g), usize::from(shard), "{before:?}");
                }
                // Upper case hex is not what we write; a shard past the group and
                // one past 255 fall back to the hash, and are still delivered.
                for other in [
                    response(9, ""),
                    response(0x100, ""),
                    response(shard, "").replace("z9hG4bKc", "z9hG4bKx"),
                ] {
                    c.send_to(other.as_bytes(), to).unwrap();
                    receiver(&g);
                }
            }
        }
    }

    #[test]
    fn responses_over_ipv6_are_steered_too() {
        // UDP over IPv6 selects from its reuseport group the same way (its header
        // is the same 8 bytes). Skipped where the host has no IPv6 loopback.
        if UdpSocket::bind("[::1]:0").is_err() {
            eprintln!("no IPv6 loopback here: IPv6 steering not tested");
            return;
        }
        let g = group_on(2, "::1");
        attach(&g[0]).unwrap();
        let to = g[0].local_addr().unwrap();
        for _ in 0..8 {
            let c = UdpSocket::bind("[::1]:0").unwrap();
            for shard in 0..2u16 {
                c.send_to(response(shard, "").as_bytes(), to).unwrap();
                assert_eq!(receiver(&g), usize::from(shard));
            }
        }
    }

    #[test]
    fn requests_and_short_datagrams_are_spread_by_the_kernel() {
        let g = group(2);
        attach(&g[0]).unwrap();
        let to = g[0].local_addr().unwrap();
        let mut seen = [0usize; 2];
        for i in 0..64 {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            // A request carrying our prefix (in a lower Via, say) is not steered.
            let req = format!(
                "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKc0001{i:016x}\r\n\r\n"
            );
            c.send_to(req.as_bytes(), to).unwrap();
            seen[receiver(&g)] += 1;
            for short in [
                &b"\r\n\r\n"[..],
                b"SIP/2.0 200",
                b"SIP/2.0 200 OK\r\nVia: z9hG4bKc0001",
            ] {
                c.send_to(short, to).unwrap();
                receiver(&g);
            }
        }
        // Not all on core 1 (steered) nor on core 0 (a failed load returns 0).
        assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
    }
}
