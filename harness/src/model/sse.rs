//! A minimal Server-Sent Events decoder: feed it bytes as they arrive, take out complete events
//! (`event:` name and joined `data:` lines). Comments, `id:` and `retry:` are ignored.

/// One decoded SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field (empty when absent).
    pub(crate) event: String,
    /// The `data:` lines joined with `\n`.
    pub(crate) data: String,
}

/// Incremental decoder.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Appends bytes and returns the events they complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some((end, skip)) = frame_end(&self.buf) {
            let frame: Vec<u8> = self.buf.drain(..end + skip).take(end).collect();
            if let Some(event) = parse(&String::from_utf8_lossy(&frame)) {
                out.push(event);
            }
        }
        out
    }
}

/// Where the first complete frame ends (index of its blank-line separator and its length).
fn frame_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i..].starts_with(b"\n\n") {
            return Some((i, 2));
        }
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
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
        assert!(d.push(b"event: a\ndata: {\"x\"").is_empty());
        let events = d.push(b":1}\n\n: comment\n\nevent: b\r\ndata: 1\r\ndata: 2\r\n\r\n");
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
    }
}
