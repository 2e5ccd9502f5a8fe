//! Which required variables each slot's current generation has.
//!
//! Up to 64 required variables (the usual case: a handful), presence is one
//! `u64` bit mask per slot: setting a bit and testing completeness are a
//! load, an OR and a compare against the full mask. Beyond 64, each slot
//! holds a `roaring::RoaringBitmap` over variable indices, which stays small
//! for the sparse early state of a wide record and compresses the dense late
//! state. Both sit behind one enum, matched per fragment (a perfectly
//! predicted branch).

use roaring::RoaringBitmap;

/// Per-slot sets of present variable indices.
#[derive(Debug)]
pub(crate) enum Presence {
    /// One bit per variable, `vars <= 64`.
    Narrow {
        /// Per slot.
        masks: Vec<u64>,
        /// All `vars` bits set.
        full: u64,
    },
    /// A bitmap per slot, `vars > 64`.
    Wide {
        /// Per slot.
        sets: Vec<RoaringBitmap>,
        /// The number of required variables.
        vars: u64,
    },
}

impl Presence {
    /// Empty sets for `vars` required variables.
    pub(crate) fn new(vars: usize) -> Self {
        if vars <= 64 {
            let full = if vars == 64 { u64::MAX } else { (1u64 << vars) - 1 };
            Presence::Narrow { masks: Vec::new(), full }
        } else {
            Presence::Wide { sets: Vec::new(), vars: vars as u64 }
        }
    }

    /// Makes room for `slots` slots (new slots are empty).
    pub(crate) fn grow(&mut self, slots: usize) {
        match self {
            Presence::Narrow { masks, .. } => masks.resize(slots.max(masks.len()), 0),
            Presence::Wide { sets, .. } => {
                if sets.len() < slots {
                    sets.resize_with(slots, RoaringBitmap::new);
                }
            }
        }
    }

    /// Marks `var` present in `slot`; `false` if it already was.
    #[inline(always)]
    pub(crate) fn insert(&mut self, slot: u32, var: u32) -> bool {
        match self {
            Presence::Narrow { masks, .. } => {
                let m = &mut masks[slot as usize];
                let bit = 1u64 << var;
                let new = *m & bit == 0;
                *m |= bit;
                new
            }
            Presence::Wide { sets, .. } => sets[slot as usize].insert(var),
        }
    }

    /// Whether every variable is present in `slot`.
    #[inline(always)]
    pub(crate) fn is_full(&self, slot: u32) -> bool {
        match self {
            Presence::Narrow { masks, full } => masks[slot as usize] == *full,
            Presence::Wide { sets, vars } => sets[slot as usize].len() == *vars,
        }
    }

    /// Hints that `slot`'s set will be read soon.
    #[inline(always)]
    pub(crate) fn prefetch(&self, slot: u32) {
        if let Presence::Narrow { masks, .. } = self {
            crate::prefetch::prefetch(masks, slot as usize);
        }
    }

    /// Whether `var` is present in `slot`.
    pub(crate) fn contains(&self, slot: u32, var: u32) -> bool {
        match self {
            Presence::Narrow { masks, .. } => masks[slot as usize] & (1u64 << var) != 0,
            Presence::Wide { sets, .. } => sets[slot as usize].contains(var),
        }
    }

    /// How many variables are present in `slot`.
    pub(crate) fn count(&self, slot: u32) -> u32 {
        match self {
            Presence::Narrow { masks, .. } => masks[slot as usize].count_ones(),
            Presence::Wide { sets, .. } => sets[slot as usize].len() as u32,
        }
    }

    /// Empties `slot`'s set (its generation ended).
    #[inline]
    pub(crate) fn clear(&mut self, slot: u32) {
        match self {
            Presence::Narrow { masks, .. } => masks[slot as usize] = 0,
            Presence::Wide { sets, .. } => sets[slot as usize].clear(),
        }
    }

    /// Drops every slot.
    pub(crate) fn reset(&mut self) {
        match self {
            Presence::Narrow { masks, .. } => masks.clear(),
            Presence::Wide { sets, .. } => sets.clear(),
        }
    }

    /// Approximate bytes held.
    pub(crate) fn bytes_held(&self) -> usize {
        match self {
            Presence::Narrow { masks, .. } => masks.capacity() * 8,
            Presence::Wide { sets, .. } => {
                sets.capacity() * std::mem::size_of::<RoaringBitmap>()
                    + sets.iter().map(RoaringBitmap::serialized_size).sum::<usize>()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill_in_any_order(p: &mut Presence, vars: u32) {
        p.grow(2);
        let order: Vec<u32> = (0..vars).rev().collect();
        for (n, &v) in order.iter().enumerate() {
            assert!(!p.is_full(1));
            assert!(p.insert(1, v));
            assert!(!p.insert(1, v), "a repeat is reported");
            assert_eq!(p.count(1), n as u32 + 1);
        }
        assert!(p.is_full(1));
        assert_eq!(p.count(0), 0);
        p.clear(1);
        assert_eq!(p.count(1), 0);
    }

    #[test]
    fn narrow_masks_up_to_64_variables() {
        for vars in [1, 4, 63, 64] {
            let mut p = Presence::new(vars as usize);
            assert!(matches!(p, Presence::Narrow { .. }));
            fill_in_any_order(&mut p, vars);
        }
    }

    #[test]
    fn roaring_sets_beyond_64_variables() {
        let mut p = Presence::new(100);
        assert!(matches!(p, Presence::Wide { .. }));
        fill_in_any_order(&mut p, 100);
        assert!(p.bytes_held() > 0);
    }
}
