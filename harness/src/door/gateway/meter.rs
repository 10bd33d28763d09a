//! Reading a model response's usage off the wire while it passes through unchanged: the SSE
//! events of a stream (Anthropic `message_start` / `message_delta` / `message_stop`, OpenAI
//! `response.completed`) or the JSON body of a plain response.
//!
//! Bounded like the model clients: an SSE frame may be at most [`sse::MAX_FRAME`] bytes and a
//! JSON body is kept up to the same size; past that the meter stops reading (the bytes still
//! pass) and reports what it has.

use managed_agents_core::event::ModelUsage;
use serde_json::Value;

use crate::model::{anthropic, openai, sse, Provider};

/// How the response body is framed.
#[derive(Debug)]
enum Wire {
    Sse(sse::Decoder),
    Json(Vec<u8>),
    Opaque,
}

/// Usage and completion of one model response.
#[derive(Debug)]
pub(crate) struct Meter {
    provider: Provider,
    wire: Wire,
    usage: ModelUsage,
    /// The model the response names (Anthropic `message.model`, OpenAI `response.model`).
    model: Option<String>,
    complete: bool,
    failed: bool,
    overflowed: bool,
}

impl Meter {
    /// A meter for a response of `provider` with this `content-type`.
    pub(crate) fn new(provider: Provider, content_type: &str) -> Self {
        let content_type = content_type.to_ascii_lowercase();
        let wire = if content_type.starts_with("text/event-stream") {
            Wire::Sse(sse::Decoder::default())
        } else if content_type.starts_with("application/json") {
            Wire::Json(Vec::new())
        } else {
            Wire::Opaque
        };
        Self {
            provider,
            wire,
            usage: ModelUsage::default(),
            model: None,
            complete: false,
            failed: false,
            overflowed: false,
        }
    }

    /// Reads the next bytes of the body.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        match &mut self.wire {
            Wire::Sse(decoder) => match decoder.push(bytes) {
                Ok(events) => {
                    for event in events {
                        self.event(&event.event, &event.data);
                    }
                }
                Err(_) => self.overflow(),
            },
            Wire::Json(buf) => {
                if buf.len() + bytes.len() > sse::MAX_FRAME {
                    self.overflow();
                } else {
                    buf.extend_from_slice(bytes);
                }
            }
            Wire::Opaque => {}
        }
    }

    /// The body ended: a JSON body is read now.
    pub(crate) fn finish(&mut self) {
        if self.overflowed {
            return;
        }
        if let Wire::Json(buf) = &self.wire {
            if let Ok(body) = serde_json::from_slice::<Value>(buf) {
                self.model = named_model(body.get("model"));
                match self.provider {
                    Provider::Anthropic => {
                        if let Some(usage) = body.get("usage") {
                            anthropic::apply_usage(&mut self.usage, usage);
                        }
                    }
                    Provider::OpenAi => self.usage = openai::usage(&body),
                }
                self.complete = true;
            }
        }
    }

    /// Whether the response's last event (or a whole JSON body) was read.
    pub(crate) fn complete(&self) -> bool {
        self.complete
    }

    /// Whether the stream reported an error (an `error` event, a failed response).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Whether the meter gave up on an oversized frame or body.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The usage read so far.
    pub(crate) fn usage(&self) -> ModelUsage {
        self.usage.clone()
    }

    /// The model the response named, once read.
    pub(crate) fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    fn overflow(&mut self) {
        self.overflowed = true;
        self.wire = Wire::Opaque;
    }

    fn event(&mut self, name: &str, data: &str) {
        let Ok(data) = serde_json::from_str::<Value>(data) else {
            return;
        };
        // Anthropic names events in `event:` and in `type`; OpenAI in both too.
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(name)
            .to_owned();
        match (self.provider, kind.as_str()) {
            (Provider::Anthropic, "message_start") => {
                self.model = named_model(data.pointer("/message/model"));
                if let Some(usage) = data.pointer("/message/usage") {
                    anthropic::apply_usage(&mut self.usage, usage);
                }
            }
            (Provider::Anthropic, "message_delta") => {
                if let Some(usage) = data.get("usage") {
                    anthropic::apply_usage(&mut self.usage, usage);
                }
            }
            (Provider::Anthropic, "message_stop") => self.complete = true,
            (Provider::OpenAi, "response.created") => {
                self.model = named_model(data.pointer("/response/model"));
            }
            (Provider::OpenAi, "response.completed") => {
                if let Some(response) = data.get("response") {
                    self.model = named_model(response.get("model")).or(self.model.take());
                    self.usage = openai::usage(response);
                }
                self.complete = true;
            }
            (Provider::OpenAi, "response.failed" | "response.incomplete") => {
                if let Some(response) = data.get("response") {
                    self.usage = openai::usage(response);
                }
                self.failed = true;
                self.complete = true;
            }
            (_, "error") => {
                self.failed = true;
                self.complete = true;
            }
            _ => {}
        }
    }
}

