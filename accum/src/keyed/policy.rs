//! Emission policies shared by every keyed accumulator: when a key
//! generation is closed besides its own completeness condition, and what
//! happens to what arrives after.

use std::{fmt, sync::Arc, time::Duration};

use super::KeyView;
use crate::time::{duration_millis, Millis};

/// What happens to a key's fragments after its generation completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterComplete {
    /// The next fragment opens a new generation, a new output row (the default).
    #[default]
    Restart,
    /// Later fragments of the key are rejected (counted in
    /// [`AccumStats::dropped_after_complete`](crate::AccumStats::dropped_after_complete)
    /// and sent to the dead-letter output) until the completed generation's
    /// deadline passes (its TTL or max latency), or for the rest of the input
    /// when no deadline is set. The completed key stays interned meanwhile
    /// ([`AccumStats::completed_marks`](crate::AccumStats::completed_marks));
    /// `max_keys` does not bound these marks, so set a TTL on an unbounded
    /// stream.
    Drop,
}

/// A user completeness predicate over a key generation's state: the
/// generation is emitted as soon as it holds (see [`Policies::complete_when`]).
#[derive(Clone)]
pub struct Predicate(pub(crate) Arc<dyn Fn(&KeyView<'_>) -> bool + Send + Sync>);

impl fmt::Debug for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Predicate(..)")
    }
}

/// The policies of one accumulator. Every policy is off by default; each
/// can be used alone or combined with the others. Set them through the
/// [`WithPolicies`] methods of an accumulator's builder.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// Emit a generation once it holds this many fragments (reason `max_items`).
    pub max_items: Option<u64>,
    /// Emit a generation once its values hold this many bytes (reason `max_bytes`).
    pub max_bytes: Option<u64>,
    /// Emit what is there once a generation has waited this long since its
    /// first fragment (reason `max_latency`).
    pub max_latency: Option<Duration>,
    /// TTL: an incomplete generation is flushed as a partial (reason `ttl`),
    /// or dead-lettered when `partial_flush` is `false`, once the watermark
    /// (event time) or the clock (processing time) is past its first
    /// fragment's time plus this.
    pub partial_flush_after: Option<Duration>,
    /// `false`: generations expired by the TTL go to the dead-letter output
    /// instead of the output. Default `true`.
    pub partial_flush: Option<bool>,
    /// What later fragments of a completed key do.
    pub after_complete: AfterComplete,
    /// At most this many open generations: opening one more evicts the least
    /// recently touched one as a partial (reason `evicted`). The limit holds
    /// per accumulator instance: an engine running `n` hash shards holds up
    /// to `n` times this many.
    pub max_keys: Option<u64>,
    /// Event time: a fragment older than the watermark minus this is late:
    /// counted and sent to the dead-letter output. `None`: no fragment is
    /// late. Windows stay open this much past their end (a tumbling window
    /// until the watermark passes its end plus this; a session until it
    /// passes its last fragment plus the gap plus this); a fragment of a
    /// window the watermark already closed is late whatever this is. Each
    /// key holds one window at a time: a fragment of a later tumbling window
    /// closes the key's open one, so this covers disorder *across* keys.
    /// The watermark is this instance's: with several hash shards, each
    /// shard's watermark follows its own rows and the input-wide watermark
    /// the engine passes on.
    pub allowed_lateness: Option<Duration>,
    /// An extra completeness condition (reason `predicate` when it holds
    /// before the accumulator's own condition).
    pub complete_when: Option<Predicate>,
    /// May spill generations out of memory when the run's memory budget is
    /// exhausted (an engine stage then calls
    /// [`KeyedAccumulator::spill_to`](super::KeyedAccumulator::spill_to)).
    pub spill: bool,
}

impl Policies {
    /// Whether TTL-expired generations are emitted (`true`, the default) or
    /// dead-lettered.
    pub fn flushes_partials(&self) -> bool {
        self.partial_flush.unwrap_or(true)
    }

    /// The time from a generation's first fragment to its deadline, and the
    /// deadline's reason: the shorter of TTL and max latency (the TTL on a tie).
    pub(crate) fn deadline(&self) -> Option<(Millis, super::EmitReason)> {
        use super::EmitReason::{MaxLatency, Ttl};
        match (self.partial_flush_after.map(duration_millis), self.max_latency.map(duration_millis)) {
            (None, None) => None,
            (Some(ttl), None) => Some((ttl, Ttl)),
            (None, Some(lat)) => Some((lat, MaxLatency)),
            (Some(ttl), Some(lat)) if ttl <= lat => Some((ttl, Ttl)),
            (Some(_), Some(lat)) => Some((lat, MaxLatency)),
        }
    }
}

