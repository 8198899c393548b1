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

// plumb: the alignment mimalloc's plain calls give every block without being asked: a small
// size is rounded up to its bin (`page-queue.c`, `mi_bin`: 8 bytes, then even numbers of words,
// so every block of 16 bytes or more is a multiple of 16) and a page's blocks start 16-aligned
// (`MI_PAGE_MIN_START_BLOCK_ALIGN`), so blocks under 16 bytes are 8-aligned and all others
// 16-aligned (`mi_page_malloc_zero` asserts it).
const MI_MAX_ALIGN_SIZE: usize = 16;

// plumb: whether the plain (unaligned) calls serve a block of `size` bytes with `align`, as the
// standard library's `System` allocator decides for `malloc`: nearly every Rust allocation is
// (a type's alignment is at most its size, and at most 16 for all but over-aligned types). The
// aligned calls serve only blocks of at most 1 KiB on their fast path; any larger block,
// whatever its alignment, goes through a generic path that over-allocates it unless its block
// size is a power of two up to 4 KiB (mimalloc v3's `mi_malloc_is_naturally_aligned`), and
// marks its page as holding interior pointers.
#[inline]
fn plain_call_suffices(align: usize, size: usize) -> bool {
    align <= MI_MAX_ALIGN_SIZE && align <= size
}

unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // plumb: the plain call when it gives the alignment anyway.
        if plain_call_suffices(layout.align(), layout.size()) {
            return mi_malloc(layout.size()) as *mut u8;
        }
        mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // plumb: the plain call when it gives the alignment anyway.
        if plain_call_suffices(layout.align(), layout.size()) {
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
        if plain_call_suffices(layout.align(), new_size) {
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
                    assert!(!zeroed.is_null());
                    assert_eq!(zeroed as usize % align, 0, "zeroed: size {} align {}", size, align);
                    assert!((0..size).all(|i| *zeroed.add(i) == 0));
                    let grown = alloc.realloc(zeroed, layout, size * 2 + 1);
                    assert!(!grown.is_null());
                    assert_eq!(grown as usize % align, 0, "grown: size {} align {}", size, align);
                    assert!((0..size).all(|i| *grown.add(i) == 0), "kept: size {}", size);
                    alloc.dealloc(grown, Layout::from_size_align(size * 2 + 1, align).unwrap());
                    for ptr in held {
                        alloc.dealloc(ptr, layout);
                    }
                }
            }
            // A block smaller than its alignment takes the aligned call (possibly an interior
            // pointer of an over-allocated block); grown past its alignment, the plain call.
            for (size, align, grown_to) in [(4usize, 8usize, 100usize), (3, 16, 5000), (12, 16, 17)] {
                let layout = Layout::from_size_align(size, align).unwrap();
                let ptr = alloc.alloc(layout);
                assert!(!ptr.is_null());
                for i in 0..size {
                    *ptr.add(i) = i as u8 + 1;
                }
                let grown = alloc.realloc(ptr, layout, grown_to);
                assert!(!grown.is_null());
                assert_eq!(grown as usize % align, 0, "size {} align {}", size, align);
                assert!((0..size).all(|i| *grown.add(i) == i as u8 + 1));
                alloc.dealloc(grown, Layout::from_size_align(grown_to, align).unwrap());
            }
        }
    }
}
