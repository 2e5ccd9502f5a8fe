//! The accumulator-aware effective queue of DESIGN §7:
//! `raw + pending_accumulator_bytes / bytes_unit + active_spills · spill_penalty`.

use crate::Pressure;

/// How state and spills count as queued units. With
/// [`RunOptions::with_effective_queue`](crate::RunOptions::with_effective_queue),
/// the parallel engines give a producer room on a link only while the
/// receiver's effective queue is under the link's capacity (an empty link
/// always has room, so the receiver is never starved): a stage holding much
/// state, or spilling, slows its producers down before its mailbox is full.
///
/// ```
/// use garner_engine::flow::EffectiveQueue;
/// use garner_engine::Pressure;
/// let q = EffectiveQueue { bytes_unit: 1 << 20, spill_penalty: 4.0 };
/// let p = Pressure { latent_bytes: 3 << 20, active_spills: 1, ..Pressure::default() };
/// assert_eq!(q.size(2, &p), 2.0 + 3.0 + 4.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectiveQueue {
    /// State bytes that count as one queued unit.
    pub bytes_unit: u64,
    /// Queued units one spill in progress counts for.
    pub spill_penalty: f64,
}

impl Default for EffectiveQueue {
    /// 1 MiB a unit, 4 units a spill (what the telemetry's
    /// `effective_queue_size` uses).
    fn default() -> Self {
        Self {
            bytes_unit: crate::telemetry::EFFECTIVE_QUEUE_BYTES_UNIT,
            spill_penalty: crate::telemetry::EFFECTIVE_QUEUE_SPILL_PENALTY,
        }
    }
}

impl EffectiveQueue {
    /// The effective queue of a stage with `raw` queued units and `pressure`.
    pub fn size(&self, raw: usize, pressure: &Pressure) -> f64 {
        raw as f64 + self.extra(pressure.latent_bytes, u64::from(pressure.active_spills))
    }

    /// What state and spills add to the queue, in units.
    pub fn extra(&self, latent_bytes: u64, active_spills: u64) -> f64 {
        latent_bytes as f64 / self.bytes_unit.max(1) as f64 + active_spills as f64 * self.spill_penalty
    }
}
