//! Streams through the sidecar.
