// Copyright 2019 Octavian Oncescu

#![no_std]

//! A drop-in global allocator wrapper around the [mimalloc](https://github.com/microsoft/mimalloc) allocator.
//! Mimalloc is a general purpose, performance oriented allocator built by Microsoft.
//!
//! ## Usage
//! ```rust,ignore
//! use mimalloc::MiMalloc;
//!
//! #[global_allocator]
//! static GLOBAL: MiMalloc = MiMalloc;
//! ```
//!
//! ## Usage with secure mode
//! Using secure mode adds guard pages,
//! randomized allocation, encrypted free lists, etc. The performance penalty is usually
//! around 10% according to [mimalloc's](https://github.com/microsoft/mimalloc)
//! own benchmarks.
//!
//! To enable secure mode, put in `Cargo.toml`:
//! ```toml
//! [dependencies]
//! mimalloc = { version = "*", features = ["secure"] }
//! ```

extern crate libmimalloc_sys as ffi;

#[cfg(feature = "extended")]
mod extended;

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use ffi::*;

/// Drop-in mimalloc global allocator.
///
/// ## Usage
/// ```rust,ignore
/// use mimalloc::MiMalloc;
///
/// #[global_allocator]
/// static GLOBAL: MiMalloc = MiMalloc;
/// ```
pub struct MiMalloc;

// plumb: the alignment every block of mimalloc has without asking for one: 16 bytes for
// blocks of 16 bytes or more (`MI_MAX_ALIGN_SIZE`; `_mi_page_malloc_zero` asserts it), and
// every block is at least as large as the size asked for.
const MI_MAX_ALIGN_SIZE: usize = 16;

// plumb: whether `layout` is served as asked by the plain (unaligned) calls, as the standard
// library's `System` allocator decides for `malloc`. Most of a program's allocations are (the
// alignment of a Rust type is at most 8 or 16 and never more than its size); the aligned
// calls send every request over 1 KiB, however small its alignment, through a generic path
// that over-allocates unless the block size is a power of two (mimalloc v3's
// `mi_malloc_is_naturally_aligned`) and marks the page as holding interior pointers.
#[inline]
fn naturally_aligned(align: usize, size: usize) -> bool {
    align <= MI_MAX_ALIGN_SIZE && align <= size
}

unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // plumb: the plain call when it gives the alignment anyway.
        if naturally_aligned(layout.align(), layout.size()) {
            return mi_malloc(layout.size()) as *mut u8;
        }
        mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // plumb: the plain call when it gives the alignment anyway.
        if naturally_aligned(layout.align(), layout.size()) {
            return mi_zalloc(layout.size()) as *mut u8;
        }
        mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi_free(ptr as *mut c_void);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // plumb: the plain call when it gives the alignment anyway.
        if naturally_aligned(layout.align(), new_size) {
            return mi_realloc(ptr as *mut c_void, new_size) as *mut u8;
        }
        mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_frees_allocated_memory() {
        unsafe {
            let layout = Layout::from_size_align(8, 8).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc(layout);
            alloc.dealloc(ptr, layout);
        }
    }

    #[test]
    fn it_frees_allocated_big_memory() {
        unsafe {
            let layout = Layout::from_size_align(1 << 20, 32).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc(layout);
            alloc.dealloc(ptr, layout);
        }
    }

    #[test]
    fn it_frees_zero_allocated_memory() {
        unsafe {
            let layout = Layout::from_size_align(8, 8).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc_zeroed(layout);
            alloc.dealloc(ptr, layout);
        }
    }

    #[test]
    fn it_frees_zero_allocated_big_memory() {
        unsafe {
            let layout = Layout::from_size_align(1 << 20, 32).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc_zeroed(layout);
            alloc.dealloc(ptr, layout);
        }
    }

    #[test]
    fn it_frees_reallocated_memory() {
        unsafe {
            let layout = Layout::from_size_align(8, 8).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc(layout);
            let ptr = alloc.realloc(ptr, layout, 16);
            alloc.dealloc(ptr, layout);
        }
    }

    #[test]
    fn it_frees_reallocated_big_memory() {
        unsafe {
            let layout = Layout::from_size_align(1 << 20, 32).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc(layout);
            let ptr = alloc.realloc(ptr, layout, 2 << 20);
            alloc.dealloc(ptr, layout);
        }
    }

    // plumb: every layout a program can ask for gets its alignment, through either call.
    #[test]
    fn plumb_every_block_has_the_alignment_asked_for() {
        unsafe {
            let alloc = MiMalloc;
            for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
                for size in (1..=3000).chain([4096, 8192, 65536, 1 << 20]) {
                    let layout = Layout::from_size_align(size, align).unwrap();
                    let mut held = [core::ptr::null_mut(); 3];
                    for slot in held.iter_mut() {
                        let ptr = alloc.alloc(layout);
                        assert!(!ptr.is_null());
                        assert_eq!(ptr as usize % align, 0, "size {} align {}", size, align);
                        *slot = ptr;
                    }
                    let zeroed = alloc.alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % align, 0, "zeroed: size {} align {}", size, align);
                    assert!((0..size).all(|i| *zeroed.add(i) == 0));
                    let grown = alloc.realloc(zeroed, layout, size * 2 + 1);
                    assert_eq!(grown as usize % align, 0, "grown: size {} align {}", size, align);
                    alloc.dealloc(grown, Layout::from_size_align(size * 2 + 1, align).unwrap());
                    for ptr in held {
                        alloc.dealloc(ptr, layout);
                    }
                }
            }
        }
    }
}
