//! Sealing of record bodies with AES-256-GCM (feature `encrypt`).
//!
//! A sealed body is `nonce (12) | ciphertext | tag (16)`. The nonce is a
//! random 96-bit base drawn once per store from the OS, plus a per-record
//! counter added to its low 64 bits: unique for every record of a store and,
//! with overwhelming probability, across stores that share a key. The
//! record's sequence number is the associated data, so a sealed body moved to
//! another record's place fails to open.
//!
//! Without the feature, [`Sealer`] is an uninhabited type: the store's
//! `Option<Sealer>` is always `None` and the sealed paths compile away.

/// Bytes of the nonce stored in front of a sealed body.
pub(crate) const NONCE_BYTES: usize = 12;
/// Bytes of the authentication tag stored after a sealed body.
pub(crate) const TAG_BYTES: usize = 16;

#[cfg(feature = "encrypt")]
pub(crate) use sealed::Sealer;
#[cfg(not(feature = "encrypt"))]
pub(crate) use unsealed::Sealer;

#[cfg(feature = "encrypt")]
mod sealed {
    use aes_gcm::aead::rand_core::RngCore;
    use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
    use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};

    use super::{NONCE_BYTES, TAG_BYTES};
    use crate::SpillError;

    /// Encrypts and authenticates record bodies under one key.
    pub(crate) struct Sealer {
        cipher: Aes256Gcm,
        nonce_base: [u8; NONCE_BYTES],
        counter: u64,
    }

    impl Sealer {
        /// A sealer for `key`, with a fresh random nonce base.
        pub(crate) fn new(key: &[u8; 32]) -> Result<Self, SpillError> {
            let mut nonce_base = [0u8; NONCE_BYTES];
            OsRng
                .try_fill_bytes(&mut nonce_base)
                .map_err(|e| SpillError::io("<os random source>", std::io::Error::other(e.to_string())))?;
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
            Ok(Self { cipher, nonce_base, counter: 0 })
        }

        fn next_nonce(&mut self) -> [u8; NONCE_BYTES] {
            let mut nonce = self.nonce_base;
            let (_, low) = nonce.split_at_mut(NONCE_BYTES - 8);
            let mut low_bytes = [0u8; 8];
            low_bytes.copy_from_slice(low);
            let value = u64::from_le_bytes(low_bytes).wrapping_add(self.counter);
            low.copy_from_slice(&value.to_le_bytes());
            self.counter = self.counter.wrapping_add(1);
            nonce
        }

        /// Seals `region` in place: `region` is `nonce slot | plaintext | tag
        /// slot`; the nonce and tag slots are filled in.
        pub(crate) fn seal(&mut self, seq: u32, region: &mut [u8]) {
            let nonce = self.next_nonce();
            let (nonce_slot, rest) = region.split_at_mut(NONCE_BYTES);
            let (body, tag_slot) = rest.split_at_mut(rest.len() - TAG_BYTES);
            nonce_slot.copy_from_slice(&nonce);
            let tag = self
                .cipher
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), &seq.to_le_bytes(), body)
                // Fails only for bodies past 64 GiB, far above a u32-framed record.
                .expect("AES-GCM body within its length limit");
            tag_slot.copy_from_slice(&tag);
        }

        /// Opens a sealed `stored` body into `plain`; false if it is too short
        /// or fails authentication (wrong key, tampered bytes, wrong record).
        pub(crate) fn open(&self, seq: u32, stored: &[u8], plain: &mut Vec<u8>) -> bool {
            if stored.len() < NONCE_BYTES + TAG_BYTES {
                return false;
            }
            let (nonce, rest) = stored.split_at(NONCE_BYTES);
            let (body, tag) = rest.split_at(rest.len() - TAG_BYTES);
            plain.clear();
            plain.extend_from_slice(body);
            self.cipher
                .decrypt_in_place_detached(
                    Nonce::from_slice(nonce),
                    &seq.to_le_bytes(),
                    plain,
                    Tag::from_slice(tag),
                )
                .is_ok()
        }
    }
}

#[cfg(not(feature = "encrypt"))]
mod unsealed {
    /// Uninhabited without the `encrypt` feature: no record is ever sealed.
    pub(crate) enum Sealer {}

    impl Sealer {
        pub(crate) fn seal(&mut self, _seq: u32, _region: &mut [u8]) {
            match *self {}
        }

        pub(crate) fn open(&self, _seq: u32, _stored: &[u8], _plain: &mut Vec<u8>) -> bool {
            match *self {}
        }
    }
}
