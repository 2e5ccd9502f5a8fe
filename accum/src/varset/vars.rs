//! Variable names → dense variable indices, one batch at a time.
//!
//! [`VarLookup::map_column`] turns the var column of a batch into a
//! `Vec<u32>` of variable indices ([`UNKNOWN_VAR`] for a null or an unknown
//! name) before any row is applied. A dictionary column is mapped through its
//! dictionary: each distinct value is looked up once, then the keys index the
//! mapped dictionary. Plain string columns look every row up: by a linear
//! scan over (length, bytes) when there are few variables (the common case of
//! a handful of names, where comparing lengths rejects most candidates), and
//! through a hash table otherwise.

use arrow_array::{cast::AsArray, types::*, Array, ArrayRef};
use arrow_buffer::ArrowNativeType;
use arrow_schema::DataType;
use hashbrown::HashTable;

use crate::error::{Error, Result};
use crate::hash::hash_bytes;

/// The index of a variable that is null or not required.
pub(crate) const UNKNOWN_VAR: u32 = u32::MAX;

/// Up to this many variables, a linear scan beats hashing.
const LINEAR_MAX: usize = 8;

/// The required variables' names and a lookup over them.
#[derive(Debug)]
pub(crate) struct VarLookup {
    names: Vec<Box<[u8]>>,
    table: Option<HashTable<u32>>,
    dictionary: Vec<u32>,
}

impl VarLookup {
    /// A lookup over `vars` (distinct, validated).
    pub(crate) fn new(vars: &[String]) -> Self {
        let names: Vec<Box<[u8]>> = vars.iter().map(|v| v.as_bytes().into()).collect();
        let table = (names.len() > LINEAR_MAX).then(|| {
            let mut t = HashTable::with_capacity(names.len());
            for (i, n) in names.iter().enumerate() {
                t.insert_unique(hash_bytes(n), i as u32, |&j| hash_bytes(&names[j as usize]));
            }
            t
        });
        VarLookup { names, table, dictionary: Vec::new() }
    }

    /// The index of `name`, or [`UNKNOWN_VAR`].
    #[inline]
    pub(crate) fn index_of(&self, name: &[u8]) -> u32 {
        match &self.table {
            None => {
                for (i, n) in self.names.iter().enumerate() {
                    if n.len() == name.len() && **n == *name {
                        return i as u32;
                    }
                }
                UNKNOWN_VAR
            }
            Some(t) => t
                .find(hash_bytes(name), |&i| *self.names[i as usize] == *name)
                .copied()
                .unwrap_or(UNKNOWN_VAR),
        }
    }

    /// Fills `out` with the variable index of every row of `column`.
    pub(crate) fn map_column(&mut self, column: &ArrayRef, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        match column.data_type() {
            DataType::Dictionary(key, _) => match key.as_ref() {
                DataType::Int8 => self.map_dictionary::<Int8Type>(column, out),
                DataType::Int16 => self.map_dictionary::<Int16Type>(column, out),
                DataType::Int32 => self.map_dictionary::<Int32Type>(column, out),
                DataType::Int64 => self.map_dictionary::<Int64Type>(column, out),
                DataType::UInt8 => self.map_dictionary::<UInt8Type>(column, out),
                DataType::UInt16 => self.map_dictionary::<UInt16Type>(column, out),
                DataType::UInt32 => self.map_dictionary::<UInt32Type>(column, out),
                DataType::UInt64 => self.map_dictionary::<UInt64Type>(column, out),
                other => return Err(Error::Internal(format!("dictionary var column keyed by {other}"))),
            },
            _ => self.map_strings(column, out)?,
        }
        Ok(())
    }

    /// Appends the index of every value of a string column (nulls unknown).
    fn map_strings(&self, column: &ArrayRef, out: &mut Vec<u32>) -> Result<()> {
        let nulls = column.logical_nulls();
        let known = |i: usize, name: &[u8]| {
            if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                UNKNOWN_VAR
            } else {
                self.index_of(name)
            }
        };
        match column.data_type() {
            DataType::Utf8 => {
                let a = column.as_string::<i32>();
                out.extend((0..a.len()).map(|i| known(i, a.value(i).as_bytes())));
            }
            DataType::LargeUtf8 => {
                let a = column.as_string::<i64>();
                out.extend((0..a.len()).map(|i| known(i, a.value(i).as_bytes())));
            }
            DataType::Utf8View => {
                let a = column.as_string_view();
                out.extend((0..a.len()).map(|i| known(i, a.value(i).as_bytes())));
            }
            other => return Err(Error::Internal(format!("var column of type {other}"))),
        }
        Ok(())
    }

    fn map_dictionary<K: ArrowDictionaryKeyType>(&mut self, column: &ArrayRef, out: &mut Vec<u32>) {
        let dict = column.as_dictionary::<K>();
        let mut mapped = std::mem::take(&mut self.dictionary);
        mapped.clear();
        // Only string dictionaries pass validation, so this cannot fail.
        let _ = self.map_strings(dict.values(), &mut mapped);
        let nulls = dict.keys().nulls();
        out.extend(dict.keys().values().iter().enumerate().map(|(i, k)| {
            if nulls.is_some_and(|n| n.is_null(i)) {
                UNKNOWN_VAR
            } else {
                mapped.get(k.as_usize()).copied().unwrap_or(UNKNOWN_VAR)
            }
        }));
        self.dictionary = mapped;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{DictionaryArray, LargeStringArray, StringArray, StringViewArray};

    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("v{i}")).collect()
    }

    #[test]
    fn few_and_many_variables_find_the_same_indices() {
        for n in [3, 40] {
            let lookup = VarLookup::new(&names(n));
            assert_eq!(lookup.index_of(b"v2"), 2);
            assert_eq!(lookup.index_of(b"v"), UNKNOWN_VAR);
            assert_eq!(lookup.index_of(b"v2 "), UNKNOWN_VAR);
        }
    }

    #[test]
    fn string_columns_of_every_layout_map_nulls_to_unknown() {
        let mut lookup = VarLookup::new(&names(3));
        let expected = [1, UNKNOWN_VAR, UNKNOWN_VAR, 0];
        let rows = vec![Some("v1"), None, Some("x"), Some("v0")];
        let columns: [ArrayRef; 3] = [
            Arc::new(StringArray::from(rows.clone())),
            Arc::new(LargeStringArray::from(rows.clone())),
            Arc::new(StringViewArray::from(rows)),
        ];
        let mut out = Vec::new();
        for c in &columns {
            lookup.map_column(c, &mut out).unwrap();
            assert_eq!(out, expected, "{}", c.data_type());
        }
    }

    #[test]
    fn dictionaries_are_mapped_once_per_value() {
        let mut lookup = VarLookup::new(&names(3));
        let dict: DictionaryArray<Int16Type> =
            vec![Some("v2"), Some("zz"), None, Some("v2")].into_iter().collect();
        let mut out = Vec::new();
        lookup.map_column(&(Arc::new(dict) as ArrayRef), &mut out).unwrap();
        assert_eq!(out, [2, UNKNOWN_VAR, UNKNOWN_VAR, 2]);
    }
}
