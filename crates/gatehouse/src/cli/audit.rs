//! `gatehouse audit`: reading the audit trail.

use anyhow::bail;
use clap::Subcommand;
use gatehouse_core::registry::{MAX_AUDIT_PAGE, Registry};
use gatehouse_core::store::AuditQuery;
use gatehouse_http::views::AuditEventView;

use super::print_json;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first: changes to the registry and security events.
    List {
        /// Only events from this long ago on (`30m`, `24h`, `7d`, `90s`), or since this Unix
        /// time.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only events of this kind (`user.updated`) or subject (`user`).
        #[arg(long)]
        kind: Option<String>,
        /// Only events by this actor: a user name, `cli`, `apply` or `server`.
        #[arg(long)]
        actor: Option<String>,
        /// The most events to list (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(registry: &Registry, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List {
        since,
        kind,
        actor,
        limit,
        json,
    } = command;
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        bail!("--limit must be between 1 and {MAX_AUDIT_PAGE}");
    }
    let now = registry.clock().now();
    let since = since.map(|text| since_time(&text, now)).transpose()?;
    let events: Vec<AuditEventView> = registry
        .audit_events(AuditQuery {
            since,
            kind,
            actor,
            before: None,
            limit,
        })
        .await?
        .into_iter()
        .map(AuditEventView::from)
        .collect();
    if json {
        return print_json(&events);
    }
    if events.is_empty() {
        println!("No audit events.");
    }
    for event in events {
        let via = [event.client_id.as_deref(), event.address.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" from ");
        let via = if via.is_empty() {
            String::new()
        } else {
            format!(" ({via})")
        };
        println!(
            "{}  {}  {}{}  {}  {}",
            event.at, event.kind, event.actor, via, event.subject, event.details
        );
    }
    Ok(())
}

/// `--since`: a duration back from `now` (`90s`, `30m`, `24h`, `7d`) or a Unix time.
fn since_time(text: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(time) = text.parse::<i64>() {
        return Ok(time);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => bail!("--since takes a duration (90s, 30m, 24h, 7d) or a Unix time, not {text:?}"),
    };
    let Ok(count) = number.parse::<i64>() else {
        bail!("--since takes a duration (90s, 30m, 24h, 7d) or a Unix time, not {text:?}");
    };
    Ok(now - count.saturating_mul(seconds))
}

#[cfg(test)]
mod tests {
    use super::since_time;

    #[test]
    fn since_reads_durations_and_unix_times() {
        assert_eq!(since_time("90s", 1_000).unwrap(), 910);
        assert_eq!(since_time("2h", 10_000).unwrap(), 2_800);
        assert_eq!(since_time("1d", 100_000).unwrap(), 13_600);
        assert_eq!(since_time("1700000000", 5).unwrap(), 1_700_000_000);
        assert!(since_time("yesterday", 5).is_err());
        assert!(since_time("h", 5).is_err());
    }
}
