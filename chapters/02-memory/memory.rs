// SPDX-License-Identifier: GPL-2.0

//! Memory: allocating in the kernel.
//!
//! Every allocation in the kernel can fail, and every one says how it may
//! wait for memory (its GFP flags). This module allocates, fills, verifies
//! and frees buffers from the three families: `KVec` (kmalloc: physically
//! contiguous, small), `VVec` (vmalloc: virtually contiguous, large) and
//! `KVVec` (kmalloc, falling back to vmalloc). It asks kmalloc what it really
//! hands out for a size, watches a `KVec`'s capacity double as it grows,
//! boxes a value with `KBox`, pins a spinlock in place with `pin_init!`,
//! allocates with `GFP_ATOMIC` while holding it, builds a 64 KiB table in
//! place in a `VBox` (it would not fit on the kernel stack), and shares one
//! value between two owners with `Arc`.
//!
//! Sizes are module parameters, so a size the kernel cannot satisfy makes
//! the load fail cleanly, and a count above the module's bound is refused
//! before anything is allocated:
//!
//! ```sh
//! insmod memory.ko vmalloc_bytes=8388608
//! insmod memory.ko vmalloc_bytes=1099511627776   # Cannot allocate memory
//! insmod memory.ko items=1000000                 # Invalid argument
//! ```

use kernel::alloc::{
    allocator::{KVmalloc, Kmalloc, Vmalloc},
    Allocator,
};
use kernel::prelude::*;
use kernel::sync::{new_spinlock, Arc, SpinLock};

module! {
    type: Memory,
    name: "memory",
    authors: ["The Rust Kernel Workbook"],
    description: "Allocating in the kernel: KBox, KVec, VVec, KVVec, GFP flags, pinning, Arc",
    license: "GPL",
    params: {
        kmalloc_bytes: usize {
            default: 4096,
            description: "Bytes to allocate with kmalloc (KVec)",
        },
        vmalloc_bytes: usize {
            default: 4194304,
            description: "Bytes to allocate with vmalloc (VVec)",
        },
        kvmalloc_bytes: usize {
            default: 65536,
            description: "Bytes to allocate with kvmalloc (KVVec)",
        },
        items: u32 {
            default: 100,
            description: "Numbers to push, one allocation-checked push at a time, 0 to 4096",
        },
    },
}

// ANCHOR: bound
/// The most numbers `items` may ask for: 4096 `u64`s are 32 KiB.
const MAX_ITEMS: u32 = 4096;

// The numbers go into one `KVec`, that is one kmalloc buffer, whose capacity
// doubles as it grows. kmalloc cannot serve more than KMALLOC_MAX_SIZE (4 MiB
// on x86-64), and asked for more it does not just fail: the page allocator
// WARNs, a kernel bug report, unless the caller passed `__GFP_NOWARN`. So a
// count from outside is bounded first, and the bound is checked here against
// the kernel's limit, at the largest capacity the doubling can reach.
static_assert!(
    (MAX_ITEMS as usize).next_power_of_two() * core::mem::size_of::<u64>()
        <= kernel::bindings::KMALLOC_MAX_SIZE as usize
);
// ANCHOR_END: bound

// ANCHOR: buffer
/// The byte at `index` of a buffer filled from `seed`.
fn pattern(index: usize, seed: u8) -> u8 {
    (index as u8).wrapping_mul(31).wrapping_add(seed)
}

/// Allocates `bytes` bytes with the allocator `A`, fills and verifies them.
fn filled_buffer<A: Allocator>(family: &str, bytes: usize, seed: u8) -> Result<Vec<u8, A>> {
    let mut buffer = Vec::<u8, A>::new();
    // The size comes from outside: failing is an answer, not a kernel bug,
    // so ask the allocator not to WARN about it.
    if buffer.resize(bytes, 0, GFP_KERNEL | __GFP_NOWARN).is_err() {
        pr_err!("{family}: cannot allocate {bytes} bytes\n");
        return Err(ENOMEM);
    }
    // ANCHOR_END: buffer
    // EXERCISE: Fill the buffer with `pattern(index, seed)`, read it back (EIO if any byte differs), then log `{family}: {bytes} bytes allocated, filled and verified`.
    // HINT: A kernel `Vec` derefs to a slice: `iter_mut().enumerate()` writes, `iter().enumerate()` reads.
    // HINT: `for (index, byte) in buffer.iter_mut().enumerate() { *byte = pattern(index, seed); }`, then `if buffer.iter().enumerate().any(|(index, byte)| *byte != pattern(index, seed)) { return Err(EIO); }`, then the pr_info!.
    for (index, byte) in buffer.iter_mut().enumerate() {
        *byte = pattern(index, seed);
    }
    if buffer
        .iter()
        .enumerate()
        .any(|(index, byte)| *byte != pattern(index, seed))
    {
        pr_err!("{family}: the buffer does not read back what was written\n");
        return Err(EIO);
    }
    pr_info!("{family}: {bytes} bytes allocated, filled and verified\n");
    // END EXERCISE
    Ok(buffer)
}

