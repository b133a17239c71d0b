//! Raw-socket server: the emulated line on a real interface (AF_PACKET, EtherType 0x88A4), so a
//! master in another network namespace talks to it over real Ethernet frames (e.g. a veth pair).
//! Needs CAP_NET_RAW.

use std::ffi::CString;
use std::io;

use crate::network::{Network, ETHERTYPE};
use crate::Error;

/// An AF_PACKET socket bound to one interface, receiving only EtherCAT frames.
pub struct RawSocket {
    fd: libc::c_int,
    ifindex: libc::c_int,
}

impl RawSocket {
    /// Open and bind to `iface`.
    pub fn open(iface: &str) -> Result<Self, Error> {
        let name = CString::new(iface).map_err(|_| Error::Interface(iface.to_string()))?;
        // SAFETY: plain FFI calls with valid arguments; the fd is owned by the returned value.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr()) as libc::c_int;
            if ifindex == 0 {
                return Err(Error::Interface(iface.to_string()));
            }
            let proto = (ETHERTYPE).to_be() as libc::c_int;
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto);
            if fd < 0 {
                return Err(Error::Io(io::Error::last_os_error()));
            }
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = ETHERTYPE.to_be();
            addr.sll_ifindex = ifindex;
            let r = libc::bind(
                fd,
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            );
            if r < 0 {
                let e = io::Error::last_os_error();
                libc::close(fd);
                return Err(Error::Io(e));
            }
            Ok(Self { fd, ifindex })
        }
    }

    /// Make [`RawSocket::recv`] give up after `timeout` without a frame (SO_RCVTIMEO), so the server can keep the
    /// drives' wall clock running while the line is silent.
    pub fn set_read_timeout(&self, timeout: std::time::Duration) -> Result<(), Error> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
        };
        // SAFETY: setsockopt with a valid timeval of the size given.
        let r = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(Error::Io(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Receive one incoming frame (frames this host sent are skipped); returns its length, or 0 when the read timeout
    /// ([`RawSocket::set_read_timeout`]) passed without one.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            // SAFETY: buf and addr are valid for the lengths given.
            let (n, pkttype) = unsafe {
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                let n = libc::recvfrom(
                    self.fd,
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                    &mut addr as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                    &mut alen,
                );
                (n, addr.sll_pkttype)
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if e.kind() == io::ErrorKind::WouldBlock {
                    return Ok(0);
                }
                return Err(Error::Io(e));
            }
            if pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            return Ok(n as usize);
        }
    }

    /// Send one frame on the bound interface.
    pub fn send(&self, frame: &[u8]) -> Result<(), Error> {
        // SAFETY: frame and addr are valid for the lengths given.
        let r = unsafe {
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = ETHERTYPE.to_be();
            addr.sll_ifindex = self.ifindex;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&frame[0..6]);
            libc::sendto(
                self.fd,
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(Error::Io(io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        // SAFETY: fd was opened by us and is closed once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

/// Serve the line on `socket` until an IO error: receive, process, send back. Under [`crate::Clock::Wall`] the socket
/// wakes at least every 200 µs to step the drives while no frames come.
pub fn serve(socket: &RawSocket, network: &mut Network) -> Result<(), Error> {
    let mut buf = vec![0u8; 2048];
    if network.clock() == crate::Clock::Wall {
        socket.set_read_timeout(std::time::Duration::from_micros(200))?;
    }
    loop {
        let n = socket.recv(&mut buf)?;
        network.advance();
        if n < 16 || buf[6] & 0x02 != 0 {
            continue; // not for us, or a reply that already went round
        }
        if network.process_frame(&mut buf[..n]) {
            socket.send(&buf[..n])?;
        }
    }
}
