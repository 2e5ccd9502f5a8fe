//! Watching the process's resident set against a budget.
//!
//! Reservations count what their consumers say they hold. A process also
//! holds what nobody reserves: allocator fragmentation, buffers of a
//! library, batches in flight. An [`RssMonitor`] compares the resident set
//! with what the run is allowed (the memory at its start, the budget, and
//! an allowance for fixed overhead) and, when the process is over, takes
//! the excess off the budget's limit ([`MemoryBudget::set_squeeze`]): the
//! reservations are refused growth sooner, so spilling consumers spill
//! more. When the process is back under, the squeeze is lifted.

use crate::MemoryBudget;

/// The resident set of this process in bytes (Linux: `/proc/self/statm`);
/// `None` where the platform does not say.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Squeezes a [`MemoryBudget`] when the process grows past what it allows.
///
/// ```
/// use garner_pools::{ByteSize, MemoryBudget, RssMonitor};
/// let budget = MemoryBudget::new(ByteSize::mib(100));
/// // Started at 50 MiB; tolerates 30 MiB of overhead beyond the budget.
/// let monitor = RssMonitor::new(budget.clone(), 50 << 20, 30 << 20);
/// assert_eq!(monitor.observe(150 << 20), 0); // within 50 + 100 + 30 MiB
/// assert_eq!(monitor.observe(200 << 20), 20 << 20); // 20 MiB over: taken off the limit
/// assert_eq!(budget.effective_limit(), 80 << 20);
/// assert_eq!(monitor.observe(170 << 20), 0); // back under: lifted
/// ```
#[derive(Debug, Clone)]
pub struct RssMonitor {
    budget: MemoryBudget,
    baseline: u64,
    allowance: u64,
}

impl RssMonitor {
    /// A monitor of `budget` for a process that held `baseline` bytes when
    /// the run started, tolerating `allowance` bytes beyond the budget (the
    /// run's fixed overhead: threads, in-flight batches, writer buffers).
    pub fn new(budget: MemoryBudget, baseline: u64, allowance: u64) -> Self {
        Self { budget, baseline, allowance }
    }

    /// A monitor whose baseline is the resident set now, with the default
    /// allowance: a quarter of the limit plus 64 MiB. `None` where the
    /// resident set cannot be read.
    pub fn starting_now(budget: MemoryBudget) -> Option<Self> {
        let baseline = resident_bytes()?;
        let allowance = (budget.limit() / 4).saturating_add(64 << 20);
        Some(Self::new(budget, baseline, allowance))
    }

    /// Takes a resident-set figure: squeezes the budget by how far the
    /// process is past `baseline + limit + allowance` (at most three
    /// quarters of the limit, so consumers keep room to work), or lifts the
    /// squeeze. Returns the squeeze set.
    pub fn observe(&self, resident: u64) -> u64 {
        let limit = self.budget.limit();
        let allowed = self.baseline.saturating_add(limit).saturating_add(self.allowance);
        let squeeze = resident.saturating_sub(allowed).min(limit / 4 * 3);
        self.budget.set_squeeze(squeeze);
        squeeze
    }

    /// Reads the resident set and [`observe`](Self::observe)s it.
    pub fn sample(&self) -> Option<u64> {
        resident_bytes().map(|r| self.observe(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ByteSize;

    #[test]
    fn the_squeeze_follows_the_excess_and_is_capped() {
        let budget = MemoryBudget::new(ByteSize(1000));
        let m = RssMonitor::new(budget.clone(), 100, 200);
        assert_eq!(m.observe(1300), 0);
        assert_eq!(m.observe(1400), 100);
        let mut r = budget.reservation("acc");
        assert!(r.try_grow(901).is_err(), "the squeezed limit is 900");
        r.try_grow(900).unwrap();
        assert_eq!(m.observe(10_000), 750, "never more than 3/4 of the limit");
        assert_eq!(budget.stats().squeezed_bytes, 750);
        assert_eq!(m.observe(0), 0);
        assert_eq!(budget.effective_limit(), 1000);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn unreserved_growth_is_seen() {
        let budget = MemoryBudget::new(ByteSize::mib(8));
        let m = RssMonitor::new(budget.clone(), resident_bytes().unwrap(), 1 << 20);
        // 32 MiB that no reservation knows about, touched so they are resident.
        let hidden = vec![1u8; 32 << 20];
        let squeeze = m.sample().unwrap();
        assert!(squeeze > 0, "the monitor saw the growth");
        assert!(budget.effective_limit() < 8 << 20);
        drop(hidden);
    }
}
