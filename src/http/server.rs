//! Accepting connections and speaking just enough HTTP/1.1: one request per connection
//! (`Connection: close`), GET and HEAD only, no request body. Every step is bounded: the
//! request head must arrive within [`HEAD_TIMEOUT`] and fit in [`MAX_HEAD`] bytes, the answer
//! must be taken within [`WRITE_TIMEOUT`], and at most [`QUEUE`] accepted connections wait for
//! a handler (more are told 503 at once).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::Shared;
use crate::stop::Stop;

/// How long a client has to send its whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take the whole answer (a large `/metrics` included).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 16 * 1024;
/// Accepted connections waiting for a handler.
pub const QUEUE: usize = 64;
/// How often an acceptor looks at the stop request while no one connects.
const POLL: Duration = Duration::from_millis(200);

/// A request as the handlers see it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query (no page reads one).
    pub path: String,
    /// The `Authorization` header's value.
    pub authorization: Option<String>,
    /// `Accept-Encoding` names gzip.
    pub gzip: bool,
}

/// A request refused before routing, with its status.
#[derive(Debug, PartialEq, Eq)]
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
    fn status(&self) -> Option<(u16, &'static str)> {
        match self {
            Refused::Malformed => Some((400, "malformed request\n")),
            Refused::TooSlow => Some((408, "request head not received in time\n")),
            Refused::HeadTooLarge => Some((431, "request head too large\n")),
            Refused::Body => Some((413, "request bodies are not accepted\n")),
            Refused::Gone => None,
        }
    }
}

/// An acceptor's body: accepts until the stop request, passing connections to the handlers.
pub fn accept(listener: TcpListener, queue: Sender<TcpStream>, stop: Stop) {
    if let Err(e) = listener.set_nonblocking(true) {
        log::error!("http: cannot poll the listening socket: {e}");
        return;
    }
    while !stop.requested() {
        if !readable(&listener, POLL) {
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                match queue.try_send(stream) {
                    Ok(()) => {}
                    Err(TrySendError::Full(stream)) => busy(stream),
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                // Out of file descriptors, most likely: wait instead of spinning.
                log::warn!("http: cannot accept a connection: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Whether the listener has a connection waiting, within `wait`.
fn readable(listener: &TcpListener, wait: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for a socket this thread owns; the timeout is in range.
    let n = unsafe { libc::poll(&mut fd, 1, wait.as_millis() as libc::c_int) };
    n > 0
}

/// Every handler is busy and the queue is full: a short 503 rather than a long wait.
fn busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 5\r\n\
          Connection: close\r\n\r\nbusy\n",
    );
}

/// A handler's body: answers connections until the acceptors have ended.
pub fn handle(connections: Receiver<TcpStream>, shared: &Shared) {
    for stream in connections {
        // A bug in one page must not take a handler away: the panic is logged by the hook.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(stream, shared)));
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let request = match read_request(&mut stream, Instant::now() + HEAD_TIMEOUT) {
        Ok(r) => r,
        Err(refused) => {
            if let Some((status, text)) = refused.status() {
                let answer = Answer::text(status, text);
                let _ = answer.write(&mut Deadline::new(&stream), false);
            }
            return;
        }
    };
    let mut answer = super::route::answer(&request, shared);
    if request.gzip {
        answer = answer.gzipped();
    }
    let head_only = request.method == "HEAD";
    if let Err(e) = answer.write(&mut Deadline::new(&stream), head_only) {
        log::debug!("http: answer to {} not delivered: {e}", request.path);
    }
}

/// Reads the request head, within `deadline` and [`MAX_HEAD`].
pub fn read_request(stream: &mut impl ReadTimeout, deadline: Instant) -> Result<Request, Refused> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let end = loop {
        if let Some(end) = head_end(&head) {
            break end;
        }
        if head.len() > MAX_HEAD {
            return Err(Refused::HeadTooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Refused::TooSlow);
        }
        stream.set_timeout(left).map_err(|_| Refused::Gone)?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err(Refused::Gone),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Refused::TooSlow)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Refused::Gone),
        }
    };
    if end > MAX_HEAD {
        return Err(Refused::HeadTooLarge);
    }
    parse_head(&String::from_utf8_lossy(&head[..end]))
}

/// Where the head ends (the blank line), if it has.
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
    let path = target.split_once('?').map_or(*target, |(path, _)| path);
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

/// A socket whose reads can be given a timeout (a trait so that tests can read from memory).
pub trait ReadTimeout: Read {
    fn set_timeout(&mut self, d: Duration) -> io::Result<()>;
}

impl ReadTimeout for TcpStream {
    fn set_timeout(&mut self, d: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(d.max(Duration::from_millis(1))))
    }
}

