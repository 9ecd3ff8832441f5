//! The limits a guest runs under (memory and tables, counted over the whole guest; how many
//! core instances, memories and tables it may make; CPU time and fuel per call) and their
//! enforcement inside wasmtime: a resource limiter on the guest's store that keeps a running
//! total of everything the guest has allocated, and a check at every epoch tick of how long
//! the current call (or the instantiation, start functions included) has run.

use bytesize::ByteSize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::{ResourceLimiter, UpdateDeadline};

/// How often the engine's epoch ticks: the granularity of CPU time limits.
pub const TICK: Duration = Duration::from_millis(10);

/// The built-in default: the most memory a guest may hold, all its linear memories and
/// tables together.
pub const DEFAULT_MAX_MEMORY: u64 = 64 * 1024 * 1024;

/// The built-in default: the most core instances one instance of a guest may make (a Rust
/// component makes 3, one built by componentize-py 14).
pub const DEFAULT_MAX_INSTANCES: u32 = 32;

/// The built-in default: the most linear memories one instance of a guest may make.
pub const DEFAULT_MAX_MEMORIES: u32 = 4;

/// The built-in default: the most tables one instance of a guest may make.
pub const DEFAULT_MAX_TABLES: u32 = 8;

/// What one table element costs, counted against the memory limit (wasmtime keeps a
/// pointer per element).
const TABLE_ELEMENT_BYTES: u64 = std::mem::size_of::<usize>() as u64;

/// The built-in default: the most CPU time one call into a node guest may take.
pub const DEFAULT_MAX_TIME: Duration = Duration::from_secs(1);

/// The most elements a guest's table may grow to.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The limits one guest runs under.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The most memory the guest may hold, in bytes: all its linear memories and tables
    /// (at [`TABLE_ELEMENT_BYTES`] an element) together.
    pub max_memory: u64,
    /// The most core instances, linear memories and tables one instance of the guest may
    /// make (its start, and every restart, begin again from none).
    pub max_instances: u32,
    /// See [`Limits::max_instances`].
    pub max_memories: u32,
    /// See [`Limits::max_instances`].
    pub max_tables: u32,
    /// The longest a call into the guest may run (for a WASI command, its whole run);
    /// `None`: no limit.
    pub max_time: Option<Duration>,
    /// The fuel (roughly, WebAssembly instructions) one call may burn; `None`: no limit.
    pub fuel: Option<u64>,
}

impl Limits {
    /// The built-in default for a guest: 64 MiB, and 1 s per call for a node guest (a WASI
    /// command runs as long as it needs unless a limit is given).
    pub fn default_for(command: bool) -> Self {
        Limits {
            max_memory: DEFAULT_MAX_MEMORY,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_memories: DEFAULT_MAX_MEMORIES,
            max_tables: DEFAULT_MAX_TABLES,
            max_time: (!command).then_some(DEFAULT_MAX_TIME),
            fuel: None,
        }
    }

    /// The limits in words, for logs and `--print-jail`.
    pub fn describe(&self) -> String {
        let time = match self.max_time {
            Some(t) => format!("{} per call", humantime::format_duration(t)),
            None => "no time limit".to_string(),
        };
        format!(
            "memory {}, {time}; at most {} core instances, {} memories, {} tables (the \
             memory is all of them together)",
            ByteSize(self.max_memory).display().iec(),
            self.max_instances,
            self.max_memories,
            self.max_tables
        )
    }
}

/// Enforces [`Limits`] on one guest's store: its memory and tables as they are made and
/// grow (a running total over all of them), how many it makes, and the time of the current
/// call at every epoch tick.
#[derive(Debug)]
pub struct Warden {
    limits: Limits,
    /// The bytes of every linear memory and table of the store, as last allowed to grow.
    held: u64,
    /// Set when the node is stopping: a running guest is interrupted at the next tick.
    stopping: Arc<AtomicBool>,
    /// When the current call saw its first tick.
    call_started: Option<Instant>,
    /// Whether a call into the guest is running.
    in_call: bool,
    /// How many calls the running entry runs.
    calls: u32,
}

