//! Directives in the prompt (`[[mock:...]]`) that override the script for one request. The syntax
//! is documented in the header of [`crate::mock_model`].

use std::time::Duration;

use super::script::{ErrorReply, Repeat, Reply, ReplyKind, ToolCall};

/// What the directives of one prompt ask for.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Directives {
    /// `[[mock:error ...]]`, with the directive's own text (the key its repeat count is kept by).
    pub(crate) error: Option<(String, ErrorReply)>,
    /// A reply from `text`/`tool`/`thinking`/`refusal`/`echo`, if any of them was given.
    pub(crate) reply: Option<Reply>,
    /// `[[mock:delay D]]`.
    pub(crate) delay: Option<Duration>,
    /// `[[mock:slow D [N]]]`: per-chunk delay and optional chunk count.
    pub(crate) slow: Option<(Duration, Option<usize>)>,
    /// `[[mock:usage IN OUT]]`: the token counts to report.
    pub(crate) usage: Option<(u64, u64)>,
    /// Whether a `[[mock:grade ...]]` gave the reply.
    pub(crate) graded: bool,
    /// `[[mock:fault cut|hang ...]]`, with the directive's own text (its repeat count's key).
    pub(crate) fault: Option<(String, Fault, Repeat)>,
}

/// A failure of a streamed response after it started (the status was 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The connection is dropped halfway through the stream.
    Cut,
    /// The stream stops sending halfway through and never ends.
    Hang,
}

impl Directives {
    /// Apply the timing directives to a reply chosen elsewhere (script or default).
    pub(crate) fn shape(&self, mut reply: Reply) -> Reply {
        if let Some(d) = self.delay {
            reply = reply.delayed(d);
        }
        if let Some((input, output)) = self.usage {
            reply = reply.with_usage(input, output);
        }
        if let Some((d, n)) = self.slow {
            reply.chunk_delay_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            if n.is_some() {
                reply.chunks = n;
            }
        }
        reply
    }
}

/// Parse every `[[mock:...]]` directive in `prompt`. Unknown or malformed directives are ignored
/// (they are logged), so a prompt never fails because of them.
pub(crate) fn parse(prompt: &str) -> Directives {
    let mut out = Directives::default();
    let mut text: Option<String> = None;
    let mut thinking: Option<String> = None;
    let mut refusal: Option<String> = None;
    let mut calls: Vec<ToolCall> = Vec::new();
    let mut echo = false;
    let mut grade: Option<String> = None;
    for body in bodies(prompt) {
        let (verb, rest) = body.split_once(' ').unwrap_or((body, ""));
        let rest = rest.trim();
        match verb {
            "text" => text = Some(rest.to_owned()),
            "echo" => echo = true,
            "grade" => grade = Some(grade_answer(rest, prompt)),
            "thinking" => thinking = Some(rest.to_owned()),
            "refusal" => refusal = Some(rest.to_owned()),
            "tool" => match tool(rest) {
                Some(call) => calls.push(call),
                None => tracing::warn!(directive = body, "malformed mock tool directive"),
            },
            "error" => match error(rest) {
                Some(e) => out.error = Some((body.to_owned(), e)),
                None => tracing::warn!(directive = body, "malformed mock error directive"),
            },
            "delay" => out.delay = duration(rest),
            "fault" => match fault(rest) {
                Some((kind, repeat)) => out.fault = Some((body.to_owned(), kind, repeat)),
                None => tracing::warn!(directive = body, "malformed mock fault directive"),
            },
            "usage" => {
                let counts: Vec<u64> = rest
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect();
                match counts[..] {
                    [input, output] => out.usage = Some((input, output)),
                    _ => tracing::warn!(directive = body, "malformed mock usage directive"),
                }
            }
            "slow" => {
                let mut words = rest.split_whitespace();
                if let Some(d) = words.next().and_then(duration) {
                    out.slow = Some((d, words.next().and_then(|n| n.parse().ok())));
                }
            }
            _ => tracing::warn!(directive = body, "unknown mock directive"),
        }
    }
    if echo && text.is_none() {
        text = Some(strip(prompt));
    }
    out.graded = grade.is_some();
    out.reply = if let Some(answer) = grade {
        Some(Reply::text(answer))
    } else if let Some(r) = refusal {
        Some(if r.is_empty() {
            Reply::refusal("I can't help with that.")
        } else {
            Reply::refusal(r)
        })
    } else if !calls.is_empty() {
        let mut reply = Reply::tools(calls);
        if let ReplyKind::ToolUse { text: t, .. } = &mut reply.kind {
            *t = text;
        }
        Some(reply)
    } else if let Some(th) = thinking {
        Some(Reply::thinking(th, text.unwrap_or_else(|| "ok".to_owned())))
    } else {
        text.map(Reply::text)
    };
    out
}

