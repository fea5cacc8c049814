// SPDX-License-Identifier: GPL-2.0

//! Talking to user space through /proc.
//!
//! The module creates a directory `/proc/procstats` with three entries:
//! `stats`, read-only, which shows counters; `setting`, which shows a
//! number and accepts a new one; and `reset`, write-only, which zeroes the
//! counters. Reads go through `seq_file` (the `show` callbacks are Rust,
//! with `seq_print!`, and only print: seq_file may call them more than once
//! per read); a write's bytes are copied from user space with `UserSlice`
//! and validated: anything but a number from 0 to 1000, decimal or
//! hexadecimal after `0x`, is refused with `EINVAL` and changes nothing.
//!
//! The entries are created and removed by a small C shim (`shim.c`), because
//! Linux 7.3's `kernel` crate cannot reach `<linux/proc_fs.h>`. This is the
//! workbook's first C shim: the book's chapter 04 explains the boundary.
//!
//! ```sh
//! cat /proc/procstats/stats
//! echo 42 > /proc/procstats/setting
//! echo 0x2a > /proc/procstats/setting
//! echo nonsense > /proc/procstats/setting   # Invalid argument
//! echo 1 > /proc/procstats/reset
//! ```

use core::ffi::c_void;
use core::ptr::NonNull;

use kernel::prelude::*;
use kernel::seq_file::{seq_print, SeqFile};
use kernel::sync::atomic::{ordering, Atomic};
use kernel::uaccess::{UserPtr, UserSlice};

module! {
    type: ProcStats,
    name: "procstats",
    authors: ["The Rust Kernel Workbook"],
    description: "Talking to user space through /proc: seq_file, validated writes, a C shim",
    license: "GPL",
    params: {
        initial: u32 {
            default: 10,
            description: "The setting's value at load time, 0 to 1000",
        },
    },
}

/// The largest value `setting` accepts.
const MAX_SETTING: u32 = 1000;
/// The longest write `setting` accepts, in bytes ("1000\n" is five).
const MAX_WRITE: usize = 16;

// ANCHOR: ffi
// The C shim's half of the boundary (shim.c).
extern "C" {
    fn procstats_create(dir_name: *const c_char) -> *mut c_void;
    fn procstats_remove(dir: *mut c_void);
}
// ANCHOR_END: ffi

// ANCHOR: state
// /proc callbacks get no pointer to the module, so what they share lives
// in statics, and atomics make concurrent readers and writers safe.
static SETTING: Atomic<u32> = Atomic::new(0);
static OPENS: Atomic<u64> = Atomic::new(0);
static WRITES_ACCEPTED: Atomic<u64> = Atomic::new(0);
static WRITES_REJECTED: Atomic<u64> = Atomic::new(0);
// ANCHOR_END: state

// ANCHOR: show
/// `cat /proc/procstats/stats`.
///
/// It only prints. seq_file calls `show` again whenever it has to rebuild
/// the text: a read at offset 0 or a seek (`traverse`) starts over, and a
/// text that overflows the buffer is thrown away and shown again into one
/// twice as big (`seq_read_iter`). Counting here would count those too, so
/// the counter moves in `open` (`procstats_stats_opened`), once per open.
///
/// # Safety
///
/// `m` must point to a valid `seq_file` that no other thread uses during
/// the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn procstats_show_stats(
    m: *mut kernel::bindings::seq_file,
    _v: *mut c_void,
) -> c_int {
    // SAFETY: `SeqFile::from_raw` needs a valid `seq_file` that no other
    // thread accesses while the reference lives: our caller guarantees both
    // for this call (seq_file calls `show` holding `m->lock`), and the
    // reference does not outlive it.
    let m = unsafe { SeqFile::from_raw(m) };
    let load = |counter: &Atomic<u64>| counter.load(ordering::Relaxed);
    seq_print!(m, "setting: {}\n", SETTING.load(ordering::Relaxed));
    seq_print!(m, "opens: {}\n", load(&OPENS));
    seq_print!(m, "writes accepted: {}\n", load(&WRITES_ACCEPTED));
    seq_print!(m, "writes rejected: {}\n", load(&WRITES_REJECTED));
    0
}
// ANCHOR_END: show

