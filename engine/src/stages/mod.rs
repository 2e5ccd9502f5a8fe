//! Built-in stages that are not plain transforms: the accumulator adapter,
//! branch and merge.

mod accumulate;
mod branch;
mod dead_letter_source;
mod merge;

pub use accumulate::AccumulateStage;
pub use branch::Branch;
pub use dead_letter_source::DeadLetterSource;
pub use merge::Merge;
