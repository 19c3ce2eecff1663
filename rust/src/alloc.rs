//! The process-wide Rust allocator: small blocks from mimalloc, large ones from the system.
//!
//! A training step makes a few hundred small allocations (tensor headers, shapes and strides,
//! graph nodes, the buffers of small tensors); mimalloc's per-thread free lists serve them in a
//! fraction of glibc's time. Large buffers (activations, gradients, weights) stay with the
//! system allocator, whose heap splits and merges freed blocks, so peak memory stays close to
//! what the tensors alive at once need; mimalloc keeps freed pages of its own segments for
//! reuse by equal sizes only, which would raise the peak of a training step.
//!
//! On glibc, [`keep_freed_memory`] also keeps blocks up to 256 MB on the heap (glibc maps
//! anything over 32 MB afresh) and keeps freed memory mapped: every new page the OS maps must
//! be zeroed, which cost 10-15% of a GPT-2 training step (its gradients alone are 500 MB a
//! step, freed by `zero_grad`). The price is a peak about 2% higher, and memory a process freed
//! stays with it (up to 512 MB at the top of the heap) until it exits, as with torch's GPU
//! caching allocator. `FERROTORCH_MALLOC_DEFAULTS=1` keeps glibc's defaults.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks up to this size come from mimalloc.
const SMALL: usize = 64 * 1024;

pub struct Allocator;

#[global_allocator]
static GLOBAL: Allocator = Allocator;

fn small(size: usize) -> bool {
    size <= SMALL
}

/// The allocator that serves (and frees) blocks of `size` bytes.
fn pick(size: usize) -> &'static dyn GlobalAlloc {
    if small(size) {
        &mimalloc::MiMalloc
    } else {
        &System
    }
}

// SAFETY: each block is freed by the allocator that made it: both ends decide by the block's
// size, which Rust passes unchanged to `dealloc` and `realloc`; a `realloc` across the
// threshold moves the block between the two.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        pick(layout.size()).alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        pick(layout.size()).alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        pick(layout.size()).dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if small(layout.size()) == small(new_size) {
            return pick(new_size).realloc(ptr, layout, new_size);
        }
        // SAFETY (of the layout): the caller guarantees new_size, rounded up to the alignment,
        // does not overflow isize.
        let new = Layout::from_size_align_unchecked(new_size, layout.align());
        let moved = self.alloc(new);
        if !moved.is_null() {
            std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        moved
    }
}

/// Tunes glibc's heap for tensor buffers (see the module docs); elsewhere, nothing to do.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::raw::c_int;
        extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        const M_TRIM_THRESHOLD: c_int = -1;
        const M_MMAP_THRESHOLD: c_int = -3;
        if std::env::var_os("FERROTORCH_MALLOC_DEFAULTS").is_some_and(|v| v != "0") {
            return;
        }
        // SAFETY: mallopt only sets two of glibc's tuning parameters; it is thread-safe.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 256 << 20);
            mallopt(M_TRIM_THRESHOLD, 512 << 20);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn blocks_keep_their_contents_across_the_threshold() {
        // Sizes in bytes: 4 KB, 80 KB, 160 KB, 400 B, 200 KB, 40 B.
        let mut v: Vec<u32> = (0..1000).collect();
        let mut kept = 1000;
        for n in [20_000, 40_000, 100, 50_000, 10] {
            v.resize(n, 7);
            v.shrink_to_fit();
            kept = kept.min(n);
            assert!(v[..kept].iter().enumerate().all(|(i, &x)| x == i as u32));
            assert!(v[kept..].iter().all(|&x| x == 7));
        }
    }
}
