//! Jails: what each guest is granted (files, environment, network, stdio, clocks, the
//! functions it may send and serve) and the limits it runs under (memory, CPU time, fuel),
//! from the built-in default, a policy file and command-line flags.
//!
//! - [`policy`]: the TOML policy file and the flags, merged into one [`Jail`] per guest;
//! - [`addr_pattern`]: the network allow-list patterns;
//! - [`mailboxes`]: which mailboxes, of which nodes, a guest may read and write;
//! - [`warden`]: enforcement of the limits inside wasmtime.
//!
//! `docs/jail.md` is the reference.

pub mod addr_pattern;
pub mod mailboxes;
pub mod policy;
pub mod warden;

pub use addr_pattern::AddrPattern;
pub use mailboxes::MailboxGrant;
pub use policy::{Flags, Policy};
pub use warden::{Limits, TICK, Warden, parse_duration, parse_size};

use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The built-in default: how long a guest waits for the reply to a call (as in rot).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A host directory a guest may see, at a path of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Whether the guest may change what is in it.
    pub writable: bool,
}

impl FromStr for DirGrant {
    type Err = String;

    /// Parses `HOST[:GUEST][:ro|rw]`: the guest path defaults to the host path, the mode to
    /// read-only.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts: Vec<&str> = s.split(':').collect();
        let writable = match parts.last().copied() {
            Some("rw") if parts.len() > 1 => {
                parts.pop();
                true
            }
            Some("ro") if parts.len() > 1 => {
                parts.pop();
                false
            }
            _ => false,
        };
        let (host, guest) = match parts.as_slice() {
            [host] => (*host, *host),
            [host, guest] => (*host, *guest),
            _ => return Err(format!("`{s}` is not HOST[:GUEST][:ro|rw]")),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!(
                "`{s}` is not HOST[:GUEST][:ro|rw]: a path is empty"
            ));
        }
        Ok(DirGrant {
            host: PathBuf::from(host),
            guest: guest.to_string(),
            writable,
        })
    }
}

/// The names a guest may look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameLookup {
    /// None: name lookup fails.
    None,
    /// Any name.
    Any,
    /// These names; `*.example.com` stands for any name under example.com.
    Names(Vec<String>),
}

impl NameLookup {
    /// Whether looking up `name` is allowed.
    pub fn permits(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match self {
            NameLookup::None => false,
            NameLookup::Any => true,
            NameLookup::Names(names) => names.iter().any(|pattern| {
                let pattern = pattern.to_ascii_lowercase();
                match pattern.strip_prefix("*.") {
                    Some(domain) => name.ends_with(&format!(".{domain}")),
                    None => name == pattern,
                }
            }),
        }
    }
}

/// Everything one guest is granted, and its limits: the effective policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Jail {
    /// Host directories the guest sees.
    pub dirs: Vec<DirGrant>,
    /// Names of the node's environment variables the guest sees (with their values).
    pub env: Vec<String>,
    /// Arguments of a WASI command (after its name).
    pub args: Vec<String>,
    /// Whether the guest hears the node's stdin (stdin-events, or a command's WASI stdin).
    pub stdin: bool,
    /// Whether the guest's stdout reaches the node's.
    pub stdout: bool,
    /// Whether the guest's stderr reaches the node's.
    pub stderr: bool,
    /// The addresses the guest may connect to or bind; empty: no network at all.
    pub network: Vec<AddrPattern>,
    /// Which names the guest may look up (DNS).
    pub name_lookup: NameLookup,
    /// Whether the guest may read the wall clock (if not, it reads 1970-01-01).
    pub wall_clock: bool,
    /// Memory, time and fuel.
    pub limits: Limits,
    /// How long the guest waits for the reply to a call with a reply.
    pub call_timeout: Duration,
    /// The function ids the guest may send; `None`: every one it imports.
    pub send: Option<Vec<String>>,
    /// The function ids of its exports that may be called, each optionally followed by
    /// `from NODE...`, the only nodes that may call it; `None`: every export, by anyone.
    pub serve: Option<Vec<String>>,
    /// The mailboxes (`dstc:node/mailboxes`), of this node and of which peers, the guest
    /// may read and write; empty: none.
    pub mailboxes: Vec<MailboxGrant>,
}

impl Jail {
    /// The built-in default jail of a guest named on the command line: nothing granted but
    /// stdio (and stdin only to a guest that asks for it) and the mailboxes of every node,
    /// 64 MiB, 1 s per call (none for a WASI command). A published module starts from
    /// less ([`policy::Policy::jail_for_published`]).
    pub fn default_for(command: bool) -> Jail {
        Jail {
            dirs: Vec::new(),
            env: Vec::new(),
            args: Vec::new(),
            stdin: true,
            stdout: true,
            stderr: true,
            network: Vec::new(),
            name_lookup: NameLookup::None,
            wall_clock: true,
            limits: Limits::default_for(command),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            send: None,
            serve: None,
            mailboxes: vec![MailboxGrant::everything()],
        }
    }

