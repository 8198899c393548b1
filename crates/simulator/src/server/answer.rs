//! How an attempt is answered once the fault is chosen: errors in each provider's shape, resets,
//! hangs, whole answers and paced streams (cut, stalled or broken as the fault says).

use super::*;

impl Attempting {
    pub(super) fn request_id(&self) -> String {
        format!("req_sim_{}", self.id)
    }

    /// Decides the fault: errors the model itself causes first (unknown model, wrong key), then
    /// the header, the plan, the model name, and the model's default.
    pub(super) fn choose_fault(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Option<ModelSpec>, Option<Fault>), ProviderError> {
        let Some(spec) = self.state.config.model(&self.model) else {
            return Ok((None, Some(Fault::ModelNotFound)));
        };
        if let Some(want) = &spec.api_key
            && self.key.as_deref() != Some(want.as_str())
        {
            return Ok((Some(spec), Some(Fault::Unauthorized)));
        }
        let header = match headers.get("x-sim-fault").map(HeaderValue::to_str) {
            Some(Ok(text)) => Some(
                text.parse::<Fault>()
                    .map_err(|e| ProviderError::bad_request(format!("x-sim-fault: {e}")))?,
            ),
            Some(Err(_)) => return Err(ProviderError::bad_request("x-sim-fault: not ASCII")),
            None => None,
        };
        let fault = header
            .or_else(|| self.state.plans.next_fault(&self.model))
            .or_else(|| Fault::from_model_name(&self.model))
            .or_else(|| spec.fault.clone());
        Ok((Some(spec), fault))
    }

    pub(super) fn latency(
        &self,
        headers: &HeaderMap,
        spec: Option<&ModelSpec>,
    ) -> Option<Duration> {
        let latency = headers
            .get("x-sim-latency")
            .and_then(|v| v.to_str().ok())
            .and_then(Latency::parse)
            .or_else(|| spec.and_then(|s| s.latency))?;
        Some(latency.sample(&mut self.state.rng.lock()))
    }