/// Counts one open of `stats`; the shim's `open` (`stats_open`) calls it
/// once per open.
#[unsafe(no_mangle)]
pub extern "C" fn procstats_stats_opened() {
    // EXERCISE: Count this open in OPENS. Here, once per open(), not in `procstats_show_stats`, which seq_file may call several times for one open.
    // HINT: Every counter is an `Atomic<u64>`: `fetch_add(1, ...)` adds one. Which ordering is enough for a counter nothing else depends on?
    // HINT: `OPENS.fetch_add(1, ordering::Relaxed);`: the `wbipc reread` check reads three times from one open and expects the same `opens:` each time.
    OPENS.fetch_add(1, ordering::Relaxed);
    // END EXERCISE
}

/// `cat /proc/procstats/setting`.
///
/// # Safety
///
/// `m` must point to a valid `seq_file` that no other thread uses during
/// the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn procstats_show_setting(
    m: *mut kernel::bindings::seq_file,
    _v: *mut c_void,
) -> c_int {
    // EXERCISE: Print the setting and a newline into the seq_file `m`, as `procstats_show_stats` prints its lines, and return 0.
    // HINT: Make a `SeqFile` from `m` the way `procstats_show_stats` does, SAFETY comment included: the same contract holds here.
    // HINT: `let m = unsafe { SeqFile::from_raw(m) };` then `seq_print!(m, "{}\n", SETTING.load(ordering::Relaxed));` and `0`.
    // STUB: let _ = m;
    // STUB: 0
    // SAFETY: as in `procstats_show_stats`: our caller guarantees a valid
    // `seq_file` used by no other thread during this call.
    let m = unsafe { SeqFile::from_raw(m) };
    seq_print!(m, "{}\n", SETTING.load(ordering::Relaxed));
    0
    // END EXERCISE
}

// ANCHOR: write
/// Parses and applies the `count` bytes user space wrote at `buf`.
fn write_setting(buf: UserPtr, count: usize) -> Result {
    if count > MAX_WRITE {
        return Err(EINVAL);
    }
    let input = UserSlice::new(buf, count);
    let mut bytes = KVec::new();
    // Copies from user memory; a bad address gives EFAULT, never an oops.
    input.read_all(&mut bytes, GFP_KERNEL)?;
    // ANCHOR_END: write
    // EXERCISE: Turn `bytes` into a `value: u32` with `parse_number`, refusing with EINVAL anything that is not UTF-8, not a number (spaces and a newline around it are fine) or above MAX_SETTING.
    // HINT: `core::str::from_utf8`, `str::trim` and `parse_number`; `map_err(|_| EINVAL)?` turns a failure into EINVAL.
    // HINT: `let text = core::str::from_utf8(&bytes).map_err(|_| EINVAL)?;` then `let value = parse_number(text.trim())?;`, then refuse `value > MAX_SETTING` before anything changes.
    // STUB: let _ = &bytes;
    // STUB: let value: u32 = 0;
    let text = core::str::from_utf8(&bytes).map_err(|_| EINVAL)?;
    let value = parse_number(text.trim())?;
    if value > MAX_SETTING {
        return Err(EINVAL);
    }
    // END EXERCISE
    // ANCHOR: write_apply
    SETTING.store(value, ordering::Relaxed);
    pr_info!("setting changed to {value}\n");
    Ok(())
}
// ANCHOR_END: write_apply

/// `text` as a number: decimal (`42`), or hexadecimal after `0x` or `0X`
/// (`0x2a`). Anything else, a sign included, is `EINVAL`.
fn parse_number(text: &str) -> Result<u32> {
    // EXERCISE: Parse `text` as decimal digits only, or as hexadecimal digits after a `0x`/`0X` prefix; no sign, no empty number, no overflow: anything else is EINVAL.
    // HINT: `str::strip_prefix` finds the prefix, `u32::from_str_radix(digits, radix)` converts, and fails on an empty string and on overflow.
    // HINT: `from_str_radix` accepts a leading `+`, which this format refuses: first check `digits.bytes().all(|b| b.is_ascii_hexdigit())` (or `is_ascii_digit` for base 10).
    // STUB: let _ = text;
    // STUB: Err(EINVAL)
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    let digit = |b: u8| b.is_ascii_digit() || (radix == 16 && b.is_ascii_hexdigit());
    if !digits.bytes().all(digit) {
        return Err(EINVAL);
    }
    u32::from_str_radix(digits, radix).map_err(|_| EINVAL)
    // END EXERCISE
}

