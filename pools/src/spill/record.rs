//! The record frame every tier stores, and the codec that builds and checks it.
//!
//! ```text
//!  0      4        8       12
//!  +------+--------+-------+--------------------------------------------+
//!  | magic| stored | crc32 | stored bytes                               |
//!  |      | len u32| u32   |  plain:  size u32 | lz4 block              |
//!  |      |        |       |  sealed: nonce 12 | AES-GCM(size | lz4) | tag 16
//!  +------+--------+-------+--------------------------------------------+
//! ```
//!
//! `magic` is `GSP1` for a plain record and `GSE1` for a sealed one; `size` is
//! the payload length (what `lz4_flex::block::compress_prepend_size` would
//! prepend). The checksum is crc32 over the record's sequence number
//! (little-endian u32) followed by the stored bytes, so a handle whose place
//! was reused by another record fails the check instead of reading its data.
//! Integers are little-endian.
//!
//! Any single flipped byte is caught: in the magic by the magic check, in the
//! length by comparison with the handle, in the checksum or the stored bytes
//! by crc32 (which detects every error burst up to 32 bits).

use lz4_flex::block::{compress_into_with_table, decompress_into, get_maximum_output_size, CompressTable};

use super::seal::{Sealer, NONCE_BYTES, TAG_BYTES};
use super::{SpillError, Tier};

/// Bytes of the frame header: magic, stored length, checksum.
pub(crate) const HEADER_BYTES: usize = 12;
const PLAIN_MAGIC: [u8; 4] = *b"GSP1";
const SEALED_MAGIC: [u8; 4] = *b"GSE1";
const SIZE_BYTES: usize = 4;

/// Builds frames into a reused scratch buffer and checks frames read back.
pub(crate) struct Codec {
    frame: Vec<u8>,
    table: CompressTable,
    sealer: Option<Sealer>,
}

impl Codec {
    pub(crate) fn new(sealer: Option<Sealer>) -> Self {
        Self { frame: Vec::new(), table: CompressTable::default(), sealer }
    }

    /// Upper bound of the framed size of a `payload_len`-byte payload.
    fn max_frame_bytes(&self, payload_len: usize) -> usize {
        let seal = if self.sealer.is_some() { NONCE_BYTES + TAG_BYTES } else { 0 };
        HEADER_BYTES + seal + SIZE_BYTES + get_maximum_output_size(payload_len)
    }

    /// Frames `payload` as record `seq`; `Err(frame bound)` when the payload is
    /// too large for a frame's u32 fields.
    pub(crate) fn encode(&mut self, payload: &[u8], seq: u32) -> Result<&[u8], u64> {
        let max = self.max_frame_bytes(payload.len());
        let Ok(size) = u32::try_from(payload.len()) else { return Err(max as u64) };
        if self.frame.len() < max {
            // Grows only; later frames overwrite without clearing.
            self.frame.resize(max, 0);
        }
        let seal_head = if self.sealer.is_some() { NONCE_BYTES } else { 0 };
        let lz_start = HEADER_BYTES + seal_head;
        let data_start = lz_start + SIZE_BYTES;
        self.frame[lz_start..data_start].copy_from_slice(&size.to_le_bytes());
        let compressed = compress_into_with_table(payload, &mut self.frame[data_start..], &mut self.table)
            .expect("lz4 output buffer sized by get_maximum_output_size");
        let mut end = data_start + compressed;
        let magic = match &mut self.sealer {
            None => PLAIN_MAGIC,
            Some(sealer) => {
                end += TAG_BYTES;
                sealer.seal(seq, &mut self.frame[HEADER_BYTES..end]);
                SEALED_MAGIC
            }
        };
        if u32::try_from(end).is_err() {
            return Err(end as u64);
        }
        let stored_len = (end - HEADER_BYTES) as u32;
        let crc = checksum(seq, &self.frame[HEADER_BYTES..end]);
        self.frame[0..4].copy_from_slice(&magic);
        self.frame[4..8].copy_from_slice(&stored_len.to_le_bytes());
        self.frame[8..12].copy_from_slice(&crc.to_le_bytes());
        Ok(&self.frame[..end])
    }

