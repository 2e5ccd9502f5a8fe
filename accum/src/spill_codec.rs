//! The byte layout of spilled generations: small helpers to write and read
//! values (absent, null, or bytes) and integers, with every read checked,
//! so a bad record is an error and never a panic.

use crate::error::{Error, Result};

const ABSENT: u8 = 0;
const NULL: u8 = 1;
const BYTES: u8 = 2;

/// Appends a value: absent (`None`), null (`Some(None)`) or bytes.
pub(crate) fn put_value(out: &mut Vec<u8>, value: Option<Option<&[u8]>>) {
    match value {
        None => out.push(ABSENT),
        Some(None) => out.push(NULL),
        Some(Some(bytes)) => {
            out.push(BYTES);
            put_u32(out, bytes.len() as u32);
            out.extend_from_slice(bytes);
        }
    }
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Reads what the `put_*` functions wrote.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(bad("record ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| bad("u32"))?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| bad("u64"))?))
    }

    /// A value as [`put_value`] wrote it.
    pub(crate) fn value(&mut self) -> Result<Option<Option<&'a [u8]>>> {
        match self.take(1)?[0] {
            ABSENT => Ok(None),
            NULL => Ok(Some(None)),
            BYTES => {
                let len = self.u32()? as usize;
                Ok(Some(Some(self.take(len)?)))
            }
            tag => Err(bad(&format!("unknown value tag {tag}"))),
        }
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        self.take(n)
    }

    /// Errors unless everything was read.
    pub(crate) fn finish(self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(bad("trailing bytes"))
        }
    }
}

fn bad(what: &str) -> Error {
    Error::Internal(format!("not a spilled generation: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_integers_round_trip_and_bad_bytes_are_errors() {
        let mut out = Vec::new();
        put_value(&mut out, None);
        put_value(&mut out, Some(None));
        put_value(&mut out, Some(Some(b"abc")));
        put_u64(&mut out, 7);
        let mut r = Reader::new(&out);
        assert_eq!(r.value().unwrap(), None);
        assert_eq!(r.value().unwrap(), Some(None));
        assert_eq!(r.value().unwrap(), Some(Some(&b"abc"[..])));
        assert_eq!(r.u64().unwrap(), 7);
        r.finish().unwrap();
        let mut cut = Reader::new(&out[..out.len() - 1]);
        for _ in 0..3 {
            cut.value().unwrap();
        }
        assert!(cut.u64().is_err(), "a record cut short is an error");
        let mut short = Reader::new(&out[..5]);
        short.value().unwrap();
        short.value().unwrap();
        assert!(short.value().is_err());
        assert!(Reader::new(&[9]).value().is_err());
        assert!(Reader::new(&[0, 0]).finish().is_err());
    }
}
