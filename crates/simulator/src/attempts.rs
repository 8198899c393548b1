//! The attempt log: every request the simulator received, when, with what, and how it ended.

use std::collections::VecDeque;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Which wire format an attempt used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// OpenAI (`/v1/...` with `Authorization: Bearer`).
    Openai,
    /// Azure OpenAI (`/openai/deployments/...` with `api-key`).
    Azure,
    /// Anthropic (`/v1/messages` with `x-api-key`).
    Anthropic,
    /// OpenAI Responses (`/v1/responses` with `Authorization: Bearer`).
    Responses,
    /// Google's Gemini API (`/v1beta/models/{model}:generateContent` with `x-goog-api-key`).
    Gemini,
    /// AWS Bedrock's Converse API (`/model/{id}/converse` signed with SigV4 or a bearer key),
    /// and the AWS identity endpoints (STS, container credentials) beside it.
    Bedrock,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still being answered.
    InProgress,
    /// The whole answer was sent.
    Completed,
    /// An error status was sent.
    Error,
    /// The connection was reset before any byte.
    Reset,
    /// The request was held without an answer.
    Hung,
    /// The answer was cut part-way.
    Cut,
    /// The answer stalled part-way and was then closed.
    Stalled,
    /// A stream ended with a provider error event.
    StreamError,
    /// The client went away before the answer was complete.
    ClientGone,
}

/// One request as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Sequence number, from 1.
    pub id: u64,
    /// Arrival, in milliseconds since the simulator started.
    pub at_ms: f64,
    /// When the answer ended, in milliseconds since the simulator started.
    pub ended_ms: Option<f64>,
    /// The wire format.
    pub api: Api,
    /// `chat`, `embeddings` or `models`.
    pub endpoint: String,
    /// The model (or Azure deployment) asked for.
    pub model: Option<String>,
    /// The last four characters of the API key presented, if any.
    pub key_hint: Option<String>,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// The fault applied, in its text form (`None` when healthy).
    pub fault: Option<String>,
    /// The HTTP status sent (0 when none was).
    pub status: u16,
    /// Bytes of response body sent.
    pub bytes_sent: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// The W3C `traceparent` header the request carried, if any.
    #[serde(default)]
    pub traceparent: Option<String>,
    /// The `OpenAI-Organization` header, if any.
    #[serde(default)]
    pub organization: Option<String>,
    /// The `OpenAI-Project` header, if any.
    #[serde(default)]
    pub project: Option<String>,
    /// The request's path (`/v1/chat/completions`, a Vertex AI model's path, …).
    #[serde(default)]
    pub path: Option<String>,
}

/// A bounded, shared log of attempts.
#[derive(Debug)]
pub struct AttemptLog {
    started: Instant,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    entries: VecDeque<Attempt>,
}

/// What is known of an attempt when it arrives.
#[derive(Debug)]
pub struct Arrival {
    /// The wire format.
    pub api: Api,
    /// The endpoint name.
    pub endpoint: &'static str,
    /// The model asked for.
    pub model: Option<String>,
    /// The key presented.
    pub key: Option<String>,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// The `traceparent` header.
    pub traceparent: Option<String>,
    /// The `OpenAI-Organization` header.
    pub organization: Option<String>,
    /// The `OpenAI-Project` header.
    pub project: Option<String>,
    /// The request's path.
    pub path: Option<String>,
}

impl AttemptLog {
    /// An empty log keeping at most `capacity` attempts.
    pub fn new(capacity: usize) -> Self {
        AttemptLog {
            started: Instant::now(),
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                next_id: 1,
                entries: VecDeque::new(),
            }),
        }
    }

    fn now_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// Records an arrival and returns its id.
    pub fn begin(&self, arrival: Arrival) -> u64 {
        let at_ms = self.now_ms();
        let key_hint = arrival.key.map(|k| {
            let n = k.chars().count();
            k.chars().skip(n.saturating_sub(4)).collect()
        });
        let mut inner = self.inner.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        if inner.entries.len() >= self.capacity {
            inner.entries.pop_front();
        }
        inner.entries.push_back(Attempt {
            id,
            at_ms,
            ended_ms: None,
            api: arrival.api,
            endpoint: arrival.endpoint.to_owned(),
            model: arrival.model,
            key_hint,
            stream: arrival.stream,
            fault: None,
            status: 0,
            bytes_sent: 0,
            outcome: Outcome::InProgress,
            traceparent: arrival.traceparent,
            organization: arrival.organization,
            project: arrival.project,
            path: arrival.path,
        });
        id
    }

    /// Updates an attempt in place (no-op when it has already been dropped from the log).
    pub fn update(&self, id: u64, f: impl FnOnce(&mut Attempt)) {
        let mut inner = self.inner.lock();
        let Some(first) = inner.entries.front().map(|a| a.id) else {
            return;
        };
        if let Some(a) = id
            .checked_sub(first)
            .and_then(|idx| inner.entries.get_mut(idx as usize))
        {
            f(a);
        }
    }

    /// Marks an attempt finished.
    pub fn finish(&self, id: u64, outcome: Outcome, bytes_sent: u64) {
        let ended = self.now_ms();
        self.update(id, |a| {
            a.outcome = outcome;
            a.bytes_sent = bytes_sent;
            a.ended_ms = Some(ended);
        });
    }

    /// A copy of the log, optionally only one model's attempts.
    pub fn snapshot(&self, model: Option<&str>) -> Vec<Attempt> {
        let inner = self.inner.lock();
        inner
            .entries
            .iter()
            .filter(|a| model.is_none_or(|m| a.model.as_deref() == Some(m)))
            .cloned()
            .collect()
    }

    /// Empties the log; ids keep counting up.
    pub fn clear(&self) {
        self.inner.lock().entries.clear();
    }
}

/// Locks a mutex, recovering from poisoning: the log holds plain data that stays consistent
/// even if a holder panicked.
#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(model: &str) -> Arrival {
        Arrival {
            api: Api::Openai,
            endpoint: "chat",
            model: Some(model.into()),
            key: Some("sk-secret-1234".into()),
            stream: false,
            traceparent: None,
            organization: None,
            path: None,
            project: None,
        }
    }

    #[test]
    fn log_is_bounded_and_keeps_only_the_key_hint() {
        let log = AttemptLog::new(2);
        let a = log.begin(arrival("m1"));
        let b = log.begin(arrival("m2"));
        let c = log.begin(arrival("m1"));
        assert_eq!((a, b, c), (1, 2, 3));
        let all = log.snapshot(None);
        assert_eq!(all.iter().map(|x| x.id).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(all[0].key_hint.as_deref(), Some("1234"));
        log.finish(1, Outcome::Completed, 10); // dropped already: ignored
        log.finish(3, Outcome::Cut, 10);
        assert_eq!(log.snapshot(Some("m1"))[0].outcome, Outcome::Cut);
        log.clear();
        assert!(log.snapshot(None).is_empty());
        assert_eq!(log.begin(arrival("m3")), 4);
    }
}
