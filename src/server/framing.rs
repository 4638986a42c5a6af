//! HTTP/1.1 message framing and `Host` rules, checked on every request before its body is read.
//! hyper refuses (400) what it cannot frame at all: conflicting `Content-Length` values, a
//! `Transfer-Encoding` whose final coding is not `chunked`, obsolete line folding. What it reads
//! but a security gateway must not accept is refused here, and the connection is closed (the
//! body is never read, so nothing after it can be taken for a next request):
//!
//! - `Content-Length` together with `Transfer-Encoding` → 400 (RFC 9112 §6.1 allows refusing
//!   it; readers that believe the other header are how requests are smuggled);
//! - a transfer coding other than `chunked` (`gzip, chunked`) → 501 (RFC 9112 §6.1); `chunked`
//!   more than once → 400 (RFC 9112 §6.1: a sender must not apply it twice);
//! - more than one `Host` header, or none on an HTTP/1.1 request → 400 (RFC 9112 §3.2).

use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode, Version};
use http_body_util::Full;

/// Why a request is refused before its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndEncoding,
    /// A transfer coding other than `chunked`.
    UnknownCoding,
    /// `chunked` applied more than once.
    ChunkedTwice,
    /// More than one `Host` header.
    DuplicateHost,
    /// An HTTP/1.1 request without `Host`.
    MissingHost,
    /// A body with a transfer coding whose raw head could not be followed (not seen so far:
    /// hyper refuses what the tracker cannot follow; refused rather than assumed).
    Unverified,
}

impl Refused {
    /// A short stable name for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::LengthAndEncoding => "content-length-with-transfer-encoding",
            Refused::UnknownCoding => "transfer-coding-not-implemented",
            Refused::ChunkedTwice => "chunked-twice",
            Refused::DuplicateHost => "duplicate-host",
            Refused::MissingHost => "missing-host",
            Refused::Unverified => "unverified-framing",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refused::UnknownCoding => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Refused::LengthAndEncoding => {
                "a request may carry Content-Length or Transfer-Encoding, not both\n"
            }
            Refused::UnknownCoding => "only the chunked transfer coding is implemented\n",
            Refused::ChunkedTwice => "the chunked transfer coding may be applied only once\n",
            Refused::DuplicateHost => "more than one Host header\n",
            Refused::MissingHost => "an HTTP/1.1 request needs a Host header\n",
            Refused::Unverified => "the request's framing could not be verified\n",
        }
    }

    /// The answer: the status, a one-line text, and `Connection: close`.
    pub fn response(self) -> Response<Full<Bytes>> {
        let mut r = super::respond::text(self.status(), self.text());
        r.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        r
    }
}

