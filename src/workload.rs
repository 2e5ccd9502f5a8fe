//! The standard `assemble` workload (DESIGN §10), generated lazily: no
//! files needed, memory independent of the input size (except the `random`
//! locality's shuffle, 4 bytes per fragment).
//!
//! Fragments are `(subject_id, var, value, ts)`: four variables per subject
//! (`id`, `name`, `riskClass`, `limit`), one fragment per (subject,
//! variable), and a share of subjects missing one variable. `ts` is the
//! fragment's event time in milliseconds, advancing with arrival at
//! [`WorkloadSpec::rows_per_sec`].
//!
//! ```
//! use garner::workload::{Locality, WorkloadSpec};
//! use garner::columnar::BatchSource;
//! let mut source = WorkloadSpec { subjects: 1000, ..WorkloadSpec::default() }.try_source().unwrap();
//! let mut rows = 0;
//! while let Some(batch) = source.next_batch().unwrap() {
//!     rows += batch.num_rows();
//! }
//! assert_eq!(rows as u64, source.rows_hint().unwrap());
//! ```

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use garner_columnar::{BatchSource, Result};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// The variables every subject should have.
pub const VARS: [&str; 4] = ["id", "name", "riskClass", "limit"];

/// Where a subject's fragments are in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locality {
    /// Within a window of [`WorkloadSpec::window_rows`] rows.
    Window,
    /// Anywhere: a full shuffle.
    Random,
}

/// The key column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `subject_id: UInt64`.
    U64,
    /// `subject_id: Utf8`, an IRI such as `http://example.org/subject/42`.
    Iri,
}

/// Why a [`WorkloadSpec`] cannot be generated.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WorkloadError {
    /// [`Locality::Random`] shuffles 32-bit fragment ids (4 per subject):
    /// at most [`WorkloadSpec::MAX_RANDOM_SUBJECTS`] subjects.
    TooManySubjects {
        /// Subjects asked for.
        subjects: u64,
        /// The most there can be.
        max: u64,
    },
    /// `missing_rate` is not a share between 0 and 1.
    MissingRate(f64),
}

impl std::fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkloadError::TooManySubjects { subjects, max } => write!(
                f,
                "{subjects} subjects is too many for random locality (at most {max}: fragment ids are shuffled as 32-bit numbers)"
            ),
            WorkloadError::MissingRate(r) => write!(f, "missing rate {r} is not between 0 and 1"),
        }
    }
}

impl std::error::Error for WorkloadError {}

/// What to generate.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// Number of subjects.
    pub subjects: u64,
    /// Share of subjects that miss one variable.
    pub missing_rate: f64,
    /// Where fragments of a subject are.
    pub locality: Locality,
    /// The key column's type.
    pub key: KeyKind,
    /// Window size for [`Locality::Window`].
    pub window_rows: usize,
    /// Event-time rate: `ts` advances by one second every this many rows.
    pub rows_per_sec: u64,
    /// Event time of the first row (ms since the epoch).
    pub start_ms: i64,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Random seed: the same spec gives the same rows.
    pub seed: u64,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self {
            subjects: 250_000,
            missing_rate: 0.05,
            locality: Locality::Window,
            key: KeyKind::U64,
            window_rows: 100_000,
            rows_per_sec: 100_000,
            start_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            batch_rows: 65_536,
            seed: 42,
        }
    }
}

impl WorkloadSpec {
    /// The most subjects [`Locality::Random`] can shuffle: fragment ids
    /// (`subject * 4 + variable`) are kept as `u32` to halve the shuffle's
    /// memory.
    pub const MAX_RANDOM_SUBJECTS: u64 = (u32::MAX / 4) as u64;