    /// Whether the guest may read (or, if `write`, write) mailbox `number` of node `node`
    /// (`None`: this node, named `this_node`).
    pub fn may_use_mailbox(
        &self,
        number: u32,
        node: Option<&str>,
        this_node: &str,
        write: bool,
    ) -> bool {
        self.mailboxes
            .iter()
            .any(|g| g.permits(number, node, this_node, write))
    }

    /// Whether the guest may send `function`.
    pub fn may_send(&self, function: &str) -> bool {
        self.send
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|f| f == function))
    }

    /// Whether a call to the guest's `function` from node `caller` (its name, if known)
    /// may run.
    pub fn may_serve(&self, function: &str, caller: Option<&str>) -> bool {
        self.serve.as_ref().is_none_or(|allowed| {
            allowed
                .iter()
                .any(|entry| match entry.split_once(" from ") {
                    None => entry == function,
                    Some((id, nodes)) => {
                        id.trim() == function
                            && caller.is_some_and(|c| nodes.split_whitespace().any(|n| n == c))
                    }
                })
        })
    }

    /// The jail in words, one knob a line, for `--print-jail`.
    pub fn describe(&self) -> String {
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "none".to_string()
            } else {
                items.join(", ")
            }
        };
        let mut out = String::new();
        let dirs = self
            .dirs
            .iter()
            .map(|d| {
                let mode = if d.writable { "rw" } else { "ro" };
                format!("{} as {} ({mode})", d.host.display(), d.guest)
            })
            .collect();
        let yes = |b: bool| if b { "yes" } else { "no" };
        let _ = writeln!(out, "  files:       {}", list(dirs));
        let _ = writeln!(out, "  env:         {}", list(self.env.clone()));
        let _ = writeln!(out, "  args:        {}", list(self.args.clone()));
        let _ = writeln!(out, "  stdin:       {}", yes(self.stdin));
        let _ = writeln!(out, "  stdout:      {}", yes(self.stdout));
        let _ = writeln!(out, "  stderr:      {}", yes(self.stderr));
        let net = self.network.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "  network:     {}", list(net));
        let lookup = match &self.name_lookup {
            NameLookup::None => "no".to_string(),
            NameLookup::Any => "any name".to_string(),
            NameLookup::Names(names) => names.join(", "),
        };
        let _ = writeln!(out, "  name-lookup: {lookup}");
        let _ = writeln!(out, "  wall-clock:  {}", yes(self.wall_clock));
        let _ = writeln!(out, "  limits:      {}", self.limits.describe());
        let _ = writeln!(
            out,
            "  call-timeout: {}",
            humantime::format_duration(self.call_timeout)
        );
        let all = |l: &Option<Vec<String>>, what: &str| match l {
            None => format!("every function it {what}"),
            Some(l) => list(l.clone()),
        };
        let _ = writeln!(out, "  send:        {}", all(&self.send, "imports"));
        let _ = writeln!(out, "  serve:       {}", all(&self.serve, "exports"));
        let boxes = self.mailboxes.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "  mailboxes:   {}", list(boxes));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_grants_parse_with_defaults() {
        let g: DirGrant = "/srv/data".parse().unwrap();
        assert_eq!(
            (g.host, g.guest.as_str(), g.writable),
            ("/srv/data".into(), "/srv/data", false)
        );
        let g: DirGrant = "/srv/data:/data".parse().unwrap();
        assert_eq!((g.guest.as_str(), g.writable), ("/data", false));
        let g: DirGrant = "/srv/data:/data:rw".parse().unwrap();
        assert!(g.writable);
        let g: DirGrant = "/srv/data:rw".parse().unwrap();
        assert_eq!((g.guest.as_str(), g.writable), ("/srv/data", true));
        assert!("a:b:c:d".parse::<DirGrant>().is_err());
        assert!(":/data".parse::<DirGrant>().is_err());
    }

    #[test]
    fn name_lookups_allow_exact_names_and_subdomains() {
        let names = NameLookup::Names(vec!["example.com".into(), "*.internal.net".into()]);
        assert!(names.permits("example.com") && names.permits("EXAMPLE.com."));
        assert!(!names.permits("www.example.com"));
        assert!(names.permits("db.internal.net"));
        assert!(!names.permits("internal.net") && !names.permits("evilinternal.net"));
        assert!(NameLookup::Any.permits("anything"));
        assert!(!NameLookup::None.permits("localhost"));
    }

    #[test]
    fn send_and_serve_lists_allow_only_what_they_name() {
        let mut jail = Jail::default_for(false);
        assert!(jail.may_send("a:b/c#d") && jail.may_serve("a:b/c#d", None));
        jail.send = Some(vec!["a:b/c#d".into()]);
        jail.serve = Some(vec![]);
        assert!(jail.may_send("a:b/c#d"));
        assert!(!jail.may_send("a:b/c#e"));
        assert!(!jail.may_serve("a:b/c#d", Some("x")));
        jail.serve = Some(vec!["a:b/c#d from ann bob".into(), "a:b/c#e".into()]);
        assert!(jail.may_serve("a:b/c#d", Some("bob")));
        assert!(!jail.may_serve("a:b/c#d", Some("eve")));
        assert!(
            !jail.may_serve("a:b/c#d", None),
            "an unknown caller is not ann or bob"
        );
        assert!(jail.may_serve("a:b/c#e", None));
    }
}
