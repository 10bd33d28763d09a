//! A server-sent events parser for `sessions tail`: bytes in, complete frames out (`event:`,
//! `id:`, `data:` lines; comments and `retry:` ignored; frames end at a blank line).

/// One complete frame.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Frame {
    pub(super) event: String,
    pub(super) id: Option<String>,
    pub(super) data: String,
}

/// Bytes received but not yet a complete line, and the frame being read.
#[derive(Default)]
pub(super) struct Frames {
    pending: Vec<u8>,
    frame: Frame,
    has_fields: bool,
}

impl Frames {
    /// Feeds `bytes`; returns the frames they completed.
    pub(super) fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        self.pending.extend_from_slice(bytes);
        let mut done = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if self.has_fields {
                    done.push(std::mem::take(&mut self.frame));
                    self.has_fields = false;
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            self.has_fields = true;
            match field {
                "event" => self.frame.event = value.to_owned(),
                "id" => self.frame.id = Some(value.to_owned()),
                "data" => {
                    if !self.frame.data.is_empty() {
                        self.frame.data.push('\n');
                    }
                    self.frame.data.push_str(value);
                }
                _ => {}
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let text = ": open\n\nevent: agent.message\nid: c1\ndata: {\"a\":1}\n\nevent: ping\r\ndata: {}\r\n\r\n";
        for split in 0..text.len() {
            let mut frames = Frames::default();
            let mut got = frames.push(&text.as_bytes()[..split]);
            got.extend(frames.push(&text.as_bytes()[split..]));
            assert_eq!(
                got,
                [
                    Frame {
                        event: "agent.message".into(),
                        id: Some("c1".into()),
                        data: "{\"a\":1}".into()
                    },
                    Frame {
                        event: "ping".into(),
                        id: None,
                        data: "{}".into()
                    },
                ],
                "split at {split}"
            );
        }
    }
}
