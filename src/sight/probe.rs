//! One probe round, on the sight thread: a TCP connect to each `host:port`, all at once
//! (non-blocking sockets and one `poll`), the whole round bounded by its timeout. Names are
//! resolved first, each on a helper thread waited for within the same bound (the system's
//! resolver has no timeout of its own; a lookup still hanging is left to finish on its own
//! and costs nothing more). Connects from `[settings] SourceAddress` when it is set, as the
//! checks do: a node whose checks leave by one route must judge its sight by that route.
//! Writes nothing; the sockets close at once.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::base::source_address;

/// Addresses tried per name.
const ADDRESSES: usize = 4;

/// What one entry of the list did: `Ok` when a connection was made, `Err` with why not (a
/// refused connection is a failure too: an address that is always up does not refuse).
pub type Answer = Result<(), String>;

/// Connects to every entry of `list` (`host:port`, `[v6]:port`) within `timeout`, from
/// `source` when set; one answer per entry, in order.
pub fn round(list: &[String], timeout: Duration, source: Option<IpAddr>) -> Vec<Answer> {
    let deadline = Instant::now() + timeout;
    if crate::base::fault::blind() {
        return list
            .iter()
            .map(|_| Err("network is unreachable (fault injected by the test suite)".into()))
            .collect();
    }
    let resolved: Vec<Result<Vec<SocketAddr>, String>> =
        list.iter().map(|entry| resolve(entry, deadline)).collect();
    let mut pending = Vec::new();
    let mut answers: Vec<Answer> = Vec::with_capacity(list.len());
    for (i, addrs) in resolved.into_iter().enumerate() {
        match addrs {
            Err(why) => answers.push(Err(why)),
            Ok(addrs) => {
                answers.push(Err(match source {
                    Some(s) => source_address::no_address_of_family(s),
                    None => "no address answered".into(),
                }));
                let reachable = addrs
                    .into_iter()
                    .filter(|a| source_address::reaches(source, a));
                for addr in reachable.take(ADDRESSES) {
                    match start(addr, source) {
                        Ok(Some(socket)) => pending.push((i, addr, socket)),
                        Ok(None) => answers[i] = Ok(()),
                        Err(e) => answers[i] = answers[i].clone().or(Err(e)),
                    }
                }
            }
        }
    }
    finish(&mut answers, pending, deadline);
    answers
}

/// `host` and `port` of `host:port` or `[v6]:port`.
fn split(entry: &str) -> Option<(&str, u16)> {
    let (host, port) = entry.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port.parse().ok()?))
}

/// The entry's addresses: an IP literal as written, a name looked up on a helper thread
/// waited for until `deadline`.
fn resolve(entry: &str, deadline: Instant) -> Result<Vec<SocketAddr>, String> {
    let (host, port) = split(entry).ok_or_else(|| format!("`{entry}` is not host:port"))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let name = (host.to_string(), port);
    let spawned = std::thread::Builder::new()
        .name("skypunch-sight-dns".into())
        .spawn(move || {
            let _ = tx.send(name.to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
        });
    if spawned.is_err() {
        return Err(format!("cannot look up {host}: no thread for the lookup"));
    }
    match rx.recv_deadline(deadline) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(format!("{host} has no address")),
        Ok(Err(e)) => Err(format!("cannot look up {host}: {e}")),
        Err(_) => Err(format!("looking up {host} timed out")),
    }
}

/// Starts a non-blocking connect from `source` when set: `None` when it connected at once,
/// the socket while it is in progress.
fn start(addr: SocketAddr, source: Option<IpAddr>) -> Result<Option<Socket>, String> {
    let fail = |e: std::io::Error| format!("{addr}: {e}");
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    if let Some(ip) = source {
        source_address::bind(&socket, ip).map_err(|e| e.to_string())?;
    }
    socket.set_nonblocking(true).map_err(fail)?;
    match socket.connect(&addr.into()) {
        Ok(()) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(Some(socket)),
        Err(e) => Err(fail(e)),
    }
}

/// Waits for the connects in progress until `deadline`: an entry answers when any of its
/// sockets connects.
fn finish(
    answers: &mut [Answer],
    mut pending: Vec<(usize, SocketAddr, Socket)>,
    deadline: Instant,
) {
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut fds: Vec<libc::pollfd> = pending
            .iter()
            .map(|(_, _, s)| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            })
            .collect();
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if ready < 0 {
            break;
        }
        let mut still = Vec::with_capacity(pending.len());
        for ((i, addr, socket), fd) in pending.into_iter().zip(&fds) {
            if fd.revents == 0 {
                still.push((i, addr, socket));
                continue;
            }
            match socket.take_error() {
                Ok(None) if fd.revents & libc::POLLOUT != 0 => answers[i] = Ok(()),
                Ok(None) => answers[i] = answers[i].clone().or(Err(format!("{addr}: hung up"))),
                Ok(Some(e)) | Err(e) => {
                    answers[i] = answers[i].clone().or(Err(format!("{addr}: {e}")))
                }
            }
        }
        pending = still;
    }
    for (i, addr, _) in pending {
        if answers[i].is_err() {
            answers[i] = Err(format!("{addr}: connect timed out"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_port_answers_and_a_closed_one_and_a_bad_entry_do_not() {
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let list = vec![
            format!("127.0.0.1:{}", open.local_addr().unwrap().port()),
            format!("127.0.0.1:{closed_port}"),
            "no-port".to_string(),
            "localhost:0".to_string(),
        ];
        let answers = round(&list, Duration::from_secs(2), None);
        assert_eq!(answers[0], Ok(()));
        assert!(
            answers[1].as_ref().unwrap_err().contains("refused"),
            "{answers:?}"
        );
        assert!(answers[2].as_ref().unwrap_err().contains("not host:port"));
        assert!(answers[3].is_err());
        assert_eq!(split("[::1]:53"), Some(("::1", 53)));
    }

    #[test]
    fn a_probe_connects_from_the_source_address_the_checks_use() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let entry = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let source: IpAddr = "127.0.0.2".parse().unwrap();
        let answers = round(
            std::slice::from_ref(&entry),
            Duration::from_secs(2),
            Some(source),
        );
        assert_eq!(answers[0], Ok(()));
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), source);

        let v6: IpAddr = "::1".parse().unwrap();
        let answers = round(&[entry], Duration::from_secs(2), Some(v6));
        assert_eq!(
            answers[0],
            Err("no address of the host is of the family of SourceAddress ::1".to_string())
        );
    }
}