/// Writes to a socket until [`WRITE_TIMEOUT`] after it was made; then every write fails.
pub struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
}

impl<'a> Deadline<'a> {
    fn new(stream: &'a TcpStream) -> Deadline<'a> {
        Deadline {
            stream,
            until: Instant::now() + WRITE_TIMEOUT,
        }
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "write deadline"));
        }
        self.stream.set_write_timeout(Some(left))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes a body straight to the socket.
pub type Writer = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()>>;

/// The body of an answer: bytes in memory, or written straight to the socket (metrics,
/// whose text for many targets is too large to hold).
pub enum Body {
    Bytes(Vec<u8>),
    Stream(Writer),
}

/// An answer: status, type, body, and extra headers.
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Answer {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Answer {
        Answer {
            status,
            content_type,
            headers: Vec::new(),
            body: Body::Bytes(body),
        }
    }

    pub fn text(status: u16, text: &str) -> Answer {
        Answer::new(
            status,
            "text/plain; charset=utf-8",
            text.as_bytes().to_vec(),
        )
    }

    /// The body gzipped, for a client that takes it: pages and JSON over 1 KiB (a status page's
    /// day bars repeat the same markup). `/metrics` is streamed as it is made, and left as it
    /// is.
    pub fn gzipped(self) -> Answer {
        let compressible = self.content_type.starts_with("text/html")
            || self.content_type.starts_with("application/json");
        let Body::Bytes(body) = &self.body else {
            return self;
        };
        if !compressible || body.len() < 1024 {
            return self;
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(5));
        match gz.write_all(body).and_then(|()| gz.finish()) {
            Ok(packed) => Answer {
                body: Body::Bytes(packed),
                ..self
            }
            .with_header("Content-Encoding", "gzip")
            .with_header("Vary", "Accept-Encoding"),
            Err(_) => self,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    /// Writes the answer; only its head for HEAD requests.
    pub fn write(self, out: &mut dyn Write, head_only: bool) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nConnection: close\r\n\
             Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
            self.status,
            reason(self.status),
            self.content_type
        );
        if let Body::Bytes(b) = &self.body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = io::BufWriter::with_capacity(16 * 1024, out);
        out.write_all(head.as_bytes())?;
        if !head_only {
            match self.body {
                Body::Bytes(b) => out.write_all(&b)?,
                Body::Stream(f) => f(&mut out)?,
            }
        }
        out.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Slow(Vec<u8>);
    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            buf[0] = self.0.remove(0);
            Ok(1)
        }
    }
    impl ReadTimeout for Slow {
        fn set_timeout(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    fn read(text: &str) -> Result<Request, Refused> {
        let far = Instant::now() + Duration::from_secs(60);
        read_request(&mut Slow(text.as_bytes().to_vec()), far)
    }

    #[test]
    fn a_request_head_is_read() {
        let r = read(
            "GET /target/3?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Basic eA==\r\n\
             Accept-Encoding: gzip, deflate, br\r\n\r\n",
        );
        assert_eq!(
            r,
            Ok(Request {
                method: "GET".into(),
                path: "/target/3".into(),
                authorization: Some("Basic eA==".into()),
                gzip: true,
            })
        );
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, GZIP;q=0.5"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("gzip; q=0.0, br"));
        assert!(!accepts_gzip("identity"));
        let page = Answer::new(200, "text/html; charset=utf-8", vec![b'x'; 10_000]).gzipped();
        assert!(page.headers.contains(&("Content-Encoding", "gzip".into())));
        let Body::Bytes(packed) = &page.body else {
            panic!()
        };
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut back)
            .unwrap();
        assert_eq!(back, vec![b'x'; 10_000]);
        let small = Answer::text(200, "ok\n").gzipped();
        assert!(
            small.headers.is_empty(),
            "plain text and small bodies stay as they are"
        );
    }

    #[test]
    fn bodies_large_heads_and_garbage_are_refused() {
        let body = "POST / HTTP/1.1\r\nContent-Length: 10485760\r\n\r\n";
        assert_eq!(read(body), Err(Refused::Body));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(read(&big), Err(Refused::HeadTooLarge));
        assert_eq!(read("hello\r\n\r\n"), Err(Refused::Malformed));
        assert_eq!(read("GET / HTTP/1.1\r\nHost"), Err(Refused::TooSlow));
    }

    #[test]
    fn a_passed_deadline_refuses() {
        let past = Instant::now();
        let r = read_request(&mut Slow(b"GET / HTTP/1.1\r\n".to_vec()), past);
        assert_eq!(r, Err(Refused::TooSlow));
    }
}