impl Warden {
    /// A warden for `limits`, which interrupts the guest once `stopping` is set.
    pub fn new(limits: Limits, stopping: Arc<AtomicBool>) -> Self {
        Warden {
            limits,
            held: 0,
            stopping,
            call_started: None,
            in_call: false,
            calls: 1,
        }
    }

    /// The limits enforced.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Marks the start of a call into the guest. Its time is measured from the first epoch
    /// tick it sees (less than a [`TICK`] after it starts), so that a short call costs no
    /// clock reading: a call over its limit is stopped within two ticks, never early.
    pub fn start_call(&mut self) {
        self.start_calls(1);
    }

    /// Marks the start of an entry into the guest that runs `calls` calls (a run delivered
    /// in one entry): its time limit is the jail's per call, times `calls`.
    pub fn start_calls(&mut self, calls: u32) {
        self.call_started = None;
        self.in_call = true;
        self.calls = calls.max(1);
    }

    /// Leaves `waited` out of the current call's time: the guest was waiting for the reply
    /// to a call of its own, not running.
    pub fn exclude(&mut self, waited: Duration) {
        if let Some(started) = &mut self.call_started {
            *started += waited;
        }
    }

    /// Marks the end of a call.
    pub fn end_call(&mut self) {
        self.call_started = None;
        self.in_call = false;
    }

    /// What to do at an epoch tick while the guest runs: go on, or stop it with the reason.
    pub fn on_tick(&mut self) -> wasmtime::Result<UpdateDeadline> {
        if self.stopping.load(Ordering::Relaxed) {
            wasmtime::bail!("interrupted: the node is stopping");
        }
        if self.in_call && self.call_started.is_none() {
            // The call's first tick: its time runs from here (less than a tick ago it began).
            self.call_started = Some(Instant::now());
        }
        if let (Some(limit), Some(started)) = (self.limits.max_time, self.call_started)
            && started.elapsed() > limit.saturating_mul(self.calls)
        {
            wasmtime::bail!(
                "time limit exceeded: the jail allows {} per call{}",
                humantime::format_duration(limit),
                match self.calls {
                    1 => String::new(),
                    n => format!(" ({n} calls in this entry)"),
                }
            );
        }
        Ok(UpdateDeadline::Continue(1))
    }
}

impl Warden {
    /// Counts growing something from `current` to `desired` bytes against the guest's
    /// total, or says why not (`what` names it, for the error).
    fn grow(&mut self, what: &str, current: u64, desired: u64) -> wasmtime::Result<bool> {
        let held = self.held.saturating_sub(current).saturating_add(desired);
        if held > self.limits.max_memory {
            wasmtime::bail!(
                "memory limit exceeded: the guest asked to grow {what}, to {} in all (memories \
                 and tables together), the jail allows {}",
                ByteSize(held).display().iec(),
                ByteSize(self.limits.max_memory).display().iec()
            );
        }
        self.held = held;
        Ok(true)
    }

    /// The bytes all the guest's memories and tables hold, as far as it was let grow them.
    pub fn held(&self) -> u64 {
        self.held
    }
}

impl ResourceLimiter for Warden {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let what = format!(
            "a memory from {} to {}",
            ByteSize(current as u64).display().iec(),
            ByteSize(desired as u64).display().iec()
        );
        self.grow(&what, current as u64, desired as u64)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            wasmtime::bail!(
                "table limit exceeded: the guest asked to grow a table from {current} to \
                 {desired} elements, the jail allows {MAX_TABLE_ELEMENTS}"
            );
        }
        let what = format!("a table from {current} to {desired} elements");
        let bytes = |elements: usize| (elements as u64).saturating_mul(TABLE_ELEMENT_BYTES);
        self.grow(&what, bytes(current), bytes(desired))
    }

    fn instances(&self) -> usize {
        self.limits.max_instances as usize
    }

    fn memories(&self) -> usize {
        self.limits.max_memories as usize
    }

    fn tables(&self) -> usize {
        self.limits.max_tables as usize
    }
}

