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
//!
//! Plugins built with dhost's own `guest-sdk/c/dstc.h` use the typed ABI instead
//! (`dstc_register_typed`, `dstc_send_typed`): arguments as one CBOR array, sent under the
//! bare C name (`message`), which matches the function of that name in any WIT interface
//! (`dhost:chat/chat#message`), both ways. Plugin code only ever runs on the event loop
//! thread (after loading), one call at a time.

use super::calls::Calls;
use super::network::CallSender;
use super::outbox::Outbox;
use super::state::FLUSH_SENT_BYTES;
use anyhow::{Context as _, bail};
use dhost_protocol::cbor::Cursor;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

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

/// A typed server stub, as `guest-sdk/c/dstc.h` generates it: decodes a CBOR array of
/// arguments, calls the plugin's function and returns 0, or -1 if the arguments do not fit.
pub type TypedServerFn = unsafe extern "C" fn(*const u8, u32) -> c_int;

/// A readiness callback given to `dstc_epoll_ctl`.
pub type EpollCallback = unsafe extern "C" fn(c_int, *mut libc::epoll_event);

/// A registered function: its server stub (raw or typed) and the plugin it belongs to.
#[derive(Debug, Clone, Copy)]
struct Registration<F> {
    server: F,
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
    functions: HashMap<String, Registration<ServerFn>>,
    typed: HashMap<String, Registration<TypedServerFn>>,
    /// The plugin being opened, to which registrations belong.
    loading: usize,
    /// Calls sent, not yet taken by the node.
    outbox: Outbox,
    watches: HashMap<c_int, Watch>,
    /// The client functions `DSTC_CLIENT` made (`dstc_NAME`), by address, with `NAME`.
    clients: HashMap<usize, String>,
    /// What the node knows of the group, once it runs.
    group: Option<Arc<Calls>>,
}

impl Registry {
    /// Whether a node of the group serves the function of the bare C name `name`: a plugin
    /// of this node (typed or raw), a guest of it, or a peer. Never before the node runs.
    fn available(&self, name: &str) -> bool {
        self.group.as_ref().is_some_and(|group| {
            self.typed.contains_key(name)
                || self.functions.contains_key(name)
                || group.served_by_name(name)
        })
    }
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
    // SAFETY: the caller passes a NUL-terminated string, or null.
    if let Some(name) = unsafe { checked_name("dstc_register_function", name) } {
        register("dstc_register_function", name, server, |r| &mut r.functions);
    }
}

/// `void dstc_register_typed(const char* name, int (*server)(const uint8_t*, uint32_t))`.
///
/// # Safety
/// `name` is a NUL-terminated string (or null, refused) and `server` a typed stub.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dstc_register_typed(name: *const c_char, server: Option<TypedServerFn>) {
    // SAFETY: the caller passes a NUL-terminated string, or null.
    if let Some(name) = unsafe { checked_name("dstc_register_typed", name) } {
        register("dstc_register_typed", name, server, |r| &mut r.typed);
    }
}

/// Registers `server` as `name` for the plugin being loaded, in the table `table` picks.
fn register<F: Copy>(
    caller: &str,
    name: String,
    server: Option<F>,
    table: fn(&mut Registry) -> &mut HashMap<String, Registration<F>>,
) {
    let Some(server) = server else {
        tracing::warn!("{caller}({name}): refused a null function");
        return;
    };
    let mut registry = registry();
    if registry.functions.len() + registry.typed.len() >= MAX_FUNCTIONS {
        tracing::warn!(
            "{caller}({name}): refused, {MAX_FUNCTIONS} functions are registered already"
        );
        return;
    }
    let plugin = registry.loading;
    let replaced = table(&mut registry).insert(name.clone(), Registration { server, plugin });
    if replaced.is_some() {
        tracing::warn!("{caller}({name}): replaces an earlier registration");
    }
    tracing::debug!("native plugin registered {name}");
}

/// `void dstc_register_client_function(char* name, void* client)`: `DSTC_CLIENT(name, ...)`
/// registers its `dstc_NAME` so that `dstc_remote_function_available(dstc_NAME)` knows
/// which function it asks about.
///
/// # Safety
/// `name` is a NUL-terminated string (or null, refused); `client` is only compared.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dstc_register_client_function(name: *const c_char, client: *const c_void) {
    // SAFETY: the caller passes a NUL-terminated string, or null.
    let Some(name) = (unsafe { checked_name("dstc_register_client_function", name) }) else {
        return;
    };
    let mut registry = registry();
    if registry.clients.len() >= MAX_FUNCTIONS {
        tracing::warn!("dstc_register_client_function({name}): refused, too many clients");
        return;
    }
    registry.clients.insert(client as usize, name);
}

