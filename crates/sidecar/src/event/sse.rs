//! The one server-sent-events reader of the sidecar: holding a stream before commit, relaying
//! it after, and collecting its answer all read events through it.
//!
//! Hand-written because it sits on the hot path of every streamed byte: it only looks for
//! blank lines and `event:` / `data:` prefixes, scans each byte once however the event is
//! split across frames, and hands events on as the very bytes that arrived. An event is
//! bounded ([`MAX_EVENT_BYTES`]): a provider that never ends one cannot grow the buffer
//! without limit.

use bytes::{Bytes, BytesMut};

/// The largest event accepted: more without an event end is a broken stream.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One event as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// The bytes, blank line included.
    pub bytes: Bytes,
    /// The `event:` name, if any.
    pub name: Option<String>,
    /// The `data:` lines joined with newlines (empty for a comment).
    pub data: String,
}

/// Splits a byte stream into events.
#[derive(Debug, Default)]
pub struct SseReader {
    buf: BytesMut,
    /// How far `buf` is known to hold no event end, so a long event is scanned once, not again
    /// on every frame that extends it.
    scanned: usize,
}

impl SseReader {
    /// Adds bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received that do not yet make a whole event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The bytes received after the last whole event, given up.
    pub fn into_pending(self) -> Bytes {
        self.buf.freeze()
    }

    /// Whether an unfinished event has grown past [`MAX_EVENT_BYTES`] (asked after
    /// [`SseReader::next_event`] returned `None`).
    pub fn oversized(&self) -> bool {
        self.buf.len() > MAX_EVENT_BYTES
    }

    /// The next whole event, if one has arrived.
    pub fn next_event(&mut self) -> Option<RawEvent> {
        // An event end is at most three bytes long: look again from just before where the
        // last scan stopped.
        let from = self.scanned.saturating_sub(2);
        let Some(end) = event_end(&self.buf[from..]).map(|e| e + from) else {
            self.scanned = self.buf.len();
            return None;
        };
        self.scanned = 0;
        let bytes = self.buf.split_to(end).freeze();
        // Read as bytes, line by line: only the `data:` lines are copied and checked as text.
        let mut name = None;
        let mut data = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let end = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i);
            let line = &bytes[at..end];
            at = end + 1;
            // `\r\n` ends a line too, and a stray `\r` before it is dropped with it.
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(n) = line.strip_prefix(b"event:") {
                name = Some(String::from_utf8_lossy(n).trim().to_owned());
            } else if let Some(d) = line.strip_prefix(b"data:") {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
            }
        }
        let data = String::from_utf8(data)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Some(RawEvent { bytes, name, data })
    }
}

/// The end of the first event in `buf` (after its blank line), `\n\n` or `\r\n\r\n`.
pub fn event_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| match buf.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&str]) -> Vec<RawEvent> {
        let mut r = SseReader::default();
        let mut out = Vec::new();
        for c in chunks {
            r.push(c.as_bytes());
            while let Some(e) = r.next_event() {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn events_end_at_a_blank_line_in_either_line_ending() {
        let e = events(&["data: x\n\ndata: y\r\n\r\n"]);
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].data.as_str(), e[1].data.as_str()), ("x", "y"));
        assert_eq!(e[0].bytes, "data: x\n\n");
    }

    #[test]
    fn an_event_split_across_frames_is_found_once_whole() {
        let e = events(&["event: message_st", "art\ndata: {\"a\"", ":1}\n", "\n"]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].name.as_deref(), Some("message_start"));
        assert_eq!(e[0].data, "{\"a\":1}");
        // The end split between frames, CRLF style.
        let e = events(&["data: z\r\n", "\r", "\n"]);
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn data_lines_are_joined_with_newlines_and_comments_carry_no_data() {
        let e = events(&["data: a\ndata: b\n\n: keep-alive\n\n"]);
        assert_eq!(e[0].data, "a\nb");
        assert_eq!(e[1].data, "");
    }

    #[test]
    fn an_event_that_never_ends_is_oversized_past_the_bound() {
        let mut r = SseReader::default();
        let line = "x".repeat(64 * 1024);
        for _ in 0..16 {
            r.push(line.as_bytes());
            assert!(r.next_event().is_none());
        }
        assert!(!r.oversized(), "exactly at the bound is still allowed");
        r.push(b"x");
        assert!(r.next_event().is_none());
        assert!(r.oversized());
    }
}
