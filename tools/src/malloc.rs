//! glibc malloc tuning for the `garner` process.
//!
//! glibc gives each thread that allocates its own arena (up to eight per
//! core). In a pipeline, memory allocated on one thread is routinely freed
//! on another (a batch built by a worker is dropped by the sink on the
//! other worker), so each arena keeps free chunks the others cannot reuse
//! and the footprint creeps up with the length of the run. One arena keeps
//! peak RSS flat as the input grows (measured in BENCHMARKS.md: +11% → +6%
//! for a 4× input, 10% lower peak) at a few percent of throughput on
//! allocation-heavy runs. A `MALLOC_ARENA_MAX` set in the environment wins:
//! glibc reads it itself, and then nothing is changed here.

/// Applies the tuning; returns whether it was applied.
pub(crate) fn tune() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return false;
        }
        // SAFETY: `mallopt` is thread-safe (it takes the arena locks) and
        // `M_ARENA_MAX` with a positive value is a documented parameter; it
        // only bounds how many arenas future threads create.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_arena_still_serves_every_thread() {
        let applied = super::tune();
        if cfg!(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))
            && std::env::var_os("MALLOC_ARENA_MAX").is_none()
        {
            assert!(applied);
        }
        // Allocate on some threads, free on others.
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let producers: Vec<_> = (0..4)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        tx.send(vec![t as u8; 64 + i * 37 % 5000]).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumer = std::thread::spawn(move || rx.iter().map(|v| v.len()).sum::<usize>());
        for p in producers {
            p.join().unwrap();
        }
        assert!(consumer.join().unwrap() > 4 * 1000 * 64);
    }
}