/// `uint8_t dstc_remote_function_available(void* client)`: whether a node of the group
/// (this one included) serves the function whose client `dstc_NAME` is `client`, as the
/// mature DSTC's client asks before it sends. 0 before the node runs, and for a pointer
/// no `DSTC_CLIENT` registered.
#[unsafe(no_mangle)]
pub extern "C" fn dstc_remote_function_available(client: *const c_void) -> u8 {
    let registry = registry();
    let served = registry
        .clients
        .get(&(client as usize))
        .is_some_and(|name| registry.available(name));
    u8::from(served)
}

/// `uint8_t dstc_remote_function_available_by_name(char* name)`: whether a node of the
/// group (this one included) serves the function of the bare C name `name` (a WIT
/// function's last part, hyphens and all, or a plugin's name).
///
/// # Safety
/// `name` is a NUL-terminated string (or null: 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dstc_remote_function_available_by_name(name: *const c_char) -> u8 {
    // SAFETY: the caller passes a NUL-terminated string, or null.
    let Some(name) = (unsafe { checked_name("dstc_remote_function_available_by_name", name) })
    else {
        return 0;
    };
    u8::from(registry().available(&name))
}

/// `int dstc_peer_count(void)`: how many peers the node knows (0 before it runs).
#[unsafe(no_mangle)]
pub extern "C" fn dstc_peer_count() -> c_int {
    let registry = registry();
    let peers = registry.group.as_ref().map_or(0, |g| g.peer_count());
    c_int::try_from(peers).unwrap_or(c_int::MAX)
}

/// `int dstc_connected(const char* node)`: how many TCP connections the node holds to the
/// peer named `node` (as rot's `connected(Node)`), or -1 when it knows no such peer.
///
/// # Safety
/// `node` is a NUL-terminated string (or null: -1).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dstc_connected(node: *const c_char) -> c_int {
    // SAFETY: the caller passes a NUL-terminated string, or null.
    let Some(node) = (unsafe { checked_name("dstc_connected", node) }) else {
        return -1;
    };
    let registry = registry();
    let connections = registry
        .group
        .as_ref()
        .and_then(|g| g.connections_to(&node));
    connections.map_or(-1, |n| c_int::try_from(n).unwrap_or(c_int::MAX))
}

/// `void dstc_send_typed(const char* name, const uint8_t* args, uint32_t len)`: a call to
/// the bare function name with a CBOR array of arguments.
///
/// # Safety
/// `name` is a NUL-terminated string and `args` points to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dstc_send_typed(name: *const c_char, args: *const u8, len: u32) {
    if name.is_null() {
        tracing::warn!("dstc_send_typed: refused a null name");
        return;
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(name) }.to_bytes();
    let shown = || String::from_utf8_lossy(name);
    if args.is_null() || len as usize > dhost_protocol::wire::MAX_DATAGRAM {
        tracing::warn!(
            "dstc_send_typed({}): refused a null buffer or one of {len} bytes",
            shown()
        );
        return;
    }
    // SAFETY: the caller passes `len` readable bytes.
    let args = unsafe { std::slice::from_raw_parts(args, len as usize) };
    let mut cursor = Cursor::new(args);
    if !dhost_protocol::cbor::starts_array(args) || cursor.item().is_err() || !cursor.is_empty() {
        tracing::warn!(
            "dstc_send_typed({}): dropped a call whose arguments are not a CBOR array",
            shown()
        );
        return;
    }
    with_outbox(|outbox| {
        // The name of the call before was checked already: a run costs one check.
        if outbox.extend_last_run(name, args) {
            return;
        }
        if let Some(name) = checked_name_bytes("dstc_send_typed", name) {
            outbox.push_encoded(name, args);
        }
    });
}

/// The calls plugins sent from the node's event loop thread, and where they go.
struct EventLoopOutbox {
    /// Calls not sent on yet.
    sent: Outbox,
    /// Calls sent on already (a long burst leaves before the plugin returns) to functions
    /// this node serves: the node runs them next.
    local: Outbox,
    outgoing: Arc<dyn CallSender>,
}

thread_local! {
    /// The calls sent from the node's event loop thread, where plugins run once loaded:
    /// kept without a lock. `None` on every other thread.
    static SENT_ON_THIS_THREAD: RefCell<Option<EventLoopOutbox>> = const { RefCell::new(None) };
}

/// Makes this thread the one plugins run on (the node's event loop): calls they send
/// from it are kept without taking the registry's lock, and a long burst leaves through
/// `outgoing` before the plugin returns (the plugin waits there while the window to the
/// receivers is full).
pub fn run_plugins_on_this_thread(outgoing: Arc<dyn CallSender>, group: Arc<Calls>) {
    registry().group = Some(group);
    SENT_ON_THIS_THREAD.with_borrow_mut(|sent| {
        *sent = Some(EventLoopOutbox {
            sent: Outbox::default(),
            local: Outbox::default(),
            outgoing,
        })
    });
}

