//! End-to-end tests of the command line's conveniences: `dhost run --config FILE` (a file
//! alone, a file with a flag overriding it, a key that is no option), shell completions and
//! the man page.

mod common;

use common::*;
use std::net::SocketAddrV4;

/// A config file for a node called `name` on `group`, serving the kv guest, with `extra`
/// lines after.
fn config_file(tag: &str, name: &str, group: SocketAddrV4, extra: &str) -> std::path::PathBuf {
    let dir = scratch_dir(tag);
    // A path relative to the file: the file's directory is where it is looked for.
    std::fs::copy(guest("kv"), dir.join("kv.wasm")).unwrap();
    let text = format!(
        "# a node of the tests\n\
         name = \"{name}\"\n\
         group = \"{group}\"\n\
         iface = \"127.0.0.1\"\n\
         ttl = 0\n\
         guests = [\"kv.wasm\"]\n\
         call-timeout = \"2s\"\n\
         {extra}"
    );
    let path = dir.join("node.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What `dhost call NODE dhost:kv/store#keys` prints, or why it failed.
fn keys_of(group: SocketAddrV4, node: &str) -> Result<String, String> {
    let (status, out, err) = client_output("call", group, &[node, "dhost:kv/store#keys"]);
    if status.success() {
        Ok(out.trim().to_string())
    } else {
        Err(err)
    }
}

#[test]
fn a_config_file_alone_starts_the_node_it_describes() {
    let group = unique_group();
    let file = config_file("config-alone", "cfg-ann", group, "");
    let mut node = Dhost::start(&["-v", "run", "--config", file.to_str().unwrap()]);
    node.wait_stderr("the node to start", |err| err.contains("ready in"));
    assert!(node.stderr().contains("node cfg-ann"), "{}", node.stderr());
    assert_eq!(keys_of(group, "cfg-ann"), Ok("[]".to_string()));
    assert!(node.interrupt().success());
}

#[test]
fn a_flag_on_the_command_line_overrides_the_file() {
    let group = unique_group();
    let file = config_file("config-override", "cfg-ann", group, "");
    let mut node = Dhost::start(&[
        "-v",
        "run",
        "--config",
        file.to_str().unwrap(),
        "--name",
        "cfg-bob",
    ]);
    node.wait_stderr("the node to start", |err| err.contains("ready in"));
    assert_eq!(keys_of(group, "cfg-bob"), Ok("[]".to_string()));
    let err = keys_of(group, "cfg-ann").expect_err("no node is called cfg-ann");
    assert!(err.contains("no node named cfg-ann"), "{err}");
    assert!(node.interrupt().success());
}

#[test]
fn a_key_that_is_no_option_is_refused_naming_the_key_and_the_file() {
    let group = unique_group();
    let file = config_file(
        "config-unknown",
        "cfg-cat",
        group,
        "call-timeuot = \"1s\"\n",
    );
    let (status, _, err) = dhost_output(&["run", "--config", file.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}: unknown key `call-timeuot`", file.display())),
        "{err}"
    );
}

#[test]
fn completion_scripts_know_the_subcommands_and_their_options() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (status, out, err) = dhost_output(&["completions", shell]);
        assert!(status.success(), "{shell}: {err}");
        // (fish names a long option `-l config`.)
        for word in ["publish", "accept-modules", "config"] {
            assert!(out.contains(word), "{shell}'s script lacks {word}");
        }
    }
    let (status, _, err) = dhost_output(&["completions", "tcsh"]);
    assert!(!status.success());
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
}

#[test]
fn man_pages_for_dhost_and_each_subcommand() {
    let (status, out, err) = dhost_output(&["man"]);
    assert!(status.success(), "{err}");
    assert!(out.contains(".TH dhost 1"), "{out}");
    assert!(
        out.contains("dhost\\-run(1)") || out.contains("run"),
        "{out}"
    );
    let (status, out, err) = dhost_output(&["man", "run"]);
    assert!(status.success(), "{err}");
    assert!(
        out.contains(".TH dhost-run 1") && out.contains("config"),
        "{out}"
    );
    let (status, _, err) = dhost_output(&["man", "nope"]);
    assert!(!status.success());
    assert!(
        err.contains("no subcommand `nope`: it has run, inspect"),
        "{err}"
    );
}

#[test]
fn the_console_runs_commands_from_a_pipe() {
    let group = unique_group();
    let kv = guest("kv");
    let node = Dhost::start(&node_args("con-ann", group, &[kv.to_str().unwrap()]));
    node.wait_stderr("the node to start", |err| err.contains("ready in"));
    let mut cmd = dhost_command();
    cmd.arg("console").args(group_flags(group));
    let mut console = Dhost::spawn(cmd);
    for line in [
        "peers",
        r#"call con-ann dhost:kv/store#put '"k"' '"v"'"#,
        r#"call con-ann dhost:kv/store#get '"k"'"#,
        "say con-ann hello from the console \u{1b}[2J",
        "no-such-command",
        "call nobody dhost:kv/store#keys",
        "quit",
        "peers",
    ] {
        console.type_line(line);
    }
    let status = console.wait_exit();
    let (out, err) = (console.stdout(), console.stderr());
    // Every command ran, in order, with no prompt; the two mistakes were said, and made
    // the status 1; nothing ran after `quit`.
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME "), "{out}");
    assert!(lines[1].starts_with("con-ann "), "{out}");
    assert_eq!(&lines[2..], ["null", "\"v\"", "null"], "{out}");
    assert!(err.contains("no command `no-such-command`"), "{err}");
    assert!(err.contains("no node named nobody"), "{err}");
    // The node printed what was said, its control characters escaped.
    node.wait_stdout("the said line", |out| {
        out.contains("hello from the console")
    });
    assert!(
        node.stdout()
            .contains("] hello from the console \\u{1b}[2J"),
        "{}",
        node.stdout()
    );
}