    /// Checks `frame` (read from `tier` for record `seq`) and returns its
    /// payload. `plain` is scratch for decryption.
    pub(crate) fn decode(
        &self,
        frame: &[u8],
        seq: u32,
        tier: Tier,
        plain: &mut Vec<u8>,
    ) -> Result<Vec<u8>, SpillError> {
        let Some((header, stored)) = frame.split_first_chunk::<HEADER_BYTES>() else {
            return Err(SpillError::corrupted(tier, "record shorter than its header"));
        };
        let sealed = if header[0..4] == PLAIN_MAGIC {
            false
        } else if header[0..4] == SEALED_MAGIC {
            true
        } else {
            return Err(SpillError::corrupted(tier, "bad magic"));
        };
        let stored_len = read_u32(&header[4..8]);
        if stored_len as usize != stored.len() {
            return Err(SpillError::corrupted(
                tier,
                format!("length field says {stored_len} bytes, the record has {}", stored.len()),
            ));
        }
        if checksum(seq, stored) != read_u32(&header[8..12]) {
            return Err(SpillError::corrupted(tier, "checksum mismatch"));
        }
        match (sealed, &self.sealer) {
            (false, None) => decompress(stored, tier),
            (true, Some(sealer)) => {
                if !sealer.open(seq, stored, plain) {
                    return Err(SpillError::corrupted(
                        tier,
                        "decryption failed (wrong key or tampered record)",
                    ));
                }
                decompress(plain, tier)
            }
            (false, Some(_)) => {
                Err(SpillError::corrupted(tier, "record is not encrypted but the store has a key"))
            }
            (true, None) => Err(SpillError::corrupted(tier, "record is encrypted but the store has no key")),
        }
    }
}

/// crc32 over the sequence number then the stored bytes.
fn checksum(seq: u32, stored: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(stored);
    hasher.finalize()
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    u32::from_le_bytes(word)
}

/// Decompresses `size u32 | lz4 block` into a new vector.
fn decompress(lz: &[u8], tier: Tier) -> Result<Vec<u8>, SpillError> {
    if lz.len() < SIZE_BYTES {
        return Err(SpillError::corrupted(tier, "compressed body shorter than its size prefix"));
    }
    let (size, block) = lz.split_at(SIZE_BYTES);
    let size = read_u32(size) as usize;
    // lz4 expands at most ~255x; refuse a size no block of this length can
    // produce rather than allocate it.
    if size > block.len().saturating_mul(256).saturating_add(64) {
        return Err(SpillError::corrupted(tier, format!("implausible payload size {size}")));
    }
    let mut out = vec![0u8; size];
    match decompress_into(block, &mut out) {
        Ok(n) if n == size => Ok(out),
        Ok(n) => Err(SpillError::corrupted(tier, format!("lz4 block gave {n} bytes, expected {size}"))),
        Err(e) => Err(SpillError::corrupted(tier, format!("lz4: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_reports_its_layout() {
        let mut codec = Codec::new(None);
        let payload = b"abcabcabcabcabcabcabcabc".repeat(10);
        let frame = codec.encode(&payload, 7).unwrap().to_vec();
        assert_eq!(&frame[0..4], b"GSP1");
        assert_eq!(read_u32(&frame[4..8]) as usize, frame.len() - HEADER_BYTES);
        assert!(frame.len() < payload.len(), "repetitive payload compresses");
        assert_eq!(codec.decode(&frame, 7, Tier::Memory, &mut Vec::new()).unwrap(), payload);
    }

    #[test]
    fn every_flipped_byte_and_a_wrong_sequence_number_are_caught() {
        let mut codec = Codec::new(None);
        let frame = codec.encode(b"some payload, some payload", 3).unwrap().to_vec();
        for at in 0..frame.len() {
            let mut bad = frame.clone();
            bad[at] ^= 0xFF;
            let err = codec.decode(&bad, 3, Tier::File, &mut Vec::new()).unwrap_err();
            assert!(matches!(err, SpillError::Corrupted { tier: Tier::File, .. }), "byte {at}: {err}");
        }
        assert!(codec.decode(&frame, 4, Tier::File, &mut Vec::new()).is_err());
        assert!(codec.decode(&frame[..5], 3, Tier::File, &mut Vec::new()).is_err());
    }

    #[test]
    fn the_scratch_buffer_is_reused_for_a_smaller_frame() {
        let mut codec = Codec::new(None);
        let big = vec![9u8; 10_000];
        codec.encode(&big, 0).unwrap();
        let capacity = codec.frame.capacity();
        let small = codec.encode(b"xy", 1).unwrap().to_vec();
        assert_eq!(codec.frame.capacity(), capacity);
        assert_eq!(codec.decode(&small, 1, Tier::Memory, &mut Vec::new()).unwrap(), b"xy");
    }

    #[test]
    fn an_empty_payload_round_trips() {
        let mut codec = Codec::new(None);
        let frame = codec.encode(&[], 0).unwrap().to_vec();
        assert!(codec.decode(&frame, 0, Tier::Mapped, &mut Vec::new()).unwrap().is_empty());
    }
}