/// `echo 1 > /proc/procstats/reset`: whatever is written, the counters
/// start again from zero. The setting stays.
///
/// Not `unsafe`, like `procstats_write_setting`: it reads no pointer.
#[unsafe(no_mangle)]
pub extern "C" fn procstats_write_reset(
    _file: *mut kernel::bindings::file,
    _buf: *const c_char,
    count: usize,
    _pos: *mut kernel::bindings::loff_t,
) -> isize {
    // EXERCISE: Zero OPENS, WRITES_ACCEPTED and WRITES_REJECTED, log `counters reset` with pr_info!, and report the whole write as taken.
    // HINT: `store(0, ordering::Relaxed)` on each counter; a write callback returns how many bytes it took, here all of them.
    // HINT: After the three stores, `pr_info!("counters reset\n");` and `count as isize` (a write that returns 0 would be retried by `echo` forever).
    // STUB: count as isize
    OPENS.store(0, ordering::Relaxed);
    WRITES_ACCEPTED.store(0, ordering::Relaxed);
    WRITES_REJECTED.store(0, ordering::Relaxed);
    pr_info!("counters reset\n");
    count as isize
    // END EXERCISE
}

// ANCHOR: write_ffi
/// `echo N > /proc/procstats/setting`.
///
/// Not `unsafe`: `buf` is only handed to `UserSlice`, which checks every
/// user address it copies from, and the other pointers are not used.
#[unsafe(no_mangle)]
pub extern "C" fn procstats_write_setting(
    _file: *mut kernel::bindings::file,
    buf: *const c_char,
    count: usize,
    _pos: *mut kernel::bindings::loff_t,
) -> isize {
    match write_setting(UserPtr::from_ptr(buf.cast_mut().cast()), count) {
        Ok(()) => {
            WRITES_ACCEPTED.fetch_add(1, ordering::Relaxed);
            count as isize
        }
        Err(error) => {
            WRITES_REJECTED.fetch_add(1, ordering::Relaxed);
            error.to_errno() as isize
        }
    }
}
// ANCHOR_END: write_ffi

// ANCHOR: module
struct ProcStats {
    dir: NonNull<c_void>,
}

// SAFETY: `Send` needs the value to be usable from another thread: `dir` is
// only passed to `proc_remove`, which any thread in process context may call.
unsafe impl Send for ProcStats {}
// SAFETY: `Sync` needs `&ProcStats` to be shareable: no method reaches `dir`
// through `&self`.
unsafe impl Sync for ProcStats {}

impl kernel::Module for ProcStats {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let initial = module_parameters::initial.value();
        if initial > MAX_SETTING {
            pr_err!("initial={initial} is out of range 0..={MAX_SETTING}\n");
            return Err(EINVAL);
        }
        SETTING.store(initial, ordering::Relaxed);
        // SAFETY: `procstats_create` needs a NUL-terminated name valid for
        // the call (proc_mkdir copies it): a C string literal is, forever.
        let dir = unsafe { procstats_create(c"procstats".as_char_ptr()) };
        let dir = NonNull::new(dir).ok_or(ENOMEM)?;
        pr_info!("/proc/procstats created, setting {initial}\n");
        Ok(ProcStats { dir })
    }
}
// ANCHOR_END: module

impl Drop for ProcStats {
    fn drop(&mut self) {
        // EXERCISE: Remove the /proc directory with the shim's `procstats_remove`, then log `/proc/procstats removed`; after this no callback of the module may run.
        // HINT: `self.dir` is what `procstats_create` returned; `procstats_remove` is `unsafe` (shim.h gives its contract): prove it in a SAFETY comment.
        // HINT: `unsafe { procstats_remove(self.dir.as_ptr()) };` then `pr_info!("/proc/procstats removed\n");`. `proc_remove` waits for running callbacks and makes open files fail.
        // STUB: let _ = self.dir;
        // SAFETY: `procstats_remove` needs a directory from `procstats_create`
        // not yet removed, and a context that may sleep: `dir` came from it in
        // `init`, and `drop` runs once, in rmmod's process context.
        // `proc_remove` waits for callbacks that are running and makes open
        // files fail, so none of this module's code runs after it is gone.
        unsafe { procstats_remove(self.dir.as_ptr()) };
        pr_info!("/proc/procstats removed\n");
        // END EXERCISE
    }
}
