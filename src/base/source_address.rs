//! `[settings] SourceAddress`: the local address every connection of a check, and every
//! probe of the sight thread, is made from. One rule for both, so that a node judges its
//! sight by the route its checks take, and one wording of what goes wrong. Any thread.

use std::io;
use std::net::{IpAddr, SocketAddr};

/// Whether a socket bound to `source` can reach `addr`: only an address of its own family.
pub fn reaches(source: Option<IpAddr>, addr: &SocketAddr) -> bool {
    source.is_none_or(|s| s.is_ipv4() == addr.is_ipv4())
}

/// Why a host was not tried: none of its addresses is of `source`'s family.
pub fn no_address_of_family(source: IpAddr) -> String {
    format!("no address of the host is of the family of SourceAddress {source}")
}

/// Binds `socket` to `source` (any port), the error naming the setting.
pub fn bind(socket: &socket2::Socket, source: IpAddr) -> io::Result<()> {
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .map_err(|e| io::Error::new(e.kind(), format!("binding SourceAddress {source}: {e}")))
}
