//! Segmentation offload for UDP on Linux: a run of equal-sized datagrams to one peer
//! crosses the UDP stack once as a `UDP_SEGMENT` send (GSO, Linux 4.18), and datagrams of
//! one flow arrive coalesced in one buffer with `UDP_GRO` (Linux 5.0), split here by their
//! segment size. The kernel path per datagram is what limits the switch (issue 20's
//! profile: two thirds of its CPU in system calls), and both cut it per run.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, RawFd};

use super::{BATCH, Sent, send_batch, set_int_option};

/// Most segments one GSO send may carry (the kernel's UDP_MAX_SEGMENTS).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes one GSO send may carry (an IP datagram's payload, with room for headers).
const GSO_MAX_BYTES: usize = 65_000;
/// The iovecs of one sendmmsg call: every datagram of its messages.
const GSO_IOVS: usize = 512;

/// Whether the kernel takes UDP generic segmentation offload (`UDP_SEGMENT`, Linux 4.18):
/// probed once on a throwaway socket, as quinn-udp does. A send can still refuse it (EIO
/// when the device cannot checksum); [`send_gso_batch`] reports that and the caller falls
/// back.
pub fn gso_supported() -> bool {
    let Ok(s) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    set_int_option(s.as_raw_fd(), libc::SOL_UDP, libc::UDP_SEGMENT, 1200).is_ok()
}

/// What [`send_gso_batch`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GsoSent {
    /// Datagrams and bytes sent, and datagrams dropped (the socket would block).
    pub sent: Sent,
    /// The kernel refused segmentation (EIO, EINVAL) at datagram `sent.datagrams`: the
    /// caller sends the rest without GSO and stops asking for it.
    pub refused: bool,
}

/// Sends `datagrams` from the connected non-blocking socket `fd`, keeping their order:
/// each run of equal-sized datagrams (and one shorter last one) goes as one message with
/// a `UDP_SEGMENT` control message, which the kernel cuts back into the same datagrams;
/// up to `per_call` messages per sendmmsg. A fanned-out video frame to one receiver is one
/// such run: one trip through the UDP stack instead of one per datagram.
pub fn send_gso_batch<'a>(
    fd: RawFd,
    datagrams: impl Iterator<Item = &'a [u8]>,
    per_call: usize,
) -> io::Result<GsoSent> {
    /// CMSG_SPACE(sizeof(u16)): a cmsghdr and its u16, aligned.
    const CMSG_SPACE: usize = 24;
    let per_call = per_call.clamp(1, BATCH);
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; GSO_IOVS];
    // SAFETY: all-zero bytes are a valid mmsghdr.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
    let mut control = [[0u64; CMSG_SPACE / 8]; BATCH];
    // Per message: datagrams and bytes in it.
    let mut runs = [(0usize, 0usize); BATCH];
    let mut out = GsoSent::default();
    let mut datagrams = datagrams.filter(|d| !d.is_empty()).peekable();
    while datagrams.peek().is_some() {
        let (mut nmsg, mut niov) = (0, 0);
        while nmsg < per_call && niov < GSO_IOVS {
            let Some(first) = datagrams.next() else { break };
            let segment = first.len();
            let start = niov;
            let mut total = segment;
            // sendmmsg only reads the buffers; the *mut is what iovec's type demands.
            let iov = |d: &[u8]| libc::iovec {
                iov_base: d.as_ptr() as *mut libc::c_void,
                iov_len: d.len(),
            };
            iovs[niov] = iov(first);
            niov += 1;
            while niov - start < GSO_MAX_SEGMENTS && niov < GSO_IOVS {
                match datagrams.peek() {
                    Some(d) if d.len() == segment && total + segment <= GSO_MAX_BYTES => {
                        total += segment;
                        iovs[niov] = iov(datagrams.next().expect("peeked"));
                        niov += 1;
                    }
                    Some(d) if d.len() < segment && total + d.len() <= GSO_MAX_BYTES => {
                        // A shorter datagram ends a run (the kernel's last segment).
                        total += d.len();
                        iovs[niov] = iov(datagrams.next().expect("peeked"));
                        niov += 1;
                        break;
                    }
                    _ => break,
                }
            }
            let count = niov - start;
            let hdr = &mut msgs[nmsg].msg_hdr;
            hdr.msg_name = std::ptr::null_mut();
            hdr.msg_namelen = 0;
            hdr.msg_iov = &mut iovs[start];
            hdr.msg_iovlen = count;
            if count > 1 {
                let buf = &mut control[nmsg];
                hdr.msg_control = buf.as_mut_ptr().cast();
                hdr.msg_controllen = CMSG_SPACE;
                // SAFETY: msg_control points at CMSG_SPACE bytes, enough for one cmsghdr
                // with a u16 (CMSG_SPACE(2) is 24 on Linux), 8-aligned.
                unsafe {
                    let cmsg = libc::CMSG_FIRSTHDR(hdr);
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment as u16);
                }
            } else {
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
            }
            runs[nmsg] = (count, total);
            nmsg += 1;
        }
        // SAFETY: the first nmsg headers point at `iovs` (the caller's datagrams) and at
        // `control`; all outlive the call, and sendmmsg only reads through them.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                msgs.as_mut_ptr(),
                nmsg as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        out.sent.calls += 1;
        let taken = if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EIO) | Some(libc::EINVAL) if runs[0].0 > 1 => {
                    out.refused = true;
                    return Ok(out);
                }
                _ if e.kind() == io::ErrorKind::WouldBlock => 0,
                _ => return Err(e),
            }
        } else {
            r as usize
        };
        for &(count, bytes) in &runs[..taken] {
            out.sent.datagrams += count;
            out.sent.bytes += bytes;
        }
        if taken < nmsg {
            out.sent.unsent +=
                runs[taken..nmsg].iter().map(|r| r.0).sum::<usize>() + datagrams.count();
            break;
        }
    }
    Ok(out)
}

