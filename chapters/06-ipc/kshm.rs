// SPDX-License-Identifier: GPL-2.0

//! kshm: memory shared between the kernel and processes.
//!
//! The module allocates `pages` pages at load time. `mmap` of `/dev/kshm`
//! maps those very pages into the process: every mapping, in any process,
//! shows the same bytes, with no copy. Three ioctls: two let the module
//! touch them, `KSHM_IOC_CHECKSUM` returns the FNV-1a hash of a range of
//! the caller's mapping and `KSHM_IOC_FILL` writes a pattern into one;
//! `KSHM_IOC_SIZE` tells the caller the buffer's size in bytes, so that it
//! can map all of it without knowing the `pages` parameter.
//!
//! The module reaches the shared bytes only through the caller's user
//! addresses (`UserSlice`), never through its own kernel mapping of the
//! pages: a process may write them at any moment, and the user-copy
//! functions are the kernel's API that allows that race. `Page::read_raw`
//! and `Page::write_raw` do not (their contract is that no one writes the
//! bytes meanwhile), so the module does not use them here.
//!
//! The mapping is checked like any input from user space: it must be
//! shared, start at offset 0 and be no larger than the buffer; the kernel
//! itself refuses a writable shared mapping of a file opened read-only.

use core::ptr::from_ref;

use kernel::fs::File;
use kernel::ioctl::{_IOR, _IOW, _IOWR};
use kernel::miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration};
use kernel::mm::virt::{flags, VmaNew};
use kernel::page::{Page, PAGE_SIZE};
use kernel::prelude::*;
use kernel::sync::{Arc, ArcBorrow};
use kernel::transmute::{AsBytes, FromBytes};
use kernel::uaccess::{UserPtr, UserSlice, UserSliceReader, UserSliceWriter};

module! {
    type: KShmModule,
    name: "kshm",
    authors: ["The Rust Kernel Workbook"],
    description: "Shared memory: mmap of kernel pages into user space",
    license: "GPL",
    params: {
        pages: u32 {
            default: 4,
            description: "How many pages to share, 1 to 64",
        },
    },
}

/// What the two ioctls take: a range of the caller's address space,
/// normally its own mapping of the buffer.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Range {
    /// Where the range starts.
    addr: u64,
    /// How many bytes, at most the buffer's size.
    len: u64,
    /// `KSHM_IOC_FILL`: the seed, in. `KSHM_IOC_CHECKSUM`: the hash, out.
    value: u64,
}

// SAFETY: `FromBytes` needs any bytes to be a valid value and no interior
// mutability: `Range` is `#[repr(C)]` with only `u64` fields, any bit
// pattern of which is a `u64`, and no `UnsafeCell`.
unsafe impl FromBytes for Range {}
// SAFETY: `AsBytes` needs every byte initialised and no interior
// mutability: only `u64` fields, so no padding, and no `UnsafeCell`.
unsafe impl AsBytes for Range {}

// The numbers: `'k'` from 0x20 up, a block no driver has registered in
// `Documentation/userspace-api/ioctl/ioctl-number.rst` (`'k'` 0x00-0x17 is
// spidev's, kyro's and HSI's).

/// `_IOWR('k', 0x20, struct kshm_range)`: the FNV-1a hash of the range, in
/// `value`.
const KSHM_IOC_CHECKSUM: u32 = _IOWR::<Range>(b'k' as u32, 0x20);
/// `_IOW('k', 0x21, struct kshm_range)`: write `(value + i) % 251` at each
/// index `i` of the range.
const KSHM_IOC_FILL: u32 = _IOW::<Range>(b'k' as u32, 0x21);
/// `_IOR('k', 0x22, __u64)`: the buffer's size in bytes, so that a process
/// can map all of it without being told the `pages` parameter.
const KSHM_IOC_SIZE: u32 = _IOR::<u64>(b'k' as u32, 0x22);

/// The shared pages. Nothing here changes after load, so nothing here
/// needs a lock.
struct Buffer {
    pages: KVec<Page>,
}

