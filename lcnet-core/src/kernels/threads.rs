//! How many threads a kernel may split its work over.
//!
//! Inside a batch, [`crate::forward_per_image`] already gives each rayon
//! thread its own group of images. A layer that split itself across threads
//! there would only make the busy threads steal each other's rows, moving
//! activations between the cores' caches; so such a pass runs its kernels
//! [`serially`], and a kernel asks [`threads`] before splitting.

use std::cell::Cell;

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
pub(crate) fn for_each_chunk<F>(out: &mut [f32], len: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Send + Sync,
{
    if threads() == 1 {
        out.chunks_mut(len).enumerate().for_each(|(i, chunk)| f(i, chunk));
    } else {
        out.par_chunks_mut(len).enumerate().for_each(|(i, chunk)| f(i, chunk));
    }
}
