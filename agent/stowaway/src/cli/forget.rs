//! `stowaway forget`: remove snapshots by id or by a retention policy.

use anyhow::{Context, bail};
use jiff::tz::TimeZone;
use serde::Serialize;
use stowaway_repository::{
    CalendarDuration, Clock, Count, ForgetPlan, GroupBy, GroupKey, Reason, RetentionPolicy,
    Snapshot, SnapshotId,
};

use super::{Global, output};

/// Remove snapshots, named or chosen by a policy (their data is freed later by prune).
///
/// Snapshots are grouped (--group-by) and the --keep-* rules are applied to each group as
/// restic does: every snapshot that no rule keeps is removed. Calendar periods are counted
/// in --time-zone (default: $TZ, else the system's, else UTC).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Snapshots to remove: ids, id prefixes or `latest` (then no policy is applied).
    snapshots: Vec<String>,
    /// Keep the N newest snapshots (`unlimited` or -1: all).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_last: Option<Count>,
    /// Keep the newest snapshot of each of the N newest hours that have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_hourly: Option<Count>,
    /// Keep the newest snapshot of each of the N newest days that have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_daily: Option<Count>,
    /// Keep the newest snapshot of each of the N newest ISO weeks that have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_weekly: Option<Count>,
    /// Keep the newest snapshot of each of the N newest months that have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_monthly: Option<Count>,
    /// Keep the newest snapshot of each of the N newest years that have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_yearly: Option<Count>,
    /// Keep snapshots newer than the newest one minus DURATION (e.g. 1y2m3d4h; m = months).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<CalendarDuration>,
    /// Keep the newest snapshot of each hour within DURATION of the newest snapshot.
    #[arg(long, value_name = "DURATION")]
    keep_within_hourly: Option<CalendarDuration>,
    /// Keep the newest snapshot of each day within DURATION of the newest snapshot.
    #[arg(long, value_name = "DURATION")]
    keep_within_daily: Option<CalendarDuration>,
    /// Keep the newest snapshot of each week within DURATION of the newest snapshot.
    #[arg(long, value_name = "DURATION")]
    keep_within_weekly: Option<CalendarDuration>,
    /// Keep the newest snapshot of each month within DURATION of the newest snapshot.
    #[arg(long, value_name = "DURATION")]
    keep_within_monthly: Option<CalendarDuration>,
    /// Keep the newest snapshot of each year within DURATION of the newest snapshot.
    #[arg(long, value_name = "DURATION")]
    keep_within_yearly: Option<CalendarDuration>,
    /// Keep snapshots with all of these tags (TAG[,TAG...]; repeatable: any list).
    #[arg(long, value_name = "TAGS")]
    keep_tag: Vec<String>,
    /// Apply the policy to each group of snapshots sharing these fields (host, target, tags;
    /// '' for one group).
    #[arg(long, value_name = "LIST", default_value = "host,target")]
    group_by: GroupBy,
    /// Only consider snapshots with this tag (repeatable: all must match).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// Only consider snapshots of this host (repeatable: any).
    #[arg(long, value_name = "HOST")]
    host: Vec<String>,
    /// Time zone of hours, days, weeks, months and years (an IANA name such as
    /// Europe/Berlin, or UTC).
    #[arg(long, value_name = "ZONE")]
    time_zone: Option<String>,
    /// Show what would be removed; remove nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
}

impl Args {
    fn policy(&self) -> RetentionPolicy {
        let count = |c: Option<Count>| c.unwrap_or_default();
        let within = |d: Option<CalendarDuration>| d.unwrap_or_default();
        RetentionPolicy {
            keep_last: count(self.keep_last),
            keep_hourly: count(self.keep_hourly),
            keep_daily: count(self.keep_daily),
            keep_weekly: count(self.keep_weekly),
            keep_monthly: count(self.keep_monthly),
            keep_yearly: count(self.keep_yearly),
            keep_within: within(self.keep_within),
            keep_within_hourly: within(self.keep_within_hourly),
            keep_within_daily: within(self.keep_within_daily),
            keep_within_weekly: within(self.keep_within_weekly),
            keep_within_monthly: within(self.keep_within_monthly),
            keep_within_yearly: within(self.keep_within_yearly),
            keep_tags: self
                .keep_tag
                .iter()
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .filter(|list| !list.is_empty())
                .collect(),
            max_age: None,
        }
    }

    /// Whether any policy option was given (even one that keeps nothing, like 0).
    fn policy_given(&self) -> bool {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(Option::is_some)
            || [
                self.keep_within,
                self.keep_within_hourly,
                self.keep_within_daily,
                self.keep_within_weekly,
                self.keep_within_monthly,
                self.keep_within_yearly,
            ]
            .iter()
            .any(Option::is_some)
            || !self.keep_tag.is_empty()
    }

    fn time_zone(&self) -> anyhow::Result<TimeZone> {
        match self.time_zone.as_deref() {
            None => Ok(TimeZone::system()),
            Some(name) if name.eq_ignore_ascii_case("utc") => Ok(TimeZone::UTC),
            Some(name) => {
                TimeZone::get(name).with_context(|| format!("unknown time zone {name:?}"))
            }
        }
    }
}

/// One snapshot in `--json` output.
#[derive(Serialize)]
struct JsonSnapshot<'a> {
    id: String,
    short_id: String,
    time: jiff::Timestamp,
    hostname: &'a str,
    target: &'a stowaway_repository::Target,
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<&'a [Reason]>,
}