/// Parses a size such as `64MiB`, `1 GiB` or `500000` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let size: ByteSize = s
        .parse()
        .map_err(|e| format!("`{s}` is not a size such as 64MiB: {e}"))?;
    if size.as_u64() == 0 {
        return Err("the size must be more than 0".to_string());
    }
    Ok(size.as_u64())
}

/// Parses a duration such as `200ms`, `2s` or `1m 30s` (more than zero): the same parser
/// as `dipc`'s options, whose crate the node builds on.
pub use dhost_mailbox::cli::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_as_people_write_them() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn the_limit_is_on_all_memories_and_tables_together() {
        let limits = Limits {
            max_memory: 4 << 20,
            ..Limits::default_for(false)
        };
        let mut warden = Warden::new(limits, Arc::default());
        // Three memories of 1 MiB each, then a table: 3 MiB and some.
        for _ in 0..3 {
            assert!(warden.memory_growing(0, 1 << 20, None).unwrap());
        }
        assert!(warden.table_growing(0, 1000, None).unwrap());
        assert_eq!(warden.held(), (3 << 20) + 1000 * TABLE_ELEMENT_BYTES);
        // A fourth memory of 1 MiB would pass 4 MiB in all; one that stays small fits.
        let err = warden.memory_growing(0, 1 << 20, None).unwrap_err();
        assert!(
            err.to_string().contains(
                "to 4.0 MiB in all (memories and tables together), the jail allows 4.0 MiB"
            ),
            "{err}"
        );
        assert!(warden.memory_growing(0, 512 << 10, None).unwrap());
        // Growing one memory counts only what it adds.
        let before = warden.held();
        assert!(
            warden
                .memory_growing(512 << 10, (512 << 10) + 65536, None)
                .unwrap()
        );
        assert_eq!(warden.held(), before + 65536);
        assert!(
            warden.memory_growing(1 << 20, 3 << 19, None).is_err(),
            "to 4 MiB and more"
        );
        // The counts of instances, memories and tables are the jail's.
        assert_eq!(warden.instances(), DEFAULT_MAX_INSTANCES as usize);
        assert_eq!(warden.memories(), DEFAULT_MAX_MEMORIES as usize);
        assert_eq!(warden.tables(), DEFAULT_MAX_TABLES as usize);
    }

    #[test]
    fn the_warden_refuses_growth_past_the_limit_and_stops_long_calls() {
        let stopping = Arc::new(AtomicBool::new(false));
        let limits = Limits {
            max_memory: 1 << 20,
            max_time: Some(Duration::from_millis(20)),
            ..Limits::default_for(false)
        };
        let mut warden = Warden::new(limits, stopping.clone());
        assert!(warden.memory_growing(0, 1 << 20, None).unwrap());
        let err = warden.memory_growing(1 << 20, 2 << 20, None).unwrap_err();
        assert!(err.to_string().contains("memory limit exceeded"), "{err}");
        assert!(warden.on_tick().is_ok(), "no call, no time limit");
        warden.start_call();
        assert!(warden.on_tick().is_ok());
        std::thread::sleep(Duration::from_millis(30));
        let Err(err) = warden.on_tick() else {
            panic!("the call outlived its limit")
        };
        assert!(err.to_string().contains("time limit exceeded"), "{err}");
        warden.end_call();
        assert!(warden.on_tick().is_ok());
        stopping.store(true, Ordering::Relaxed);
        let Err(err) = warden.on_tick() else {
            panic!("the node is stopping")
        };
        assert!(err.to_string().contains("stopping"), "{err}");
    }
}
