//! Plain counters an accumulator reports; the engine's telemetry turns them
//! into metrics (`accumulator_active_keys`, ...).

/// Counters of one accumulator instance since it was built.
///
/// Every fragment row pushed is counted in `fragments_in`; of those, rows with
/// a null key are counted in `null_key_fragments`, rows whose variable is not
/// required (or null) in `unknown_var_fragments`, and repeats of a variable
/// within one key generation in `duplicate_fragments`. Every other row set one
/// variable of one output row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccumStats {
    /// Fragment rows pushed.
    pub fragments_in: u64,
    /// Rows emitted (complete + partial).
    pub rows_out: u64,
    /// Rows emitted with every required variable (`acc_reason = "complete"`).
    pub complete: u64,
    /// Rows emitted with some variable missing (reason `ttl`, `max_latency` or
    /// `end_of_input`).
    pub partial: u64,
    /// Key generations currently held (not yet emitted).
    pub active_keys: u64,
    /// Fragments that repeated a variable already present in their key
    /// generation (kept or overwritten according to the repeat policy).
    pub duplicate_fragments: u64,
    /// Fragments whose variable is not required, or null; they are ignored.
    pub unknown_var_fragments: u64,
    /// Fragments with a null in a key column; they are ignored.
    pub null_key_fragments: u64,
    /// Approximate bytes held by the state: value and key arenas, per-slot
    /// vectors, the key table and the deadline heap (capacities, not lengths).
    pub bytes_held: u64,
}

impl AccumStats {
    /// Fragments that contributed to some output row (everything not ignored).
    pub fn applied_fragments(&self) -> u64 {
        self.fragments_in - self.null_key_fragments - self.unknown_var_fragments
    }

    /// Adds `other`'s counts: the figures of several instances (shards) of
    /// one accumulator stage.
    pub fn merge(&mut self, other: &AccumStats) {
        self.fragments_in += other.fragments_in;
        self.rows_out += other.rows_out;
        self.complete += other.complete;
        self.partial += other.partial;
        self.active_keys += other.active_keys;
        self.duplicate_fragments += other.duplicate_fragments;
        self.unknown_var_fragments += other.unknown_var_fragments;
        self.null_key_fragments += other.null_key_fragments;
        self.bytes_held += other.bytes_held;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_fragments_exclude_the_ignored_ones() {
        let s = AccumStats {
            fragments_in: 10,
            null_key_fragments: 2,
            unknown_var_fragments: 3,
            ..Default::default()
        };
        assert_eq!(s.applied_fragments(), 5);
    }

    #[test]
    fn merge_adds_every_count() {
        let one = AccumStats {
            fragments_in: 4,
            complete: 1,
            partial: 1,
            active_keys: 2,
            bytes_held: 10,
            ..Default::default()
        };
        let mut sum = one.clone();
        sum.merge(&one);
        assert_eq!(
            sum,
            AccumStats {
                fragments_in: 8,
                complete: 2,
                partial: 2,
                active_keys: 4,
                bytes_held: 20,
                ..Default::default()
            }
        );
    }
}
