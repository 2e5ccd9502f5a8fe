//! The `garner` process's allocator and its tuning.
//!
//! By default (cargo feature `jemalloc`) the global allocator is jemalloc,
//! configured at build time (`malloc_conf`) with one arena and freed pages
//! returned to the system after a second (`dirty_decay_ms:1000`,
//! `muzzy_decay_ms:0`). In a pipeline, memory allocated on one thread is
//! routinely freed on another (a batch built by a worker is dropped by the
//! sink on the other worker); one arena lets every thread reuse what any
//! other freed. A run with a memory budget asks for freed pages to go back
//! at once ([`prefer_memory`]): its peak RSS then follows the live heap,
//! not the history of the run (BENCHMARKS.md, "spill": with glibc's
//! allocator the 4x input peaked 8% higher, freed chunks the arena kept).
//! `_RJEM_MALLOC_CONF` in the environment overrides the built-in options.
//!
//! Without the feature (`--no-default-features`) the system allocator is
//! used; on glibc it is limited to one arena (`M_ARENA_MAX`, unless
//! `MALLOC_ARENA_MAX` is set). The `mimalloc` feature selects mimalloc.

/// The build uses jemalloc.
macro_rules! with_jemalloc {
    ($($item:item)*) => {$(
        #[cfg(all(feature = "jemalloc", not(feature = "mimalloc"), not(target_env = "msvc")))]
        $item
    )*};
}

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

with_jemalloc! {
    #[global_allocator]
    static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

    /// jemalloc's `malloc_conf`: a pointer to a C string (jemalloc reads it
    /// at its first allocation, before `main`).
    #[repr(transparent)]
    struct Conf(*const std::ffi::c_char);

    // SAFETY: the pointer is to a `'static`, immutable C string.
    unsafe impl Sync for Conf {}

    /// The build-time options; jemalloc declares this symbol weak, so this
    /// definition is the one it reads.
    #[export_name = "_rjem_malloc_conf"]
    static MALLOC_CONF: Conf = Conf(c"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

    /// Sets `dirty_decay_ms` of every arena, and of the arenas created later.
    fn set_dirty_decay(ms: isize) -> bool {
        // SAFETY: these mallctl names take and give the C types used here
        // (`unsigned` arena count, `ssize_t` decay), and the names are
        // NUL-terminated.
        unsafe {
            let Ok(arenas) = tikv_jemalloc_ctl::raw::read::<u32>(b"arenas.narenas\0") else { return false };
            let mut set = tikv_jemalloc_ctl::raw::write(b"arenas.dirty_decay_ms\0", ms).is_ok();
            for i in 0..arenas {
                // An arena index not yet in use is an error: nothing to set.
                let name = format!("arena.{i}.dirty_decay_ms\0");
                set |= tikv_jemalloc_ctl::raw::write(name.as_bytes(), ms).is_ok();
            }
            set
        }
    }
}

/// Applies the tuning that must come before the run; returns whether
/// something was applied (jemalloc's is built in: nothing to do).
pub(crate) fn tune() -> bool {
    #[cfg(all(
        target_os = "linux",
        target_env = "gnu",
        not(feature = "mimalloc"),
        not(feature = "jemalloc")
    ))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return false;
        }
        // SAFETY: `mallopt` is thread-safe (it takes the arena locks) and
        // `M_ARENA_MAX` with a positive value is a documented parameter; it
        // only bounds how many arenas future threads create.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) == 1 }
    }
    #[cfg(not(all(
        target_os = "linux",
        target_env = "gnu",
        not(feature = "mimalloc"),
        not(feature = "jemalloc")
    )))]
    {
        false
    }
}

/// For a run with a memory budget: memory freed goes back to the system at
/// once instead of after a second, so that the peak RSS stays near the
/// live heap (at a cost in throughput: pages are faulted in again). Returns
/// whether the allocator supports it (jemalloc only) and it was applied: a
/// `dirty_decay_ms` given in `_RJEM_MALLOC_CONF` wins.
pub(crate) fn prefer_memory() -> bool {
    #[cfg(all(feature = "jemalloc", not(feature = "mimalloc"), not(target_env = "msvc")))]
    {
        let conf = std::env::var("_RJEM_MALLOC_CONF").unwrap_or_default();
        !conf.contains("dirty_decay_ms") && set_dirty_decay(0)
    }
    #[cfg(not(all(feature = "jemalloc", not(feature = "mimalloc"), not(target_env = "msvc"))))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tuning_is_the_one_the_features_select() {
        let tuned = super::tune();
        let glibc = cfg!(all(
            target_os = "linux",
            target_env = "gnu",
            not(feature = "mimalloc"),
            not(feature = "jemalloc")
        ));
        if glibc && std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            assert!(tuned);
        }
    }

    with_jemalloc! {
        #[test]
        fn jemalloc_reads_the_built_in_options_and_prefers_memory_on_request() {
            let decay = || {
                // SAFETY: `ssize_t` mallctl, NUL-terminated name.
                unsafe { tikv_jemalloc_ctl::raw::read::<isize>(b"arena.0.dirty_decay_ms\0") }.unwrap()
            };
            if std::env::var_os("_RJEM_MALLOC_CONF").is_none() {
                // SAFETY: `unsigned` mallctl, NUL-terminated name.
                let narenas = unsafe { tikv_jemalloc_ctl::raw::read::<u32>(b"opt.narenas\0") }.unwrap();
                assert_eq!(narenas, 1, "the built-in malloc_conf was read");
            }
            assert!(super::prefer_memory());
            assert_eq!(decay(), 0);
            // Memory allocated and freed afterwards still works.
            let v: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1 << 16]).collect();
            assert_eq!(v.iter().map(|b| b[0] as usize).sum::<usize>(), (0..64usize).sum::<usize>());
        }
    }

    #[test]
    fn one_arena_still_serves_every_thread() {
        super::tune();
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
