//! Background servers: `dipc` / `dhost mailbox serve` start one (in the background with
//! `--daemon`, as `dipc` does), `dipcrm` / `dhost mailbox stop` stop it.
//!
//! Starting binds the port first, in the foreground, so that every mistake (a bad
//! argument, a port in use) is reported before anything is left behind. A daemon then
//! forks: the parent writes the pid file (`dipc-PORT.pid` in the state directory) and
//! returns, the port already accepting connections; the child detaches from the terminal,
//! logs to `dipc-PORT.log` beside it and serves until SIGTERM or SIGINT, when it closes the
//! port, lets every connection finish the command in progress, and removes its pid file.
//! What is served is the caller's: `dipc` serves the text protocol ([`crate::port`]), the
//! node's `dhost mailbox serve` its own port, with keys. Whatever can fail in what it
//! serves (a store file) is opened before [`start`], so that it is reported too.

use anyhow::{Context as _, bail};
use std::future::Future;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// How long `stop` waits for a server to finish before it gives up.
const STOP_PATIENCE: Duration = Duration::from_secs(15);

/// Where and how a server runs.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Where the pid and log files go.
    pub state_dir: PathBuf,
    /// Whether to go to the background.
    pub daemon: bool,
    /// What is served, in words, for the messages.
    pub what: String,
}

/// The state directory: `--state-dir`, else `$DHOST_STATE_DIR`, else the user's state
/// directory (`~/.local/state/dhost`), else a directory in /tmp of the user's own.
pub fn state_dir(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("DHOST_STATE_DIR").map(PathBuf::from))
        .or_else(|| dirs::state_dir().map(|d| d.join("dhost")))
        .unwrap_or_else(|| {
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            std::env::temp_dir().join(format!("dhost-{uid}"))
        })
}

fn pid_file(state_dir: &Path, port: u16) -> PathBuf {
    state_dir.join(format!("dipc-{port}.pid"))
}

fn log_file(state_dir: &Path, port: u16) -> PathBuf {
    state_dir.join(format!("dipc-{port}.log"))
}

/// Binds the port `placement` names and runs `serve` on it until SIGTERM or SIGINT cancel
/// its token. In the foreground it returns when the server stops; as a daemon, as soon as
/// the port accepts connections.
pub fn start<S, F>(placement: &Placement, serve: S) -> anyhow::Result<()>
where
    S: FnOnce(tokio::net::TcpListener, CancellationToken) -> F,
    F: Future<Output = anyhow::Result<()>>,
{
    let listener = TcpListener::bind(placement.addr)
        .with_context(|| format!("cannot listen on {}", placement.addr))?;
    let port = listener.local_addr()?.port();
    let pid_path = pid_file(&placement.state_dir, port);
    if placement.daemon {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        // (The user's alone: the log says who connected, and what they sent that was
        // dropped.)
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&placement.state_dir)
            .with_context(|| {
                format!(
                    "cannot create the state directory {}",
                    placement.state_dir.display()
                )
            })?;
        let log_path = log_file(&placement.state_dir, port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .with_context(|| format!("cannot open the log file {}", log_path.display()))?;
        // Fork while this process has one thread (no runtime has started yet).
        // SAFETY: fork is safe here: the process is single-threaded, so the child inherits
        // no lock held by another thread; both sides only continue with ordinary Rust.
        match unsafe { libc::fork() } {
            -1 => return Err(std::io::Error::last_os_error()).context("cannot fork"),
            0 => detach(&log)?,
            child => {
                std::fs::write(&pid_path, format!("{child}\n"))
                    .with_context(|| format!("cannot write the pid file {}", pid_path.display()))?;
                println!(
                    "dipc: serving {} on port {port} (pid {child}, log {})",
                    placement.what,
                    log_path.display()
                );
                return Ok(());
            }
        }
    }
    let outcome = run_until_signalled(listener, placement, serve);
    if placement.daemon {
        let _ = std::fs::remove_file(&pid_path);
    }
    outcome
}

/// In the daemon child: a session of its own, stdin from /dev/null, stdout and stderr to
/// the log file.
fn detach(log: &std::fs::File) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::File::open("/dev/null").context("cannot open /dev/null")?;
    // SAFETY: setsid and dup2 take plain descriptors, which are open for the duration of
    // the calls; failures are reported through their return values.
    unsafe {
        if libc::setsid() == -1
            || libc::dup2(null.as_raw_fd(), 0) == -1
            || libc::dup2(log.as_raw_fd(), 1) == -1
            || libc::dup2(log.as_raw_fd(), 2) == -1
        {
            return Err(std::io::Error::last_os_error()).context("cannot detach");
        }
    }
    Ok(())
}

/// Runs `serve` on `listener`, on a runtime of its own, until SIGTERM or SIGINT.
fn run_until_signalled<S, F>(
    listener: TcpListener,
    placement: &Placement,
    serve: S,
) -> anyhow::Result<()>
where
    S: FnOnce(tokio::net::TcpListener, CancellationToken) -> F,
    F: Future<Output = anyhow::Result<()>>,
{
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let stop = CancellationToken::new();
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tracing::info!(
            "serving {} on {addr} (pid {})",
            placement.what,
            std::process::id()
        );
        let serving = serve(listener, stop.clone());
        tokio::pin!(serving);
        tokio::select! {
            // (A server ends by itself only when it fails, which it says.)
            outcome = &mut serving => return outcome,
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stopping: the port is closed, connections finish their command");
        stop.cancel();
        serving.await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Stops the daemon serving `port` and removes its pid file.
pub fn stop(state_dir: &Path, port: u16) -> anyhow::Result<()> {
    let pid_path = pid_file(state_dir, port);
    let text = match std::fs::read_to_string(&pid_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "no dipc server runs on port {port} (no pid file {})",
                pid_path.display()
            )
        }
        Err(e) => return Err(e).context(format!("cannot read {}", pid_path.display())),
    };
    let pid: libc::pid_t = text
        .trim()
        .parse()
        .ok()
        .filter(|&p| p > 0)
        .with_context(|| format!("{} does not hold a process id", pid_path.display()))?;
    if !is_mailbox_server(pid) {
        let _ = std::fs::remove_file(&pid_path);
        bail!(
            "no dipc server runs on port {port}: process {pid} is gone (its stale pid file {} \
             is removed)",
            pid_path.display()
        );
    }
    // SAFETY: kill takes a plain pid and signal number; it only reports errors.
    if unsafe { libc::kill(pid, libc::SIGTERM) } == -1 {
        return Err(std::io::Error::last_os_error()).context(format!("cannot stop process {pid}"));
    }
    let started = Instant::now();
    // (Until it is gone: a process that exits has an empty command line for a moment
    // before it is a zombie, and is no longer recognised by its name then.)
    while still_running(pid) {
        if started.elapsed() > STOP_PATIENCE {
            bail!(
                "the dipc server on port {port} (pid {pid}) did not stop within {}",
                humantime::format_duration(STOP_PATIENCE)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&pid_path);
    Ok(())
}

/// Whether process `pid` is alive and is a mailbox server (dipc or dhost, not some other
/// process that got the same pid later).
fn is_mailbox_server(pid: libc::pid_t) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let zombie = !still_running(pid);
    let program = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let name = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(program))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    !zombie && (name.starts_with("dipc") || name.starts_with("dhost"))
}

/// Whether process `pid` exists and has not stopped (a zombie, state Z, has).
fn still_running(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// The default address of a standalone server: loopback, as a node's (the assignment's
/// server listened on every interface: `--bind 0.0.0.0 --insecure` does so).
pub fn default_bind() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}
