//! Spilling and reloading whole partitions of the key space (see
//! [`spill_parts`](crate::keyed::spill_parts) for the model).

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use garner_pools::{SpillError, SpillStore};

use super::{KeyedAccumulator, NO_GEN, RESTORED};
use crate::{
    error::{Error, Result},
    keyed::spill::IN_MEMORY,
    keyed::{
        spill_parts::{self, part_of, sub_of, Part, Run, Stored, PARTS, PIECES_CAP, RUN_GENERATIONS, SUBS},
        Accumulator, EmitReason,
    },
    spill_codec::{self, Reader},
    time::{EventTimes, Millis},
};

/// `flags` bit of a spilled generation: a completed key's mark.
const DONE: u8 = 1;

impl<A: Accumulator> KeyedAccumulator<A> {
    /// Whether spilling goes by partitions.
    pub(super) fn partitioned(&self) -> bool {
        self.core.spill.as_ref().is_some_and(|s| s.parts.is_some())
    }

    /// Which partitions are spilled, when any is.
    pub(super) fn spilled_mask(&self) -> Option<[bool; PARTS]> {
        let parts = self.core.spill.as_ref()?.parts.as_ref()?;
        parts.any_spilled.then_some(parts.mask)
    }

    /// Copies this call's rows of spilled partitions into their pieces (a
    /// piece per partition, rows in arrival order with their
    /// sub-partition); past its piece limit a partition's pieces go to the
    /// store (see [`store_pieces`]).
    pub(super) fn buffer_pending(&mut self, batch: &RecordBatch) -> Result<()> {
        let rule = self.core.rule;
        let lateness = self.core.lateness;
        let Some(spill) = self.core.spill.as_mut() else { return Ok(()) };
        let Some(parts) = spill.parts.as_mut() else { return Ok(()) };
        if parts.rows.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut parts.rows);
        // Group by partition (a counting sort: arrival order kept within each).
        let ids: Vec<(u8, u8)> = rows
            .iter()
            .map(|r| {
                let hash = self.keys.row_hash(r.0 as usize);
                (part_of(hash) as u8, sub_of(hash) as u8)
            })
            .collect();
        let mut starts = [0usize; PARTS + 1];
        for &(p, _) in &ids {
            starts[p as usize + 1] += 1;
        }
        for p in 0..PARTS {
            starts[p + 1] += starts[p];
        }
        let mut grouped = vec![(0u32, 0, None); rows.len()];
        let mut subs = vec![0u8; rows.len()];
        let mut at = starts;
        for (row, &(p, sub)) in rows.iter().zip(&ids) {
            grouped[at[p as usize]] = *row;
            subs[at[p as usize]] = sub;
            at[p as usize] += 1;
        }
        let schema = spill_parts::piece_schema(&mut parts.piece_schema, batch.schema_ref());
        for p in (0..PARTS).filter(|&p| starts[p + 1] > starts[p]) {
            let (group, group_subs) = (&grouped[starts[p]..starts[p + 1]], &subs[starts[p]..starts[p + 1]]);
            let piece = spill_parts::piece(batch, group, group_subs, &schema)?;
            let bytes = piece.get_array_memory_size();
            let part = &mut parts.parts[p];
            for &(_, watermark, time) in group {
                let t = time.unwrap_or(watermark);
                part.min_deadline = part.min_deadline.min(super::deadline(rule, lateness, t, t));
            }
            for &sub in group_subs {
                part.subs[sub as usize].rows += 1;
            }
            part.rows += group.len() as u64;
            part.pieces.push(piece);
            part.piece_bytes += bytes;
            parts.piece_bytes += bytes;
            if part.piece_bytes > parts.piece_limit || parts.piece_bytes > PIECES_CAP {
                let before = part.piece_bytes;
                let limits = (parts.index_block, parts.wide_rows);
                store_pieces(&mut spill.store, part, &schema, limits, &mut parts.piece_failures)?;
                parts.piece_bytes = parts.piece_bytes - before + part.piece_bytes;
            }
        }
        rows.clear();
        parts.rows = rows;
        Ok(())
    }

    /// Reloads the spilled partitions whose earliest possible deadline the
    /// watermark has passed, so their generations expire on time.
    pub(super) fn reload_due_parts(&mut self) -> Result<()> {
        let watermark = self.core.watermark;
        let due: Vec<usize> = match self.core.spill.as_ref().and_then(|s| s.parts.as_ref()) {
            Some(parts) if parts.any_spilled => (0..PARTS)
                .filter(|&p| parts.parts[p].spilled && parts.parts[p].min_deadline < watermark)
                .collect(),
            _ => return Ok(()),
        };
        for p in due {
            self.reload_part(p)?;
        }
        Ok(())
    }

    /// Spills partitions when the state passes the configured limit.
    pub(super) fn maybe_spill_parts(&mut self, held: u64) -> Result<()> {
        let Some(spill) = &self.core.spill else { return Ok(()) };
        if held <= spill.options.limit_bytes {
            return Ok(());
        }
        let target = spill.low_water();
        self.spill_parts(held, target)
    }

    /// Spills the partitions holding the most generations until the
    /// resident ones would fit in `target` bytes. A resident generation's
    /// cost is taken at the largest state seen (capacity stays allocated
    /// when generations leave, so the bytes held barely drop).
    pub(super) fn spill_parts(&mut self, held: u64, target: u64) -> Result<()> {
        self.note_high_water();
        let resident = self.resident_generations();
        let Some(parts) = self.core.spill.as_ref().and_then(|s| s.parts.as_ref()) else { return Ok(()) };
        if held <= target || resident == 0 {
            return Ok(());
        }
        // `held` counts the buffered pieces whole and the state by resident
        // generation: keep as many generations as fit beside the pieces.
        let buffered = parts.piece_bytes as u64;
        let per_generation = (held.saturating_sub(buffered) / resident).max(1);
        let allowed = target.saturating_sub(buffered) / per_generation;
        if resident <= allowed {
            return Ok(());
        }
        let mut counts = [0u64; PARTS];
        for slot in 0..self.keys.slot_count() as u32 {
            if self.keys.in_use(slot) && self.core.arrival[slot as usize] != NO_GEN {
                counts[part_of(self.keys.slot_hash(slot))] += 1;
            }
        }
        let mut order: Vec<usize> = (0..PARTS).filter(|&p| counts[p] > 0 && !parts.mask[p]).collect();
        order.sort_by_key(|&p| std::cmp::Reverse(counts[p]));
        let mut left = resident;
        let mut chosen = [false; PARTS];
        for p in order {
            if left <= allowed {
                break;
            }
            chosen[p] = true;
            left = left.saturating_sub(counts[p]);
        }
        self.spill_chosen(&chosen)?;
        self.core.acc.maintain();
        Ok(())
    }

    /// Records the most generations resident so far (see [`bytes_held`](Self::bytes_held)).
    pub(super) fn note_high_water(&mut self) {
        let resident = self.resident_generations();
        if let Some(parts) = self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) {
            parts.high_water = parts.high_water.max(resident);
        }
    }

    /// Open generations and completed-key marks in memory.
    pub(super) fn resident_generations(&self) -> u64 {
        let out = self.core.spill.as_ref().map_or(0, |s| s.spilled_generations());
        (self.core.active + self.core.tombstones).saturating_sub(out)
    }

    /// Writes every generation of the `chosen` partitions out (in one pass
    /// over the slots) and frees their slots.
    fn spill_chosen(&mut self, chosen: &[bool; PARTS]) -> Result<()> {
        let mut slots: Vec<(u8, u8, u64, u32)> = (0..self.keys.slot_count() as u32)
            .filter(|&s| self.keys.in_use(s) && self.core.arrival[s as usize] != NO_GEN)
            .map(|s| (self.keys.slot_hash(s), s))
            .filter(|&(h, _)| chosen[part_of(h)])
            .map(|(h, s)| (part_of(h) as u8, sub_of(h) as u8, self.core.arrival[s as usize], s))
            .collect();
        slots.sort_unstable();
        if let Some(parts) = self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) {
            for p in (0..PARTS).filter(|&p| chosen[p]) {
                parts.set_spilled(p, true);
            }
        }
        for group in slots.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let run: Vec<u32> = group.iter().map(|&(.., s)| s).collect();
            for run in run.chunks(RUN_GENERATIONS) {
                self.spill_run(group[0].0 as usize, group[0].1, run)?;
            }
        }
        Ok(())
    }

    /// One run: the keys in one record, the states in another.
    fn spill_run(&mut self, p: usize, sub: u8, slots: &[u32]) -> Result<()> {
        let (mut keys, mut states) = (Vec::new(), Vec::new());
        let core = &mut self.core;
        let mut open = 0u32;
        for &slot in slots {
            let s = slot as usize;
            self.keys.write_key(slot, &mut keys);
            let done = core.done.get(s).copied().unwrap_or(false);
            spill_codec::put_u64(&mut states, core.arrival[s]);
            spill_codec::put_u64(&mut states, core.first[s] as u64);
            spill_codec::put_u64(&mut states, core.last.get(s).copied().unwrap_or(Millis::MIN) as u64);
            spill_codec::put_u64(&mut states, core.items.get(s).copied().unwrap_or(0));
            spill_codec::put_u64(&mut states, core.bytes.get(s).copied().unwrap_or(0));
            states.push(if done { DONE } else { 0 });
            let at = states.len();
            spill_codec::put_u32(&mut states, 0);
            if !done {
                open += 1;
                core.acc.spill(slot, &mut states)?;
            }
            let len = (states.len() - at - 4) as u32;
            states[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
        let Some(spill) = core.spill.as_mut() else { return Ok(()) };
        let stored = match spill.store.put(&keys) {
            Ok(k) => match spill.store.put(&states) {
                Ok(st) => Some((k, st)),
                Err(_) => {
                    spill.store.free(k);
                    None
                }
            },
            Err(_) => None,
        };
        let count = slots.len() as u32;
        let Some((k, st)) = stored else {
            // No tier has room: the open generations leave as partials
            // (counted); completed-key marks are dropped.
            spill.failures += u64::from(open);
            core.evicted += u64::from(open);
            let mut r = Reader::new(&states);
            for &slot in slots {
                let (_, done, state) = read_generation(&mut r)?;
                if done.is_none() {
                    core.acc.restore(slot, state)?;
                    let at = core.watermark;
                    core.close(slot, EmitReason::Evicted, false, false, at);
                } else {
                    detach(core, slot);
                }
            }
            return Ok(());
        };
        spill.writes += u64::from(open);
        let mut min_deadline = Millis::MAX;
        for &slot in slots {
            min_deadline = min_deadline.min(core.deadline_of(slot as usize));
            detach(core, slot);
        }
        let Some(parts) = core.spill.as_mut().and_then(|s| s.parts.as_mut()) else { return Ok(()) };
        let part = &mut parts.parts[p];
        part.runs.push(Run { keys: k, states: st, count, open, sub });
        part.open += u64::from(open);
        part.subs[sub as usize].open += u64::from(open);
        part.min_deadline = part.min_deadline.min(min_deadline);
        parts.open += u64::from(open);
        Ok(())
    }

    /// Brings partition `p` back: its generations, then its buffered
    /// fragments replayed under their arrival watermarks.
    fn reload_part(&mut self, p: usize) -> Result<()> {
        let Some(mut part) =
            self.core.spill.as_mut().and_then(|s| s.parts.as_mut()).map(|parts| parts.take(p))
        else {
            return Ok(());
        };
        let reloaded = self.reload_subs(p, &mut part, 0..SUBS);
        if let Some(parts) = self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) {
            parts.reloaded.clear();
        }
        reloaded
    }

    /// Brings back sub-partitions `subs` of partition `p`, a unit of them
    /// at a time: the unit's generations, then its fragments in arrival
    /// order. A unit is an aligned run of as many sub-partitions as the
    /// narrowest of the partition's records spans (so every record a unit
    /// reads spans all of it, and replaying record after record keeps the
    /// unit's arrival order); keys of different units are independent. A
    /// record spanning no sub-partition past `subs` is read for the last
    /// time, freed and taken out of `part`; one spanning later ones is
    /// read (once for all of `subs`) and kept for the slice that ends it.
    fn reload_subs(&mut self, p: usize, part: &mut Part, subs: std::ops::Range<usize>) -> Result<()> {
        self.unpack_index(p, part);
        let overlaps = |e: &Stored| (e.lo as usize) < subs.end && e.hi as usize > subs.start;
        let width = part
            .stored
            .iter()
            .filter(|e| overlaps(e))
            .map(|e| usize::from(e.hi - e.lo))
            .min()
            .unwrap_or(SUBS);
        let slice = Slice { subs: subs.clone(), width };
        // Rows of records read by an earlier unit of this call, kept for later ones.
        let mut kept: Vec<Kept> = Vec::new();
        let watermark = self.core.watermark;
        let mut from = subs.start;
        while from < subs.end {
            let units = slice.unit_at(from);
            from = units.end;
            let (runs, rest): (Vec<Run>, Vec<Run>) =
                part.runs.iter().partition(|r| units.contains(&(r.sub as usize)));
            part.runs = rest;
            for run in &runs {
                self.restore_run(p, run)?;
            }
            self.set_replaying(true);
            let result = self.replay_unit(p, part, &slice, &units, &mut kept);
            self.set_replaying(false);
            // Keys of other units are independent: each replay starts from
            // the watermark of now.
            self.core.watermark = watermark;
            result?;
        }
        debug_assert!(kept.is_empty(), "every kept row was replayed by its unit");
        // Records read for the last time leave `part`.
        part.stored.retain(|e| !overlaps(e) || e.hi as usize > subs.end);
        self.core.sweep_if_due();
        Ok(())
    }

    /// Replays unit `units` of `slice` of partition `p`, oldest first: its
    /// records, then its rows in memory. A record is decoded by the first
    /// unit of the slice it spans, which replays its own rows and keeps
    /// those of each later unit of the slice (filtered out now, so what
    /// waits is only what later units replay, not the whole record); a
    /// later unit replays the rows kept for it in their record's place.
    fn replay_unit(
        &mut self,
        p: usize,
        part: &Part,
        slice: &Slice,
        units: &std::ops::Range<usize>,
        kept: &mut Vec<Kept>,
    ) -> Result<()> {
        for (i, e) in part.stored.iter().enumerate().filter(|(_, e)| e.spans(units.start)) {
            let first = (e.lo as usize).max(slice.subs.start) >= units.start;
            if !first {
                // Read by an earlier unit: its rows for this one, if any.
                if let Some(at) = kept.iter().position(|k| k.record == i && k.unit == units.start) {
                    let rows = kept.remove(at).rows;
                    self.replay(&rows)?;
                }
                continue;
            }
            let last = e.hi as usize <= slice.subs.end;
            let Some(record) = self.read_record(p, e, last)? else { continue };
            let end = (e.hi as usize).min(slice.subs.end);
            let mut later = units.end;
            while later < end {
                let unit = slice.unit_at(later);
                later = unit.end;
                if let Some(rows) = spill_parts::rows_of(&record, unit.clone())? {
                    kept.push(Kept { record: i, unit: unit.start, rows });
                }
            }
            let whole = e.lo as usize == units.start && e.hi as usize == units.end;
            let rows = if whole { Some(record) } else { spill_parts::rows_of(&record, units.clone())? };
            if let Some(rows) = rows {
                self.replay(&rows)?;
            }
        }
        for piece in &part.pieces {
            if let Some(rows) = spill_parts::rows_of(piece, units.clone())? {
                self.replay(&rows)?;
            }
        }
        Ok(())
    }

    /// Reads one record of fragments of partition `p` (and frees it when
    /// `last`). An unreadable record is said (when `last`, so once), never
    /// silent.
    fn read_record(&mut self, p: usize, e: &Stored, last: bool) -> Result<Option<RecordBatch>> {
        let Some(spill) = self.core.spill.as_mut() else { return Ok(None) };
        let bytes = if last { spill.store.take(e.handle) } else { spill.store.get(e.handle) };
        match bytes {
            Ok(bytes) => {
                let mut batches = spill_parts::decode(bytes)?;
                match batches.len() {
                    1 => Ok(batches.pop()),
                    _ => Err(Error::Internal("a spilled fragment record of more than one batch".into())),
                }
            }
            Err(err) => {
                if last {
                    spill.corrupted += 1;
                    self.spill_errors.push(Error::Serialization {
                        key: format!("{} buffered fragments of spill partition {p}", e.rows),
                        tier: e.handle.tier().as_str().to_owned(),
                        reason: spill_reason(err),
                    });
                }
                Ok(None)
            }
        }
    }

    /// Reads (and frees) `part`'s index blocks: their entries go before its
    /// other stored records. A block that cannot be read is said, never
    /// silent (its records are lost).
    fn unpack_index(&mut self, p: usize, part: &mut Part) {
        if part.index.is_empty() {
            return;
        }
        let Some(spill) = self.core.spill.as_mut() else { return };
        let mut entries = Vec::new();
        for (block, count) in std::mem::take(&mut part.index) {
            match spill
                .store
                .take(block)
                .map_err(spill_reason)
                .and_then(|b| spill_parts::decode_index(&b).map_err(|e| e.to_string()))
            {
                Ok(stored) => entries.extend(stored),
                Err(reason) => {
                    spill.corrupted += 1;
                    self.spill_errors.push(Error::Serialization {
                        key: format!("{count} buffered fragment records of spill partition {p}"),
                        tier: block.tier().as_str().to_owned(),
                        reason,
                    });
                }
            }
        }
        entries.append(&mut part.stored);
        part.stored = entries;
    }

    fn set_replaying(&mut self, on: bool) {
        if let Some(parts) = self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) {
            parts.replaying = on;
        }
    }

    /// Restores the generations of one run (its records read and freed).
    fn restore_run(&mut self, p: usize, run: &Run) -> Result<()> {
        let Some(spill) = self.core.spill.as_mut() else { return Ok(()) };
        let (keys, states) = (spill.store.take(run.keys), spill.store.take(run.states));
        let keys = match keys {
            Ok(keys) => keys,
            Err(e) => {
                // The keys are unknown: the run's generations are lost, and said so.
                spill.corrupted += u64::from(run.count);
                self.core.active -= u64::from(run.open);
                self.spill_errors.push(Error::Serialization {
                    key: format!("{} keys of spill partition {p}", run.count),
                    tier: run.keys.tier().as_str().to_owned(),
                    reason: spill_reason(e),
                });
                return Ok(());
            }
        };
        // The run's keys, interned, in order.
        let mut key_reader = Reader::new(&keys);
        let mut slots = Vec::with_capacity(run.count as usize);
        for _ in 0..run.count {
            let key = self.keys.read_written(&mut key_reader)?;
            slots.push(self.keys.intern_written(&key)?);
        }
        self.core.grow(self.keys.slot_count());
        if let Some(parts) = self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) {
            parts.reloaded.extend_from_slice(&slots);
        }
        let states = match states {
            Ok(states) => states,
            Err(e) => {
                let (tier, reason) = (run.states.tier().as_str().to_owned(), spill_reason(e));
                // Which were completed-key marks is unknown: each key leaves as `corrupted`.
                self.core.active -= u64::from(run.open);
                for &slot in &slots {
                    self.lose(slot, &tier, &reason);
                }
                return Ok(());
            }
        };
        let mut r = Reader::new(&states);
        for slot in slots {
            let ((arrival, first, last, items, bytes), done, state) = read_generation(&mut r)?;
            let s = slot as usize;
            let core = &mut self.core;
            core.arrival[s] = arrival;
            core.first[s] = first;
            if !core.last.is_empty() {
                core.last[s] = last;
            }
            if core.track_sizes {
                core.items[s] = items;
                core.bytes[s] = bytes;
            }
            if let Some(spill) = core.spill.as_mut() {
                spill.state[s] = RESTORED;
                if done.is_none() {
                    spill.reads += 1;
                }
            }
            if done.is_some() {
                core.done[s] = true;
                core.tombstones += 1;
            } else if let Err(e) = core.acc.restore(slot, state) {
                core.arrival[s] = NO_GEN;
                core.active -= 1;
                self.lose(slot, run.states.tier().as_str(), &e.to_string());
                continue;
            }
            if !matches!(core.rule, super::Rule::Never) {
                let deadline = core.deadline_of(s);
                core.deadlines.push(crate::deadlines::Due { deadline, arrival, slot });
            }
        }
        Ok(())
    }

    /// A spilled generation whose state is unreadable (no longer counted
    /// open): emitted empty, with reason `corrupted`, and the key named in
    /// the spill errors.
    fn lose(&mut self, slot: u32, tier: &str, reason: &str) {
        let core = &mut self.core;
        let s = slot as usize;
        let at = core.watermark;
        core.open(slot, at);
        if let Some(spill) = core.spill.as_mut() {
            spill.state[s] = RESTORED;
            spill.corrupted += 1;
            spill.errors.push((slot, tier.to_owned(), reason.to_owned()));
        }
        core.close(slot, EmitReason::Corrupted, false, false, at);
    }

    /// Applies the rows of a buffered piece (after their generations were
    /// restored).
    fn replay(&mut self, piece: &RecordBatch) -> Result<()> {
        let (batch, watermarks, times) = spill_parts::split(piece)?;
        let key_columns = self.plan.keys.iter().map(|k| k.resolve(&batch)).collect::<Result<Vec<_>>>()?;
        self.keys.load_batch(&key_columns)?;
        let times = EventTimes::from_column(&times)?;
        let input = self.core.acc.bind(&batch)?;
        self.slots.clear();
        for row in 0..batch.num_rows() {
            let slot = self.keys.intern(row)?;
            self.slots.push(slot);
        }
        self.core.grow(self.keys.slot_count());
        if let Some(parts) = self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) {
            parts.reloaded.extend_from_slice(&self.slots);
        }
        let result = self.core.apply_rows(&input, &self.slots, &times, &mut self.rejects, Some(&watermarks));
        drop(input);
        if let Some(r) = self.rejects.take(&batch)? {
            self.dead.fragments.push(r);
        }
        result
    }

    /// End of input for every spilled partition (see [`finish_spilled_step`](Self::finish_spilled_step)).
    pub(super) fn finish_spilled_parts(
        &mut self,
        rows_per_batch: usize,
        out: &mut dyn FnMut(RecordBatch),
    ) -> Result<()> {
        while self.finish_spilled_step(rows_per_batch, out)? {}
        Ok(())
    }

    /// One step of the end of input for the spilled partitions: the next
    /// slice of the partition being finished, or the first slice of the next
    /// spilled one. A partition comes back a slice of its sub-partitions at
    /// a time, of about [`FINISH_SLICE`](spill_parts::FINISH_SLICE)
    /// generations and fragments, so a step holds a bounded part of it
    /// however large the input grew (a record spanning several slices, one of
    /// the partition's first, is read by each of them). Returns
    /// `false` when no spilled partition is left.
    pub(super) fn finish_spilled_step(
        &mut self,
        rows_per_batch: usize,
        out: &mut dyn FnMut(RecordBatch),
    ) -> Result<bool> {
        let Some(parts) = self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) else { return Ok(false) };
        let mut finishing = match parts.finishing.take() {
            Some(f) => f,
            None => {
                let Some(p) = (0..PARTS).find(|&p| parts.mask[p]) else { return Ok(false) };
                let part = parts.take(p);
                let slices = part.slices(parts.finish_slice.max(1));
                spill_parts::Finishing { p, part, slices, slice: 0 }
            }
        };
        let p = finishing.p;
        let subs = finishing.slices[finishing.slice].clone();
        let reloaded = self.reload_subs(p, &mut finishing.part, subs);
        let last = finishing.slice + 1 >= finishing.slices.len();
        if !last {
            // Kept before the error is returned, so its records are freed with the rest.
            if let Some(parts) = self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) {
                parts.finishing = Some(spill_parts::Finishing { slice: finishing.slice + 1, ..finishing });
            }
        }
        reloaded?;
        // The keys this slice brought back (none of the partition was resident).
        let mut reloaded = match self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) {
            Some(parts) => std::mem::take(&mut parts.reloaded),
            None => Vec::new(),
        };
        reloaded.sort_unstable();
        reloaded.dedup();
        let mut open: Vec<(u64, u32)> = reloaded
            .iter()
            .copied()
            .filter(|&s| {
                let i = s as usize;
                self.keys.in_use(s)
                    && self.core.arrival[i] != NO_GEN
                    && !self.core.done.get(i).copied().unwrap_or(false)
            })
            .map(|s| (self.core.arrival[s as usize], s))
            .collect();
        debug_assert!(open.iter().all(|&(_, s)| part_of(self.keys.slot_hash(s)) == p));
        open.sort_unstable();
        self.name_spill_errors()?;
        if let Some(batch) = self.take_output()? {
            out(batch);
        }
        for chunk in open.chunks(rows_per_batch.max(1)) {
            for &(_, slot) in chunk {
                let at = self.core.watermark;
                self.core.close(slot, EmitReason::EndOfInput, false, false, at);
            }
            if let Some(batch) = self.take_output()? {
                out(batch);
            }
            self.core.acc.maintain();
        }
        self.release_slots()?;
        reloaded.clear();
        if let Some(parts) = self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) {
            parts.reloaded = reloaded;
        }
        Ok(true)
    }
}