/// The policy setters, shared by every accumulator builder that holds
/// [`Policies`] ([`VarSet`](crate::VarSet), [`CountAccumulator`](crate::CountAccumulator),
/// [`WindowAccumulator`](crate::WindowAccumulator) and your own).
///
/// ```
/// use std::time::Duration;
/// use garner_accum::{AfterComplete, VarSet, WithPolicies};
///
/// let spec = VarSet::keyed("subject_id")
///     .require(["id", "name", "limit"])
///     .partial_flush_after(Duration::from_secs(10))
///     .max_keys(1_000_000)
///     .after_complete(AfterComplete::Drop)
///     .complete_when(|k| k.has("id") && k.has("limit"));
/// assert_eq!(spec.policies().max_keys, Some(1_000_000));
/// ```
pub trait WithPolicies: Sized {
    /// The policies, to read.
    fn policies(&self) -> &Policies;
    /// The policies, to change.
    fn policies_mut(&mut self) -> &mut Policies;

    /// Emit a generation once it holds `n` fragments (reason `max_items`).
    fn max_items(mut self, n: u64) -> Self {
        self.policies_mut().max_items = Some(n);
        self
    }
    /// Emit a generation once its values hold `bytes` bytes (reason `max_bytes`).
    fn max_bytes(mut self, bytes: u64) -> Self {
        self.policies_mut().max_bytes = Some(bytes);
        self
    }
    /// Emit what is there once a generation has waited `d` since its first
    /// fragment (reason `max_latency`, unless the TTL is not longer).
    fn max_latency(mut self, d: Duration) -> Self {
        self.policies_mut().max_latency = Some(d);
        self
    }
    /// TTL: a generation still incomplete `ttl` after its first fragment is
    /// emitted as a partial (reason `ttl`).
    fn partial_flush_after(mut self, ttl: Duration) -> Self {
        self.policies_mut().partial_flush_after = Some(ttl);
        self
    }
    /// `false`: TTL-expired generations go to the dead-letter output instead.
    fn partial_flush(mut self, on: bool) -> Self {
        self.policies_mut().partial_flush = Some(on);
        self
    }
    /// What later fragments of a completed key do.
    fn after_complete(mut self, policy: AfterComplete) -> Self {
        self.policies_mut().after_complete = policy;
        self
    }
    /// At most `n` open generations; the least recently touched one is
    /// evicted as a partial (reason `evicted`) to make room.
    fn max_keys(mut self, n: u64) -> Self {
        self.policies_mut().max_keys = Some(n);
        self
    }
    /// Event time: fragments older than the watermark minus `d` are late
    /// (counted, dead-lettered).
    fn allowed_lateness(mut self, d: Duration) -> Self {
        self.policies_mut().allowed_lateness = Some(d);
        self
    }
    /// Spill generations out of memory when the run's memory budget is
    /// exhausted (they come back with their key's next fragment).
    fn spill_on_pressure(mut self, on: bool) -> Self {
        self.policies_mut().spill = on;
        self
    }
    /// An extra completeness condition over the key's state, checked after
    /// every fragment; called once per applied fragment, so keep it cheap.
    fn complete_when(mut self, predicate: impl Fn(&KeyView<'_>) -> bool + Send + Sync + 'static) -> Self {
        self.policies_mut().complete_when = Some(Predicate(Arc::new(predicate)));
        self
    }
}

/// Implements [`AccumulatorSpec`](super::AccumulatorSpec) and
/// [`WithPolicies`] for a builder with fields `key: Vec<String>` and
/// `policies: Policies` and a `build(&self, &SchemaRef)` method returning a
/// [`KeyedAccumulator`](super::KeyedAccumulator): its kind name and how its
/// time mode is read are the arguments.
macro_rules! keyed_builder {
    ($ty:ty, $kind:literal, |$s:ident| $time:expr) => {
        impl $crate::keyed::AccumulatorSpec for $ty {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn key_columns(&self) -> Vec<String> {
                self.key.clone()
            }
            fn time_mode(&self) -> $crate::TimeMode {
                let $s = self;
                $time
            }
            fn build_dyn(
                &self,
                input: &arrow_schema::SchemaRef,
            ) -> $crate::Result<Box<dyn $crate::keyed::RunningAccumulator>> {
                Ok(Box::new(self.build(input)?))
            }
            fn spills(&self) -> bool {
                self.policies.spill
            }
        }

        impl $crate::keyed::WithPolicies for $ty {
            fn policies(&self) -> &$crate::keyed::Policies {
                &self.policies
            }
            fn policies_mut(&mut self) -> &mut $crate::keyed::Policies {
                &mut self.policies
            }
        }
    };
}
pub(crate) use keyed_builder;
