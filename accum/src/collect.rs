//! [`CollectState`]: per key, the fragments of a generation collected as a
//! list (and counted). The state behind [`CountAccumulator`](crate::CountAccumulator)
//! and [`WindowAccumulator`](crate::WindowAccumulator).
//!
//! Each slot keeps a `Vec<ValueRef>` of its values' bytes in one
//! [`ByteArena`] (the vector's capacity is reused by the slot's next
//! generation); a closed generation's references move to one flat staged
//! list with offsets, from which the `items` list column is built at once.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, ListArray, RecordBatch, UInt64Array};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, FieldRef};

use crate::{
    arena::{ByteArena, ValueRef},
    columns::ColumnPlan,
    error::{Error, Result},
    keyed::{Accumulator, Fill, Generation, Update, WindowRule},
    spill_codec,
    time::Millis,
    values::{build_column, ColumnValues, ValueKind},
};

/// What closes a collecting generation besides the policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CollectMode {
    /// Complete at `every` items.
    Count { every: u64 },
    /// Closed by the watermark at the window's end.
    Window(WindowRule),
}

/// The value column to collect, validated.
#[derive(Debug, Clone)]
pub(crate) struct Collected {
    pub(crate) column: ColumnPlan,
    pub(crate) kind: ValueKind,
    pub(crate) value_type: DataType,
}

/// Per-slot collected items.
#[derive(Debug)]
pub struct CollectState {
    mode: CollectMode,
    collected: Option<Collected>,
    counts: Vec<u64>,
    items: Vec<Vec<ValueRef>>,
    /// References held in `items` (for `bytes_held` without a scan).
    held_refs: usize,
    arena: ByteArena,
    staged_counts: Vec<u64>,
    staged_items: Vec<ValueRef>,
    staged_offsets: Vec<usize>,
    staged_windows: Vec<(Millis, Millis)>,
}

/// One batch's values (if a value column is collected).
pub struct CollectInput {
    values: Option<ColumnValues>,
}

/// Names of the output columns.
const COUNT: &str = "count";
const ITEMS: &str = "items";
const WINDOW_START: &str = "window_start";
const WINDOW_END: &str = "window_end";

impl CollectState {
    pub(crate) fn new(mode: CollectMode, collected: Option<Collected>) -> Self {
        CollectState {
            mode,
            collected,
            counts: Vec::new(),
            items: Vec::new(),
            held_refs: 0,
            arena: ByteArena::default(),
            staged_counts: Vec::new(),
            staged_items: Vec::new(),
            staged_offsets: vec![0],
            staged_windows: Vec::new(),
        }
    }

    fn compact(&mut self) {
        let held = self.items.iter_mut().flat_map(|v| v.iter_mut());
        self.arena.compact(held.chain(self.staged_items.iter_mut()));
    }
}

impl Accumulator for CollectState {
    type Input<'a> = CollectInput;

    fn fields(&self) -> Vec<FieldRef> {
        let mut f = Vec::new();
        if let CollectMode::Window(_) = self.mode {
            f.push(Arc::new(Field::new(WINDOW_START, DataType::Int64, false)));
            f.push(Arc::new(Field::new(WINDOW_END, DataType::Int64, false)));
        }
        f.push(Arc::new(Field::new(COUNT, DataType::UInt64, false)));
        if let Some(c) = &self.collected {
            let item = Arc::new(Field::new("item", c.value_type.clone(), true));
            f.push(Arc::new(Field::new(ITEMS, DataType::List(item), false)));
        }
        f
    }

    fn bind(&mut self, batch: &RecordBatch) -> Result<CollectInput> {
        let values = match &self.collected {
            Some(c) => Some(ColumnValues::new(c.column.resolve(batch)?, c.kind, &c.value_type)?),
            None => None,
        };
        Ok(CollectInput { values })
    }

    fn reserve(&mut self, slots: usize) {
        if slots > self.counts.len() {
            self.counts.resize(slots, 0);
            if self.collected.is_some() {
                self.items.resize_with(slots, Vec::new);
            }
        }
    }

    #[inline]
    fn update(&mut self, slot: u32, input: &CollectInput, row: usize) -> Result<Update> {
        let s = slot as usize;
        self.counts[s] += 1;
        let mut bytes = 0;
        if let Some(values) = &input.values {
            let r = match values.get(row) {
                None => ValueRef::NULL,
                Some(v) => {
                    bytes = v.len() as u64;
                    match self.arena.try_push(v) {
                        Some(r) => r,
                        None => {
                            self.compact();
                            self.arena.try_push(v).ok_or(Error::StateTooLarge {
                                what: "the collected values",
                                limit: u64::from(u32::MAX),
                            })?
                        }
                    }
                }
            };
            self.items[s].push(r);
            self.held_refs += 1;
        }
        let complete = matches!(self.mode, CollectMode::Count { every } if self.counts[s] >= every);
        Ok(Update { bytes, complete })
    }

    fn fill(&self, slot: u32) -> Fill {
        match self.mode {
            CollectMode::Count { every } => Fill {
                present: self.counts[slot as usize].min(u64::from(u32::MAX)) as u32,
                required: every.min(u64::from(u32::MAX)) as u32,
            },
            CollectMode::Window(_) => Fill { present: 1, required: 1 },
        }
    }

