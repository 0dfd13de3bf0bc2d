//! Bearer-token authorization for state-changing API calls.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;

/// Extracting this proves the request carried the configured API token.
/// Without a configured token every such call is refused: an unset token
/// never means "open".
pub struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let expected = state.config.borrow().server.api_token.clone();
        let Some(expected) = expected else {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "state-changing API calls are disabled: set server.api-token or server.api-token-file",
            ));
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            // Constant time, so the response time does not leak a prefix.
            Some(token) if bool::from(token.as_bytes().ct_eq(expected.expose().as_bytes())) => {
                Ok(Authorized)
            }
            Some(_) => Err(refuse(StatusCode::UNAUTHORIZED, "invalid bearer token")),
            None => Err(refuse(StatusCode::UNAUTHORIZED, "missing bearer token")),
        }
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut r = (status, Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}