    /// Checks that the spec can be generated.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if !(0.0..=1.0).contains(&self.missing_rate) {
            return Err(WorkloadError::MissingRate(self.missing_rate));
        }
        if self.locality == Locality::Random && self.subjects > Self::MAX_RANDOM_SUBJECTS {
            return Err(WorkloadError::TooManySubjects {
                subjects: self.subjects,
                max: Self::MAX_RANDOM_SUBJECTS,
            });
        }
        Ok(())
    }

    /// The schema of the fragments.
    pub fn schema(&self) -> SchemaRef {
        let key = match self.key {
            KeyKind::U64 => DataType::UInt64,
            KeyKind::Iri => DataType::Utf8,
        };
        Arc::new(Schema::new(vec![
            Field::new("subject_id", key, false),
            Field::new("var", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, false),
            Field::new("ts", DataType::Int64, false),
        ]))
    }

    /// Which variable subject `s` misses, if any: a pure function of the
    /// seed, so tests can predict the partial rows.
    pub fn missing_var(&self, s: u64) -> Option<usize> {
        let h = splitmix(self.seed ^ s.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
        (unit < self.missing_rate).then_some((h % VARS.len() as u64) as usize)
    }

    /// A source producing the fragments lazily, if the spec is valid (see
    /// [`validate`](Self::validate)).
    pub fn try_source(&self) -> Result<FragmentSource, WorkloadError> {
        self.validate()?;
        Ok(FragmentSource::new(self.clone()))
    }

    /// A source producing the fragments lazily.
    ///
    /// # Panics
    ///
    /// If the spec is invalid (see [`validate`](Self::validate)); use
    /// [`try_source`](Self::try_source) for specs from users.
    pub fn source(&self) -> FragmentSource {
        self.try_source().unwrap_or_else(|e| panic!("invalid workload: {e}"))
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A fragment id: `subject * 4 + variable`.
type FragmentId = u64;

/// Generates the workload batch by batch.
pub struct FragmentSource {
    spec: WorkloadSpec,
    schema: SchemaRef,
    rng: SmallRng,
    /// Fragments generated but not yet emitted, in arrival order.
    pending: Vec<FragmentId>,
    pending_pos: usize,
    /// Next subject to put into a window (window locality).
    next_subject: u64,
    /// The whole shuffled input (random locality), built on first use.
    shuffled: Option<Vec<u32>>,
    rows_emitted: u64,
    total_rows: u64,
}

impl FragmentSource {
    fn new(spec: WorkloadSpec) -> Self {
        let total_rows =
            (0..spec.subjects).map(|s| if spec.missing_var(s).is_some() { 3 } else { 4 }).sum::<u64>();
        Self {
            schema: spec.schema(),
            rng: SmallRng::seed_from_u64(spec.seed),
            pending: Vec::new(),
            pending_pos: 0,
            next_subject: 0,
            shuffled: None,
            rows_emitted: 0,
            total_rows,
            spec,
        }
    }

    fn fragments_of(&self, s: u64, out: &mut Vec<FragmentId>) {
        let missing = self.spec.missing_var(s);
        for v in 0..VARS.len() {
            if missing != Some(v) {
                out.push(s * 4 + v as u64);
            }
        }
    }

    /// Fills `pending` with the next window of subjects, shuffled.
    fn refill_window(&mut self) {
        self.pending.clear();
        self.pending_pos = 0;
        let subjects_per_window = (self.spec.window_rows / VARS.len()).max(1) as u64;
        let end = (self.next_subject + subjects_per_window).min(self.spec.subjects);
        let mut pending = std::mem::take(&mut self.pending);
        for s in self.next_subject..end {
            self.fragments_of(s, &mut pending);
        }
        pending.shuffle(&mut self.rng);
        self.pending = pending;
        self.next_subject = end;
    }

    fn next_ids(&mut self, n: usize) -> Vec<FragmentId> {
        let mut ids = Vec::with_capacity(n);
        match self.spec.locality {
            Locality::Window => {
                while ids.len() < n {
                    if self.pending_pos == self.pending.len() {
                        if self.next_subject >= self.spec.subjects {
                            break;
                        }
                        self.refill_window();
                    }
                    let take = (n - ids.len()).min(self.pending.len() - self.pending_pos);
                    ids.extend_from_slice(&self.pending[self.pending_pos..self.pending_pos + take]);
                    self.pending_pos += take;
                }
            }
            Locality::Random => {
                if self.shuffled.is_none() {
                    let mut all = Vec::with_capacity(self.total_rows as usize);
                    let mut buf = Vec::with_capacity(4);
                    for s in 0..self.spec.subjects {
                        buf.clear();
                        self.fragments_of(s, &mut buf);
                        // Fits: `validate` caps random locality at MAX_RANDOM_SUBJECTS.
                        all.extend(buf.iter().map(|&f| f as u32));
                    }
                    all.shuffle(&mut self.rng);
                    self.shuffled = Some(all);
                }
                let all = self.shuffled.as_ref().expect("built above");
                let start = self.rows_emitted as usize;
                let end = (start + n).min(all.len());
                ids.extend(all[start..end].iter().map(|&f| f as u64));
            }
        }
        ids
    }

    fn build(&mut self, ids: &[FragmentId]) -> Result<RecordBatch> {
        let n = ids.len();
        let key: ArrayRef = match self.spec.key {
            KeyKind::U64 => {
                let mut b = UInt64Builder::with_capacity(n);
                b.append_slice(&ids.iter().map(|f| f / 4).collect::<Vec<_>>());
                Arc::new(b.finish())
            }
            KeyKind::Iri => {
                let mut b = StringBuilder::with_capacity(n, n * 36);
                for f in ids {
                    b.append_value(format!("http://example.org/subject/{}", f / 4));
                }
                Arc::new(b.finish())
            }
        };
        let mut var = StringBuilder::with_capacity(n, n * 5);
        let mut value = StringBuilder::with_capacity(n, n * 10);
        let mut text = String::with_capacity(32);
        for &f in ids {
            let (s, v) = (f / 4, (f % 4) as usize);
            var.append_value(VARS[v]);
            text.clear();
            use std::fmt::Write;
            let _ = match v {
                0 => write!(text, "S{s:08}"),
                1 => write!(text, "name-{s}"),
                2 => write!(text, "{}", ["A", "B", "C", "D", "E"][(splitmix(s) % 5) as usize]),
                _ => write!(text, "{}", splitmix(s ^ 7) % 1_000_000),
            };
            value.append_value(&text);
        }
        let rate = self.spec.rows_per_sec.max(1) as i64;
        let first = self.rows_emitted as i64;
        let ts = Int64Array::from_iter_values(
            (0..n as i64).map(|i| self.spec.start_ms + (first + i) * 1000 / rate),
        );
        RecordBatch::try_new(
            self.schema.clone(),
            vec![key, Arc::new(var.finish()), Arc::new(value.finish()), Arc::new(ts)],
        )
        .map_err(|e| garner_columnar::Error::arrow("generating fragments", e))
    }
}

impl BatchSource for FragmentSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let ids = self.next_ids(self.spec.batch_rows.max(1));
        if ids.is_empty() {
            return Ok(None);
        }
        let batch = self.build(&ids)?;
        self.rows_emitted += ids.len() as u64;
        Ok(Some(batch))
    }

    fn rows_hint(&self) -> Option<u64> {
        Some(self.total_rows)
    }

    fn describe(&self) -> String {
        format!("generated fragments ({} subjects, {:?} locality)", self.spec.subjects, self.spec.locality)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt64Type;
    use std::collections::HashMap;

    fn all(spec: &WorkloadSpec) -> Vec<RecordBatch> {
        let mut src = spec.source();
        std::iter::from_fn(|| src.next_batch().unwrap()).collect()
    }

    #[test]
    fn every_subject_has_its_fragments_once() {
        for locality in [Locality::Window, Locality::Random] {
            let spec = WorkloadSpec {
                subjects: 2000,
                locality,
                batch_rows: 1000,
                window_rows: 400,
                ..Default::default()
            };
            let mut per_subject: HashMap<u64, usize> = HashMap::new();
            for b in all(&spec) {
                for s in b.column(0).as_primitive::<UInt64Type>().values() {
                    *per_subject.entry(*s).or_default() += 1;
                }
            }
            assert_eq!(per_subject.len(), 2000);
            for (s, n) in per_subject {
                assert_eq!(n, if spec.missing_var(s).is_some() { 3 } else { 4 }, "subject {s}");
            }
        }
    }

    #[test]
    fn window_locality_keeps_a_subject_within_the_window() {
        let spec = WorkloadSpec { subjects: 5000, window_rows: 400, batch_rows: 999, ..Default::default() };
        let mut first_last: HashMap<u64, (usize, usize)> = HashMap::new();
        let mut row = 0;
        for b in all(&spec) {
            for s in b.column(0).as_primitive::<UInt64Type>().values() {
                let e = first_last.entry(*s).or_insert((row, row));
                e.1 = row;
                row += 1;
            }
        }
        assert!(first_last.values().all(|(a, b)| b - a < 400));
    }

    #[test]
    fn too_many_subjects_for_random_locality_is_an_error_not_a_wrap() {
        // Caught: fragment ids were cast to u32 and wrapped around,
        // generating the wrong subjects.
        let spec = WorkloadSpec {
            subjects: WorkloadSpec::MAX_RANDOM_SUBJECTS + 1,
            locality: Locality::Random,
            ..Default::default()
        };
        let err = spec.try_source().err().expect("refused");
        assert!(matches!(err, WorkloadError::TooManySubjects { .. }), "{err}");
        assert!(err.to_string().contains("random locality"), "{err}");
        let windowed = WorkloadSpec { locality: Locality::Window, ..spec };
        assert_eq!(windowed.validate(), Ok(()), "window locality keeps u64 ids");
        let bad_rate = WorkloadSpec { missing_rate: 1.5, ..Default::default() };
        assert_eq!(bad_rate.validate(), Err(WorkloadError::MissingRate(1.5)));
    }

    #[test]
    fn missing_rate_is_close_to_the_spec() {
        let spec = WorkloadSpec { subjects: 100_000, ..Default::default() };
        let missing = (0..spec.subjects).filter(|&s| spec.missing_var(s).is_some()).count();
        assert!((4_000..6_000).contains(&missing), "{missing}");
    }
}
