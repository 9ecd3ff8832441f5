//! Native guests: `.so` plugins written for the 2018 DSTC proof of concept, loaded with
//! libloading and hosted beside WebAssembly guests. **They are not sandboxed**: a plugin
//! runs with the node's own rights, and no jail applies to it.
//!
//! The plugin ABI is the original's, and has no context pointer, so its state is global:
//!
//! - `dstc_register_function(name, fn)`: called by a plugin's constructors while it is
//!   being opened; `fn(data)` is then called with the raw argument bytes of every call to
//!   `name`;
//! - `dstc_srv_send(buf, size)`: a call, as `name\0` followed by the raw argument bytes;
//! - `dstc_epoll_ctl(op, fd, ev, cb)`: watch a descriptor; `cb(fd, ev)` runs on the event
//!   loop thread once per readiness, with `ev->data` as the plugin set it.
//!
//! A raw call travels as function id `dstc:raw/abi#NAME` with one argument: the bytes.
//! Plugin code only ever runs on the event loop thread (after loading), one call at a time.

use anyhow::{Context as _, bail};
use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The interface raw function ids live in: `dstc:raw/abi#NAME`.
pub const RAW_INTERFACE: &str = "dstc:raw/abi";

/// The most functions all plugins together may register.
pub const MAX_FUNCTIONS: usize = 1024;

/// The longest function name.
pub const MAX_NAME: usize = 255;

/// The buffer a server stub reads its arguments from is at least this long, zero-padded,
/// since the stub reads as many bytes as its declaration says, whatever was sent.
pub const MIN_ARG_BUFFER: usize = 64 * 1024;

/// A server stub, as the plugin's `DSTC_SERVER` generated it.
pub type ServerFn = unsafe extern "C" fn(*mut u8);

/// A readiness callback given to `dstc_epoll_ctl`.
pub type EpollCallback = unsafe extern "C" fn(c_int, *mut libc::epoll_event);

/// A registered function.
#[derive(Debug, Clone, Copy)]
struct Registration {
    server: ServerFn,
    plugin: usize,
}

/// A watched descriptor.
#[derive(Debug, Clone, Copy)]
struct Watch {
    callback: EpollCallback,
    events: u32,
    data: u64,
}

/// The global state the C ABI reaches.
#[derive(Debug, Default)]
struct Registry {
    functions: HashMap<String, Registration>,
    /// The plugin being opened, to which registrations belong.
    loading: usize,
    /// Calls sent with `dstc_srv_send`, not yet taken by the node.
    outbox: Vec<Vec<u8>>,
    watches: HashMap<c_int, Watch>,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The epoll instance that watches plugins' descriptors.
fn epoll_fd() -> c_int {
    static EPOLL: OnceLock<c_int> = OnceLock::new();
    // SAFETY: epoll_create1 has no preconditions.
    *EPOLL.get_or_init(|| unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
}

fn set_errno(code: c_int) {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() = code };
}

/// `void dstc_register_function(char* name, void (*fn)(uint8_t*))`.
///
/// # Safety
/// `name` is a NUL-terminated string (or null, refused) and `server` a function that
/// takes a pointer to the argument bytes, as the DSTC macros generate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dstc_register_function(name: *const c_char, server: Option<ServerFn>) {
    let (Some(server), false) = (server, name.is_null()) else {
        tracing::warn!("dstc_register_function: refused a null name or function");
        return;
    };
    // SAFETY: the caller passes a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(name) }.to_bytes();
    let Ok(name) = std::str::from_utf8(&bytes[..bytes.len().min(MAX_NAME + 1)]) else {
        tracing::warn!("dstc_register_function: refused a name that is not UTF-8");
        return;
    };
    if name.is_empty() || name.len() > MAX_NAME {
        tracing::warn!(
            "dstc_register_function: refused a name that is empty or longer than {MAX_NAME} bytes"
        );
        return;
    }
    let mut registry = registry();
    if registry.functions.len() >= MAX_FUNCTIONS {
        tracing::warn!(
            "dstc_register_function({name}): refused, {MAX_FUNCTIONS} functions are registered already"
        );
        return;
    }
    let plugin = registry.loading;
    if registry
        .functions
        .insert(name.to_string(), Registration { server, plugin })
        .is_some()
    {
        tracing::warn!("dstc_register_function({name}): replaces an earlier registration");
    }
    tracing::debug!("native plugin registered {name}");
}

