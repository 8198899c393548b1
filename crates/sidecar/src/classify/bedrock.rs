//! AWS Bedrock's error shapes: a JSON body `{"message": …}` whose exception the
//! `x-amzn-errortype` header names (`ThrottlingException:http://internal.amazon.com/…`), or a
//! `__type` in the body (`com.amazon.coral.validate#ValidationException`); and the same
//! exceptions arriving mid-stream as `:message-type: exception` frames (read as error events
//! whose `type` is the exception, see [`crate::event::bedrock`]).

use http::HeaderMap;
use plumb_policy::FailureClass;
use serde_json::Value;

use crate::event::ProviderError;

/// Bedrock's error, when the response is in Bedrock's shape: the exception's name as the
/// kind, and its message.
pub fn error(headers: &HeaderMap, body: &[u8]) -> Option<ProviderError> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let from_header = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let from_body = v.get("__type").and_then(Value::as_str).map(str::to_owned);
    let kind = exception(&from_header.or(from_body)?);
    let message = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some(ProviderError {
        kind,
        message,
        ..ProviderError::default()
    })
}

/// The bare exception name of an `x-amzn-errortype` or `__type` value.
fn exception(raw: &str) -> String {
    let name = raw.split(':').next().unwrap_or(raw);
    let name = name.rsplit('#').next().unwrap_or(name);
    name.trim().to_owned()
}

/// The class of a Bedrock exception (`kind`, in any case: stream frames spell it
/// `throttlingException`), or `None` when `kind` is not one of Bedrock's. `lower_message` is
/// the message in lower case, for the reasons a `ValidationException` gives.
pub fn class(kind: &str, lower_message: &str) -> Option<FailureClass> {
    let has = |needles: &[&str]| needles.iter().any(|n| lower_message.contains(n));
    Some(match kind.to_ascii_lowercase().as_str() {
        "throttlingexception" | "servicequotaexceededexception" => FailureClass::RateLimited,
        // Bedrock is loading the model: another target, or the same one a little later.
        "serviceunavailableexception" | "modelnotreadyexception" => FailureClass::Overloaded,
        "internalserverexception" | "modelerrorexception" | "modelstreamerrorexception" => {
            FailureClass::ServerError
        }
        "modeltimeoutexception" => FailureClass::Timeout,
        "accessdeniedexception"
        | "unrecognizedclientexception"
        | "expiredtokenexception"
        | "invalidsignatureexception"
        | "signaturedoesnotmatch"
        | "incompletesignatureexception"
        | "missingauthenticationtokenexception" => FailureClass::Auth,
        "resourcenotfoundexception" => FailureClass::InvalidModel,
        "validationexception" => {
            if has(&[
                "too long",
                "input is too long",
                "context window",
                "too many input tokens",
                "max_tokens",
                "maximum tokens",
                "exceeds the maximum",
            ]) {
                FailureClass::ContextLength
            } else if has(&["security token", "signature", "credential"]) {
                FailureClass::Auth
            } else if has(&[
                "model identifier is invalid",
                "isn't supported",
                "is not supported",
                "end of its life",
                "access to the model",
            ]) {
                FailureClass::InvalidModel
            } else {
                FailureClass::BadRequest
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exception_comes_from_the_header_or_the_body() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amzn-errortype",
            http::HeaderValue::from_static(
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            ),
        );
        let e = error(&h, br#"{"message":"Too many requests, please wait."}"#)
            .unwrap_or_else(|| panic!("not read"));
        assert_eq!(e.kind, "ThrottlingException");
        assert_eq!(e.message, "Too many requests, please wait.");
        let e = error(
            &HeaderMap::new(),
            br#"{"__type":"com.amazon.coral.validate#ValidationException","message":"x"}"#,
        )
        .unwrap_or_else(|| panic!("not read"));
        assert_eq!(e.kind, "ValidationException");
        assert_eq!(error(&HeaderMap::new(), br#"{"message":"x"}"#), None);
    }

    #[test]
    fn each_exception_has_its_class() {
        for (kind, message, want) in [
            ("ThrottlingException", "", FailureClass::RateLimited),
            ("throttlingException", "", FailureClass::RateLimited),
            (
                "ServiceQuotaExceededException",
                "",
                FailureClass::RateLimited,
            ),
            ("ServiceUnavailableException", "", FailureClass::Overloaded),
            ("ModelNotReadyException", "", FailureClass::Overloaded),
            ("InternalServerException", "", FailureClass::ServerError),
            ("ModelErrorException", "", FailureClass::ServerError),
            ("modelStreamErrorException", "", FailureClass::ServerError),
            ("ModelTimeoutException", "", FailureClass::Timeout),
            ("AccessDeniedException", "", FailureClass::Auth),
            ("UnrecognizedClientException", "", FailureClass::Auth),
            ("ExpiredTokenException", "", FailureClass::Auth),
            ("ResourceNotFoundException", "", FailureClass::InvalidModel),
            (
                "ValidationException",
                "input is too long for requested model.",
                FailureClass::ContextLength,
            ),
            (
                "ValidationException",
                "the provided model identifier is invalid.",
                FailureClass::InvalidModel,
            ),
            (
                "ValidationException",
                "messages: field required",
                FailureClass::BadRequest,
            ),
        ] {
            assert_eq!(class(kind, message), Some(want), "{kind} {message}");
        }
        assert_eq!(class("rate_limit_error", ""), None);
    }
}
