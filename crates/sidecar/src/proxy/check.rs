//! Verify: what an answer says of itself — the model it names — and whether it keeps the
//! route's contract, before anything reaches the client.

use plumb_policy::contract::{ModelSubstitution, StreamCheck};
use plumb_policy::{FailureClass, Target};

use super::Request;
use crate::attempt::Answer;
use crate::classify::{Failure, Phase};
use crate::completion::Collected;
use crate::completion::Whole;
use crate::payload::Operation;
use crate::verify::{self, StreamCollector};

/// A successful attempt's answer, checked, with what it said of itself.
pub(super) struct Checked {
    pub(super) answer: Answer,
    /// Input and output tokens of a whole answer.
    pub(super) usage: Option<(u64, u64)>,
}

/// What an answer said of itself, whether or not it passed the checks.
#[derive(Default)]
pub(super) struct Named {
    /// The model it names.
    pub(super) model: Option<String>,
    /// When that is another model than the target was asked for.
    pub(super) substituted: Option<String>,
}

impl Request<'_> {
    /// Whether the route's contract holds a stream until its end, to check it before commit.
    pub(super) fn holds_whole_stream(&self) -> bool {
        self.route.contract.as_ref().is_some_and(|c| {
            c.streams == StreamCheck::BeforeCommit && c.applies(self.request_schema.is_some())
        })
    }

    /// Checks what an answer says: the model it names, then the route's contract (a whole
    /// answer, or a stream held whole; a stream committed earlier is checked at its end). A
    /// contract failure carries the rejected answer, for a repair.
    pub(super) async fn check(
        &self,
        target: &Target,
        op: Operation,
        answer: Answer,
    ) -> (Result<Checked, Failure>, Named) {
        let family = self.request.family_for(target);
        if op != Operation::Chat {
            return (
                Ok(Checked {
                    answer,
                    usage: None,
                }),
                Named::default(),
            );
        }
        let (collected, complete, usage) = match &answer {
            Answer::Whole {
                whole: Whole::Chat(c),
                ..
            } => (verify::whole(c), !c.pending(), c.usage()),
            Answer::Whole {
                whole: Whole::Embeddings(_),
                ..
            } => (Collected::default(), false, None),
            Answer::Stream { first, .. } => {
                let mut collector = StreamCollector::new(family);
                for (_, event) in &first.events {
                    collector.event(event);
                }
                (collector.into_collected(), self.holds_whole_stream(), None)
            }
        };
        let named = Named {
            substituted: verify::substituted(target, &collected).map(str::to_owned),
            model: collected.model.clone(),
        };
        let fail_on_substitution = self
            .route
            .contract
            .as_ref()
            .is_some_and(|c| c.model_substitution == ModelSubstitution::Fail);
        if let (Some(answered), true) = (&named.substituted, fail_on_substitution) {
            let f = Failure::new(
                FailureClass::ModelSubstituted,
                Phase::Body,
                format!(
                    "the target was asked for model {:?} and answered as {answered:?}",
                    target.model
                ),
            );
            return (Err(f), named);
        }
        if complete {
            let (verdict, collected) = verify::check_bounded(
                self.route.clone(),
                self.request.clone(),
                self.request_schema.cloned(),
                collected,
            )
            .await;
            if let Err(v) = verdict {
                let mut f = Failure::new(v.class, Phase::Body, v.to_string());
                f.check = Some(v.check);
                f.rejected = collected.map(Box::new);
                return (Err(f), named);
            }
        }
        (Ok(Checked { answer, usage }), named)
    }
}