/// Runs `f` on the outbox of this thread if it is the event loop's (sending a long burst
/// on), else the registry's (also on a thread whose thread-locals are being torn down:
/// never a panic across the C ABI).
fn with_outbox(f: impl FnOnce(&mut Outbox)) {
    let mut f = Some(f);
    let _ = SENT_ON_THIS_THREAD.try_with(|sent| {
        if let Ok(mut sent) = sent.try_borrow_mut()
            && let Some(out) = sent.as_mut()
            && let Some(f) = f.take()
        {
            f(&mut out.sent);
            if out.sent.byte_len() >= FLUSH_SENT_BYTES
                && let Err(stopped) = out.outgoing.send(&mut out.sent, &mut out.local)
            {
                tracing::debug!("{stopped}");
            }
        }
    });
    if let Some(f) = f {
        f(&mut registry().outbox);
    }
}

/// Whether plugins sent calls from the event loop thread that the node has not taken.
pub fn sent_on_this_thread() -> bool {
    SENT_ON_THIS_THREAD
        .try_with(|sent| {
            sent.try_borrow().is_ok_and(|s| {
                s.as_ref()
                    .is_some_and(|s| !s.sent.is_empty() || !s.local.is_empty())
            })
        })
        .unwrap_or(false)
}

/// A function name from C, if it is one: not null, UTF-8, 1 to [`MAX_NAME`] bytes.
///
/// # Safety
/// `name` is a NUL-terminated string, or null.
unsafe fn checked_name(caller: &str, name: *const c_char) -> Option<String> {
    if name.is_null() {
        tracing::warn!("{caller}: refused a null name");
        return None;
    }
    // SAFETY: the caller passes a NUL-terminated string.
    checked_name_bytes(caller, unsafe { CStr::from_ptr(name) }.to_bytes()).map(str::to_string)
}

/// `bytes` as a function name: 1 to [`MAX_NAME`] bytes of UTF-8.
fn checked_name_bytes<'a>(caller: &str, bytes: &'a [u8]) -> Option<&'a str> {
    if bytes.is_empty() || bytes.len() > MAX_NAME {
        tracing::warn!("{caller}: refused a name that is empty or longer than {MAX_NAME} bytes");
        return None;
    }
    match std::str::from_utf8(bytes) {
        Ok(name) => Some(name),
        Err(_) => {
            tracing::warn!("{caller}: refused a name that is not UTF-8");
            None
        }
    }
}

/// `void dstc_srv_send(uint8_t* buf, uint32_t size)`: a call, `name\0` then the raw
/// argument bytes.
///
/// # Safety
/// `buf` points to `size` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dstc_srv_send(buf: *const u8, size: u32) {
    if buf.is_null() || size as usize > dhost_protocol::wire::MAX_DATAGRAM {
        tracing::warn!("dstc_srv_send: refused a null buffer or one of {size} bytes");
        return;
    }
    // SAFETY: the caller passes `size` readable bytes.
    let buf = unsafe { std::slice::from_raw_parts(buf, size as usize) };
    let Some(nul) = buf.iter().position(|&b| b == 0) else {
        tracing::warn!("dstc_srv_send: dropped a call without a NUL after its name");
        return;
    };
    let Some(name) = checked_name_bytes("dstc_srv_send", &buf[..nul]) else {
        return;
    };
    let mut args = Vec::with_capacity(buf.len() - nul + 8);
    dhost_protocol::wire::encode_item(
        &ciborium::Value::Array(vec![ciborium::Value::Bytes(buf[nul + 1..].to_vec())]),
        &mut args,
    );
    let id = raw_function_id(name);
    with_outbox(|outbox| outbox.push_encoded(&id, &args));
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

/// Moves the calls plugins sent into `out`, which the caller hands over empty (its room is
/// kept for the next calls), after appending to `local` those to this node that were sent
/// on already.
pub fn take_sent(out: &mut Outbox, local: &mut Outbox) {
    SENT_ON_THIS_THREAD.with_borrow_mut(|sent| {
        let Some(sent) = sent.as_mut() else {
            return;
        };
        sent.local.move_into(local);
        sent.sent.move_into(out);
    });
    // Calls sent from other threads: while loading, or from a plugin's own threads.
    registry().outbox.move_into(out);
}

/// The bare name a typed plugin function would serve `function` under: the id itself when
/// it is bare, else its function part (raw ids excepted).
fn typed_name(function: &str) -> Option<&str> {
    match function.rsplit_once('#') {
        None => Some(function),
        Some((interface, _)) if interface == RAW_INTERFACE => None,
        Some((_, name)) => Some(name),
    }
}

