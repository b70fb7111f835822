//! A provided-buffer ring: memory the kernel picks receive buffers from (one per completion), so
//! that a connection holds no buffer while it waits for data.
//!
//! The ring is an array of `io_uring_buf` entries shared with the kernel: we write entries and
//! publish them by advancing the tail; the kernel consumes them from its head. A buffer belongs
//! to the kernel from the moment its entry is published until a completion names it, then to us
//! until [`BufRing::recycle`] publishes it again.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The ring of entries (page aligned, as the kernel requires) and the buffers it names.
pub(crate) struct BufRing {
    entries: NonNull<BufRingEntry>,
    entries_layout: Layout,
    memory: NonNull<u8>,
    memory_layout: Layout,
    count: u16,
    size: usize,
    /// Our copy of the tail (the next entry to write).
    tail: u16,
    group: u16,
    /// Incremental consumption (`IOU_PBUF_RING_INC`, Linux 6.12): the kernel fills one buffer
    /// with several receives, one after the other, until it is full.
    incremental: bool,
    /// Incremental: where the next receive into each buffer starts.
    offsets: Vec<u32>,
}

/// `IOU_PBUF_RING_INC`.
const PBUF_RING_INC: u16 = 2;

// SAFETY: the ring's memory is owned by this value alone; the kernel's access to it is tied to
// the io_uring instance, which moves to the worker thread with it.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Allocates `count` (a power of two) buffers of `size` bytes, registers them with `ring` as
    /// buffer group `group` (consumed incrementally if `incremental`) and hands them all to the
    /// kernel.
    pub(crate) fn new(
        ring: &IoUring,
        group: u16,
        count: u16,
        size: usize,
        incremental: bool,
    ) -> io::Result<BufRing> {
        assert!(count.is_power_of_two() && size > 0);
        let entries_layout =
            Layout::from_size_align(usize::from(count) * size_of::<BufRingEntry>(), 4096)
                .map_err(io::Error::other)?;
        let memory_layout =
            Layout::from_size_align(usize::from(count) * size, 64).map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size.
        let (entries, memory) = unsafe {
            (
                alloc::alloc_zeroed(entries_layout).cast::<BufRingEntry>(),
                alloc::alloc(memory_layout),
            )
        };
        let (Some(entries), Some(memory)) = (NonNull::new(entries), NonNull::new(memory)) else {
            alloc::handle_alloc_error(entries_layout);
        };
        let mut ring_bufs = BufRing {
            entries,
            entries_layout,
            memory,
            memory_layout,
            count,
            size,
            tail: 0,
            group,
            incremental,
            offsets: vec![0; usize::from(count)],
        };
        // SAFETY: the entries stay allocated until `Drop`, which unregisters them first.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                entries.as_ptr() as u64,
                count,
                group,
                if incremental { PBUF_RING_INC } else { 0 },
            )?;
        }
        for bid in 0..count {
            ring_bufs.push(bid);
        }
        ring_bufs.publish();
        Ok(ring_bufs)
    }

    /// The buffer group id, for receive requests.
    pub(crate) fn group(&self) -> u16 {
        self.group
    }

    /// Where in buffer `bid` a completion of `len` bytes lies, and whether the kernel is done
    /// with the buffer after it (`more`: the completion said it goes on filling the buffer).
    /// Called once per completion, in the kernel's order.
    pub(crate) fn place(&mut self, bid: u16, len: usize, more: bool) -> (u32, bool) {
        let Some(offset) = self.offsets.get_mut(usize::from(bid)) else {
            return (0, true);
        };
        if !self.incremental {
            return (0, true);
        }
        let at = *offset;
        *offset = if more { at + len as u32 } else { 0 };
        (at, !more)
    }

    /// `len` bytes of buffer `bid` from `offset`, which a completion gave us.
    pub(crate) fn get(&mut self, bid: u16, offset: u32, len: usize) -> &mut [u8] {
        let offset = offset as usize;
        assert!(
            bid < self.count && offset + len <= self.size,
            "bad buffer id or length"
        );
        // SAFETY: in bounds (checked); the kernel has written these bytes and does not touch
        // them again (it goes on after them, or the buffer is ours until published again), and
        // `&mut self` keeps us from handing out two views of it.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.memory
                    .as_ptr()
                    .add(usize::from(bid) * self.size + offset),
                len,
            )
        }
    }

    /// Gives buffer `bid` back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        if bid < self.count {
            self.push(bid);
            self.publish();
        }
    }

    fn push(&mut self, bid: u16) {
        let mask = self.count - 1;
        let i = usize::from(self.tail & mask);
        // SAFETY: `i < count`; the entry at the tail is not the kernel's until published.
        let entry = unsafe { &mut *self.entries.as_ptr().add(i) };
        // SAFETY: in bounds of `memory`.
        let addr = unsafe { self.memory.as_ptr().add(usize::from(bid) * self.size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field lives in the first entry, which is ours to write; the kernel
        // reads it with acquire semantics, so the entries written before are visible.
        unsafe {
            let tail = BufRingEntry::tail(self.entries.as_ptr()) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Unregisters the ring from `ring` (before the memory is freed).
    pub(crate) fn unregister(&self, ring: &IoUring) {
        let _ = ring.submitter().unregister_buf_ring(self.group);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts; the owner unregistered the ring and
        // ended every request that could write into it (or leaked this value instead).
        unsafe {
            alloc::dealloc(self.entries.as_ptr().cast(), self.entries_layout);
            alloc::dealloc(self.memory.as_ptr(), self.memory_layout);
        }
    }
}
