//! Credentials of the clouds that sign requests themselves rather than take an API key.

pub mod google;