/// A slice of a partition coming back: its sub-partitions, and the width
/// of its units (the narrowest record it reads).
struct Slice {
    subs: std::ops::Range<usize>,
    width: usize,
}

impl Slice {
    /// The unit starting at sub-partition `from`: aligned to the width,
    /// cut at the slice's end.
    fn unit_at(&self, from: usize) -> std::ops::Range<usize> {
        from..((from / self.width + 1) * self.width).min(self.subs.end)
    }
}

/// Rows of stored record `record` (an index into the partition's stored
/// records) for the unit starting at sub-partition `unit`, filtered out
/// when an earlier unit of the slice read the record.
struct Kept {
    record: usize,
    unit: usize,
    rows: RecordBatch,
}

/// Sends `part`'s pieces to the store: a record per aligned group of
/// [`record_width`](spill_parts::record_width) sub-partitions (their rows
/// of every piece, in arrival order). A group the store has no room for
/// keeps its rows in memory (counted in `failures`; nothing is lost).
fn store_pieces(
    store: &mut SpillStore,
    part: &mut Part,
    schema: &SchemaRef,
    (index_block, wide_rows): (usize, u64),
    failures: &mut u64,
) -> Result<()> {
    let pieces = std::mem::take(&mut part.pieces);
    let width = spill_parts::record_width(part.rows, wide_rows);
    let mut kept = Vec::new();
    for lo in (0..SUBS).step_by(width) {
        let rows = if width == SUBS {
            pieces.clone()
        } else {
            let mut rows = Vec::new();
            for piece in &pieces {
                rows.extend(spill_parts::rows_of(piece, lo..lo + width)?);
            }
            rows
        };
        if rows.is_empty() {
            continue;
        }
        let batch = arrow_select::concat::concat_batches(schema, &rows)
            .map_err(Error::arrow("joining fragments of a spilled partition"))?;
        let n = batch.num_rows() as u32;
        match store.put(&spill_parts::encode(std::slice::from_ref(&batch))?) {
            Ok(handle) => {
                part.stored.push(Stored { handle, rows: n, lo: lo as u8, hi: (lo + width) as u8 });
                if part.stored.len() >= index_block {
                    // The entries go to the store too, as one index block.
                    if let Ok(block) = store.put(&spill_parts::encode_index(&part.stored)) {
                        part.index.push((block, part.stored.len() as u32));
                        part.stored.clear();
                    }
                }
            }
            Err(_) => {
                *failures += 1;
                kept.push(batch);
            }
        }
    }
    part.piece_bytes = kept.iter().map(RecordBatch::get_array_memory_size).sum();
    part.pieces = kept;
    Ok(())
}

