//! Typed path parameters: [`Id<T>`] takes the route parameter named for `T` (`{session_id}`,
//! `{agent_id}`, …) and parses it into core's typed id, so handlers never see the raw string.
//!
//! A value that is not an id of that kind names nothing, so it is answered like an unknown id
//! of that kind: 404 `not_found_error` with the same message (`session "x" not found`; API
//! §3.2: "404 … unknown id"), never a 400 or a 500.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use managed_agents_core::ids::{
    AgentId, CredentialId, EnvironmentId, FileId, MemoryId, MemoryStoreId, MemoryVersionId,
    ResourceId, SessionId, SkillId, ThreadId, VaultId,
};

use crate::error::Error;

/// A typed id that routes take as a path parameter.
pub trait PathId: Sized + Send {
    /// The route parameter it is read from, e.g. `session_id` for `/sessions/{session_id}`.
    const PARAM: &'static str;
    /// The noun a 404 names, e.g. `session`.
    const KIND: &'static str;

    /// The id, if `text` is one of this kind.
    fn parse(text: &str) -> Option<Self>;
}

macro_rules! path_ids {
    ($($id:ident => $param:literal),* $(,)?) => {
        $(
            impl PathId for $id {
                const PARAM: &'static str = $param;
                const KIND: &'static str = $id::KIND;

                fn parse(text: &str) -> Option<Self> {
                    $id::parse(text).ok()
                }
            }
        )*
    };
}

path_ids!(
    AgentId => "agent_id",
    EnvironmentId => "environment_id",
    SessionId => "session_id",
    VaultId => "vault_id",
    CredentialId => "credential_id",
    FileId => "file_id",
    ResourceId => "resource_id",
    SkillId => "skill_id",
    MemoryStoreId => "memory_store_id",
    MemoryId => "memory_id",
    MemoryVersionId => "memory_version_id",
    ThreadId => "thread_id",
);

/// The path parameter [`PathId::PARAM`] of the matched route, parsed as a `T`.
#[derive(Debug, Clone)]
pub struct Id<T>(pub T);

impl<S: Send + Sync, T: PathId> FromRequestParts<S> for Id<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound(format!("{} not found", T::KIND)))?;
        let Some((_, text)) = params.iter().find(|(name, _)| *name == T::PARAM) else {
            return Err(Error::Internal(format!(
                "the route has no {{{}}} parameter",
                T::PARAM
            )));
        };
        // The request span declares `session_id`; recording another name is a no-op.
        tracing::Span::current().record(T::PARAM, text);
        T::parse(text)
            .map(Id)
            .ok_or_else(|| Error::not_found(T::KIND, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use crate::error::Envelope;

    /// The status and the body (or the error message) of a GET of `uri`.
    async fn get_uri(uri: &str) -> (StatusCode, String) {
        let app: Router = Router::new()
            .route(
                "/sessions/{session_id}/resources/{resource_id}",
                get(
                    |Id(s): Id<SessionId>, Id(r): Id<ResourceId>| async move { format!("{s} {r}") },
                ),
            )
            .route(
                "/agents/{agent_id}",
                get(|Id(a): Id<AgentId>| async move { a.to_string() }),
            );
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        if let Some(envelope) = response.extensions().get::<Envelope>() {
            return (status, envelope.message.clone());
        }
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn ids_are_parsed_by_parameter_name() {
        assert_eq!(
            get_uri("/sessions/sesn_01a/resources/sesrsc_01b").await,
            (StatusCode::OK, "sesn_01a sesrsc_01b".to_owned())
        );
        assert_eq!(
            get_uri("/agents/agent_01x").await,
            (StatusCode::OK, "agent_01x".to_owned())
        );
    }

    #[tokio::test]
    async fn a_malformed_id_is_a_404_naming_its_kind() {
        for (uri, message) in [
            ("/agents/not-an-id", r#"agent "not-an-id" not found"#),
            ("/agents/sesn_01a", r#"agent "sesn_01a" not found"#),
            ("/agents/agent_01%20x", r#"agent "agent_01 x" not found"#),
            (
                "/sessions/sesn_01a/resources/nope",
                r#"session resource "nope" not found"#,
            ),
            (
                "/sessions/x/resources/sesrsc_01b",
                r#"session "x" not found"#,
            ),
        ] {
            assert_eq!(
                get_uri(uri).await,
                (StatusCode::NOT_FOUND, message.to_owned()),
                "{uri}"
            );
        }
    }
}
