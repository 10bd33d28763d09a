//! JSON request bodies: read under the body limit (413 beyond it) and decoded with the path of
//! the offending field in the 400 message. The content type is not checked (the SDK always sends
//! `application/json`, curl users often forget it), and an empty body reads as `{}` so body-less
//! POSTs (archive) work.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;

/// A JSON body decoded into `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

/// Reads the raw body, mapping an over-limit body to 413 and a body that stalled beyond the
/// body read timeout to 408.
pub async fn read_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if timed_out(&rejection) {
            Error::body_timeout()
        } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::TooLarge(format!(
                "request body is larger than the limit of {} bytes",
                crate::BODY_LIMIT
            ))
        } else {
            let response = rejection.into_response();
            Error::invalid(format!(
                "could not read the request body ({})",
                response.status()
            ))
        }
    })
}

/// Whether reading the body failed because it stalled (tower-http's body timeout, anywhere in
/// the error's source chain).
pub(crate) fn timed_out(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(rejection);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Decodes `bytes` as JSON into `T`, naming the field that does not fit.
///
/// A body that fits is decoded once, without tracking paths; only a body that does not is
/// decoded again with `serde_path_to_error`, for the message (tracking every field's path was
/// paid by every request).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Error::invalid(format!("request body is not valid JSON: {inner}"))
        } else if path.is_empty() || path == "." {
            Error::invalid(format!("request body: {inner}"))
        } else {
            Error::invalid(format!("{path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|err| Error::invalid(format!("request body is not valid JSON: {err}")))?;
    Ok(value)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_bytes(req, state).await?;
        decode(&bytes).map(Json)
    }
}

/// A JSON body that must be an object, kept as a map so absent and `null` fields stay distinct.
pub type Object = serde_json::Map<String, Value>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Vec<Inner>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let err = decode::<Outer>(br#"{"inner":[{"n":1},{"n":"x"}]}"#).expect_err("bad");
        assert!(err.to_string().starts_with("inner[1].n:"), "{err}");
        let err = decode::<Outer>(b"{").expect_err("bad");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        assert!(decode::<Object>(b"").is_ok());
        let err = decode::<Outer>(br#"{"inner":[]} x"#).expect_err("trailing");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let fits = decode::<Outer>(br#" {"inner":[{"n":7}]} "#).expect("fits");
        assert_eq!(fits.inner[0].n, 7);
    }
}