/// A spilled generation's driver fields (arrival, first, last, items, bytes).
type Fields = (u64, Millis, Millis, u64, u64);

/// Reads one generation as [`spill_run`](KeyedAccumulator::spill_run)
/// wrote it: its fields, `Some(())` for a completed key's mark, and the
/// accumulator's state.
fn read_generation<'a>(r: &mut Reader<'a>) -> Result<(Fields, Option<()>, &'a [u8])> {
    let fields = (r.u64()?, r.u64()? as Millis, r.u64()? as Millis, r.u64()?, r.u64()?);
    let flags = r.bytes(1)?[0];
    let len = r.u32()? as usize;
    let state = r.bytes(len)?;
    Ok((fields, (flags & DONE != 0).then_some(()), state))
}

/// Empties `slot` after its generation was written out: the slot is freed
/// with the call's others, its deadline entry forgotten.
fn detach<A: Accumulator>(core: &mut super::Core<A>, slot: u32) {
    let s = slot as usize;
    if core.done.get(s).copied().unwrap_or(false) {
        core.done[s] = false;
        core.tombstones -= 1;
    }
    core.arrival[s] = NO_GEN;
    if core.track_sizes {
        core.items[s] = 0;
        core.bytes[s] = 0;
    }
    if let Some(spill) = core.spill.as_mut() {
        spill.state[s] = IN_MEMORY;
    }
    core.released.push(slot);
    if !matches!(core.rule, super::Rule::Never) {
        core.forget_one();
    }
}

fn spill_reason(e: SpillError) -> String {
    match e {
        SpillError::Corrupted { reason, .. } => reason,
        e => e.to_string(),
    }
}