/// Sends `datagrams` from the connected non-blocking socket `fd`: with GSO
/// ([`send_gso_batch`]) while `gso` holds, else datagram by datagram with sendmmsg. A send
/// the kernel refuses to segment (EIO, EINVAL, as quinn-udp handles them) turns `gso` off
/// for every later call and sends the rest without it. Returns what was sent and whether
/// this call turned GSO off.
pub fn send_segmented<'a, I>(
    fd: RawFd,
    datagrams: I,
    per_call: usize,
    gso: &mut bool,
) -> io::Result<(Sent, bool)>
where
    I: Iterator<Item = &'a [u8]> + Clone,
{
    if !*gso {
        return send_batch(fd, None, datagrams, per_call).map(|s| (s, false));
    }
    let g = send_gso_batch(fd, datagrams.clone(), per_call)?;
    if !g.refused {
        return Ok((g.sent, false));
    }
    *gso = false;
    let rest = datagrams.filter(|d| !d.is_empty()).skip(g.sent.datagrams);
    let s = send_batch(fd, None, rest, per_call)?;
    Ok((
        Sent {
            datagrams: g.sent.datagrams + s.datagrams,
            bytes: g.sent.bytes + s.bytes,
            unsent: s.unsent,
            calls: g.sent.calls + s.calls,
        },
        true,
    ))
}

