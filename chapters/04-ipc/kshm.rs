// SPDX-License-Identifier: GPL-2.0

//! kshm: memory shared between the kernel and processes.
//!
//! The module allocates `pages` pages at load time. `mmap` of `/dev/kshm`
//! maps those very pages into the process: what it writes through the
//! mapping the module reads without any copy, and the other way round. Two
//! ioctls show it: `KSHM_IOC_CHECKSUM` makes the module read every byte and
//! return their FNV-1a hash, `KSHM_IOC_FILL` makes it write a pattern the
//! process then finds in its mapping.
//!
//! The mapping is checked like any input from user space: it must be
//! shared, start at offset 0 and be no larger than the buffer; the kernel
//! itself refuses a writable shared mapping of a file opened read-only.

use core::ptr::from_ref;

use kernel::fs::File;
use kernel::ioctl::{_IO, _IOR};
use kernel::miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration};
use kernel::mm::virt::{flags, VmaNew};
use kernel::page::{Page, PAGE_SIZE};
use kernel::prelude::*;
use kernel::sync::{new_mutex, Mutex};
use kernel::uaccess::{UserPtr, UserSlice};

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

/// `_IOR('k', 1, u32)`: the FNV-1a hash of the whole buffer, as the module
/// reads it, copied to the `u32` the argument points to.
const KSHM_IOC_CHECKSUM: u32 = _IOR::<u32>(b'k' as u32, 1);
/// `_IO('k', 2)`: fill the buffer with `(seed + i) % 251`, the argument
/// being the seed.
const KSHM_IOC_FILL: u32 = _IO(b'k' as u32, 2);

/// The shared pages. The mutex orders the module's own reads and writes;
/// a process writing through its mapping is not ordered by it, which is
/// what shared memory means: the two sides agree on a protocol (here, the
/// process calls the ioctl after it has written).
struct Buffer {
    pages: KVec<Page>,
}

// ANCHOR: access
impl Buffer {
    /// Runs `f` on each page's bytes in turn, with a kernel copy of them.
    fn read_all(&self, mut f: impl FnMut(&[u8])) -> Result {
        let mut bytes = [0u8; 256];
        for page in &self.pages {
            for offset in (0..PAGE_SIZE).step_by(bytes.len()) {
                // SAFETY: `bytes` is valid for writes of its length, and no
                // Rust reference to the page's memory exists (processes
                // write it through their mappings: raw access is the only
                // sound kind).
                unsafe { page.read_raw(bytes.as_mut_ptr(), offset, bytes.len())? };
                f(&bytes);
            }
        }
        Ok(())
    }

    /// Writes `byte(i)` at every index `i` of the buffer.
    fn fill(&self, byte: impl Fn(usize) -> u8) -> Result {
        let mut bytes = [0u8; 256];
        for (n, page) in self.pages.iter().enumerate() {
            for offset in (0..PAGE_SIZE).step_by(bytes.len()) {
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = byte(n * PAGE_SIZE + offset + i);
                }
                // SAFETY: `bytes` is valid for reads of its length; see
                // `read_all` for why raw access.
                unsafe { page.write_raw(bytes.as_ptr(), offset, bytes.len())? };
            }
        }
        Ok(())
    }
}
// ANCHOR_END: access

/// The module: the pages and the device that maps them.
#[pin_data]
struct KShmModule {
    #[pin]
    buffer: Mutex<Buffer>,
    #[pin]
    misc: MiscDeviceRegistration<KShmFile>,
}

/// One open file of `/dev/kshm`.
struct KShmFile {
    buffer: &'static Mutex<Buffer>,
}

#[vtable]
impl MiscDevice for KShmFile {
    type Ptr = KBox<KShmFile>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<KBox<KShmFile>> {
        // SAFETY: every `MiscDeviceRegistration<KShmFile>` is the `misc`
        // field of the module's `KShmModule`.
        let module = unsafe { kernel::container_of!(from_ref(misc).cast_mut(), KShmModule, misc) };
        // SAFETY: the module is pinned and outlives every open file (a file
        // holds a reference to the module).
        let buffer: &'static Mutex<Buffer> = unsafe { &(*module).buffer };
        Ok(KBox::new(KShmFile { buffer }, GFP_KERNEL)?)
    }

    // ANCHOR: mmap
    fn mmap(me: &KShmFile, _file: &File, vma: &VmaNew) -> Result {
        let buffer = me.buffer.lock();
        let len = vma.end() - vma.start();
        // SAFETY: the VMA is valid for the call; `vm_pgoff` is a plain field.
        let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff };
        if vma.flags() & flags::SHARED == 0 || pgoff != 0 || len > buffer.pages.len() * PAGE_SIZE {
            return Err(EINVAL);
        }
        // The pages are the module's: never let the mapping grow or be
        // inherited by a child across fork, or be made executable.
        vma.set_dontexpand();
        vma.set_dontcopy();
        vma.try_clear_mayexec()?;
        let vma = vma.set_mixedmap();
        for (n, page) in buffer.pages.iter().enumerate().take(len.div_ceil(PAGE_SIZE)) {
            vma.vm_insert_page(vma.start() + n * PAGE_SIZE, page)?;
        }
        Ok(())
    }
    // ANCHOR_END: mmap

    fn ioctl(me: &KShmFile, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let buffer = me.buffer.lock();
        match cmd {
            KSHM_IOC_CHECKSUM => {
                // FNV-1a, 32 bits: simple enough to compute on both sides.
                let mut hash: u32 = 0x811c_9dc5;
                buffer.read_all(|bytes| {
                    for b in bytes {
                        hash = (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193);
                    }
                })?;
                UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<u32>()).writer().write(&hash)?;
                Ok(0)
            }
            KSHM_IOC_FILL => {
                let seed = arg as u32;
                buffer.fill(|i| ((seed as usize + i) % 251) as u8)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}

impl kernel::InPlaceModule for KShmModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let count = module_parameters::pages.value();
        let pages = (|| -> Result<KVec<Page>> {
            if count == 0 || count > 64 {
                pr_err!("pages={count} is out of range 1..=64\n");
                return Err(EINVAL);
            }
            let mut pages = KVec::with_capacity(count as usize, GFP_KERNEL)?;
            for _ in 0..count {
                pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
            }
            Ok(pages)
        })();
        try_pin_init!(KShmModule {
            buffer <- new_mutex!(Buffer { pages: pages? }),
            misc <- {
                pr_info!("/dev/kshm ready: {count} pages to share\n");
                MiscDeviceRegistration::register(MiscDeviceOptions { name: c"kshm" })
            },
        })
    }
}
