//! Reading a command's output with a cap: the first bytes are kept, the rest is drained (so the
//! command never blocks on a full pipe) and counted, and a marker says how much was cut.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Output read from one stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Capped {
    pub(crate) kept: Vec<u8>,
    pub(crate) omitted: u64,
}

impl Capped {
    /// The text with the marker appended when bytes were omitted.
    pub(crate) fn into_text(self) -> (String, bool) {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.omitted > 0 {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&marker(self.kept.len(), self.omitted));
            (text, true)
        } else {
            (text, false)
        }
    }
}

/// `[output truncated: showing the first N of M bytes]`.
pub(crate) fn marker(kept: usize, omitted: u64) -> String {
    format!(
        "[output truncated: showing the first {kept} of {} bytes]\n",
        kept as u64 + omitted
    )
}

/// Read `reader` to its end, keeping at most `limit` bytes.
pub(crate) async fn read_capped<R: AsyncRead + Unpin>(mut reader: R, limit: usize) -> Capped {
    let mut out = Capped::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let room = limit.saturating_sub(out.kept.len());
        let take = room.min(n);
        out.kept.extend_from_slice(&buf[..take]);
        out.omitted += (n - take) as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_and_marks() {
        let data = vec![b'a'; 10_000];
        let capped = read_capped(&data[..], 100).await;
        assert_eq!((capped.kept.len(), capped.omitted), (100, 9_900));
        let (text, truncated) = capped.into_text();
        assert!(truncated);
        assert!(text.ends_with("[output truncated: showing the first 100 of 10000 bytes]\n"));
        let (text, truncated) = read_capped(&b"short"[..], 100).await.into_text();
        assert_eq!((text.as_str(), truncated), ("short", false));
    }
}