// ANCHOR: access
impl Buffer {
    /// `pages` zeroed pages.
    fn new(pages: u32) -> Result<Arc<Buffer>> {
        if pages == 0 || pages > 64 {
            pr_err!("pages={pages} is out of range 1..=64\n");
            return Err(EINVAL);
        }
        let mut v = KVec::with_capacity(pages as usize, GFP_KERNEL)?;
        for _ in 0..pages {
            v.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
        }
        Ok(Arc::new(Buffer { pages: v }, GFP_KERNEL)?)
    }

    /// The bytes `range` names, in the caller's address space.
    fn user_bytes(&self, range: &Range) -> Result<UserSlice> {
        let len = usize::try_from(range.len).map_err(|_| EINVAL)?;
        if len > self.pages.len() * PAGE_SIZE {
            return Err(EINVAL);
        }
        let addr = usize::try_from(range.addr).map_err(|_| EFAULT)?;
        Ok(UserSlice::new(UserPtr::from_addr(addr), len))
    }
}
// ANCHOR_END: access

/// The FNV-1a hash (32 bits) of the bytes `reader` reads.
///
/// The process may be writing them meanwhile: `UserSliceReader` allows
/// that (the bytes read are then unspecified, the read still sound), and
/// each byte is read once, into a buffer of our own.
fn checksum(mut reader: UserSliceReader) -> Result<u32> {
    let mut hash: u32 = 0x811c_9dc5;
    let mut chunk = [0u8; 256];
    while !reader.is_empty() {
        let n = reader.len().min(chunk.len());
        reader.read_slice(&mut chunk[..n])?;
        // EXERCISE: Fold the `n` bytes just read into `hash` with FNV-1a: for each byte, XOR it in, then multiply by the FNV prime 0x0100_0193, wrapping.
        // HINT: FNV-1a, 32 bits: `hash = (hash ^ byte) * prime`, where the multiplication wraps modulo 2^32 (with CONFIG_RUST_OVERFLOW_CHECKS, a plain `*` that overflows panics).
        // HINT: `for b in &chunk[..n] { hash = (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193); }`
        // STUB: let _ = n;
        for b in &chunk[..n] {
            hash = (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
        // END EXERCISE
    }
    Ok(hash)
}

// ANCHOR: fill

/// Writes `(seed + i) % 251` at every index `i` of `writer`'s bytes.
fn fill(mut writer: UserSliceWriter, seed: u64) -> Result {
    let mut chunk = [0u8; 256];
    let mut i: u64 = 0;
    while !writer.is_empty() {
        let n = writer.len().min(chunk.len());
        for b in &mut chunk[..n] {
            *b = (seed.wrapping_add(i) % 251) as u8;
            i += 1;
        }
        writer.write_slice(&chunk[..n])?;
    }
    Ok(())
}
// ANCHOR_END: fill

/// The module: the device, and the pages it maps.
#[pin_data]
struct KShmModule {
    /// Declared first so it is dropped first: unpublish, then free.
    #[pin]
    misc: MiscDeviceRegistration<Buffer>,
    buffer: Arc<Buffer>,
}

#[vtable]
impl MiscDevice for Buffer {
    /// Each open file's private data: a reference to the buffer.
    type Ptr = Arc<Buffer>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Arc<Buffer>> {
        // SAFETY: the only `MiscDeviceRegistration<Buffer>` is the `misc`
        // field of the module's `KShmModule`, so both pointers are in that
        // struct, as `container_of!` requires.
        let module = unsafe { kernel::container_of!(from_ref(misc).cast_mut(), KShmModule, misc) };
        // SAFETY: `misc_open()` calls this with `misc_mtx` held, which
        // `misc_deregister()` also takes: the registration, and so the
        // module struct around it, is alive for this call. `buffer` is
        // initialised before `misc` is registered and dropped after it is
        // deregistered.
        let buffer = unsafe { &(*module).buffer };
        Ok(buffer.clone())
    }

    // ANCHOR: mmap
    fn mmap(buffer: ArcBorrow<'_, Buffer>, _file: &File, vma: &VmaNew) -> Result {
        // ANCHOR_END: mmap
        // EXERCISE: Refuse with EINVAL a mapping that is not shared, does not start at offset 0 of the buffer, or is longer than the buffer: check the mapping like any input from user space.
        // HINT: `vma.end() - vma.start()` is the length, `(*vma.as_ptr()).vm_pgoff` the offset in pages (an `unsafe` read: say why it races with nothing), `vma.flags()` the flags.
        // HINT: Test `flags::MAYSHARE`, not `flags::SHARED`: the kernel clears `VM_SHARED` for a shared mapping of a file opened read-only, which must still work.
        // STUB: let len = vma.end() - vma.start();
        let len = vma.end() - vma.start();
        // SAFETY: `vma` is being set up by this `mmap` call (`VmaNew`'s
        // invariant), under the mmap lock and not yet visible to anyone
        // else: reading its `vm_pgoff` field races with nothing.
        let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff };
        // `MAYSHARE`, not `SHARED`: the kernel clears `VM_SHARED` (and
        // `VM_MAYWRITE`) for a shared mapping of a file opened read-only.
        let shared = vma.flags() & flags::MAYSHARE != 0;
        if !shared || pgoff != 0 || len > buffer.pages.len() * PAGE_SIZE {
            return Err(EINVAL);
        }
        // END EXERCISE
        // ANCHOR: mmap_rest
        // The pages are the module's: the mapping may not grow, is not
        // inherited across fork (for good: the kernel refuses
        // `madvise(MADV_DOFORK)` on a `DONTEXPAND` or `MIXEDMAP` mapping),
        // and may never be made executable. The pages are inserted now and
        // there is no fault handler: a process that zaps them itself
        // (`madvise(MADV_DONTNEED)`) gets SIGBUS at its next touch, which
        // harms only that process.
        vma.set_dontexpand();
        vma.set_dontcopy();
        vma.try_clear_mayexec()?;
        let vma = vma.set_mixedmap();
        let count = len.div_ceil(PAGE_SIZE);
        for (n, page) in buffer.pages.iter().take(count).enumerate() {
            // The mapping takes its own reference on the page.
            vma.vm_insert_page(vma.start() + n * PAGE_SIZE, page)?;
        }
        Ok(())
    }
    // ANCHOR_END: mmap_rest

    // ANCHOR: ioctl
    fn ioctl(buffer: ArcBorrow<'_, Buffer>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let arg = UserPtr::from_addr(arg);
        let range_arg = UserSlice::new(arg, core::mem::size_of::<Range>());
        match cmd {
            KSHM_IOC_CHECKSUM => {
                let (mut reader, mut writer) = range_arg.reader_writer();
                let mut range: Range = reader.read()?;
                range.value = checksum(buffer.user_bytes(&range)?.reader())?.into();
                writer.write(&range)?;
                Ok(0)
            }
            KSHM_IOC_FILL => {
                let range: Range = range_arg.reader().read()?;
                fill(buffer.user_bytes(&range)?.writer(), range.value)?;
                Ok(0)
            }
            // ANCHOR_END: ioctl
            // EXERCISE: Answer KSHM_IOC_SIZE: write the buffer's size in bytes, a `u64`, to the user's `arg` and return 0.
            // HINT: The size is `buffer.pages.len() * PAGE_SIZE`. `range_arg` is sized for a `Range`: this command's argument is a `u64`, so make a `UserSlice` of its own size from `arg`.
            // HINT: `UserSlice::new(arg, core::mem::size_of::<u64>()).writer().write(&size)?;` with `let size = ... as u64;`, then `Ok(0)`.
            // STUB: KSHM_IOC_SIZE => Err(ENOTTY),
            KSHM_IOC_SIZE => {
                let size = (buffer.pages.len() * PAGE_SIZE) as u64;
                let out = UserSlice::new(arg, core::mem::size_of::<u64>());
                out.writer().write(&size)?;
                Ok(0)
            }
            // END EXERCISE
            // ANCHOR: ioctl_rest
            _ => Err(ENOTTY),
        }
    }
    // ANCHOR_END: ioctl_rest
}

impl kernel::InPlaceModule for KShmModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let count = module_parameters::pages.value();
        // The pages come first: an `open` may come the moment
        // `misc_register()` returns.
        try_pin_init!(KShmModule {
            buffer: Buffer::new(count)?,
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"kshm" }),
        })
        .pin_chain(move |_| {
            pr_info!("/dev/kshm ready: {count} pages to share\n");
            Ok(())
        })
    }
}
