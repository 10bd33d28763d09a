//! A minimal Server-Sent Events decoder: feed it bytes as they arrive, take out complete events
//! (`event:` name and joined `data:` lines). Comments, `id:` and `retry:` are ignored.
//!
//! The decoder is bounded and linear: each byte is examined once for the blank line that ends
//! a frame (a search resumes where the previous one stopped), consumed frames are dropped in one
//! move per [`Decoder::push`], and a frame longer than the limit ([`MAX_FRAME`] by default) is
//! an error rather than an ever-growing buffer.

/// The longest frame (one event, all its lines) the model clients accept: 4 MiB.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

/// One decoded SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (empty when absent).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// A frame grew past the decoder's limit before its end arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a stream event is longer than {limit} bytes")]
pub struct FrameTooLarge {
    /// The limit in bytes.
    pub limit: usize,
}

/// Incremental decoder.
#[derive(Debug)]
pub struct Decoder {
    /// Bytes not yet part of a returned event: the start of the next frame.
    buf: Vec<u8>,
    /// How much of `buf` has been searched for a frame end already.
    scanned: usize,
    /// The frame length limit.
    max_frame: usize,
    /// Bytes examined by the frame-end search, in total (a work counter).
    examined: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::with_max_frame(MAX_FRAME)
    }
}

impl Decoder {
    /// A decoder refusing frames longer than `max_frame` bytes.
    pub fn with_max_frame(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            max_frame,
            examined: 0,
        }
    }

    /// Appends bytes and returns the events they complete; fails once a frame is longer than
    /// the limit (the decoder should then be dropped with its stream).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, FrameTooLarge> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some((end, skip)) = self.frame_end(start) {
            if end - start > self.max_frame {
                return Err(self.too_large());
            }
            if let Some(event) = parse(&String::from_utf8_lossy(&self.buf[start..end])) {
                out.push(event);
            }
            start = end + skip;
            self.scanned = start;
        }
        self.buf.drain(..start);
        self.scanned -= start;
        if self.buf.len() > self.max_frame {
            return Err(self.too_large());
        }
        Ok(out)
    }

    /// Bytes held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes examined so far by the frame-end search; with a linear decoder this never exceeds
    /// the bytes pushed.
    pub fn examined(&self) -> u64 {
        self.examined
    }

    fn too_large(&mut self) -> FrameTooLarge {
        self.buf = Vec::new();
        self.scanned = 0;
        FrameTooLarge {
            limit: self.max_frame,
        }
    }

    /// The first frame end at or after `start`: the index of its blank-line separator and the
    /// separator's length. Searches only bytes not searched before; the look-back of each
    /// newline stays inside the frame.
    fn frame_end(&mut self, start: usize) -> Option<(usize, usize)> {
        let from = self.scanned.max(start);
        for i in from..self.buf.len() {
            self.examined += 1;
            if self.buf[i] != b'\n' {
                continue;
            }
            if i > start && self.buf[i - 1] == b'\n' {
                self.scanned = i + 1;
                return Some((i - 1, 2));
            }
            if i >= start + 3 && &self.buf[i - 3..i] == b"\r\n\r" {
                self.scanned = i + 1;
                return Some((i - 3, 4));
            }
        }
        self.scanned = self.buf.len();
        None
    }
}

fn parse(frame: &str) -> Option<SseEvent> {
    let mut event = String::new();
    let mut data: Vec<&str> = Vec::new();
    for line in frame.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value.to_owned(),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(SseEvent {
        event,
        data: data.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_across_chunks() {
        let mut d = Decoder::default();
        assert!(d.push(b"event: a\ndata: {\"x\"").expect("ok").is_empty());
        let events = d
            .push(b":1}\n\n: comment\n\nevent: b\r\ndata: 1\r\ndata: 2\r\n\r\n")
            .expect("ok");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: "a".into(),
                    data: "{\"x\":1}".into()
                },
                SseEvent {
                    event: "b".into(),
                    data: "1\n2".into()
                },
            ]
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn separators_split_across_pushes_are_found() {
        let stream: &[u8] = b"data: 1\r\n\r\ndata: 2\n\ndata: 3\r\n\r\n";
        for cut in 0..stream.len() {
            let mut d = Decoder::default();
            let mut events = d.push(&stream[..cut]).expect("ok");
            events.extend(d.push(&stream[cut..]).expect("ok"));
            let data: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
            assert_eq!(data, ["1", "2", "3"], "cut at {cut}");
        }
    }
}
