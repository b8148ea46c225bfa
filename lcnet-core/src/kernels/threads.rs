//! How many threads a kernel may split its work over.
//!
//! Inside a batch, [`crate::tensor::forward_per_image`] already gives each rayon
//! thread its own group of images. A layer that split itself across threads
//! there would only make the busy threads steal each other's rows, moving
//! activations between the cores' caches; so such a pass runs its kernels
//! [`serially`], and a kernel asks [`threads`] before splitting.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

thread_local! {
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the kernels on this thread kept to this thread.
pub fn serially<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the previous setting, also when `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL.set(self.0);
        }
    }
    let _restore = Restore(SERIAL.replace(true));
    f()
}

/// Threads the kernels may use from this thread: 1 inside [`serially`],
/// else rayon's pool size.
pub fn threads() -> usize {
    if SERIAL.get() {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// `f(index, chunk)` over the `len`-value chunks of `out`: in parallel, or
/// in order on this thread when only one thread may be used (no rayon task
/// bookkeeping at all then).
pub(crate) fn for_each_chunk<T: Send, F>(out: &mut [T], len: usize, f: F)
where
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    if threads() == 1 {
        out.chunks_mut(len).enumerate().for_each(|(i, chunk)| f(i, chunk));
    } else {
        out.par_chunks_mut(len).enumerate().for_each(|(i, chunk)| f(i, chunk));
    }
}

/// How many parts [`for_each_part`] splits `rows` rows into: one per
/// thread the kernels may use, at most one per row.
pub(crate) fn parts(rows: usize) -> usize {
    threads().min(rows).max(1)
}

/// `f(first_row, part, scratch)` over [`parts`] contiguous runs of the
/// `row_len`-value rows of `out`, in parallel, each with its own
/// `scratch_per_part` values of `scratch` (which holds at least
/// `parts(rows) * scratch_per_part`): for kernels that stage a few rows in
/// a buffer of their own before they store them.
pub(crate) fn for_each_part<T: Send, S: Send, F>(
    out: &mut [T],
    row_len: usize,
    scratch: &mut [S],
    scratch_per_part: usize,
    f: F,
) where
    F: Fn(usize, &mut [T], &mut [S]) + Send + Sync,
{
    let rows = out.len() / row_len.max(1);
    let parts = parts(rows);
    assert!(scratch_per_part > 0 && scratch.len() >= parts * scratch_per_part, "scratch for {parts} parts");
    if parts == 1 {
        return f(0, out, &mut scratch[..scratch_per_part]);
    }
    let per_part = rows.div_ceil(parts);
    out.par_chunks_mut(per_part * row_len)
        .zip(scratch.par_chunks_mut(scratch_per_part))
        .enumerate()
        .for_each(|(i, (part, scratch))| f(i * per_part, part, scratch));
}

/// Runs `f` on this rayon worker while the pool's other threads spin,
/// looking for the tasks `f`'s kernels split off, until `f` returns.
///
/// A single image's forward pass splits dozens of layers over the threads,
/// each for tens of microseconds. Between layers an idle rayon worker soon
/// goes to sleep, and waking a sleeping vCPU costs about as much as the
/// layer itself: on two threads x1.0 ran 1.16x faster than on one, and
/// blocks6 and the head slower. ONNX Runtime's pool spins for the same
/// reason. Outside a pool, with one thread, or inside [`serially`], this is
/// just `f()`.
pub fn with_spinning_helpers<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let (Some(me), pool) = (rayon::current_thread_index(), rayon::current_num_threads()) else {
        return f();
    };
    if pool == 1 || SERIAL.get() {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        for _ in 1..pool {
            s.spawn(|_| {
                // This thread may pick a helper up itself while it waits for
                // a stolen task: it must not spin then, or nothing would set
                // `done`.
                if rayon::current_thread_index() == Some(me) {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        /// Stops the helpers also when `f` panics (the scope waits for
        /// them before it passes the panic on).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _stop = Stop(&done);
        f()
    })
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    fn two_threads() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("thread pool")
    }

    #[test]
    fn the_pass_splits_its_work_while_helpers_spin() {
        let sum: u64 = two_threads().install(|| super::with_spinning_helpers(|| (0..100_000u64).into_par_iter().sum()));
        assert_eq!(sum, 100_000 * 99_999 / 2);
    }

    #[test]
    fn a_panic_in_the_pass_stops_the_helpers_and_is_passed_on() {
        // Without the helpers stopping on unwind, the scope would wait for
        // them forever and this test would hang.
        let caught = two_threads().install(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                super::with_spinning_helpers(|| -> u32 { panic!("a bug in a kernel") })
            }))
        });
        assert!(caught.is_err());
    }
}