impl<'a> JsonSnapshot<'a> {
    fn new(s: &'a Snapshot, reasons: Option<&'a [Reason]>) -> Self {
        JsonSnapshot {
            id: s.id.to_hex(),
            short_id: s.id.short(),
            time: s.time,
            hostname: &s.hostname,
            target: &s.target,
            tags: &s.tags,
            reasons,
        }
    }
}

#[derive(Serialize)]
struct JsonGroup<'a> {
    key: &'a GroupKey,
    keep: Vec<JsonSnapshot<'a>>,
    remove: Vec<JsonSnapshot<'a>>,
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
    groups: Vec<JsonGroup<'a>>,
    /// Ids removed (or, with --dry-run, that would be).
    remove: Vec<String>,
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let by_id = !args.snapshots.is_empty();
    if by_id && args.policy_given() {
        bail!("give snapshots to remove or a --keep-* policy, not both");
    }
    if by_id && (!args.tag.is_empty() || !args.host.is_empty()) {
        bail!("--tag and --host select snapshots for a policy; they do not filter named snapshots");
    }
    let policy = args.policy();
    if !by_id && !policy.has_keep_rules() {
        bail!(
            "no policy given: name snapshots to remove or use --keep-last, --keep-daily, \
             --keep-within, … (nothing was removed)"
        );
    }
    let time_zone = args.time_zone()?;
    let repo = super::repo::open(g).await?;

    if by_id {
        let mut chosen: Vec<Snapshot> = Vec::new();
        for spec in &args.snapshots {
            let snapshot = repo.find_snapshot(spec).await?;
            if !chosen.iter().any(|s| s.id == snapshot.id) {
                chosen.push(snapshot);
            }
        }
        let ids: Vec<SnapshotId> = chosen.iter().map(|s| s.id).collect();
        if !args.dry_run {
            repo.forget(&ids).await.context("removing snapshots")?;
        }
        if g.json {
            output::json(&JsonOutput {
                dry_run: args.dry_run,
                policy: None,
                groups: Vec::new(),
                remove: ids.iter().map(SnapshotId::to_hex).collect(),
            })?;
        } else if !g.quiet {
            let rows: Vec<Vec<String>> = chosen
                .iter()
                .map(|s| row(s, &time_zone, "remove", &[]))
                .collect();
            table(&rows)?;
            summary(ids.len(), args.dry_run);
        }
        return Ok(0);
    }

    let snapshots: Vec<Snapshot> = repo
        .snapshots()
        .await?
        .into_iter()
        .filter(|s| args.tag.iter().all(|t| s.tags.contains(t)))
        .filter(|s| args.host.is_empty() || args.host.contains(&s.hostname))
        .collect();
    let clock = Clock {
        now: jiff::Timestamp::now(),
        time_zone: time_zone.clone(),
    };
    let plan = ForgetPlan::new(snapshots, &policy, args.group_by, &clock);
    let remove = plan.remove_ids();
    if !args.dry_run && !remove.is_empty() {
        repo.forget(&remove).await.context("removing snapshots")?;
    }
    if g.json {
        let groups = plan
            .groups
            .iter()
            .map(|group| JsonGroup {
                key: &group.key,
                keep: group
                    .snapshots
                    .iter()
                    .filter(|d| d.keep)
                    .map(|d| JsonSnapshot::new(&d.snapshot, Some(&d.reasons)))
                    .collect(),
                remove: group
                    .snapshots
                    .iter()
                    .filter(|d| !d.keep)
                    .map(|d| JsonSnapshot::new(&d.snapshot, Some(&d.reasons)))
                    .collect(),
            })
            .collect();
        output::json(&JsonOutput {
            dry_run: args.dry_run,
            policy: Some(policy.to_string()),
            groups,
            remove: remove.iter().map(SnapshotId::to_hex).collect(),
        })?;
        return Ok(0);
    }
    if g.quiet {
        return Ok(0);
    }
    println!("Applying policy: {policy}");
    for group in &plan.groups {
        let kept = group.snapshots.iter().filter(|d| d.keep).count();
        println!(
            "\n{}: keep {kept}, remove {}",
            group.key,
            group.snapshots.len() - kept
        );
        let rows: Vec<Vec<String>> = group
            .snapshots
            .iter()
            .map(|d| {
                let action = if d.keep { "keep" } else { "remove" };
                row(&d.snapshot, &time_zone, action, &d.reasons)
            })
            .collect();
        table(&rows)?;
    }
    println!();
    summary(remove.len(), args.dry_run);
    Ok(0)
}

fn row(s: &Snapshot, time_zone: &TimeZone, action: &str, reasons: &[Reason]) -> Vec<String> {
    vec![
        s.id.short(),
        s.time
            .to_zoned(time_zone.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        s.hostname.clone(),
        s.tags.join(","),
        s.target.name.clone(),
        action.to_owned(),
        reasons
            .iter()
            .map(Reason::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    ]
}

fn table(rows: &[Vec<String>]) -> anyhow::Result<()> {
    output::table(
        &["ID", "Time", "Host", "Tags", "Target", "Action", "Reasons"],
        rows,
    )
}

fn summary(removed: usize, dry_run: bool) {
    if removed == 0 {
        println!("no snapshot to remove");
    } else if dry_run {
        println!("would remove {removed} snapshots (dry run: nothing was removed)");
    } else {
        println!("removed {removed} snapshots; run prune to free their data");
    }
}
