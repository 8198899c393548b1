//! The OpenAI Chat Completions family: a request read into a [`Conversation`], and a
//! conversation written as a request.
//!
//! [`Conversation`]: super::Conversation

use super::Image;

mod incoming;
mod outgoing;
#[cfg(test)]
mod tests;

/// A `data:<media type>;base64,<data>` URL is an inline image; anything else a link.
pub(super) fn image_from_url(url: &str) -> Image {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
        && let Some(media_type) = meta.strip_suffix(";base64")
    {
        return Image::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        };
    }
    Image::Url(url.to_owned())
}

/// An image as OpenAI takes it: inline data as a `data:` URL.
fn image_url(image: &Image) -> String {
    match image {
        Image::Url(u) => u.clone(),
        Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
    }
}
