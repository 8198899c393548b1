//! What a request asks for: the route its method, path and headers name, and the API key
//! it presents.

use super::*;

/// What a request asks for.
pub(super) enum Route {
    Chat {
        api: Api,
        deployment: Option<String>,
    },
    /// Gemini names the model and whether to stream in the path.
    Gemini {
        model: String,
        stream: bool,
    },
    /// So does Bedrock.
    Bedrock {
        model: String,
        stream: bool,
    },
    /// STS (`POST /` with a form).
    Sts,
    /// The container-credentials endpoint.
    ContainerCredentials,
    /// Vertex AI names the publisher, the model and whether to stream in the path.
    Vertex(vertex::VertexPath),
    Embeddings {
        api: Api,
        deployment: Option<String>,
    },
    Models {
        api: Api,
    },
    Missing {
        api: Api,
        error: ProviderError,
    },
}

impl Route {
    pub(super) fn of(
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Route {
        let anthropic_client =
            headers.contains_key("anthropic-version") || headers.contains_key("x-api-key");
        let api = if anthropic_client {
            Api::Anthropic
        } else {
            Api::Openai
        };
        if path.starts_with("/model/") {
            return match (method, crate::bedrock::route(path)) {
                (&Method::POST, Some((model, stream))) => Route::Bedrock { model, stream },
                _ => Route::Missing {
                    api: Api::Bedrock,
                    error: ProviderError::not_found_path(path),
                },
            };
        }
        if path.starts_with("/v1/projects/") {
            return match (method, vertex::route(path)) {
                (&Method::POST, Some(v)) => Route::Vertex(v),
                _ => Route::Missing {
                    api: Api::Gemini,
                    error: ProviderError::not_found_path(path),
                },
            };
        }
        match (method, path) {
            (&Method::POST, "/") => return Route::Sts,
            (&Method::GET, crate::aws::CONTAINER_PATH) => return Route::ContainerCredentials,
            _ => {}
        }
        if path.starts_with("/v1beta/") {
            return match (method, gemini::route(path)) {
                (&Method::POST, Some((model, stream))) => Route::Gemini { model, stream },
                _ => Route::Missing {
                    api: Api::Gemini,
                    error: ProviderError::not_found_path(path),
                },
            };
        }
        if let Some(rest) = path.strip_prefix("/openai/deployments/") {
            let (deployment, op) = rest.split_once('/').unwrap_or((rest, ""));
            let has_version =
                query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("api-version=")));
            if !has_version {
                let mut error = ProviderError::not_found_path(path);
                error.message =
                    "Resource not found (the api-version query parameter is required)".to_owned();
                return Route::Missing {
                    api: Api::Azure,
                    error,
                };
            }
            let deployment = Some(deployment.to_owned());
            return match (method, op) {
                (&Method::POST, "chat/completions") => Route::Chat {
                    api: Api::Azure,
                    deployment,
                },
                (&Method::POST, "embeddings") => Route::Embeddings {
                    api: Api::Azure,
                    deployment,
                },
                _ => Route::Missing {
                    api: Api::Azure,
                    error: ProviderError::not_found_path(path),
                },
            };
        }
        match (method, path) {
            (&Method::POST, "/v1/chat/completions") => Route::Chat {
                api: Api::Openai,
                deployment: None,
            },
            (&Method::POST, "/v1/responses") => Route::Chat {
                api: Api::Responses,
                deployment: None,
            },
            (&Method::POST, "/v1/messages") => Route::Chat {
                api: Api::Anthropic,
                deployment: None,
            },
            (&Method::POST, "/v1/embeddings") => Route::Embeddings {
                api: Api::Openai,
                deployment: None,
            },
            (&Method::GET, "/v1/models") => Route::Models { api },
            _ => Route::Missing {
                api,
                error: ProviderError::not_found_path(path),
            },
        }
    }
}

/// The API key a request presents, from the headers its family uses.
pub(super) fn api_key(api: Api, headers: &HeaderMap) -> Option<String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let bearer = || get("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned));
    match api {
        Api::Openai | Api::Responses => bearer(),
        Api::Azure => get("api-key").or_else(bearer),
        Api::Anthropic => get("x-api-key").or_else(bearer),
        // Only the header: a key in the URL's `key=` query is not looked for, so a client that
        // puts it there is refused as if it had sent none.
        Api::Gemini => get("x-goog-api-key"),
        // A Bedrock API key; a SigV4 signature is checked apart (see `crate::aws`).
        Api::Bedrock => bearer(),
    }
}

/// The endpoint name an AWS identity route logs.
pub(super) fn route_name(route: &Route) -> &'static str {
    match route {
        Route::Sts => "sts",
        Route::ContainerCredentials => "container-credentials",
        Route::Chat { .. }
        | Route::Gemini { .. }
        | Route::Bedrock { .. }
        | Route::Vertex(_)
        | Route::Embeddings { .. }
        | Route::Models { .. }
        | Route::Missing { .. } => "chat",
    }
}