// ANCHOR: shared
/// A value with two owners; freed when the last `Arc` goes.
struct Shared {
    label: &'static str,
}

impl Drop for Shared {
    fn drop(&mut self) {
        pr_info!("shared value `{}` freed\n", self.label);
    }
}
// ANCHOR_END: shared

// ANCHOR: state
/// Numbers recorded under a spinlock.
struct Recorder {
    numbers: KVec<u32>,
}

/// The size of the table built in place in a `VBox`: four times the whole
/// kernel stack of x86-64 (16 KiB).
const TABLE_BYTES: usize = 65536;

struct Memory {
    kmalloc: KVec<u8>,
    vmalloc: VVec<u8>,
    kvmalloc: KVVec<u8>,
    boxed: KBox<u64>,
    recorder: Pin<KBox<SpinLock<Recorder>>>,
    table: VBox<[u8; TABLE_BYTES]>,
    first_owner: Arc<Shared>,
    second_owner: Arc<Shared>,
}
// ANCHOR_END: state

impl kernel::Module for Memory {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // ANCHOR: check
        // Input is checked before anything is allocated.
        let items = module_parameters::items.value();
        if items > MAX_ITEMS {
            pr_err!("items={items} is out of range 0..={MAX_ITEMS}\n");
            return Err(EINVAL);
        }
        // ANCHOR_END: check

        // ANCHOR: families
        let kmalloc =
            filled_buffer::<Kmalloc>("kmalloc", module_parameters::kmalloc_bytes.value(), 1)?;
        let vmalloc =
            filled_buffer::<Vmalloc>("vmalloc", module_parameters::vmalloc_bytes.value(), 2)?;
        let kvmalloc =
            filled_buffer::<KVmalloc>("kvmalloc", module_parameters::kvmalloc_bytes.value(), 3)?;
        // ANCHOR_END: families

        // kmalloc serves a request from the smallest of its size classes
        // (slab caches) that fits, or, above KMALLOC_MAX_CACHE_SIZE, from
        // the page allocator in whole powers of two of pages.
        // EXERCISE: Ask kmalloc what it really hands out for the kmalloc buffer's size, with the C function `kmalloc_size_roundup`, and log `kmalloc: N bytes asked for, M handed out`.
        // HINT: Exported C functions are in `kernel::bindings`; calling one is `unsafe`, and the block needs a `// SAFETY:` comment that says why the call is sound: read the function in mm/slab_common.c first.
        // HINT: `// SAFETY: kmalloc_size_roundup() takes any size, ...` then `let handed_out = unsafe { kernel::bindings::kmalloc_size_roundup(kmalloc.len()) };` and the pr_info!.
        // SAFETY: `kmalloc_size_roundup()` (mm/slab_common.c) has no
        // precondition: it takes any size, and only reads the table of
        // kmalloc caches, which the kernel set up at boot, before any module
        // could load. It takes no lock and does not sleep.
        let handed_out = unsafe { kernel::bindings::kmalloc_size_roundup(kmalloc.len()) };
        pr_info!(
            "kmalloc: {} bytes asked for, {handed_out} handed out\n",
            kmalloc.len()
        );
        // END EXERCISE

        // ANCHOR: push
        // Every push may allocate, so every push can fail: `?` passes the
        // failure on as ENOMEM instead of panicking.
        let mut squares = KVec::new();
        for n in 0..items {
            squares.push(u64::from(n) * u64::from(n), GFP_KERNEL)?;
        }
        let sum: u64 = squares.iter().sum();
        let boxed = KBox::new(sum, GFP_KERNEL)?;
        pr_info!(
            "KVec: {} squares pushed, their sum {} boxed in a KBox\n",
            squares.len(),
            *boxed
        );
        // ANCHOR_END: push
        // EXERCISE: Log the KVec's capacity after the pushes: `KVec: capacity C for N squares, B bytes in one kmalloc buffer`, or `KVec: capacity 0, no buffer was ever allocated` when nothing was pushed.
        // HINT: A push that finds the KVec full makes room for twice as many (see `reserve` in rust/kernel/alloc/kvec.rs): 100 pushes leave room for 128; an empty KVec never allocated.
        // HINT: `squares.capacity()` and `squares.len()`; the bytes are `squares.capacity() * core::mem::size_of::<u64>()`.
        if squares.capacity() == 0 {
            pr_info!("KVec: capacity 0, no buffer was ever allocated\n");
        } else {
            pr_info!(
                "KVec: capacity {} for {} squares, {} bytes in one kmalloc buffer\n",
                squares.capacity(),
                squares.len(),
                squares.capacity() * core::mem::size_of::<u64>()
            );
        }
        // END EXERCISE

