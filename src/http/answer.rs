//! Answers and how they are written: on the poller thread for the small ones (`/healthz`,
//! refusals: [`Answer::to_bytes`]), on a handler thread for the rest, straight to the socket
//! under a [`Deadline`]. A streamed body ([`Body::Stream`]: `/metrics`, the API's lists) is
//! written as it is made, through gzip when the client takes it, so that no answer holds its
//! whole text.

use std::io::{self, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::base::stop::Stop;

/// How long a client has to take the whole answer (a large `/metrics` included).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an answer under way may go on once the daemon stops.
pub const AT_STOP: Duration = Duration::from_secs(2);
/// The longest single wait on the socket, so that a writer sees the stop request soon.
const SLICE: Duration = Duration::from_millis(250);

/// Writes a body straight to the socket (or to the gzip encoder in front of it).
pub type Writer = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()>>;

/// The body of an answer: bytes in memory, or written as it is made (metrics, lists: their
/// text for many targets is too large to hold).
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

    /// 503 for a client that cannot be served now.
    pub fn busy(text: &str) -> Answer {
        Answer::text(503, text).with_header("Retry-After", "1")
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    /// The body gzipped, for a client that takes it: pages and JSON (a status page's day bars
    /// repeat the same markup), bytes over 1 KiB and streams as they are written.
    /// `/metrics` is streamed as plain text, and left as it is.
    pub fn gzipped(self) -> Answer {
        let compressible = self.content_type.starts_with("text/html")
            || self.content_type.starts_with("application/json");
        if !compressible {
            return self;
        }
        let body = match self.body {
            Body::Bytes(b) if b.len() < 1024 => {
                return Answer {
                    body: Body::Bytes(b),
                    ..self
                }
            }
            Body::Bytes(b) => match gzip(&b) {
                Ok(packed) => Body::Bytes(packed),
                Err(_) => {
                    return Answer {
                        body: Body::Bytes(b),
                        ..self
                    }
                }
            },
            Body::Stream(f) => Body::Stream(Box::new(move |out: &mut dyn Write| {
                let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::new(5));
                f(&mut gz)?;
                gz.finish().map(drop)
            })),
        };
        Answer { body, ..self }
            .with_header("Content-Encoding", "gzip")
            .with_header("Vary", "Accept-Encoding")
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

    /// The whole answer as bytes, for the poller's small answers.
    pub fn into_bytes(self, head_only: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.write(&mut out, head_only);
        out
    }
}

fn gzip(body: &[u8]) -> io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(5));
    gz.write_all(body)?;
    gz.finish()
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

/// Writes to a blocking socket until [`WRITE_TIMEOUT`] after it was made, or [`AT_STOP`]
/// after the daemon was asked to stop, whichever comes first; then every write fails.
pub struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
    /// The stop request, until it is seen.
    stop: Option<&'a Stop>,
}

impl<'a> Deadline<'a> {
    pub fn new(stream: &'a TcpStream, stop: &'a Stop) -> Deadline<'a> {
        Deadline {
            stream,
            until: Instant::now() + WRITE_TIMEOUT,
            stop: Some(stop),
        }
    }

    /// The time left, shortened once the stop is seen.
    fn left(&mut self) -> Duration {
        let now = Instant::now();
        if self.stop.is_some_and(Stop::requested) {
            self.until = self.until.min(now + AT_STOP);
            self.stop = None;
        }
        self.until.saturating_duration_since(now)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let left = self.left();
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "write deadline"));
            }
            self.stream.set_write_timeout(Some(left.min(SLICE)))?;
            match (&*self.stream).write(buf) {
                Ok(n) => return Ok(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_json_are_gzipped_when_taken() {
        let page = Answer::new(200, "text/html; charset=utf-8", vec![b'x'; 10_000]).gzipped();
        assert!(page.headers.contains(&("Content-Encoding", "gzip".into())));
        let Body::Bytes(packed) = &page.body else {
            panic!()
        };
        assert_eq!(gunzip(packed), vec![b'x'; 10_000]);
        let small = Answer::text(200, "ok\n").gzipped();
        assert!(
            small.headers.is_empty(),
            "plain text and small bodies stay as they are"
        );
    }

    #[test]
    fn a_streamed_json_body_is_gzipped_as_it_is_written() {
        let stream = Answer {
            status: 200,
            content_type: "application/json",
            headers: Vec::new(),
            body: Body::Stream(Box::new(|out| {
                for _ in 0..1000 {
                    out.write_all(b"{\"id\": 1},\n")?;
                }
                Ok(())
            })),
        };
        let bytes = stream.gzipped().into_bytes(false);
        let text = String::from_utf8_lossy(&bytes);
        let (head, _) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Content-Encoding: gzip"), "{head}");
        assert!(!head.contains("Content-Length"), "{head}");
        let body = &bytes[head.len() + 4..];
        assert_eq!(gunzip(body), b"{\"id\": 1},\n".repeat(1000));
    }

    fn gunzip(packed: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(packed), &mut back).unwrap();
        back
    }
}
