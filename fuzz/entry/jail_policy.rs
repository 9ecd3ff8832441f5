//! The body of the `jail_policy` fuzz target, shared with `tests/fuzz_corpora.rs`: the text
//! of a jail policy file (`dhost run --jail FILE`, TOML; inputs that are not UTF-8 are
//! skipped) through `dhost::jail::Policy::parse`, with no flags and with flags, and every
//! jail a parsed policy makes (`Policy::jail_for`) described and asked what it grants.

use dhost::jail::{AddrPattern, Flags, Jail, NameLookup, Policy};
use std::net::SocketAddr;
use std::time::Duration;

/// Runs one input; panics if parsing or a jail panics, or a jail contradicts its policy.
pub(crate) fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let flags = Flags {
        env: vec!["LANG".to_string()],
        network: vec!["127.0.0.1:9".parse().expect("an address pattern")],
        max_memory: Some(1 << 20),
        max_time: Some(Duration::from_millis(10)),
        fuel: Some(1000),
        call_timeout: Some(Duration::from_secs(1)),
        args: Some(vec!["--flag".to_string()]),
        ..Flags::default()
    };
    for flags in [Flags::default(), flags] {
        let Ok(policy) = Policy::parse(text, flags) else {
            continue;
        };
        let _ = policy.uses_fuel();
        let mut names: Vec<String> = policy.named_guests().map(str::to_string).collect();
        names.push("a-guest-with-no-section".to_string());
        for name in &names {
            for command in [false, true] {
                check_jail(&policy.jail_for(name, command));
            }
        }
    }
}

/// The addresses each network pattern is asked about.
const ADDRESSES: [&str; 4] = [
    "127.0.0.1:8080",
    "10.1.2.3:443",
    "[::1]:1",
    "[::ffff:1.2.3.4]:0",
];

fn check_jail(jail: &Jail) {
    let _ = jail.describe();
    for function in jail.send.iter().flatten() {
        assert!(jail.may_send(function), "{function}");
    }
    for entry in jail.serve.iter().flatten() {
        match entry.split_once(" from ") {
            None => assert!(jail.may_serve(entry, None), "{entry}"),
            Some((id, nodes)) => {
                for node in nodes.split_whitespace() {
                    assert!(jail.may_serve(id.trim(), Some(node)), "{entry}");
                }
            }
        }
    }
    if let NameLookup::Names(names) = &jail.name_lookup {
        for name in names {
            let _ = jail.name_lookup.permits(name);
        }
    }
    for pattern in &jail.network {
        assert_eq!(
            pattern.to_string().parse::<AddrPattern>().as_ref(),
            Ok(pattern)
        );
        for addr in ADDRESSES {
            let addr: SocketAddr = addr.parse().expect("an address");
            let _ = pattern.matches(&addr);
        }
    }
}
