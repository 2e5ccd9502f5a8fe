//! Hash functions for interning keys and variable names.
//!
//! The hashes only feed tables owned by one accumulator (the key
//! [`SlotTable`](crate::slot_table) and the variable lookup's
//! `hashbrown::HashTable`), so they need to be fast and to spread bits over
//! the whole word, not to be stable or keyed. Byte strings use the folded
//! 64×64→128-bit multiply of foldhash / wyhash; integers a bijective mixer.
//! Key flooding is not a concern here: the keys come from the pipeline's own
//! data and a collision only costs probe time.

const SEED: u64 = 0x243f_6a88_85a3_08d3;
const MUL_A: u64 = 0x9e37_79b9_7f4a_7c15;
const MUL_B: u64 = 0xbf58_476d_1ce4_e5b9;

#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// Hash of an integer key (already widened to `u64`): the murmur3 / splitmix
/// finalizer, a *bijection* on `u64` (each xor-shift and each odd multiply is
/// invertible), so two keys have equal hashes only if they are equal and the
/// key table never needs to compare the keys themselves.
#[inline(always)]
pub(crate) fn hash_u64(value: u64) -> u64 {
    let mut k = value ^ SEED;
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Hash of a byte string (an encoded key row or a variable name).
#[inline]
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = SEED ^ (bytes.len() as u64).wrapping_mul(MUL_B);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact(8) yields 8 bytes"));
        h = folded_multiply(h ^ word, MUL_A);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut tail = [0u8; 8];
        tail[..rest.len()].copy_from_slice(rest);
        h = folded_multiply(h ^ u64::from_le_bytes(tail), MUL_B);
    }
    folded_multiply(h, MUL_A)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn sequential_integers_fill_low_bits_and_tags() {
        let buckets: HashSet<u64> = (0..4096u64).map(|v| hash_u64(v) & 4095).collect();
        assert!(buckets.len() > 2_400, "{} distinct buckets", buckets.len());
        let tags: HashSet<u64> = (0..4096u64).map(|v| hash_u64(v) >> 57).collect();
        assert_eq!(tags.len(), 128);
    }

    #[test]
    fn byte_hashes_depend_on_every_byte_and_on_length() {
        let a = hash_bytes(b"subject-000001");
        assert_ne!(a, hash_bytes(b"subject-000002"));
        assert_ne!(hash_bytes(b"ab"), hash_bytes(b"ab\0"));
        assert_ne!(hash_bytes(b""), hash_bytes(b"\0"));
        assert_eq!(a, hash_bytes(b"subject-000001"));
    }
}