    fn stage(&mut self, slot: u32, generation: &Generation) {
        let s = slot as usize;
        self.staged_counts.push(std::mem::take(&mut self.counts[s]));
        if self.collected.is_some() {
            self.staged_items.extend_from_slice(&self.items[s]);
            self.held_refs -= self.items[s].len();
            self.items[s].clear();
        }
        self.staged_offsets.push(self.staged_items.len());
        if let CollectMode::Window(rule) = self.mode {
            let bounds = match rule {
                WindowRule::Tumbling { size } => {
                    let start = generation.first.div_euclid(size).saturating_mul(size);
                    (start, start.saturating_add(size))
                }
                WindowRule::Session { gap } => (generation.first, generation.last.saturating_add(gap)),
            };
            self.staged_windows.push(bounds);
        }
    }

    fn build(&mut self, order: &[usize], columns: &mut Vec<ArrayRef>) -> Result<()> {
        if let CollectMode::Window(_) = self.mode {
            columns.push(Arc::new(Int64Array::from_iter_values(
                order.iter().map(|&i| self.staged_windows[i].0),
            )));
            columns.push(Arc::new(Int64Array::from_iter_values(
                order.iter().map(|&i| self.staged_windows[i].1),
            )));
        }
        columns.push(Arc::new(UInt64Array::from_iter_values(order.iter().map(|&i| self.staged_counts[i]))));
        if let Some(c) = &self.collected {
            let mut refs = Vec::new();
            let mut offsets = Vec::with_capacity(order.len() + 1);
            offsets.push(0i32);
            for &i in order {
                refs.extend_from_slice(
                    &self.staged_items[self.staged_offsets[i]..self.staged_offsets[i + 1]],
                );
                offsets.push(i32::try_from(refs.len()).map_err(|_| Error::StateTooLarge {
                    what: "one output batch's items",
                    limit: i32::MAX as u64,
                })?);
            }
            let values = build_column(c.kind, &c.value_type, &self.arena, &refs)?;
            let item = Arc::new(Field::new("item", c.value_type.clone(), true));
            let list = ListArray::try_new(item, OffsetBuffer::new(ScalarBuffer::from(offsets)), values, None)
                .map_err(Error::arrow("building the items column"))?;
            columns.push(Arc::new(list));
        }
        Ok(())
    }

    fn release_staged(&mut self) {
        for &r in &self.staged_items {
            self.arena.release(r);
        }
        self.staged_items.clear();
        self.staged_counts.clear();
        self.staged_offsets.truncate(1);
        self.staged_windows.clear();
    }

    fn reset(&mut self) {
        self.counts.clear();
        self.items.clear();
        self.held_refs = 0;
        self.arena.clear();
    }

    fn live_bytes(&self) -> usize {
        self.arena.capacity_bytes() + self.held_refs * 8
    }

    fn bytes_held(&self) -> usize {
        self.arena.capacity_bytes()
            + self.counts.capacity() * 8
            + self.items.capacity() * std::mem::size_of::<Vec<ValueRef>>()
            + self.held_refs * 8
            + (self.staged_counts.capacity() + self.staged_items.capacity() + self.staged_offsets.capacity())
                * 8
            + self.staged_windows.capacity() * 16
    }

    fn maintain(&mut self) {
        if self.arena.wants_compaction() {
            self.compact();
        }
    }

    fn spill(&mut self, slot: u32, out: &mut Vec<u8>) -> Result<bool> {
        let s = slot as usize;
        spill_codec::put_u64(out, std::mem::take(&mut self.counts[s]));
        if self.collected.is_some() {
            let items = std::mem::take(&mut self.items[s]);
            spill_codec::put_u32(out, items.len() as u32);
            for &r in &items {
                let value = if r.is_stored() { Some(self.arena.get(r)) } else { None };
                spill_codec::put_value(out, Some(value));
                self.arena.release(r);
            }
            self.held_refs -= items.len();
            self.items[s] = items;
            self.items[s].clear();
        }
        Ok(true)
    }

    fn restore(&mut self, slot: u32, bytes: &[u8]) -> Result<()> {
        let s = slot as usize;
        let mut r = spill_codec::Reader::new(bytes);
        let count = r.u64()?;
        let mut values = Vec::new();
        if self.collected.is_some() {
            let n = r.u32()?;
            for _ in 0..n {
                values.push(r.value()?.flatten());
            }
        }
        r.finish()?;
        self.counts[s] = count;
        for v in values {
            let stored = match v {
                None => ValueRef::NULL,
                Some(bytes) => match self.arena.try_push(bytes) {
                    Some(r) => r,
                    None => {
                        self.compact();
                        self.arena.try_push(bytes).ok_or(Error::StateTooLarge {
                            what: "the collected values",
                            limit: u64::from(u32::MAX),
                        })?
                    }
                },
            };
            self.items[s].push(stored);
            self.held_refs += 1;
        }
        Ok(())
    }

    fn window(&self) -> Option<WindowRule> {
        match self.mode {
            CollectMode::Window(rule) => Some(rule),
            CollectMode::Count { .. } => None,
        }
    }
}
