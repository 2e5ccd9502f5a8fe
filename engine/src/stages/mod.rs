//! Built-in stages that are not plain transforms: the accumulator adapter,
//! branch and merge.

mod accumulate;
mod branch;
mod merge;

pub use accumulate::AccumulateStage;
pub use branch::Branch;
pub use merge::Merge;