/// Whether a plugin serves `function`.
pub fn serves(function: &str) -> bool {
    resolve(function).is_some()
}

/// The plugin function that serves `function`, if one does: a raw id names a raw stub, any
/// other id a typed stub by its bare name.
pub fn resolve(function: &str) -> Option<NativeServer> {
    let registry = registry();
    if let Some(name) = function
        .strip_prefix(RAW_INTERFACE)
        .and_then(|r| r.strip_prefix('#'))
    {
        return registry
            .functions
            .get(name)
            .map(|r| NativeServer::Raw(r.server));
    }
    let name = typed_name(function)?;
    registry
        .typed
        .get(name)
        .map(|r| NativeServer::Typed(r.server))
}

/// The label under which the metrics count calls that only native plugins serve: a plugin
/// answers a function id of any interface for its name, so the ids are the senders'.
pub const LABEL: &str = "(native plugins)";

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
    /// and may run its `init`). A bare file name is a file of the current directory
    /// ([`as_file_path`]), never one the dynamic loader finds elsewhere.
    pub fn load(path: &Path, name: &str, index: usize) -> anyhow::Result<Self> {
        registry().loading = index;
        let path = as_file_path(path);
        let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL;
        // SAFETY: opening a plugin runs its constructors: native plugins are trusted code
        // by definition (documented in the README and --help).
        let library = unsafe { libloading::os::unix::Library::open(Some(&path), flags) }
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

    /// The function ids plugin `index` registered: raw ones as `dstc:raw/abi#NAME`, typed
    /// ones by their bare name.
    pub fn functions(index: usize) -> Vec<String> {
        let registry = registry();
        let mut ids: Vec<String> = registry
            .functions
            .iter()
            .filter(|(_, r)| r.plugin == index)
            .map(|(name, _)| raw_function_id(name))
            .chain(
                registry
                    .typed
                    .iter()
                    .filter(|(_, r)| r.plugin == index)
                    .map(|(name, _)| name.clone()),
            )
            .collect();
        ids.sort();
        ids
    }
}

/// A plugin function, found once for a run of calls to it (registrations are never
/// removed, so it stays valid).
#[derive(Debug, Clone, Copy)]
pub enum NativeServer {
    /// A stub of the original ABI.
    Raw(ServerFn),
    /// A stub of dhost's typed ABI.
    Typed(TypedServerFn),
}

impl NativeServer {
    /// Runs the function with `args`, one CBOR array: a raw stub gets the one byte string
    /// it takes, a typed stub the array itself, checked by the stub.
    pub fn call(self, function: &str, args: &[u8]) -> anyhow::Result<()> {
        match self {
            NativeServer::Raw(server) => {
                let bytes = match ciborium::de::from_reader(args) {
                    Ok(ciborium::Value::Array(items)) => {
                        match <[ciborium::Value; 1]>::try_from(items) {
                            Ok([ciborium::Value::Bytes(bytes)]) => bytes,
                            _ => bail!("a raw DSTC call takes one byte string"),
                        }
                    }
                    _ => bail!("a raw DSTC call takes one byte string"),
                };
                let mut buffer = vec![0u8; bytes.len().max(MIN_ARG_BUFFER)];
                buffer[..bytes.len()].copy_from_slice(&bytes);
                // SAFETY: the stub reads its arguments from the buffer, which holds at least
                // what was sent and is zero-padded to MIN_ARG_BUFFER bytes.
                unsafe { server(buffer.as_mut_ptr()) };
                Ok(())
            }
            NativeServer::Typed(server) => {
                let len = u32::try_from(args.len()).context("the arguments are too large")?;
                // SAFETY: the stub reads `len` bytes of CBOR and checks every item against
                // its C declaration before it calls the plugin's function.
                let status = unsafe { server(args.as_ptr(), len) };
                if status != 0 {
                    let name = typed_name(function).unwrap_or(function);
                    bail!(
                        "its arguments do not fit native function `{name}` (as its C declaration says)"
                    );
                }
                Ok(())
            }
        }
    }
}

/// `path` as `dlopen` must be given it to open that file and no other: a name without a
/// `/` (`foo.so`) is looked for by the dynamic loader in LD_LIBRARY_PATH, the cache and the
/// system's directories, so it becomes `./foo.so`, the file of the current directory that
/// the user named (and that [`is_elf`] looked at).
pub fn as_file_path(path: &Path) -> std::path::PathBuf {
    if path.as_os_str().as_encoded_bytes().contains(&b'/') {
        path.to_path_buf()
    } else {
        Path::new(".").join(path)
    }
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