/// Turns on `UDP_GRO` for the socket `fd`: the kernel may then hand over several
/// datagrams of one flow, all of one size but the last, in one buffer of up to
/// [`GRO_BUFFER`](super::GRO_BUFFER) bytes, and says the size in a control message
/// ([`RecvBatch::with_gro`](super::RecvBatch::with_gro) reads it). Fails on kernels
/// without it (before 5.0).
pub fn enable_gro(fd: RawFd) -> io::Result<()> {
    set_int_option(fd, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// Room for the control messages of one received message with GRO: a `UDP_GRO` cmsg
/// (CMSG_SPACE(sizeof(int)) = 24 bytes) and an `SCM_TIMESTAMPNS` one (CMSG_SPACE of a
/// timespec = 32 bytes).
pub(super) const GRO_CONTROL: usize = 64;

/// What the kernel said about a received message in its control messages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Control {
    /// The segment size of a coalesced message (`UDP_GRO`).
    pub(super) segment: Option<usize>,
    /// When it arrived, nanoseconds since the Unix epoch (`SO_TIMESTAMPNS`).
    pub(super) arrived_ns: Option<u64>,
}

/// Reads a received message's control messages.
pub(super) fn control(hdr: &libc::msghdr) -> Control {
    let mut out = Control::default();
    if hdr.msg_control.is_null() || hdr.msg_controllen == 0 {
        return out;
    }
    // SAFETY: after recvmmsg, msg_control points at our GRO_CONTROL-byte buffer and
    // msg_controllen says how much of it the kernel filled; CMSG_FIRSTHDR/CMSG_NXTHDR stay
    // within that length, and each cmsg's data is read unaligned after its length is
    // checked to cover it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            let len = (*cmsg).cmsg_len as usize;
            let covers = |n: usize| len >= libc::CMSG_LEN(n as u32) as usize;
            match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                (libc::SOL_UDP, libc::UDP_GRO) if covers(size_of::<libc::c_int>()) => {
                    let size =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                    out.segment = usize::try_from(size).ok().filter(|&s| s > 0);
                }
                (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) if covers(size_of::<libc::timespec>()) => {
                    let t =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                    out.arrived_ns = u64::try_from(t.tv_sec)
                        .ok()
                        .zip(u64::try_from(t.tv_nsec).ok())
                        .map(|(s, ns)| s * 1_000_000_000 + ns);
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    out
}

/// Asks the kernel to stamp each datagram with its arrival time (`SO_TIMESTAMPNS`,
/// [`Received::arrived_ns`](super::Received::arrived_ns)): a reader that drains its socket
/// late (the load generator, on its own clock) still knows when each packet came.
pub fn enable_timestamps(fd: RawFd) -> io::Result<()> {
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// The datagrams of a received buffer whose segment size is `segment`: the kernel's
/// coalescing cut back where the sender's datagrams ended (every one `segment` bytes but a
/// shorter last one). An empty buffer is no datagram.
pub fn split_segments(data: &[u8], segment: usize) -> std::slice::Chunks<'_, u8> {
    data.chunks(segment.max(1))
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::super::{RecvBatch, set_buffers, set_int_option};
    use super::*;

    #[test]
    fn a_refused_gso_send_is_reported_and_the_rest_goes_without_it() {
        if !gso_supported() {
            eprintln!("UDP_SEGMENT not supported by this kernel: GSO test not run");
            return;
        }
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.set_nonblocking(true).unwrap();
        // SO_NO_CHECK (no UDP checksum) makes the kernel refuse segmentation with EINVAL,
        // as a device that cannot checksum refuses with EIO.
        set_int_option(a.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).unwrap();
        let payloads: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 400]).collect();
        let g = send_gso_batch(a.as_raw_fd(), payloads.iter().map(Vec::as_slice), BATCH).unwrap();
        assert!(g.refused, "{g:?}");
        assert_eq!(g.sent.datagrams, 0);
        // The fallback: the rest datagram by datagram, and GSO off from then on.
        let send = |gso: &mut bool| {
            send_segmented(
                a.as_raw_fd(),
                payloads.iter().map(Vec::as_slice),
                BATCH,
                gso,
            )
            .unwrap()
        };
        let mut gso = true;
        let (sent, refused) = send(&mut gso);
        assert!(refused && !gso);
        assert_eq!((sent.datagrams, sent.unsent), (6, 0));
        let (sent, refused) = send(&mut gso);
        assert!(!refused && !gso, "not asked again");
        assert_eq!((sent.datagrams, sent.calls), (6, 1));
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let mut tries = 0;
        while got.len() < 12 && tries < 2000 {
            tries += 1;
            match b.recv(&mut buf) {
                Ok(n) => got.push(buf[..n].to_vec()),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        assert_eq!(got[..6], payloads[..]);
        assert_eq!(got[6..], payloads[..]);
    }

    #[test]
    fn gso_sends_arrive_as_the_same_datagrams_in_order() {
        if !gso_supported() {
            eprintln!("UDP_SEGMENT not supported by this kernel: GSO test not run");
            return;
        }
        // Runs of equal sizes, a shorter one ending a run, singles, a run longer than the
        // 64 segments of one send, an empty datagram (skipped), every byte distinct.
        let mut sizes = vec![1000; 10];
        sizes.extend([300, 200, 200, 200, 1000, 1200]);
        sizes.extend(std::iter::repeat_n(500, 70));
        sizes.extend([0, 7]);
        let payloads: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|k| (i * 31 + k) as u8).collect())
            .collect();
        for per_call in [BATCH, 1] {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            set_buffers(b.as_raw_fd(), 1 << 20).unwrap();
            a.connect(b.local_addr().unwrap()).unwrap();
            b.set_nonblocking(true).unwrap();
            let g = send_gso_batch(a.as_raw_fd(), payloads.iter().map(Vec::as_slice), per_call)
                .unwrap();
            let expected: Vec<&Vec<u8>> = payloads.iter().filter(|p| !p.is_empty()).collect();
            assert!(!g.refused);
            assert_eq!(g.sent.datagrams, expected.len());
            assert_eq!(g.sent.bytes, sizes.iter().sum::<usize>());
            assert_eq!(g.sent.unsent, 0);
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            // Up to 2 s for them to arrive (the test reads no clock: sys.rs is a core).
            let mut tries = 0;
            while got.len() < expected.len() && tries < 2000 {
                tries += 1;
                match b.recv(&mut buf) {
                    Ok(n) => got.push(buf[..n].to_vec()),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
                }
            }
            assert_eq!(got.len(), expected.len(), "every datagram, split exactly");
            for (g, e) in got.iter().zip(&expected) {
                assert_eq!(g, *e, "same bytes, same order");
            }
        }
    }

    /// Receives from `b` until `count` datagrams came (up to 2 s; the test reads no
    /// clock: sys is a core), each message split by its segment size; also returns how
    /// many messages carried them.
    fn receive_split(b: &UdpSocket, batch: &mut RecvBatch, count: usize) -> (Vec<Vec<u8>>, usize) {
        let (mut got, mut messages, mut tries) = (Vec::new(), 0, 0);
        while got.len() < count && tries < 2000 {
            let n = batch.recv(b.as_raw_fd(), BATCH).unwrap();
            if n == 0 {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            for i in 0..n {
                let r = batch.get(i).expect("not truncated");
                // Stamped on arrival, in Unix time (within a minute of now).
                #[allow(clippy::disallowed_methods)]
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64;
                let arrived = r.arrived_ns.expect("a timestamp");
                assert!(arrived.abs_diff(now) < 60_000_000_000, "{arrived} vs {now}");
                messages += 1;
                got.extend(r.datagrams().map(<[u8]>::to_vec));
            }
        }
        (got, messages)
    }

    #[test]
    fn a_gro_buffer_is_split_back_into_the_datagrams_sent() {
        if !gso_supported()
            || enable_gro(UdpSocket::bind("127.0.0.1:0").unwrap().as_raw_fd()).is_err()
        {
            eprintln!("UDP_SEGMENT or UDP_GRO not supported by this kernel: GRO test not run");
            return;
        }
        // A frame's run (15 x 1090 and a shorter last), then audio-sized singles, then a
        // run of 64: on loopback a GSO send reaches a GRO socket as one coalesced buffer.
        let mut sizes = vec![1090; 15];
        sizes.push(611);
        sizes.extend([190, 190, 200]);
        sizes.extend(std::iter::repeat_n(900, 64));
        let payloads: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|k| (i * 7 + k) as u8).collect())
            .collect();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        set_buffers(b.as_raw_fd(), 1 << 20).unwrap();
        enable_gro(b.as_raw_fd()).unwrap();
        enable_timestamps(b.as_raw_fd()).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.set_nonblocking(true).unwrap();
        let g = send_gso_batch(a.as_raw_fd(), payloads.iter().map(Vec::as_slice), BATCH).unwrap();
        assert_eq!(g.sent.datagrams, payloads.len());
        let mut batch = RecvBatch::with_gro();
        let (got, messages) = receive_split(&b, &mut batch, payloads.len());
        assert_eq!(got, payloads, "every datagram, split exactly, in order");
        assert!(
            messages < payloads.len(),
            "coalesced: {messages} messages for {} datagrams",
            payloads.len()
        );
        // Datagrams sent one by one to a GRO socket arrive one per message.
        send_batch(
            a.as_raw_fd(),
            None,
            payloads[16..19].iter().map(Vec::as_slice),
            BATCH,
        )
        .unwrap();
        let (got, _) = receive_split(&b, &mut batch, 3);
        assert_eq!(got, payloads[16..19]);
    }

    #[test]
    fn segments_split_at_the_size_with_a_shorter_last() {
        let data: Vec<u8> = (0..25).collect();
        let parts: Vec<&[u8]> = split_segments(&data, 10).collect();
        assert_eq!(parts, [&data[..10], &data[10..20], &data[20..]]);
        assert_eq!(split_segments(&data, 25).count(), 1);
        assert_eq!(
            split_segments(&data, 0).count(),
            25,
            "a zero size never panics"
        );
        assert_eq!(split_segments(&[], 10).count(), 0);
    }
}
