//! Batched datagram I/O on Linux: recvmmsg(2), sendmmsg(2) and poll(2). The only module of
//! the crate allowed `unsafe`; every block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Datagrams per recvmmsg/sendmmsg call (quinn-udp uses 32 on Linux).
pub const BATCH: usize = 32;
// A recvmmsg batch is verified as one forwarder batch.
const _: () = assert!(BATCH <= crate::forward::MAX_BATCH);
/// Largest datagram received; larger ones are truncated and dropped by the caller.
pub const MAX_DATAGRAM: usize = 2048;
/// Largest coalesced message received with GRO (a UDP datagram's largest payload, and
/// what the kernel's GRO builds at most).
pub const GRO_BUFFER: usize = 65_536;

mod offload;
pub use offload::{
    GsoSent, enable_gro, enable_timestamps, gso_supported, send_gso_batch, send_segmented,
    split_segments,
};

fn to_sockaddr(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr type
            // (POSIX); we write exactly one sockaddr_in at its start.
            unsafe {
                std::ptr::write(
                    (storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>(),
                    sin,
                )
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for one sockaddr_in6.
            unsafe {
                std::ptr::write(
                    (storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>(),
                    sin6,
                )
            };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn from_sockaddr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and len covers it.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6, and len covers it.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Preallocated buffers for one recvmmsg call; reused for every call, so receiving
/// allocates nothing. With GRO ([`RecvBatch::with_gro`]) each slot is as large as a
/// coalesced buffer can be, and [`Received::datagrams`] cuts it back into datagrams.
pub struct RecvBatch {
    /// [`BATCH`] slots of `slot` bytes.
    bufs: Box<[u8]>,
    slot: usize,
    names: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
    /// Per slot, room for its control messages (GRO only; empty otherwise).
    control: Box<[[u64; offload::GRO_CONTROL / 8]]>,
    count: usize,
}

// SAFETY: the raw pointers inside `iovs` and `msgs` only ever point into this struct's own
// boxed buffers (set right before each call); moving the struct between threads moves them
// along, and nothing else shares them.
unsafe impl Send for RecvBatch {}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// One message of a [`RecvBatch`]: its sender and bytes, which are one datagram or, with
/// GRO, several of one size (the last may be shorter).
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The sender.
    pub from: SocketAddr,
    /// The bytes: one datagram, or several coalesced.
    pub data: &'a [u8],
    /// The size of each coalesced datagram (`data.len()` when it is one).
    pub segment: usize,
    /// When it arrived, nanoseconds since the Unix epoch, if the socket asked
    /// ([`enable_timestamps`]; buffers of [`RecvBatch::with_gro`] only).
    pub arrived_ns: Option<u64>,
}

impl<'a> Received<'a> {
    /// The datagrams, in the order they were sent.
    pub fn datagrams(&self) -> std::slice::Chunks<'a, u8> {
        split_segments(self.data, self.segment)
    }
}

impl RecvBatch {
    /// Buffers for [`BATCH`] datagrams of up to [`MAX_DATAGRAM`] bytes.
    pub fn new() -> Self {
        Self::with_slots(MAX_DATAGRAM, 0)
    }

    /// Buffers for [`BATCH`] messages of up to [`GRO_BUFFER`] bytes each, with their
    /// control messages: for sockets with [`enable_gro`] (a smaller buffer would truncate
    /// a coalesced message and lose its datagrams).
    pub fn with_gro() -> Self {
        Self::with_slots(GRO_BUFFER, BATCH)
    }

    fn with_slots(slot: usize, controls: usize) -> Self {
        Self {
            bufs: vec![0u8; slot * BATCH].into_boxed_slice(),
            slot,
            // SAFETY: sockaddr_storage is a plain C struct; all-zero bytes are a valid value.
            names: (0..BATCH)
                .map(|_| unsafe { mem::zeroed::<libc::sockaddr_storage>() })
                .collect(),
            iovs: (0..BATCH)
                .map(|_| libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            // SAFETY: mmsghdr is a plain C struct; all-zero bytes (null pointers, zero
            // lengths) are a valid value, and `recv` sets every field before use.
            msgs: (0..BATCH)
                .map(|_| unsafe { mem::zeroed::<libc::mmsghdr>() })
                .collect(),
            control: vec![[0u64; offload::GRO_CONTROL / 8]; controls].into_boxed_slice(),
            count: 0,
        }
    }

    /// Receives up to `limit` (at most [`BATCH`]) messages from the non-blocking socket
    /// `fd`; returns how many (0 when none is waiting).
    pub fn recv(&mut self, fd: RawFd, limit: usize) -> io::Result<usize> {
        let limit = limit.clamp(1, BATCH);
        let gro = !self.control.is_empty();
        for i in 0..limit {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * self.slot..].as_mut_ptr().cast(),
                iov_len: self.slot,
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            if gro {
                hdr.msg_control = self.control[i].as_mut_ptr().cast();
                hdr.msg_controllen = offload::GRO_CONTROL;
            } else {
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
            }
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: `msgs` holds `limit` initialised headers whose name, iov and control
        // pointers point into `names`, `iovs`, `bufs` and `control`, all alive and
        // exclusively borrowed for the call; the lengths given match the buffers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                limit as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            self.count = 0;
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        self.count = n as usize;
        Ok(self.count)
    }

    /// Message `i` of the last call; `None` if truncated or from an unknown address
    /// family.
    pub fn get(&self, i: usize) -> Option<Received<'_>> {
        if i >= self.count || self.msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let hdr = &self.msgs[i].msg_hdr;
        let from = from_sockaddr(&self.names[i], hdr.msg_namelen)?;
        let len = self.msgs[i].msg_len as usize;
        let data = &self.bufs[i * self.slot..i * self.slot + len];
        let control = offload::control(hdr);
        let segment = control.segment.map_or(len, |s| s.min(len.max(1)));
        Some(Received {
            from,
            data,
            segment,
            arrived_ns: control.arrived_ns,
        })
    }
}

/// What [`send_batch`] did with the datagrams it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams the kernel took.
    pub datagrams: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Datagrams not sent (the socket would block, or an error): the caller drops them.
    pub unsent: usize,
    /// sendmmsg calls made.
    pub calls: usize,
}

/// Sends `datagrams` to `to` from the non-blocking socket `fd` with sendmmsg, `per_call`
/// (at most [`BATCH`]) per call, in one pass over them. `None`: the socket is connected
/// to its peer, and the kernel reuses the connection's cached route instead of looking
/// one up per datagram.
pub fn send_batch<'a>(
    fd: RawFd,
    to: Option<SocketAddr>,
    datagrams: impl Iterator<Item = &'a [u8]>,
    per_call: usize,
) -> io::Result<Sent> {
    let per_call = per_call.clamp(1, BATCH);
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut name: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let namelen = to.map_or(0, |to| to_sockaddr(to, &mut name));
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    // SAFETY: all-zero bytes are a valid mmsghdr.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
    let mut out = Sent::default();
    let mut datagrams = datagrams.peekable();
    while datagrams.peek().is_some() {
        let mut n = 0;
        while n < per_call {
            let Some(d) = datagrams.next() else { break };
            // sendmmsg only reads the buffers; the *mut is what iovec's type demands.
            iovs[n] = libc::iovec {
                iov_base: d.as_ptr() as *mut libc::c_void,
                iov_len: d.len(),
            };
            n += 1;
        }
        for i in 0..n {
            let hdr = &mut msgs[i].msg_hdr;
            hdr.msg_name = if to.is_some() {
                (&mut name as *mut libc::sockaddr_storage).cast()
            } else {
                std::ptr::null_mut()
            };
            hdr.msg_namelen = namelen;
            hdr.msg_iov = &mut iovs[i];
            hdr.msg_iovlen = 1;
        }
        // SAFETY: the first n headers point at `name` and `iovs`, which point at the
        // caller's datagrams; all outlive the call, and sendmmsg only reads through them.
        let r =
            unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
        out.calls += 1;
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        let taken = r.max(0) as usize;
        out.datagrams += taken;
        out.bytes += iovs[..taken].iter().map(|v| v.iov_len).sum::<usize>();
        if taken < n {
            out.unsent += n - taken + datagrams.count();
            break;
        }
    }
    Ok(out)
}

