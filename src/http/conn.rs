//! One connection while its request head arrives, on the poller thread ([`super::server`]):
//! reads what the socket holds without waiting, and turns a complete head into a [`Request`]
//! or a [`Refused`] with its status. One request per connection (`Connection: close`), GET and
//! HEAD only, no request body; a head of at most [`MAX_HEAD`] bytes, complete within
//! [`HEAD_TIMEOUT`] of the accept.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a client has, from its connection, to send its whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 16 * 1024;

/// A request as the answers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// What follows `?` in the request target, still encoded; empty without one.
    pub query: String,
    /// The `Authorization` header's value.
    pub authorization: Option<String>,
    /// `Accept-Encoding` names gzip.
    pub gzip: bool,
}

impl Request {
    /// Whether only the answer's head is wanted.
    pub fn head_only(&self) -> bool {
        self.method == "HEAD"
    }
}

/// A request refused before routing, with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// 400: not an HTTP/1.x request line.
    Malformed,
    /// 408: the head did not come within [`HEAD_TIMEOUT`].
    TooSlow,
    /// 431: a head larger than [`MAX_HEAD`].
    HeadTooLarge,
    /// 413: a request with a body (nothing here takes one).
    Body,
    /// The client closed or broke the connection: nothing to answer.
    Gone,
}

impl Refused {
    /// The status and text to answer with; `None`: close without a word.
    pub fn status(self) -> Option<(u16, &'static str)> {
        match self {
            Refused::Malformed => Some((400, "malformed request\n")),
            Refused::TooSlow => Some((408, "request head not received in time\n")),
            Refused::HeadTooLarge => Some((431, "request head too large\n")),
            Refused::Body => Some((413, "request bodies are not accepted\n")),
            Refused::Gone => None,
        }
    }
}

/// Where a head stands after a read.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Incomplete: wait for the socket to be readable again.
    More,
    Done(Result<Request, Refused>),
}

/// The bytes of a head received so far.
#[derive(Debug, Default)]
pub struct Head {
    bytes: Vec<u8>,
}

impl Head {
    /// Reads from `src` until it would block, the head is complete, or it is too large.
    /// `scratch` is the poller's one read buffer, so an idle connection holds only what its
    /// client sent.
    pub fn fill(&mut self, src: &mut impl Read, scratch: &mut [u8]) -> Progress {
        loop {
            match src.read(scratch) {
                Ok(0) => return Progress::Done(Err(Refused::Gone)),
                Ok(n) => {
                    // The blank line may straddle two reads: look from 3 bytes back.
                    let from = self.bytes.len().saturating_sub(3);
                    self.bytes.extend_from_slice(&scratch[..n]);
                    if let Some(end) = head_end(&self.bytes[from..]).map(|e| e + from) {
                        return Progress::Done(self.parse(end));
                    }
                    if self.bytes.len() > MAX_HEAD {
                        return Progress::Done(Err(Refused::HeadTooLarge));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::More,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Progress::Done(Err(Refused::Gone)),
            }
        }
    }

    fn parse(&self, end: usize) -> Result<Request, Refused> {
        if end > MAX_HEAD {
            return Err(Refused::HeadTooLarge);
        }
        parse_head(&String::from_utf8_lossy(&self.bytes[..end]))
    }
}

/// A connection whose head is being read.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    /// When it was accepted: its head is due [`HEAD_TIMEOUT`] later.
    pub since: Instant,
    head: Head,
}

impl Conn {
    pub fn new(stream: TcpStream, since: Instant) -> Conn {
        Conn {
            stream,
            since,
            head: Head::default(),
        }
    }

    pub fn deadline(&self) -> Instant {
        self.since + HEAD_TIMEOUT
    }

    /// Reads what the (non-blocking) socket holds.
    pub fn read(&mut self, scratch: &mut [u8]) -> Progress {
        self.head.fill(&mut &self.stream, scratch)
    }
}

/// Where the head ends (after the blank line), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The request line and the headers the server looks at.
pub fn parse_head(head: &str) -> Result<Request, Refused> {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let parts: Vec<&str> = first.split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(Refused::Malformed);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') || method.is_empty() {
        return Err(Refused::Malformed);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut authorization = None;
    let mut gzip = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(Refused::Malformed)?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "authorization" => authorization = Some(value.to_string()),
            "accept-encoding" => gzip = accepts_gzip(value),
            "content-length" if value != "0" => return Err(Refused::Body),
            "transfer-encoding" => return Err(Refused::Body),
            _ => {}
        }
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        authorization,
        gzip,
    })
}

/// Whether an `Accept-Encoding` value takes gzip (named without `q=0`).
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        coding.eq_ignore_ascii_case("gzip") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that sends a byte per read, then has nothing more for now.
    struct Trickle(Vec<u8>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            buf[0] = self.0.remove(0);
            Ok(1)
        }
    }

    fn read(text: &str) -> Progress {
        let mut scratch = [0u8; 2048];
        Head::default().fill(&mut Trickle(text.as_bytes().to_vec()), &mut scratch)
    }

    #[test]
    fn a_request_head_is_read_a_byte_at_a_time() {
        let r = read(
            "GET /target/3?x=1&y=%20 HTTP/1.1\r\nHost: a\r\nAuthorization: Basic eA==\r\n\
             Accept-Encoding: gzip, deflate, br\r\n\r\n",
        );
        assert_eq!(
            r,
            Progress::Done(Ok(Request {
                method: "GET".into(),
                path: "/target/3".into(),
                query: "x=1&y=%20".into(),
                authorization: Some("Basic eA==".into()),
                gzip: true,
            }))
        );
    }

    #[test]
    fn a_head_read_in_pieces_waits_for_the_rest() {
        let mut head = Head::default();
        let mut scratch = [0u8; 2048];
        let first = head.fill(&mut Trickle(b"GET / HTTP/1.1\r\n\r".to_vec()), &mut scratch);
        assert_eq!(first, Progress::More);
        let done = head.fill(&mut Trickle(b"\n".to_vec()), &mut scratch);
        assert!(matches!(done, Progress::Done(Ok(r)) if r.path == "/" && r.query.is_empty()));
    }

    #[test]
    fn a_client_that_closes_half_way_is_gone() {
        let mut scratch = [0u8; 2048];
        let closed = Head::default().fill(&mut &b"GET / HTTP/1.1\r\n"[..], &mut scratch);
        assert_eq!(closed, Progress::Done(Err(Refused::Gone)));
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, GZIP;q=0.5"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("gzip; q=0.0, br"));
        assert!(!accepts_gzip("identity"));
    }

    #[test]
    fn bodies_large_heads_and_garbage_are_refused() {
        let body = "POST / HTTP/1.1\r\nContent-Length: 10485760\r\n\r\n";
        assert_eq!(read(body), Progress::Done(Err(Refused::Body)));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(read(&big), Progress::Done(Err(Refused::HeadTooLarge)));
        let endless = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(2 * MAX_HEAD));
        assert_eq!(read(&endless), Progress::Done(Err(Refused::HeadTooLarge)));
        assert_eq!(
            read("hello\r\n\r\n"),
            Progress::Done(Err(Refused::Malformed))
        );
        assert_eq!(read("GET / HTTP/1.1\r\nHost"), Progress::More);
    }
}