        // ANCHOR: atomic
        // The `kernel` crate never lets a lock move once initialised: a C
        // lock may point to itself (a mutex under CONFIG_DEBUG_MUTEXES keeps
        // its own address in `magic`), and what a `spinlock_t` holds depends
        // on the architecture and the configuration, so every `Lock` is
        // pinned. `pin_init` builds it in place, inside its box.
        let recorder = KBox::pin_init(
            new_spinlock!(Recorder {
                numbers: KVec::new()
            }),
            GFP_KERNEL,
        )?;
        // ANCHOR_END: atomic
        // EXERCISE: Lock the recorder, push the number 42 into its `numbers` with the right flags for a spinlock, unlock, then log `SpinLock: pinned, and a GFP_ATOMIC push under it succeeded`.
        // HINT: `recorder.lock()` returns a guard; the lock is released when the guard is dropped.
        // HINT: Code holding a spinlock must not sleep, and GFP_KERNEL may sleep.
        // HINT: `{ let mut guard = recorder.lock(); guard.numbers.push(42, GFP_ATOMIC)?; }`, then the pr_info! once the guard is gone.
        {
            let mut guard = recorder.lock();
            // Holding a spinlock, the code must not sleep, so the
            // allocation must not wait for memory: GFP_ATOMIC.
            guard.numbers.push(42, GFP_ATOMIC)?;
        }
        pr_info!("SpinLock: pinned, and a GFP_ATOMIC push under it succeeded\n");
        // END EXERCISE

        // EXERCISE: Build a `VBox<[u8; TABLE_BYTES]>` whose byte `index` is `pattern(index, 4)`, in place (the array must never be on the stack), then log `VBox: a 65536-byte table built in place, its bytes sum to S`.
        // HINT: `VBox::new([0u8; TABLE_BYTES], ...)` first builds the array on the stack, which is only 16 KiB: the kernel would crash. Allocate first, then write into the allocation: `VBox::new_uninit`, `VBox::zeroed`, or an initializer (`VBox::init`).
        // HINT: `let table = VBox::<[u8; TABLE_BYTES]>::init(pin_init::init_array_from_fn(|index| pattern(index, 4)), GFP_KERNEL)?;`, then the sum: `table.iter().map(|byte| u64::from(*byte)).sum::<u64>()`.
        // STUB: let table = VBox::<[u8; TABLE_BYTES]>::zeroed(GFP_KERNEL)?;
        // An initializer writes each element straight into the allocation:
        // the array is never built on the stack and moved.
        let table = VBox::<[u8; TABLE_BYTES]>::init(
            pin_init::init_array_from_fn(|index| pattern(index, 4)),
            GFP_KERNEL,
        )?;
        let sum: u64 = table.iter().map(|byte| u64::from(*byte)).sum();
        pr_info!("VBox: a {TABLE_BYTES}-byte table built in place, its bytes sum to {sum}\n");
        // END EXERCISE

        // ANCHOR: arc
        let first_owner = Arc::new(Shared { label: "stats" }, GFP_KERNEL)?;
        let second_owner = first_owner.clone();
        pr_info!("Arc: one `{}` value, two owners\n", second_owner.label);
        // ANCHOR_END: arc

        Ok(Memory {
            kmalloc,
            vmalloc,
            kvmalloc,
            boxed,
            recorder,
            table,
            first_owner,
            second_owner,
        })
    }
}

// ANCHOR: drop
impl Drop for Memory {
    fn drop(&mut self) {
        // ANCHOR_END: drop
        // EXERCISE: Log what unloading frees: `unloading: freeing K + V + KV bytes, the box (S), N recorded number(s) and two Arc owners of `stats``, then `unloading: and the 65536-byte table of a VBox`.
        // HINT: The buffers' lengths, `*self.boxed` and `self.first_owner.label` are fields of `self`; the count of recorded numbers is behind the spinlock, so take it first.
        // HINT: `let recorded = self.recorder.lock().numbers.len();` (the guard is dropped at the end of that statement), then two pr_info! lines; `self.table.len()` is the table's size.
        // STUB: let _ = (&self.kmalloc, &self.vmalloc, &self.kvmalloc, &self.boxed);
        // STUB: let _ = (&self.recorder, &self.table, &self.first_owner);
        let recorded = self.recorder.lock().numbers.len();
        pr_info!(
            "unloading: freeing {} + {} + {} bytes, the box ({}), {} recorded number(s) and two Arc owners of `{}`\n",
            self.kmalloc.len(),
            self.vmalloc.len(),
            self.kvmalloc.len(),
            *self.boxed,
            recorded,
            self.first_owner.label,
        );
        pr_info!(
            "unloading: and the {}-byte table of a VBox\n",
            self.table.len()
        );
        // END EXERCISE
        // ANCHOR: drop_rest
        let _ = &self.second_owner;
        // The fields are dropped after this function returns: each buffer
        // is freed, and `Shared` once, when its last owner goes.
    }
}
// ANCHOR_END: drop_rest
