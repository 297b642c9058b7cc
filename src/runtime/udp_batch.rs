//! Many datagrams per system call: `recvmmsg(2)` to take what a UDP socket has
//! queued without waiting, `sendmmsg(2)` to hand the kernel what one pass produced.
//!
//! Under load a core wakes to several queued datagrams (SIPp, like most SIP peers,
//! sends in bursts), and each one it handles produces one or two. One system call per
//! datagram each way costs the entry and exit, the file lookup and the header copy
//! every time; batching pays them once per batch. The network stack's work per
//! datagram stays what it is.
//!
//! Both calls are made with `MSG_DONTWAIT` on the socket glommio owns: waiting stays
//! glommio's (its `recv_from` parks on io_uring when the queue is empty, and its
//! `send_to` when the send buffer is full).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::unix::io::RawFd;

use socket2::SockAddr;

/// Datagrams taken from the socket by one `recvmmsg`.
pub(crate) struct RecvBatch {
    /// `count` receive buffers of `size` bytes each, end to end.
    bufs: Vec<u8>,
    size: usize,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Datagrams in the buffers from the last [`RecvBatch::recv`].
    filled: usize,
}

impl RecvBatch {
    /// Room for `count` datagrams of up to `size` bytes each.
    pub(super) fn new(count: usize, size: usize) -> RecvBatch {
        let count = count.max(1);
        RecvBatch {
            bufs: vec![0; count * size],
            size,
            // SAFETY: all-zero is a valid sockaddr_storage (family unspecified).
            addrs: vec![unsafe { zeroed() }; count],
            // SAFETY: all-zero is a valid iovec (null base, zero length); recv()
            // points each at its buffer before use.
            iovs: vec![unsafe { zeroed() }; count],
            // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
            hdrs: vec![unsafe { zeroed() }; count],
            filled: 0,
        }
    }

    /// How many datagrams one [`RecvBatch::recv`] can take.
    pub(super) fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Takes up to the batch's room of queued datagrams from `fd` without waiting.
    /// Returns how many arrived: 0 when none is queued.
    pub(super) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.filled = 0;
        let base = self.bufs.as_mut_ptr();
        for (i, ((iov, hdr), addr)) in self
            .iovs
            .iter_mut()
            .zip(self.hdrs.iter_mut())
            .zip(self.addrs.iter_mut())
            .enumerate()
        {
            // SAFETY: i * size + size <= bufs.len() by construction.
            iov.iov_base = unsafe { base.add(i * self.size) }.cast();
            iov.iov_len = self.size;
            hdr.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = std::ptr::null_mut();
            hdr.msg_hdr.msg_controllen = 0;
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
        }
        // SAFETY: every header points at live buffers and address slots of this
        // batch, sized as declared; the kernel writes at most that much.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        self.filled = n as usize;
        Ok(self.filled)
    }

    /// Datagram `i` of the last [`RecvBatch::recv`]: its bytes (as many as fit in a
    /// buffer: a longer one is cut, which the caller tells by its length reaching
    /// the buffer's size) and its source, or `None` for a source that is not IP.
    pub(super) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.filled {
            return None;
        }
        let hdr = self.hdrs.get(i)?;
        let len = (hdr.msg_len as usize).min(self.size);
        let start = i * self.size;
        let bytes = self.bufs.get(start..start + len)?;
        let storage = *self.addrs.get(i)?;
        // SAFETY: the kernel filled `storage` with an address of msg_namelen bytes.
        let addr = unsafe { SockAddr::new(storage, hdr.msg_hdr.msg_namelen) };
        Some((bytes, addr.as_socket()?))
    }
}

/// The most datagrams one `sendmmsg` hands over.
pub(crate) const SEND_BATCH: usize = 64;

