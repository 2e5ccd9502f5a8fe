//! Software prefetch: a hint to bring the cache line holding an element
//! into cache ahead of its use, so the cache misses of a batch's random
//! accesses overlap instead of queuing one after another.

/// Hints that `slice[index]` will be read soon. Out-of-range indices are
/// fine (nothing happens); on targets without a prefetch instruction this
/// does nothing.
#[inline(always)]
pub(crate) fn prefetch<T>(slice: &[T], index: usize) {
    if index >= slice.len() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let ptr = slice.as_ptr().wrapping_add(index).cast::<i8>();
        // SAFETY: `_mm_prefetch` only needs SSE, which every x86_64 CPU has
        // (it is in the target's baseline features). A prefetch is a hint:
        // it never faults, never writes and has no effect visible to the
        // program; `ptr` is moreover inside `slice` (checked above).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_in_and_out_of_range_changes_nothing() {
        let v: Vec<u64> = (0..1000).collect();
        for i in [0, 1, 500, 999, 1000, usize::MAX] {
            prefetch(&v, i);
        }
        prefetch::<u8>(&[], 0);
        assert_eq!(v.iter().sum::<u64>(), 999 * 1000 / 2);
    }
}