/// `void dstc_srv_send(uint8_t* buf, uint32_t size)`: a call, `name\0` then the raw
/// argument bytes.
///
/// # Safety
/// `buf` points to `size` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dstc_srv_send(buf: *const u8, size: u32) {
    if buf.is_null() || size as usize > crate::wire::MAX_DATAGRAM {
        tracing::warn!("dstc_srv_send: refused a null buffer or one of {size} bytes");
        return;
    }
    // SAFETY: the caller passes `size` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(buf, size as usize) }.to_vec();
    registry().outbox.push(bytes);
}

/// `int dstc_epoll_ctl(int op, int fd, struct epoll_event* ev, void (*cb)(int, struct epoll_event*))`:
/// watches `fd` as `epoll_ctl` would; returns 0, or -1 with errno set.
///
/// # Safety
/// `ev` points to an `epoll_event` (or is null, for `EPOLL_CTL_DEL`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dstc_epoll_ctl(
    op: c_int,
    fd: c_int,
    ev: *mut libc::epoll_event,
    callback: Option<EpollCallback>,
) -> c_int {
    // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        tracing::warn!("dstc_epoll_ctl: descriptor {fd} is not open");
        set_errno(libc::EBADF);
        return -1;
    }
    let mut registry = registry();
    let refuse = |why: &str, code: c_int| {
        tracing::warn!("dstc_epoll_ctl(op {op}, fd {fd}): {why}");
        set_errno(code);
        -1
    };
    // SAFETY: the caller passes a valid event, or null.
    let event = (!ev.is_null()).then(|| unsafe { std::ptr::read_unaligned(ev) });
    match op {
        libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD => {
            let Some(event) = event else {
                return refuse("no event given", libc::EINVAL);
            };
            let existing = registry.watches.get(&fd).copied();
            let callback = match (op, existing, callback) {
                (libc::EPOLL_CTL_ADD, Some(_), _) => {
                    return refuse("the descriptor is watched already", libc::EEXIST);
                }
                (libc::EPOLL_CTL_ADD, None, None) => {
                    return refuse("no callback given", libc::EINVAL);
                }
                (libc::EPOLL_CTL_MOD, None, _) => {
                    return refuse("the descriptor is not watched", libc::ENOENT);
                }
                (_, _, Some(cb)) => cb,
                (_, Some(w), None) => w.callback,
                (_, None, None) => return refuse("no callback given", libc::EINVAL),
            };
            let watch = Watch {
                callback,
                events: event.events,
                data: event.u64,
            };
            let kernel_op = if existing.is_some() {
                libc::EPOLL_CTL_MOD
            } else {
                libc::EPOLL_CTL_ADD
            };
            if let Err(e) = arm(kernel_op, fd, watch.events) {
                return refuse(
                    &format!("epoll_ctl: {e}"),
                    e.raw_os_error().unwrap_or(libc::EINVAL),
                );
            }
            registry.watches.insert(fd, watch);
            0
        }
        libc::EPOLL_CTL_DEL => {
            if registry.watches.remove(&fd).is_none() {
                return refuse("the descriptor is not watched", libc::ENOENT);
            }
            // SAFETY: removing a descriptor from our epoll instance.
            unsafe { libc::epoll_ctl(epoll_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
            0
        }
        _ => refuse("unknown operation", libc::EINVAL),
    }
}

/// Arms `fd` in the epoll instance for one readiness report (the callback re-arms it).
fn arm(op: c_int, fd: c_int, events: u32) -> std::io::Result<()> {
    let mut event = libc::epoll_event {
        events: events | libc::EPOLLONESHOT as u32,
        u64: fd as u64,
    };
    // SAFETY: `event` is a valid epoll_event for the duration of the call.
    if unsafe { libc::epoll_ctl(epoll_fd(), op, fd, &mut event) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether any plugin watches `fd`.
pub fn watches(fd: c_int) -> bool {
    registry().watches.contains_key(&fd)
}

/// Whether any plugin watches a descriptor.
pub fn watches_any() -> bool {
    !registry().watches.is_empty()
}

/// Waits for the next ready descriptors (blocking); returns `(fd, events)` pairs.
pub fn wait_ready() -> std::io::Result<Vec<(c_int, u32)>> {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
    loop {
        // SAFETY: `events` has room for 64 entries.
        let n = unsafe { libc::epoll_wait(epoll_fd(), events.as_mut_ptr(), 64, -1) };
        if n >= 0 {
            return Ok(events[..n as usize]
                .iter()
                .map(|e| (e.u64 as c_int, e.events))
                .collect());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Runs the callback of `fd` for `events`, then watches it again (if it still is).
pub fn on_ready(fd: c_int, events: u32) {
    let Some(watch) = registry().watches.get(&fd).copied() else {
        return; // unwatched meanwhile
    };
    let mut event = libc::epoll_event {
        events,
        u64: watch.data,
    };
    // SAFETY: the plugin registered `callback` for `fd`; the lock is not held while it runs
    // (it may call dstc_epoll_ctl or dstc_srv_send).
    unsafe { (watch.callback)(fd, &mut event) };
    let still = registry().watches.get(&fd).copied();
    if let Some(w) = still
        && let Err(e) = arm(libc::EPOLL_CTL_MOD, fd, w.events)
    {
        tracing::warn!("cannot watch descriptor {fd} again: {e}");
    }
}

/// Takes the calls plugins sent since the last time, as (function id, raw bytes).
pub fn take_sent() -> Vec<(String, Vec<u8>)> {
    let outbox = std::mem::take(&mut registry().outbox);
    outbox
        .into_iter()
        .filter_map(|buf| {
            let Some(nul) = buf.iter().position(|&b| b == 0) else {
                tracing::warn!("dstc_srv_send: dropped a call without a NUL after its name");
                return None;
            };
            let Ok(name) = std::str::from_utf8(&buf[..nul]) else {
                tracing::warn!("dstc_srv_send: dropped a call whose name is not UTF-8");
                return None;
            };
            if name.is_empty() || name.len() > MAX_NAME {
                tracing::warn!("dstc_srv_send: dropped a call with an empty or over-long name");
                return None;
            }
            Some((raw_function_id(name), buf[nul + 1..].to_vec()))
        })
        .collect()
}

/// The function id of a raw call to `name`.
pub fn raw_function_id(name: &str) -> String {
    format!("{RAW_INTERFACE}#{name}")
}

/// A loaded plugin. It is never unloaded: its code may be on any stack until the node ends.
pub struct NativePlugin {
    name: String,
    _library: libloading::os::unix::Library,
}

impl NativePlugin {
    /// Opens the plugin at `path` (running its constructors, which register its functions
    /// and may run its `init`).
    pub fn load(path: &Path, name: &str, index: usize) -> anyhow::Result<Self> {
        registry().loading = index;
        let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL;
        // SAFETY: opening a plugin runs its constructors: native plugins are trusted code
        // by definition (documented in the README and --help).
        let library = unsafe { libloading::os::unix::Library::open(Some(path), flags) }
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("cannot open the native plugin")?;
        Ok(NativePlugin {
            name: name.to_string(),
            _library: library,
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The function ids plugin `index` registered.
    pub fn functions(index: usize) -> Vec<String> {
        let registry = registry();
        let mut ids: Vec<String> = registry
            .functions
            .iter()
            .filter(|(_, r)| r.plugin == index)
            .map(|(name, _)| raw_function_id(name))
            .collect();
        ids.sort();
        ids
    }
}

/// Runs the server stub registered for `function` with `args`, which must be one byte
/// string (the raw arguments).
pub fn call(function: &str, args: Vec<ciborium::Value>) -> anyhow::Result<()> {
    let Some(name) = function
        .strip_prefix(RAW_INTERFACE)
        .and_then(|r| r.strip_prefix('#'))
    else {
        bail!("`{function}` is not a raw DSTC function");
    };
    let Some(registration) = registry().functions.get(name).copied() else {
        bail!("no plugin registered `{name}`");
    };
    let bytes = match <[ciborium::Value; 1]>::try_from(args) {
        Ok([ciborium::Value::Bytes(bytes)]) => bytes,
        _ => bail!("a raw DSTC call takes one byte string"),
    };
    let mut buffer = vec![0u8; bytes.len().max(MIN_ARG_BUFFER)];
    buffer[..bytes.len()].copy_from_slice(&bytes);
    // SAFETY: the stub reads its arguments from the buffer, which holds at least what was
    // sent and is zero-padded to MIN_ARG_BUFFER bytes.
    unsafe { (registration.server)(buffer.as_mut_ptr()) };
    Ok(())
}

/// Whether the file at `path` is an ELF shared object (a native plugin).
pub fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}