/// Sends `msgs` from `fd` with one `sendmmsg`, without waiting (at most
/// [`SEND_BATCH`] of them). Returns how many the kernel took, in order; fewer than
/// all when the socket's buffer is full or a datagram fails, and the error of the
/// first one not sent when none was.
pub(crate) fn send_batch(fd: RawFd, msgs: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
    let msgs = msgs.get(..msgs.len().min(SEND_BATCH)).unwrap_or(msgs);
    if msgs.is_empty() {
        return Ok(0);
    }
    let addrs: smallvec::SmallVec<[SockAddr; 8]> =
        msgs.iter().map(|(to, _)| SockAddr::from(*to)).collect();
    let mut iovs: smallvec::SmallVec<[libc::iovec; 8]> = msgs
        .iter()
        .map(|(_, bytes)| libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        })
        .collect();
    let mut hdrs: smallvec::SmallVec<[libc::mmsghdr; 8]> = smallvec::SmallVec::new();
    for (addr, iov) in addrs.iter().zip(iovs.iter_mut()) {
        // SAFETY: all-zero is a valid mmsghdr; the fields that matter are set below.
        let mut hdr: libc::mmsghdr = unsafe { zeroed() };
        hdr.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
        hdr.msg_hdr.msg_namelen = addr.len();
        hdr.msg_hdr.msg_iov = iov;
        hdr.msg_hdr.msg_iovlen = 1;
        hdrs.push(hdr);
    }
    // SAFETY: the headers point at addresses and byte slices that outlive the call;
    // the kernel only reads them (and writes msg_len).
    let n = unsafe {
        libc::sendmmsg(
            fd,
            hdrs.as_mut_ptr(),
            hdrs.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::unix::io::AsRawFd;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        (a, b)
    }

    #[test]
    fn an_empty_queue_is_zero_datagrams_not_an_error() {
        let (a, _) = pair();
        let mut batch = RecvBatch::new(4, 64);
        assert_eq!(batch.recv(a.as_raw_fd()).unwrap(), 0);
        assert!(batch.get(0).is_none());
    }

    #[test]
    fn one_call_takes_every_queued_datagram_up_to_the_room_in_order() {
        let (a, b) = pair();
        let to = a.local_addr().unwrap();
        for i in 0..6u8 {
            b.send_to(&[i; 3], to).unwrap();
        }
        let mut batch = RecvBatch::new(4, 64);
        assert_eq!(batch.recv(a.as_raw_fd()).unwrap(), 4);
        for i in 0..4u8 {
            let (bytes, from) = batch.get(i as usize).unwrap();
            assert_eq!(bytes, &[i; 3]);
            assert_eq!(from, b.local_addr().unwrap());
        }
        assert!(batch.get(4).is_none());
        assert_eq!(batch.recv(a.as_raw_fd()).unwrap(), 2);
        assert_eq!(batch.get(1).unwrap().0, &[5u8; 3]);
        assert_eq!(batch.recv(a.as_raw_fd()).unwrap(), 0);
    }

    #[test]
    fn a_datagram_longer_than_a_buffer_fills_it_exactly() {
        // The caller's "one byte more than the limit" test depends on this.
        let (a, b) = pair();
        b.send_to(&[7u8; 100], a.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(2, 10);
        assert_eq!(batch.recv(a.as_raw_fd()).unwrap(), 1);
        assert_eq!(batch.get(0).unwrap().0, &[7u8; 10]);
    }

    #[test]
    fn one_call_sends_to_several_destinations_in_order() {
        let (a, b) = pair();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (tb, tc) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        let msgs: Vec<(SocketAddr, &[u8])> = vec![(tb, b"one"), (tc, b"two"), (tb, b"three")];
        assert_eq!(send_batch(a.as_raw_fd(), &msgs).unwrap(), 3);
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"one"[..], a.local_addr().unwrap()));
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"three");
        let (n, _) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"two");
    }

    #[test]
    fn ipv6_sources_and_destinations() {
        let Ok(a) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback here
        };
        let b = UdpSocket::bind("[::1]:0").unwrap();
        let msgs: Vec<(SocketAddr, &[u8])> = vec![(a.local_addr().unwrap(), b"v6")];
        assert_eq!(send_batch(b.as_raw_fd(), &msgs).unwrap(), 1);
        a.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut batch = RecvBatch::new(2, 64);
        // Delivery on loopback is synchronous with the send.
        assert_eq!(batch.recv(a.as_raw_fd()).unwrap(), 1);
        assert_eq!(batch.get(0).unwrap(), (&b"v6"[..], b.local_addr().unwrap()));
    }

    #[test]
    fn a_failing_datagram_stops_the_batch_and_is_reported_when_first() {
        // What Core::send_datagrams relies on: sendmmsg stops at a datagram that
        // fails, reports the ones before it as sent, and the failure itself when it
        // is the first. Port 0 is refused locally (EINVAL): nothing leaves the host.
        let (a, b) = pair();
        let good = b.local_addr().unwrap();
        let bad: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let msgs: Vec<(SocketAddr, &[u8])> = vec![(good, b"1"), (bad, b"2"), (good, b"3")];
        assert_eq!(send_batch(a.as_raw_fd(), &msgs).unwrap(), 1);
        assert!(send_batch(a.as_raw_fd(), &msgs[1..]).is_err());
        assert_eq!(send_batch(a.as_raw_fd(), &msgs[2..]).unwrap(), 1);
        let mut buf = [0u8; 4];
        b.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(b.recv(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'1');
        assert_eq!(b.recv(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'3');
    }

    #[test]
    fn an_empty_send_is_nothing() {
        let (a, _) = pair();
        assert_eq!(send_batch(a.as_raw_fd(), &[]).unwrap(), 0);
    }
}