/// Sets a socket's send and receive buffers to `bytes` each (the kernel caps them at
/// net.core.wmem_max / rmem_max): a video frame fanned out to a receiver is a burst of
/// tens of datagrams, and the default 208 KiB lost a few under load (issue 6).
pub fn set_buffers(fd: RawFd, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        set_int_option(fd, libc::SOL_SOCKET, opt, v)?;
    }
    Ok(())
}

/// setsockopt(2) with an `int` value.
fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a c_int that lives for the call, and its size is what we pass.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises this process's soft limit on open files to its hard limit (getrlimit(2),
/// setrlimit(2)) and returns (soft, hard) as they are afterwards: every media line is a
/// socket and every SIP connection one more, and the common soft default of 1024 ran out
/// under a flood of INVITEs (issue 14).
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit the call writes into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit that lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } < 0 {
            return Err(io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// An epoll instance (epoll(7)): sockets are registered once with a token, and a wait
/// returns only the ready ones, where poll(2) walks every socket on every wake-up (the
/// load profile showed poll at 16 % of the worker's time with 128 legs).
pub(crate) struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
    ready: usize,
}

impl Epoll {
    /// A new instance that reports up to `capacity` ready sockets per wait.
    pub(crate) fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd that
        // we own from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
            ready: 0,
        })
    }

    /// Reports `fd` as readable under `token` (level-triggered).
    pub(crate) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call; the kernel
        // copies it.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops reporting `fd` (needed even before closing it: a duplicate of the same socket
    /// elsewhere keeps the registration alive).
    pub(crate) fn remove(&self, fd: RawFd) -> io::Result<()> {
        // EPOLL_CTL_DEL ignores the event, but kernels before 2.6.9 want it non-null.
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until a registered socket is readable or `timeout_ms` passes; returns how
    /// many are ready (their tokens: [`Epoll::token`]).
    pub(crate) fn wait(&mut self, timeout_ms: i32) -> io::Result<usize> {
        // SAFETY: `events` is a valid, exclusively borrowed buffer of `len` epoll_events
        // for the whole call, and its length is what we pass.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                timeout_ms,
            )
        };
        if n < 0 {
            self.ready = 0;
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        self.ready = n as usize;
        Ok(self.ready)
    }

    /// The token of ready socket `i` of the last wait.
    pub(crate) fn token(&self, i: usize) -> Option<u64> {
        (i < self.ready).then(|| self.events[i].u64)
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn send_and_receive_a_batch_over_loopback_batched_or_not() {
        // BATCH per call (recvmmsg/sendmmsg batching), and one per call (batching off).
        for per_call in [BATCH, 1] {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            a.set_nonblocking(true).unwrap();
            b.set_nonblocking(true).unwrap();
            let payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
            let sent = send_batch(
                a.as_raw_fd(),
                Some(b.local_addr().unwrap()),
                payloads.iter().map(Vec::as_slice),
                per_call,
            )
            .unwrap();
            let bytes = payloads.iter().map(Vec::len).sum();
            assert_eq!(
                sent,
                Sent {
                    datagrams: 40,
                    bytes,
                    unsent: 0,
                    calls: 40_usize.div_ceil(per_call),
                }
            );
            let mut epoll = Epoll::new(4).unwrap();
            epoll.add(b.as_raw_fd(), 7).unwrap();
            assert_eq!(epoll.wait(1000).unwrap(), 1);
            assert_eq!((epoll.token(0), epoll.token(1)), (Some(7), None));
            let mut batch = RecvBatch::new();
            let mut got = Vec::new();
            let mut calls = 0;
            while got.len() < 40 {
                let n = batch.recv(b.as_raw_fd(), per_call).unwrap();
                assert!(n > 0 && n <= per_call);
                calls += 1;
                for i in 0..n {
                    let r = batch.get(i).unwrap();
                    assert_eq!(r.from, a.local_addr().unwrap());
                    assert_eq!(r.segment, r.data.len(), "no GRO: one datagram each");
                    got.push(r.data.to_vec());
                }
            }
            assert_eq!(got, payloads);
            assert!(calls >= 40 / per_call);
            assert_eq!(
                batch.recv(b.as_raw_fd(), per_call).unwrap(),
                0,
                "nothing left: WouldBlock is 0"
            );
            assert!(batch.get(0).is_none());
            assert_eq!(epoll.wait(0).unwrap(), 0, "drained: not ready");
            // Connected: no address per datagram.
            a.connect(b.local_addr().unwrap()).unwrap();
            send_batch(a.as_raw_fd(), None, [&b"x"[..]].into_iter(), 1).unwrap();
            epoll.remove(b.as_raw_fd()).unwrap();
            assert_eq!(epoll.wait(50).unwrap(), 0, "removed: not reported");
        }
    }

    #[test]
    fn socket_buffers_grow() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let get = |opt| {
            let mut v: libc::c_int = 0;
            let mut len = size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: `v` and `len` are valid for writes for the call and `len` is v's size.
            let r = unsafe {
                libc::getsockopt(
                    a.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&mut v as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(r, 0);
            v as usize
        };
        let before = get(libc::SO_SNDBUF);
        set_buffers(a.as_raw_fd(), 4 * before).unwrap();
        // Linux doubles the value asked for (its bookkeeping), up to wmem_max / rmem_max.
        assert!(get(libc::SO_SNDBUF) > before && get(libc::SO_RCVBUF) > before);
    }

    #[test]
    fn socket_addresses_round_trip() {
        for addr in ["127.0.0.1:5004", "[::1]:6000", "[fe80::1%2]:7"] {
            let a: SocketAddr = addr.parse().unwrap();
            // SAFETY: all-zero bytes are a valid sockaddr_storage.
            let mut s: libc::sockaddr_storage = unsafe { mem::zeroed() };
            let len = to_sockaddr(a, &mut s);
            assert_eq!(from_sockaddr(&s, len), Some(a));
        }
    }

    #[test]
    fn the_open_files_soft_limit_is_raised_to_the_hard_one() {
        let (soft, hard) = raise_open_files_limit().unwrap();
        assert_eq!(soft, hard);
        assert_eq!(
            raise_open_files_limit().unwrap(),
            (soft, hard),
            "idempotent"
        );
    }
}