/// The grader's answer a `grade` directive gives: the item for the `Iteration: N` line of the
/// prompt (the last item for later iterations, the first without the line), as
/// `VERDICT\nEXPLANATION`.
fn grade_answer(rest: &str, prompt: &str) -> String {
    let iteration = prompt
        .lines()
        .find_map(|line| line.strip_prefix("Iteration: "))
        .and_then(|n| n.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or(0);
    let items: Vec<&str> = rest.split('|').map(str::trim).collect();
    let item = items[iteration.min(items.len() - 1)];
    let (verdict, explanation) = match item.split_once(':') {
        Some((verdict, explanation)) => (verdict.trim(), explanation.trim().to_owned()),
        None => (item, format!("mock grader: {item}")),
    };
    format!("{verdict}\n{explanation}")
}

/// The bodies of the directives (`text hello` for `[[mock:text hello]]`), in order.
/// A prompt without any `[[mock:...]]` uses the `<<mock:...>>` form: a message one agent passes
/// to another (a coordinator's delegation inside its own `[[mock:tool ...]]`) carries the
/// directives for the agent receiving it.
fn bodies(prompt: &str) -> Vec<&str> {
    let square = bodies_within(prompt, "[[mock:", "]]");
    if square.is_empty() {
        bodies_within(prompt, "<<mock:", ">>")
    } else {
        square
    }
}

/// The delimiters of the directives `prompt` uses.
fn delimiters(prompt: &str) -> (&'static str, &'static str) {
    if bodies_within(prompt, "[[mock:", "]]").is_empty() {
        ("<<mock:", ">>")
    } else {
        ("[[mock:", "]]")
    }
}

fn bodies_within<'a>(prompt: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = prompt;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        // A tool's JSON may itself contain the close: take the first close that leaves valid
        // JSON.
        let mut end = None;
        let mut from = 0;
        while let Some(i) = after[from..].find(close) {
            let cand = from + i;
            end = Some(cand);
            let body = after[..cand].trim();
            if !body.starts_with("tool ") || tool(&body[5..]).is_some() {
                break;
            }
            from = cand + 1;
        }
        let Some(end) = end else { break };
        out.push(after[..end].trim());
        rest = &after[end + close.len()..];
    }
    out
}

/// The prompt with its directives removed.
fn strip(prompt: &str) -> String {
    let mut out = prompt.to_owned();
    let (open, close) = delimiters(prompt);
    for body in bodies(prompt) {
        for candidate in [
            format!("{open}{body}{close}"),
            format!("{open} {body}{close}"),
        ] {
            out = out.replacen(&candidate, "", 1);
        }
    }
    out.trim().to_owned()
}

fn tool(rest: &str) -> Option<ToolCall> {
    let (name, input) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if name.is_empty() {
        return None;
    }
    let input = match input.trim() {
        "" => serde_json::json!({}),
        json => serde_json::from_str(json).ok()?,
    };
    Some(ToolCall {
        name: name.to_owned(),
        input,
    })
}

fn error(rest: &str) -> Option<ErrorReply> {
    let mut words = rest.split_whitespace();
    let mut e = ErrorReply::new(words.next()?.parse().ok()?);
    e.retry_after = Some(0);
    for w in words {
        if w == "always" {
            e.repeat = Repeat::Always;
        } else if let Some(n) = w.strip_prefix('x').and_then(|n| n.parse().ok()) {
            e.repeat = Repeat::Times(n);
        } else if let Some(s) = w
            .strip_prefix("retry-after=")
            .or_else(|| w.strip_prefix("ra="))
        {
            e.retry_after = if s == "none" { None } else { s.parse().ok() };
        } else {
            e.error_type = Some(w.to_owned());
        }
    }
    Some(e)
}

/// `cut` or `hang`, then `xN` (default `x1`) or `always`.
fn fault(rest: &str) -> Option<(Fault, Repeat)> {
    let mut words = rest.split_whitespace();
    let kind = match words.next()? {
        "cut" => Fault::Cut,
        "hang" => Fault::Hang,
        _ => return None,
    };
    let repeat = match words.next() {
        None => Repeat::default(),
        Some("always") => Repeat::Always,
        Some(w) => Repeat::Times(w.strip_prefix('x')?.parse().ok()?),
    };
    Some((kind, repeat))
}

