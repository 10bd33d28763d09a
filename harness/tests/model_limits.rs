//! The SSE decoder the model clients read streams with is bounded and linear: a frame past the
//! limit is an error and the buffer never holds more than the limit plus one chunk; every byte
//! is examined once however the stream is chunked. Assertions are on buffer sizes and the
//! decoder's work counter, never on timing.

use managed_agents_harness::model::sse::{Decoder, FrameTooLarge, SseEvent, MAX_FRAME};

/// `n` frames of about `size` bytes each, each carrying its index.
fn frames(n: usize, size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let data = format!("{i}:{}", "d".repeat(size.saturating_sub(24)));
        out.extend_from_slice(format!("event: e\ndata: {data}\n\n").as_bytes());
    }
    out
}

fn indices(events: &[SseEvent]) -> Vec<usize> {
    events
        .iter()
        .map(|e| {
            e.data
                .split(':')
                .next()
                .and_then(|i| i.parse().ok())
                .expect("index")
        })
        .collect()
}

#[test]
fn a_ten_megabyte_stream_in_one_byte_chunks_examines_each_byte_once() {
    let stream = frames(10_000, 1_024);
    assert!(stream.len() >= 10_000_000);
    let mut decoder = Decoder::default();
    let mut events = Vec::new();
    let mut peak = 0;
    for byte in stream.chunks(1) {
        events.extend(decoder.push(byte).expect("within limits"));
        peak = peak.max(decoder.buffered());
    }
    assert_eq!(indices(&events), (0..10_000).collect::<Vec<_>>());
    assert_eq!(decoder.examined(), stream.len() as u64);
    assert!(peak <= 1_024, "buffered {peak} bytes for 1 KiB frames");
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn one_large_frame_in_small_chunks_is_scanned_linearly() {
    // 3 MiB in one frame, 7-byte chunks: a decoder rescanning its buffer from the start on
    // every push would examine ~6.7e11 bytes.
    let stream = frames(1, 3 * 1024 * 1024);
    let mut decoder = Decoder::default();
    let mut events = Vec::new();
    for chunk in stream.chunks(7) {
        events.extend(decoder.push(chunk).expect("under the limit"));
    }
    assert_eq!(indices(&events), vec![0]);
    assert_eq!(decoder.examined(), stream.len() as u64);
}

#[test]
fn many_frames_in_one_chunk_are_linear_too() {
    let stream = frames(50_000, 40);
    let mut decoder = Decoder::default();
    let events = decoder.push(&stream).expect("within limits");
    assert_eq!(events.len(), 50_000);
    assert_eq!(decoder.examined(), stream.len() as u64);
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn a_frame_without_end_is_refused_at_the_limit_with_a_bounded_buffer() {
    let chunk = vec![b'x'; 64 * 1024];
    let mut decoder = Decoder::default();
    decoder.push(b"data: ").expect("ok");
    let mut pushed = 6usize;
    let error = loop {
        match decoder.push(&chunk) {
            Ok(events) => assert!(events.is_empty()),
            Err(e) => break e,
        }
        pushed += chunk.len();
        assert!(decoder.buffered() <= MAX_FRAME, "{}", decoder.buffered());
        assert!(pushed <= MAX_FRAME + chunk.len(), "never refused");
    };
    assert_eq!(error, FrameTooLarge { limit: MAX_FRAME });
    assert!(error.to_string().contains(&MAX_FRAME.to_string()));
    assert_eq!(decoder.buffered(), 0, "the oversized frame is dropped");
}

#[test]
fn a_complete_frame_over_the_limit_is_refused_even_in_one_push() {
    let mut decoder = Decoder::with_max_frame(1024);
    assert_eq!(decoder.push(&frames(3, 500)).map(|e| e.len()), Ok(3));
    let error = decoder.push(&frames(1, 4096)).expect_err("too large");
    assert_eq!(error.limit, 1024);
    // Frames at the limit are fine.
    let mut decoder = Decoder::with_max_frame(1024);
    let exact = format!("data: {}", "a".repeat(1024 - 6));
    let events = decoder
        .push(format!("{exact}\n\n").as_bytes())
        .expect("exactly at the limit");
    assert_eq!(events.len(), 1);
}