    pub(super) fn token_gap(headers: &HeaderMap, spec: &ModelSpec) -> Option<Duration> {
        let rate = headers
            .get("x-sim-token-rate")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<f64>().ok())
            .or(spec.token_rate)?;
        (rate > 0.0 && rate.is_finite()).then(|| Duration::from_secs_f64(1.0 / rate))
    }

    pub(super) fn error(&self, err: &ProviderError) -> Response<Body> {
        self.error_in(self.api, err)
    }

    /// [`Attempting::error`] in the shape of `shape` (Vertex AI answers a bad token in
    /// Google's, whatever the publisher).
    pub(super) fn error_in(&self, shape: Api, err: &ProviderError) -> Response<Body> {
        self.state
            .attempts
            .update(self.id, |a| a.status = err.status);
        let mut resp = error_response(shape, err, &self.request_id());
        if self.wrapped {
            let wrapped = json!([err.body(shape, &self.request_id())]).to_string();
            *resp.body_mut() = full(Bytes::from(wrapped));
        }
        let len = body_len(&resp);
        self.state.attempts.finish(self.id, Outcome::Error, len);
        resp
    }

    /// Applies the faults every endpoint shares: error statuses, resets, hangs and a slow head.
    /// `Ok(None)` means go on and answer.
    pub(super) async fn transport_fault(
        &self,
        fault: Option<&Fault>,
        context: (u32, u32),
    ) -> Result<Option<Response<Body>>, BoxError> {
        let Some(fault) = fault else { return Ok(None) };
        // A forced context-length error still names a prompt longer than the window.
        let (window, asked) = context;
        let context = (
            window,
            if asked > window {
                asked
            } else {
                window + asked.max(1)
            },
        );
        if let Some(err) =
            ProviderError::for_fault(fault, self.api, &self.model, self.echo.as_deref(), context)
        {
            return Ok(Some(self.error(&err)));
        }
        match fault {
            Fault::ConnectionReset => {
                self.reset.store(true, Ordering::Relaxed);
                self.state.attempts.finish(self.id, Outcome::Reset, 0);
                Err("connection reset on purpose".into())
            }
            Fault::Hang => {
                self.state
                    .attempts
                    .update(self.id, |a| a.outcome = Outcome::Hung);
                tokio::time::sleep(self.state.config.hang_limit).await;
                self.reset.store(true, Ordering::Relaxed);
                self.state.attempts.finish(self.id, Outcome::Hung, 0);
                Err("hung on purpose".into())
            }
            Fault::SlowFirstByte { delay } => {
                tokio::time::sleep(*delay).await;
                Ok(None)
            }
            Fault::RateLimited { .. }
            | Fault::Unauthorized
            | Fault::Forbidden
            | Fault::ModelNotFound
            | Fault::ContextLength
            | Fault::ContentFilter
            | Fault::ServerError
            | Fault::Unavailable
            | Fault::Overloaded
            | Fault::SlowFirstToken { .. }
            | Fault::StreamCut { .. }
            | Fault::StreamStall { .. }
            | Fault::StreamError { .. }
            | Fault::MalformedEvent { .. }
            | Fault::MissingDone
            | Fault::BrokenJson
            | Fault::EmptyContent
            | Fault::SchemaViolation
            | Fault::OutOfBounds
            | Fault::ModelSubstituted { .. }
            | Fault::KeyEcho { .. } => Ok(None),
        }
    }

    pub(super) async fn chat(
        self,
        headers: &HeaderMap,
        req: ChatRequest,
    ) -> Result<Response<Body>, BoxError> {
        let (spec, mut fault) = match self.choose_fault(headers) {
            Ok(choice) => choice,
            Err(e) => return Ok(self.error(&e)),
        };
        let asked = req.prompt_tokens() + req.max_tokens.unwrap_or(0);
        let window = spec.as_ref().map_or(0, |s| s.context_window);
        if fault.is_none() && spec.is_some() && asked > window {
            fault = Some(Fault::ContextLength);
        }
        self.state
            .attempts
            .update(self.id, |a| a.fault = fault.as_ref().map(Fault::to_string));
        if let Some(d) = self.latency(headers, spec.as_ref()) {
            tokio::time::sleep(d).await;
        }
        if let Some(resp) = self
            .transport_fault(fault.as_ref(), (window, asked))
            .await?
        {
            return Ok(resp);
        }
        let Some(spec) = spec else {
            // Unreachable in practice: an unknown model always has the model_not_found fault.
            return Ok(self.error(&ProviderError::bad_request("unknown model")));
        };
        if spec.reject_prefill && req.prefill.is_some() {
            return Ok(self.error(&ProviderError::bad_request(
                "This model does not support assistant message prefill. The conversation must end with a user message.",
            )));
        }
        let mut spec = spec;
        if let Some(t) = headers
            .get("x-sim-thinking")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::catalog::Thinking::parse)
        {
            spec.thinking = Some(t);
        }
        // Nor is a Bedrock guardrail's: a 200 whose stopReason is guardrail_intervened.
        if self.api == Api::Bedrock && fault == Some(Fault::ContentFilter) {
            if !req.stream {
                return Ok(self.whole(Bytes::from(crate::bedrock::blocked().to_string())));
            }
            return Ok(self.stream_response(
                StreamPlan {
                    fault: None,
                    token_gap: None,
                    thinking_gap: None,
                    error_event: None,
                    malformed: Bytes::new(),
                    mid_frame: false,
                },
                crate::bedrock::blocked_stream(),
            ));
        }
        // Gemini's content filter is no error: a 200 whose candidate finished with SAFETY.
        if self.api == Api::Gemini && fault == Some(Fault::ContentFilter) {
            let id = format!("sim_{}", self.id);
            let prompt_tokens = req.prompt_tokens();
            if !req.stream {
                let body = gemini::blocked(&self.model, &id, prompt_tokens);
                return Ok(self.whole(Bytes::from(body.to_string())));
            }
            let events = gemini::blocked_stream(&self.model, &id, prompt_tokens);
            return Ok(self.stream_response(
                StreamPlan {
                    fault: None,
                    token_gap: None,
                    thinking_gap: None,
                    error_event: None,
                    malformed: Bytes::new(),
                    mid_frame: false,
                },
                events,
            ));
        }
        let judge = self.state.judge.lock().clone();
        let answer = chat::answer(&req, &spec, fault.as_ref(), &judge, self.id);
        let gap = Self::token_gap(headers, &spec);
        let created = plumb_telemetry::clock::unix_secs_now();
        let request_id = self.request_id();
        // As OpenAI answers a previous response this account does not hold.
        if let Some(id) = req
            .previous_response_id
            .as_deref()
            .filter(|id| self.api == Api::Responses && !self.state.stored.has(id))
        {
            let mut e = ProviderError::not_found_path("/v1/responses");
            e.message = format!("Previous response with id '{id}' not found.");
            e.openai_type = "invalid_request_error";
            e.openai_code = Some("previous_response_not_found");
            return Ok(self.error(&e));
        }
        if self.api == Api::Responses && req.store && fault.is_none() {
            let kept = responses::whole(&answer, &format!("sim_{}", self.id), created);
            if req.background && !req.stream {
                // Queued at once; complete when the client polls.
                let mut queued = kept.clone();
                queued["status"] = json!("queued");
                queued["output"] = json!([]);
                queued["usage"] = Value::Null;
                queued["background"] = json!(true);
                self.state.stored.keep(kept);
                return Ok(self.whole(Bytes::from(queued.to_string())));
            }
            self.state.stored.keep(kept);
        }
        if req.stream {
            let events = match self.api {
                Api::Anthropic => anthropic::stream(&answer, &format!("msg_sim_{}", self.id)),
                Api::Responses => responses::stream(&answer, &format!("sim_{}", self.id), created),
                Api::Openai | Api::Azure => openai::stream(
                    &answer,
                    &format!("chatcmpl-sim-{}", self.id),
                    created,
                    req.include_usage,
                ),
                Api::Gemini => gemini::stream(&answer, &format!("sim_{}", self.id)),
                Api::Bedrock => crate::bedrock::stream(&answer),
            };
            // The error event a stream fault sends: the key echoed for key_echo, else overloaded.
            let echoed = match &fault {
                Some(Fault::KeyEcho { how, .. }) => Fault::KeyEcho {
                    how: *how,
                    after: 0,
                },
                _ => Fault::Overloaded,
            };
            let error_event = ProviderError::for_fault(
                &echoed,
                self.api,
                &self.model,
                self.echo.as_deref(),
                (0, 0),
            )
            .map(|e| e.stream_event(self.api, &request_id));
            let plan = StreamPlan {
                fault,
                token_gap: gap,
                thinking_gap: spec.thinking.map(|t| t.every),
                error_event,
                malformed: malformed_event(self.api),
                // An event stream is cut inside a frame, as a dropped connection cuts it.
                mid_frame: self.api == Api::Bedrock,
            };
            return Ok(self.stream_response(plan, events));
        }
        if let Some(t) = spec.thinking {
            tokio::time::sleep(t.every * t.deltas()).await;
        }
        if let Some(gap) = gap {
            tokio::time::sleep(gap * answer.completion_tokens()).await;
        }
        let value = match self.api {
            Api::Anthropic => anthropic::message(&answer, &format!("msg_sim_{}", self.id)),
            Api::Responses => responses::whole(&answer, &format!("sim_{}", self.id), created),
            Api::Openai | Api::Azure => {
                openai::completion(&answer, &format!("chatcmpl-sim-{}", self.id), created)
            }
            Api::Gemini => gemini::whole(&answer, &format!("sim_{}", self.id)),
            Api::Bedrock => crate::bedrock::whole(&answer),
        };
        let full = Bytes::from(value.to_string());
        let resp = match &fault {
            Some(Fault::BrokenJson | Fault::MalformedEvent { .. }) => {
                let cut = full.len() / 2;
                self.whole(full.slice(..cut))
            }
            Some(f @ (Fault::StreamCut { .. } | Fault::StreamStall { .. })) => {
                // A non-streamed body cut or stalled half-way, its declared length never met.
                let half = full.len() / 2;
                let events = vec![
                    Event {
                        bytes: full.slice(..half),
                        kind: EventKind::Preamble,
                    },
                    Event {
                        bytes: full.slice(half..),
                        kind: EventKind::Tail,
                    },
                ];
                let fault = if let Fault::StreamStall { stall, .. } = f {
                    Fault::StreamStall {
                        after: 0,
                        stall: *stall,
                    }
                } else {
                    Fault::StreamCut { after: 0 }
                };
                let plan = StreamPlan {
                    fault: Some(fault),
                    token_gap: None,
                    thinking_gap: None,
                    error_event: None,
                    malformed: Bytes::new(),
                    mid_frame: false,
                };
                let mut resp = Response::new(plan.spawn(self.state.clone(), self.id, events));
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(full.len()));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                self.id_headers(resp.headers_mut());
                self.state.attempts.update(self.id, |a| a.status = 200);
                return Ok(resp);
            }
            _ => self.whole(full),
        };
        Ok(resp)
    }

    /// A 200 stream of `events`, paced and broken as `plan` says.
    pub(super) fn stream_response(&self, plan: StreamPlan, events: Vec<Event>) -> Response<Body> {
        let body = plan.spawn(self.state.clone(), self.id, events);
        self.state.attempts.update(self.id, |a| a.status = 200);
        let mut resp = Response::new(body);
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(if self.api == Api::Bedrock {
                crate::bedrock::EVENT_STREAM
            } else {
                "text/event-stream; charset=utf-8"
            }),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        self.id_headers(h);
        resp
    }

    /// A complete 200 JSON answer.
    pub(super) fn whole(&self, body: Bytes) -> Response<Body> {
        let len = body.len() as u64;
        let mut resp = Response::new(full(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.id_headers(resp.headers_mut());
        self.state.attempts.update(self.id, |a| a.status = 200);
        self.state.attempts.finish(self.id, Outcome::Completed, len);
        resp
    }

    pub(super) fn id_headers(&self, h: &mut HeaderMap) {
        let rid = HeaderValue::from_str(&self.request_id())
            .unwrap_or(HeaderValue::from_static("req_sim"));
        match self.api {
            Api::Anthropic => h.insert("request-id", rid),
            Api::Openai | Api::Azure | Api::Responses => h.insert("x-request-id", rid),
            Api::Gemini => h.insert("x-goog-request-id", rid),
            Api::Bedrock => h.insert("x-amzn-requestid", rid),
        };
        h.insert("x-sim-attempt", HeaderValue::from(self.id));
    }

    pub(super) async fn embeddings(
        self,
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<Response<Body>, BoxError> {
        let inputs = match openai::parse_embedding_input(body) {
            Ok(i) => i,
            Err(msg) => return Ok(self.error(&ProviderError::bad_request(msg))),
        };
        let (spec, fault) = match self.choose_fault(headers) {
            Ok(choice) => choice,
            Err(e) => return Ok(self.error(&e)),
        };
        self.state
            .attempts
            .update(self.id, |a| a.fault = fault.as_ref().map(Fault::to_string));
        if let Some(d) = self.latency(headers, spec.as_ref()) {
            tokio::time::sleep(d).await;
        }
        let window = spec.as_ref().map_or(0, |s| s.context_window);
        if let Some(resp) = self.transport_fault(fault.as_ref(), (window, 0)).await? {
            return Ok(resp);
        }
        let full = Bytes::from(openai::embeddings(body, &self.model, &inputs).to_string());
        Ok(match fault {
            Some(Fault::BrokenJson) => {
                let cut = full.len() / 2;
                self.whole(full.slice(..cut))
            }
            _ => self.whole(full),
        })
    }
}

/// How a stream is paced and broken.
pub(super) struct StreamPlan {
    fault: Option<Fault>,
    token_gap: Option<Duration>,
    /// The time before each reasoning delta of a reasoning model.
    thinking_gap: Option<Duration>,
    error_event: Option<Event>,
    malformed: Bytes,
    /// A cut sends the first half of the next event first (an event stream cut inside a
    /// frame).
    mid_frame: bool,
}

impl StreamPlan {
    /// Spawns the task that sends `events` as the body, applying the stream faults, and
    /// records how the attempt ended.
    pub(super) fn spawn(self, state: Arc<State>, id: u64, events: Vec<Event>) -> Body {
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(16);
        tokio::spawn(async move {
            let mut sent = 0u64;
            let outcome = self.run(events, &tx, &mut sent).await;
            state.attempts.finish(id, outcome, sent);
        });
        BoxBody::new(StreamBody::new(ReceiverStream::new(rx)))
    }

    pub(super) async fn run(
        self,
        events: Vec<Event>,
        tx: &mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
        sent: &mut u64,
    ) -> Outcome {
        let mut tokens = 0u32;
        let mut first_token_delay = match &self.fault {
            Some(Fault::SlowFirstToken { delay }) => Some(*delay),
            _ => None,
        };
        for (i, ev) in events.into_iter().enumerate() {
            let past_preamble = ev.kind != EventKind::Preamble;
            // A fault placed "after N tokens" strikes before token N, or before the first
            // event after the last token when the answer is shorter.
            let reached = |after: u32| {
                tokens >= after || !matches!(ev.kind, EventKind::Token | EventKind::Thinking)
            };
            if past_preamble {
                if let Some(d) = first_token_delay.take() {
                    tokio::time::sleep(d).await;
                }
                match &self.fault {
                    Some(Fault::StreamCut { after }) if reached(*after) => {
                        if self.mid_frame {
                            let half = ev.bytes.slice(..ev.bytes.len() / 2);
                            *sent += half.len() as u64;
                            let _ = tx.send(Ok(Frame::data(half))).await;
                        }
                        drained(tx).await;
                        let _ = tx.send(Err("stream cut on purpose".into())).await;
                        return Outcome::Cut;
                    }
                    Some(Fault::StreamStall { after, stall }) if reached(*after) => {
                        tokio::time::sleep(*stall).await;
                        let _ = tx.send(Err("stream stalled on purpose".into())).await;
                        return Outcome::Stalled;
                    }
                    Some(Fault::StreamError { after } | Fault::KeyEcho { after, .. })
                        if reached(*after) =>
                    {
                        if let Some(err) = &self.error_event {
                            *sent += err.bytes.len() as u64;
                            let _ = tx.send(Ok(Frame::data(err.bytes.clone()))).await;
                        }
                        return Outcome::StreamError;
                    }
                    _ => {}
                }
            }
            if ev.kind == EventKind::Token
                && tokens > 0
                && let Some(gap) = self.token_gap
            {
                tokio::time::sleep(gap).await;
            }
            if ev.kind == EventKind::Thinking
                && let Some(gap) = self.thinking_gap
            {
                tokio::time::sleep(gap).await;
            }
            let bytes = match &self.fault {
                Some(Fault::MalformedEvent { at }) if i == *at as usize => self.malformed.clone(),
                Some(Fault::BrokenJson) if i == 1 => self.malformed.clone(),
                Some(Fault::MissingDone) if ev.kind == EventKind::Terminator => continue,
                _ => ev.bytes,
            };
            *sent += bytes.len() as u64;
            if tx.send(Ok(Frame::data(bytes))).await.is_err() {
                return Outcome::ClientGone;
            }
            if ev.kind == EventKind::Token {
                tokens += 1;
            }
        }
        Outcome::Completed
    }
}

/// Waits until the connection has taken every queued frame and had a moment to write it, so a
/// cut happens after the bytes before it reached the client (hyper drops buffered bytes when
/// a body fails).
pub(super) async fn drained(tx: &mpsc::Sender<Result<Frame<Bytes>, BoxError>>) {
    while tx.capacity() < tx.max_capacity() && !tx.is_closed() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// An event that looks like the provider's but is not JSON.
pub(super) fn malformed_event(api: Api) -> Bytes {
    match api {
        Api::Anthropic => Bytes::from_static(
            b"event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_del\n\n",
        ),
        Api::Gemini => Bytes::from_static(gemini::MALFORMED_EVENT),
        Api::Bedrock => crate::bedrock::malformed_event(),
        Api::Openai | Api::Azure | Api::Responses => Bytes::from_static(
            b"data: {\"id\": \"chatcmpl-sim\", \"object\": \"chat.completion.chunk\", \"choices\": [{\"delta\": {\"content\": \"lo\n\n",
        ),
    }
}
