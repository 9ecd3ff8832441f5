//! What the command line says of itself, for operators' shells: completion scripts
//! (`dhost completions SHELL`, clap_complete) and man pages (`dhost man [SUBCOMMAND]`,
//! clap_mangen), both made from the same definitions as `--help`.

use crate::cli::Cli;
use anyhow::Context as _;
use clap::CommandFactory as _;
use std::io::Write as _;

/// Prints the completion script of `dhost` for `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "dhost", &mut out);
    std::io::stdout()
        .write_all(&out)
        .context("cannot write the completion script")
}

/// Prints the man page of `dhost`, or of its `subcommand` (as `dhost-SUBCOMMAND`), on
/// stdout.
pub(crate) fn man_page(subcommand: Option<&str>) -> anyhow::Result<()> {
    let mut command = Cli::command();
    command.build();
    let page = match subcommand {
        None => command,
        Some(name) => {
            let names: Vec<String> = command
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .filter(|n| n != "help")
                .collect();
            let found = command.find_subcommand(name).with_context(|| {
                format!(
                    "dhost has no subcommand `{name}`: it has {}",
                    names.join(", ")
                )
            })?;
            found.clone().name(format!("dhost-{name}"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .context("cannot render the man page")?;
    std::io::stdout()
        .write_all(&out)
        .context("cannot write the man page")
}