/// A model name from a response field: a short string, else none.
fn named_model(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty() && name.len() <= 256)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, created: u64, read: u64) -> ModelUsage {
        ModelUsage {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: created,
            cache_read_input_tokens: read,
            speed: None,
        }
    }

    #[test]
    fn anthropic_stream_usage_is_the_start_overlaid_with_the_delta() {
        let body = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-test\",\"usage\":{\"input_tokens\":30,",
            "\"cache_creation_input_tokens\":4,\"cache_read_input_tokens\":9,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":17}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let mut meter = Meter::new(Provider::Anthropic, "text/event-stream; charset=utf-8");
        // Split anywhere: one byte at a time.
        for byte in body.as_bytes() {
            assert!(!meter.complete());
            meter.push(std::slice::from_ref(byte));
        }
        assert!(meter.complete() && !meter.failed());
        assert_eq!(meter.usage(), usage(30, 17, 4, 9));
        assert_eq!(meter.model(), Some("claude-test"));
    }

    #[test]
    fn openai_stream_usage_comes_with_the_completed_response() {
        let body = concat!(
            "event: response.created\n",
            "data: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-test\",\"usage\":null}}\n\n",
            "event: response.completed\n",
            "data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":50,",
            "\"input_tokens_details\":{\"cached_tokens\":20},\"output_tokens\":8}}}\n\n",
        );
        let mut meter = Meter::new(Provider::OpenAi, "text/event-stream");
        meter.push(body.as_bytes());
        assert!(meter.complete() && !meter.failed());
        assert_eq!(meter.usage(), usage(30, 8, 0, 20));
        // Named by the created response; the completed one does not repeat it here.
        assert_eq!(meter.model(), Some("gpt-test"));
    }

    #[test]
    fn errors_and_cut_streams() {
        let mut meter = Meter::new(Provider::Anthropic, "text/event-stream");
        meter.push(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n");
        assert!(meter.complete() && meter.failed());

        let mut cut = Meter::new(Provider::Anthropic, "text/event-stream");
        cut.push(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n");
        cut.finish();
        assert!(!cut.complete());
        assert_eq!(cut.usage().input_tokens, 3, "what was read still counts");
    }

    #[test]
    fn json_bodies_are_read_at_their_end() {
        let mut meter = Meter::new(Provider::Anthropic, "application/json");
        meter.push(br#"{"type":"message","usage":{"input_tokens":5,"#);
        meter.push(br#""output_tokens":2}}"#);
        assert!(!meter.complete());
        meter.finish();
        assert!(meter.complete());
        assert_eq!(meter.usage(), usage(5, 2, 0, 0));

        let mut meter = Meter::new(Provider::OpenAi, "application/json");
        meter.push(br#"{"object":"response","usage":{"input_tokens":7,"output_tokens":1}}"#);
        meter.finish();
        assert_eq!(meter.usage(), usage(7, 1, 0, 0));
    }

    #[test]
    fn oversized_frames_and_bodies_stop_the_meter_not_the_stream() {
        let mut meter = Meter::new(Provider::Anthropic, "text/event-stream");
        let big = vec![b'x'; sse::MAX_FRAME + 1];
        meter.push(b"data: ");
        meter.push(&big);
        assert!(meter.overflowed() && !meter.complete());
        meter.push(b"\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        assert!(!meter.complete(), "nothing is read after an overflow");

        let mut meter = Meter::new(Provider::OpenAi, "application/json");
        meter.push(&big);
        meter.finish();
        assert!(meter.overflowed() && !meter.complete());
    }
}