/// `20ms`, `1s`, `1.5s`, or a bare number of milliseconds.
pub(crate) fn duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(secs) = s.strip_suffix('s') {
        return secs
            .parse::<f64>()
            .ok()
            .and_then(|f| Duration::try_from_secs_f64(f).ok());
    }
    s.parse().ok().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(prompt: &str) -> Option<Reply> {
        parse(prompt).reply
    }

    #[test]
    fn text() {
        assert_eq!(
            reply("say [[mock:text hello world]] please"),
            Some(Reply::text("hello world"))
        );
    }

    #[test]
    fn angle_directives_apply_only_without_square_ones() {
        // A delegation carries a directive for the agent that receives the message.
        let coordinator =
            r#"[[mock:tool message_agent {"agent":"a","message":"<<mock:text hi>>"}]]"#;
        let Some(Reply {
            kind: ReplyKind::ToolUse { calls, .. },
            ..
        }) = reply(coordinator)
        else {
            panic!("a tool call");
        };
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].input["message"], "<<mock:text hi>>");
        assert_eq!(reply("<<mock:text hi>>"), Some(Reply::text("hi")));
        assert_eq!(strip("say <<mock:text hi>> now"), "say  now");
    }

    #[test]
    fn grader_answers_by_iteration() {
        let rubric = "[[mock:grade needs_revision: add a title | satisfied]] [[mock:text no]]";
        let answer = |iteration: u32| {
            reply(&format!(
                "OUTCOME GRADING REQUEST\nIteration: {iteration} (x)\n{rubric}"
            ))
        };
        assert_eq!(answer(0), Some(Reply::text("needs_revision\nadd a title")));
        assert_eq!(
            answer(1),
            Some(Reply::text("satisfied\nmock grader: satisfied"))
        );
        assert_eq!(
            answer(7),
            Some(Reply::text("satisfied\nmock grader: satisfied"))
        );
        assert!(parse(rubric).graded);
        assert!(!parse("[[mock:text no]]").graded);
    }

    #[test]
    fn tools_with_nested_brackets() {
        assert_eq!(
            reply(r#"[[mock:tool bash {"command":"ls"}]] [[mock:tool t {"a":[[1]]}]]"#),
            Some(Reply::tools(vec![
                ToolCall {
                    name: "bash".into(),
                    input: json!({"command": "ls"})
                },
                ToolCall {
                    name: "t".into(),
                    input: json!({"a": [[1]]})
                },
            ]))
        );
    }

    #[test]
    fn fault_forms() {
        let (key, kind, repeat) = parse("[[mock:fault cut]] [[mock:text hi]]").fault.unwrap();
        assert_eq!(
            (key.as_str(), kind, repeat),
            ("fault cut", Fault::Cut, Repeat::Times(1))
        );
        let (_, kind, repeat) = parse("[[mock:fault hang x2]]").fault.unwrap();
        assert_eq!((kind, repeat), (Fault::Hang, Repeat::Times(2)));
        let (_, _, repeat) = parse("[[mock:fault cut always]]").fault.unwrap();
        assert_eq!(repeat, Repeat::Always);
        assert!(parse("[[mock:fault melt]]").fault.is_none());
        assert!(parse("[[mock:fault cut twice]]").fault.is_none());
    }

    #[test]
    fn error_forms() {
        let (key, e) = parse("[[mock:error 529 x2 retry-after=3]]").error.unwrap();
        assert_eq!(key, "error 529 x2 retry-after=3");
        assert_eq!(
            (e.status, e.repeat, e.retry_after),
            (529, Repeat::Times(2), Some(3))
        );
        let (_, e) = parse("[[mock:error 500 always]]").error.unwrap();
        assert_eq!(
            (e.status, e.repeat, e.retry_after),
            (500, Repeat::Always, Some(0))
        );
        assert_eq!(e.anthropic_type(), "api_error");
    }

    #[test]
    fn timing_and_echo() {
        let d = parse("[[mock:slow 20ms 4]] [[mock:delay 1.5s]] hi [[mock:echo]]");
        assert_eq!(d.slow, Some((Duration::from_millis(20), Some(4))));
        assert_eq!(d.delay, Some(Duration::from_millis(1500)));
        assert_eq!(d.reply, Some(Reply::text("hi")));
    }

    #[test]
    fn no_directives() {
        assert_eq!(parse("just a prompt [[not one]]"), Directives::default());
    }
}