/// The refusal of a request with `version` and `headers` whose raw head (as
/// [`HeadTracker`] read it) was `head`, if any.
pub fn refusal(version: Version, headers: &HeaderMap, head: Option<Head>) -> Option<Refused> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Some(Refused::DuplicateHost),
        (None, None) if version == Version::HTTP_11 => return Some(Refused::MissingHost),
        _ => {}
    }
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter().peekable();
    codings.peek()?;
    match head {
        None => return Some(Refused::Unverified),
        // hyper removes the Content-Length it ignores: the raw head tells.
        Some(h) if h.content_length || headers.contains_key(header::CONTENT_LENGTH) => {
            return Some(Refused::LengthAndEncoding)
        }
        Some(_) => {}
    }
    let mut chunked = 0;
    for value in codings {
        // A value that is not visible ASCII cannot name a coding this server implements.
        let Ok(value) = value.to_str() else {
            return Some(Refused::UnknownCoding);
        };
        for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if coding.eq_ignore_ascii_case("chunked") {
                chunked += 1;
            } else {
                return Some(Refused::UnknownCoding);
            }
        }
    }
    (chunked > 1).then_some(Refused::ChunkedTwice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn framing_and_host_rules() {
        use Refused::*;
        let v11 = Version::HTTP_11;
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<Refused>);
        let cases: &[Case<'_>] = &[
            (&[("host", "gw"), ("content-length", "5")], None),
            (&[("host", "gw"), ("transfer-encoding", "chunked")], None),
            (&[("host", "gw"), ("transfer-encoding", "Chunked")], None),
            (
                &[
                    ("host", "gw"),
                    ("transfer-encoding", "chunked"),
                    ("content-length", "5"),
                ],
                Some(LengthAndEncoding),
            ),
            (
                &[("host", "gw"), ("transfer-encoding", "gzip, chunked")],
                Some(UnknownCoding),
            ),
            (
                &[
                    ("host", "gw"),
                    ("transfer-encoding", "gzip"),
                    ("transfer-encoding", "chunked"),
                ],
                Some(UnknownCoding),
            ),
            (
                &[
                    ("host", "gw"),
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
                Some(ChunkedTwice),
            ),
            (&[("host", "gw"), ("host", "gw")], Some(DuplicateHost)),
            (
                &[("host", "gw"), ("host", "evil.example")],
                Some(DuplicateHost),
            ),
            (&[("content-length", "0")], Some(MissingHost)),
        ];
        for (headers, want) in cases {
            let map = h(headers);
            let head = Head {
                content_length: map.contains_key(header::CONTENT_LENGTH),
                transfer_encoding: map.contains_key(header::TRANSFER_ENCODING),
            };
            assert_eq!(refusal(v11, &map, Some(head)), *want, "{headers:?}");
        }
        assert_eq!(
            refusal(Version::HTTP_10, &h(&[]), None),
            None,
            "HTTP/1.0 needs no Host"
        );
        // hyper dropped the Content-Length; the raw head had one.
        let te = h(&[("host", "gw"), ("transfer-encoding", "chunked")]);
        let raw = Head {
            content_length: true,
            transfer_encoding: true,
        };
        assert_eq!(refusal(v11, &te, Some(raw)), Some(LengthAndEncoding));
        assert_eq!(refusal(v11, &te, None), Some(Unverified));
    }
}

/// What the raw header block of one request carried, as sent (hyper drops a `Content-Length`
/// that comes with `Transfer-Encoding` before the service sees the headers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// A `Content-Length` line.
    pub content_length: bool,
    /// A `Transfer-Encoding` line.
    pub transfer_encoding: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Track {
    /// Reading a request line or header lines.
    Head,
    /// Skipping a body of a known length.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    /// Reading trailer lines after the last chunk.
    Trailers,
    /// The stream is not HTTP/1.1 as this tracker reads it; hyper refuses it too.
    Lost,
}

/// Follows the request stream of one connection byte by byte, as hyper reads it, and records
/// the [`Head`] of every request in order; the service takes one per request it answers. It
/// frames bodies the way hyper does (`Transfer-Encoding` over `Content-Length`), so pipelined
/// requests are attributed correctly. Lines longer than `max_line` lose the track.
#[derive(Debug)]
pub struct HeadTracker {
    track: Track,
    line: Vec<u8>,
    max_line: usize,
    first_line: bool,
    current: Head,
    length: Option<u64>,
    heads: std::collections::VecDeque<Head>,
}

impl HeadTracker {
    /// A tracker for a fresh connection.
    pub fn new(max_line: usize) -> HeadTracker {
        HeadTracker {
            track: Track::Head,
            line: Vec::new(),
            max_line,
            first_line: true,
            current: Head::default(),
            length: None,
            heads: std::collections::VecDeque::new(),
        }
    }

    /// The oldest request head not taken yet; `None` when the tracker lost the stream.
    pub fn take(&mut self) -> Option<Head> {
        self.heads.pop_front()
    }

