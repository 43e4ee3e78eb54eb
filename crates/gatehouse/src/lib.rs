//! The `gatehouse` binary's library half: the CLI, configuration loading and the wiring that
//! turns settings into a running server. It is a library so the integration tests can start
//! real servers in-process.

pub mod cli;
pub mod config;
pub mod server;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format;

use crate::cli::{Cli, Command};
use crate::config::{LogFormat, Settings};

/// Parses the command line and runs it; the binary's `main` maps the result to an exit status.
pub async fn main_entry() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(serve_args) => {
            let settings = Settings::resolve(&cli.global, &serve_args)?;
            init_tracing(settings.log_format, &settings.log_level);
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
            server::serve(settings, listener, server::shutdown_signal()).await
        }
        command => {
            // Commands print their own results; logs only for problems.
            let level = cli
                .global
                .log_level
                .clone()
                .unwrap_or_else(|| "warn".into());
            init_tracing(cli.global.log_format.unwrap_or_default(), &level);
            cli::run(cli.global, command).await
        }
    }
}

fn init_tracing(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = format == LogFormat::Json;
    // Colours only on a terminal: redirected logs stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(move || LogLine { json });
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.fmt_fields(plain_fields()).init(),
    }
}

/// Standard error, where each line also names the request it was written for, if any
/// (`gatehouse_http::write_log_line`).
struct LogLine {
    json: bool,
}

impl std::io::Write for LogLine {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        // The formatter hands each line over whole, in one call.
        gatehouse_http::write_log_line(&mut std::io::stderr().lock(), line, self.json)?;
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Fields as `name=value`, the message bare: what the default formatter writes without colour,
/// at half its cost.
fn plain_fields() -> impl for<'writer> FormatFields<'writer> {
    format::debug_fn(|writer, field, value| match field.name() {
        "message" => write!(writer, "{value:?}"),
        name => write!(writer, "{name}={value:?}"),
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use crate::cli::Cli;

    /// Every option and argument of every command says what it is for in `--help`.
    #[test]
    fn every_cli_option_has_help_text() {
        fn missing(command: &clap::Command, path: &str, found: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && !arg.is_hide_set() {
                    found.push(format!("{path}: {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                missing(sub, &path, found);
            }
        }
        let mut found = Vec::new();
        missing(&Cli::command(), "", &mut found);
        assert!(
            found.is_empty(),
            "options without help:\n{}",
            found.join("\n")
        );
    }
}
