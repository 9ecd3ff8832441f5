//! What each command does: [`parse_command_line`] reads the command line (with `dhost run
//! --config`'s file), and [`execute`] hands it ([`crate::cli`] only defines it) to the
//! module that owns the command (the node crate's `run`, `inspect`, the clients, the console, the manual),
//! and does here the two that take a few lines: `keygen` and `mailbox serve`.

use crate::cli::{Cli, Command, KeygenArgs, MailboxCommand, MailboxServeArgs};
use anyhow::Context as _;
use std::process::ExitCode;

/// Parses the process's command line, with `dhost run --config FILE`'s file; on a mistake
/// prints it and exits (status 2, as clap does).
pub fn parse_command_line() -> Cli {
    match crate::config::try_parse_from(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(crate::config::CommandLineError::Clap(e)) => e.exit(),
        Err(crate::config::CommandLineError::Config(e)) => {
            eprintln!("dhost: {e}");
            std::process::exit(2);
        }
    }
}

/// Does what the command line says: the one place that maps each command to the module
/// that does it.
pub fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => dhost_node::run::run(args.settings()?),
        Command::Inspect(args) => crate::inspect::inspect(&args).map(|()| ExitCode::SUCCESS),
        Command::Peers(args) => crate::client::peers(&args).map(|()| ExitCode::SUCCESS),
        Command::Mailbox(MailboxCommand::Serve(args)) => {
            serve_mailboxes(args).map(|()| ExitCode::SUCCESS)
        }
        Command::Mailbox(MailboxCommand::Stop(args)) => args.run().map(|()| ExitCode::SUCCESS),
        Command::Router(args) => {
            dhost_node::router::run(args.settings()).map(|()| ExitCode::SUCCESS)
        }
        Command::Call(args) => crate::client::call(&args).map(|()| ExitCode::SUCCESS),
        Command::Cast(args) => crate::client::cast(&args).map(|()| ExitCode::SUCCESS),
        Command::Keygen(args) => keygen(&args).map(|()| ExitCode::SUCCESS),
        Command::Publish(args) => crate::modules::client::publish(&args),
        Command::Unpublish(args) => crate::modules::client::unpublish(&args),
        Command::Modules(args) => {
            crate::modules::client::modules(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Console(args) => crate::console::console(&args, execute),
        Command::Completions(args) => {
            crate::manual::completions(args.shell).map(|()| ExitCode::SUCCESS)
        }
        Command::Man(args) => {
            crate::manual::man_page(args.subcommand.as_deref()).map(|()| ExitCode::SUCCESS)
        }
    }
}

/// `dhost keygen`: makes a key and writes it.
fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let key = crate::auth::GroupKey::generate().context("no random bytes for the key")?;
    key.write_new(&args.file, args.force).map_err(|e| match e {
        crate::auth::KeyError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            anyhow::anyhow!(
                "{} exists: give --force to replace it (nodes with the old key will no \
                 longer be able to talk to nodes with the new one)",
                args.file.display()
            )
        }
        other => anyhow::anyhow!("cannot write the key: {other}"),
    })?;
    println!(
        "wrote a new group key (id {}) to {}",
        hex::encode(key.id()),
        args.file.display()
    );
    Ok(())
}

/// `dhost mailbox serve`: checks the arguments and serves the mailboxes on a port of the
/// node's kind (text, and binary requests with the key), until stopped.
fn serve_mailboxes(args: MailboxServeArgs) -> anyhow::Result<()> {
    let keys = args.key.connection_keys()?;
    args.serve.check_bind(keys.keys.is_some())?;
    let boxes = args.serve.open()?;
    let services = crate::tcp_port::Services {
        calls: None,
        mailboxes: Some(boxes.clone()),
        keys,
        text_anywhere: args.text_anywhere,
        ..crate::tcp_port::Services::default()
    };
    let limits = args.serve.limits();
    dhost_mailbox::daemon::start(&args.serve.placement(&boxes), |listener, stop| async move {
        crate::tcp_port::serve(listener, services, limits, stop).await;
        dhost_mailbox::cli::flush(&boxes)
    })
}