    /// Feeds bytes read from the connection.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.track {
                Track::Lost => return,
                Track::Fixed(n) | Track::ChunkData(n) => {
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(bytes.len());
                    bytes = &bytes[k..];
                    let left = n - k as u64;
                    self.track = match (self.track, left) {
                        (Track::Fixed(_), 0) => Track::Head,
                        (Track::Fixed(_), n) => Track::Fixed(n),
                        // The chunk's CRLF is read as an (empty) size line and skipped.
                        (_, 0) => Track::ChunkSize,
                        (_, n) => Track::ChunkData(n),
                    };
                }
                Track::Head | Track::ChunkSize | Track::Trailers => {
                    let (part, rest, complete) = match memchr::memchr(b'\n', bytes) {
                        Some(i) => (&bytes[..=i], &bytes[i + 1..], true),
                        None => (bytes, &bytes[bytes.len()..], false),
                    };
                    bytes = rest;
                    if self.line.len() + part.len() > self.max_line {
                        self.track = Track::Lost;
                        return;
                    }
                    self.line.extend_from_slice(part);
                    if complete {
                        let line = std::mem::take(&mut self.line);
                        self.line_done(&line);
                        self.line = line;
                        self.line.clear();
                    }
                }
            }
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        match self.track {
            Track::Head if text.is_empty() && self.first_line => {} // CRLF between requests
            Track::Head if text.is_empty() => {
                self.heads.push_back(self.current);
                self.track = if self.current.transfer_encoding {
                    Track::ChunkSize
                } else {
                    match self.length {
                        Some(n) if n > 0 => Track::Fixed(n),
                        _ => Track::Head,
                    }
                };
                self.current = Head::default();
                self.length = None;
                self.first_line = true;
            }
            Track::Head if self.first_line => self.first_line = false,
            Track::Head => {
                let Some(colon) = text.iter().position(|&b| b == b':') else {
                    self.track = Track::Lost;
                    return;
                };
                let name = &text[..colon];
                if name.eq_ignore_ascii_case(b"content-length") {
                    self.current.content_length = true;
                    let value = std::str::from_utf8(&text[colon + 1..]).unwrap_or("");
                    match value.trim().parse::<u64>() {
                        Ok(n) => self.length = Some(n),
                        Err(_) => self.track = Track::Lost,
                    }
                } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                    self.current.transfer_encoding = true;
                }
            }
            Track::ChunkSize if text.is_empty() => {} // the CRLF after chunk data
            Track::ChunkSize => {
                let size = text.split(|&b| b == b';').next().unwrap_or(b"");
                let size = std::str::from_utf8(size).unwrap_or("").trim();
                match u64::from_str_radix(size, 16) {
                    Ok(0) => self.track = Track::Trailers,
                    Ok(n) => self.track = Track::ChunkData(n),
                    Err(_) => self.track = Track::Lost,
                }
            }
            Track::Trailers if text.is_empty() => self.track = Track::Head,
            Track::Trailers | Track::Fixed(_) | Track::ChunkData(_) | Track::Lost => {}
        }
    }
}

#[cfg(test)]
mod tracker_tests {
    use super::*;

    fn heads(stream: &[u8], split: usize) -> Vec<Head> {
        let mut t = HeadTracker::new(16 * 1024);
        for piece in stream.chunks(split.max(1)) {
            t.feed(piece);
        }
        std::iter::from_fn(|| t.take()).collect()
    }

    #[test]
    fn pipelined_requests_are_attributed_in_order() {
        let stream = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab\r\nc\
POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n\
3;ext=1\r\nxyz\r\n2\r\n\r\n\r\n0\r\nTrailer: t\r\n\r\n\
\r\nGET /c HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n\
POST /d HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
        let want = vec![
            Head {
                content_length: true,
                transfer_encoding: false,
            },
            Head {
                content_length: true,
                transfer_encoding: true,
            },
            Head {
                content_length: true,
                transfer_encoding: false,
            },
            Head {
                content_length: false,
                transfer_encoding: true,
            },
        ];
        for split in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(heads(stream, split), want, "split {split}");
        }
    }

    #[test]
    fn a_stream_it_cannot_follow_is_lost() {
        let mut t = HeadTracker::new(64);
        t.feed(b"POST / HTTP/1.1\r\nno colon here\r\n\r\n");
        assert_eq!(t.take(), None);
        let mut t = HeadTracker::new(16);
        t.feed(b"POST / HTTP/1.1\r\nX-Long: 0123456789\r\n\r\n");
        assert_eq!(t.take(), None);
    }
}
