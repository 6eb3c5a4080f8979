//! A worker's sockets: one per leg, registered with the worker's epoll under the leg id,
//! found by id in constant time.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use super::MeetingId;
use super::sys::{Epoll, enable_gro, set_buffers};
use crate::meeting::LegId;

/// Send and receive buffer of each leg's socket.
const SOCKET_BUFFER: usize = 1 << 20;

/// The epoll token of the worker's wake-up socket (leg ids are `u32`).
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// One leg's socket.
pub(crate) struct Leg {
    pub(crate) meeting: MeetingId,
    pub(crate) id: LegId,
    pub(crate) socket: UdpSocket,
    pub(crate) remote: SocketAddr,
}

/// The legs of a worker.
pub(crate) struct Legs {
    legs: Vec<Leg>,
    index: HashMap<LegId, usize>,
    epoll: Epoll,
    /// Whether each leg's socket asks for UDP_GRO (the worker's receive buffers are sized
    /// for it).
    gro: bool,
}

impl Legs {
    /// No legs yet; `wake` is reported under [`WAKE_TOKEN`]; with `gro`, every leg's socket
    /// receives with UDP_GRO.
    pub(crate) fn new(wake: &UdpSocket, gro: bool) -> io::Result<Self> {
        let epoll = Epoll::new(256)?;
        epoll.add(wake.as_raw_fd(), WAKE_TOKEN)?;
        Ok(Self {
            legs: Vec::new(),
            index: HashMap::new(),
            epoll,
            gro,
        })
    }

    /// Adds a leg, replacing one with the same id (its peer's address may have moved).
    /// The socket is connected to the peer: sends reuse the route, and the kernel itself
    /// drops datagrams from elsewhere (the worker still checks and counts them).
    pub(crate) fn add(&mut self, leg: Leg) -> io::Result<()> {
        self.remove(leg.id);
        leg.socket.set_nonblocking(true)?;
        leg.socket.connect(leg.remote)?;
        // Larger buffers absorb bursts; without them the leg still works.
        let _ = set_buffers(leg.socket.as_raw_fd(), SOCKET_BUFFER);
        // A kernel without UDP_GRO (before 5.0) delivers datagrams one by one, which the
        // worker's buffers take as well.
        if self.gro {
            let _ = enable_gro(leg.socket.as_raw_fd());
        }
        self.epoll.add(leg.socket.as_raw_fd(), u64::from(leg.id))?;
        self.index.insert(leg.id, self.legs.len());
        self.legs.push(leg);
        Ok(())
    }

    /// Points a leg at a new peer address: its socket is connected there (connect(2) on a
    /// connected UDP socket moves it).
    pub(crate) fn redirect(&mut self, id: LegId, remote: SocketAddr) -> io::Result<()> {
        let Some(&i) = self.index.get(&id) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such leg"));
        };
        let leg = &mut self.legs[i];
        leg.socket.connect(remote)?;
        leg.remote = remote;
        Ok(())
    }

    /// Removes a leg (closes its socket).
    pub(crate) fn remove(&mut self, id: LegId) {
        if let Some(i) = self.index.remove(&id) {
            let gone = self.legs.swap_remove(i);
            let _ = self.epoll.remove(gone.socket.as_raw_fd());
            if let Some(moved) = self.legs.get(i) {
                self.index.insert(moved.id, i);
            }
        }
    }

    /// Removes every leg of a meeting.
    pub(crate) fn remove_meeting(&mut self, meeting: MeetingId) {
        let ids: Vec<LegId> = self
            .legs
            .iter()
            .filter(|l| l.meeting == meeting)
            .map(|l| l.id)
            .collect();
        for id in ids {
            self.remove(id);
        }
    }

    /// The leg with `id`.
    pub(crate) fn get(&self, id: LegId) -> Option<&Leg> {
        self.index.get(&id).map(|&i| &self.legs[i])
    }

    /// Waits for readable legs (see [`Epoll::wait`]).
    pub(crate) fn wait(&mut self, timeout_ms: i32) -> io::Result<usize> {
        self.epoll.wait(timeout_ms)
    }

    /// The token of ready socket `i` of the last wait.
    pub(crate) fn ready(&self, i: usize) -> Option<u64> {
        self.epoll.token(i)
    }

    /// How many legs.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.legs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leg whose peer is `remote`.
    fn leg(id: LegId, meeting: MeetingId, remote: SocketAddr) -> Leg {
        Leg {
            meeting,
            id,
            remote,
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
        }
    }

    #[test]
    fn legs_are_found_by_id_replaced_and_removed_with_their_meeting() {
        let wake = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut legs = Legs::new(&wake, true).unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer_addr = peer.local_addr().unwrap();
        for (id, m) in [(1, 10), (2, 10), (3, 20)] {
            legs.add(leg(id, m, peer_addr)).unwrap();
        }
        let replacement = leg(2, 10, peer_addr);
        let new_port = replacement.socket.local_addr().unwrap();
        legs.add(replacement).unwrap();
        assert_eq!(legs.len(), 3);
        assert_eq!(legs.get(2).unwrap().socket.local_addr().unwrap(), new_port);
        // A datagram to leg 3 from its peer makes it ready under its id; one from
        // elsewhere never reaches it (the socket is connected to its peer).
        let to = legs.get(3).unwrap().socket.local_addr().unwrap();
        wake.send_to(b"stranger", to).unwrap();
        assert_eq!(legs.wait(50).unwrap(), 0);
        peer.send_to(b"x", to).unwrap();
        assert_eq!(legs.wait(1000).unwrap(), 1);
        assert_eq!(legs.ready(0), Some(3));
        legs.remove_meeting(10);
        assert_eq!(legs.len(), 1);
        assert!(legs.get(1).is_none() && legs.get(2).is_none());
        assert_eq!(legs.get(3).unwrap().meeting, 20);
        // The wake-up socket reports under its own token.
        wake.send_to(b"w", wake.local_addr().unwrap()).unwrap();
        let n = legs.wait(1000).unwrap();
        assert!((0..n).any(|i| legs.ready(i) == Some(WAKE_TOKEN)));
    }

    #[test]
    fn a_redirected_leg_takes_its_new_peer_and_no_longer_the_old_one() {
        let wake = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut legs = Legs::new(&wake, true).unwrap();
        let (old, new) = (
            UdpSocket::bind("127.0.0.1:0").unwrap(),
            UdpSocket::bind("127.0.0.1:0").unwrap(),
        );
        legs.add(leg(7, 1, old.local_addr().unwrap())).unwrap();
        let to = legs.get(7).unwrap().socket.local_addr().unwrap();
        legs.redirect(7, new.local_addr().unwrap()).unwrap();
        assert_eq!(legs.get(7).unwrap().remote, new.local_addr().unwrap());
        old.send_to(b"old", to).unwrap();
        assert_eq!(legs.wait(50).unwrap(), 0, "the old peer is a stranger now");
        new.send_to(b"new", to).unwrap();
        assert_eq!(legs.wait(1000).unwrap(), 1);
        assert_eq!(legs.ready(0), Some(7));
        assert!(legs.redirect(99, new.local_addr().unwrap()).is_err());
    }
}
