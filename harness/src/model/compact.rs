//! Context compaction's texts: the request that asks the agent's model to summarize its
//! conversation so far ([`request`]), and the user message a compacted conversation starts
//! from ([`resumed`]).

use std::sync::Arc;

use super::{Message, Part, Role};

/// What the model is asked after its conversation so far.
pub(crate) const INSTRUCTION: &str = "Your context is about to be compacted: everything above \
will be replaced by the summary you write now, and you will continue from that summary alone. \
Do not call any tool. Write a thorough summary for yourself: the task and its requirements, \
what has been done and found (files, commands, results, decisions and why), the current \
state, and exactly what remains to be done next. Keep names, paths and values verbatim.";

/// The first line of the message a compacted conversation starts from.
pub(crate) const RESUMED: &str =
    "[Earlier context was compacted. Your summary of it follows; continue the work from here.]";

/// The messages of the summary request: the conversation so far, then [`INSTRUCTION`] (in
/// the last user message when the conversation ends with one).
pub(crate) fn request(mut messages: Vec<Arc<Message>>) -> Vec<Arc<Message>> {
    let instruction = Part::Text(INSTRUCTION.to_owned());
    match messages.last_mut() {
        Some(last) if last.role == Role::User => Arc::make_mut(last).parts_mut().push(instruction),
        _ => messages.push(Arc::new(Message::new(Role::User, vec![instruction]))),
    }
    messages
}

/// The user message a conversation compacted into `summary` starts from.
pub(crate) fn resumed(summary: &str) -> String {
    format!("{RESUMED}\n\n{summary}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instruction_joins_a_last_user_message_or_follows_the_assistant() {
        let user = |text: &str| Message::new(Role::User, vec![Part::Text(text.into())]);
        let asked = request(vec![Arc::new(user("hi"))]);
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].parts().len(), 2);
        let assistant = Message::new(Role::Assistant, vec![Part::Text("done".into())]);
        let asked = request(vec![Arc::new(user("hi")), Arc::new(assistant)]);
        assert_eq!(asked.len(), 3);
        assert_eq!(asked[2].parts(), vec![Part::Text(INSTRUCTION.into())]);
    }
}
