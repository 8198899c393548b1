//! Cloud credentials the sidecar gets and refreshes itself, rather than take a key from a
//! route: AWS's default chain and SigV4 for Bedrock ([`aws`]), Google's OAuth access tokens
//! for Vertex AI ([`google`]).

pub mod aws;
pub mod google;
