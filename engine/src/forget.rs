//! Retention: which snapshots a `forget` policy keeps and which it removes.
//!
//! The rules are restic's. Snapshots are grouped (by host and paths unless
//! told otherwise) and each group is judged on its own, newest first:
//!
//! - `last N` keeps the N newest snapshots.
//! - `hourly/daily/weekly/monthly/yearly N` keep the newest snapshot of each
//!   of the N newest hours/days/ISO weeks/months/years that have snapshots.
//!   Buckets are calendar ones in the snapshot's own recorded UTC offset.
//!   Each rule remembers the bucket it last kept and keeps a snapshot when
//!   its bucket differs and the rule's count is not used up. When a rule
//!   still has count left at the oldest snapshot of the group, that
//!   snapshot is kept too ("oldest daily snapshot"), so a short history is
//!   not cut off at its start.
//! - `within D` keeps every snapshot newer than the group's newest snapshot
//!   minus D; `within-hourly D` etc. keep one snapshot per bucket among
//!   those. The reference is the newest snapshot that is not in the future,
//!   so a snapshot with a wrong clock cannot make every other one "old".
//!   D is years, months, days and hours (`1y2m3d4h`), subtracted on the
//!   calendar like restic does (Go's `AddDate`: 31 March minus one month is
//!   3 March).
//! - `tags` keeps every snapshot that has all tags of one of the given sets;
//!   the empty set means "has no tags at all".
//! - `min_keep N` is a floor: the N newest snapshots of every group are kept
//!   whatever the rules say.
//!
//! A kept snapshot lists every reason that kept it. A policy without any
//! rule is refused (it would remove everything), as is a policy that would
//! remove every snapshot of a group.
//!
//! Everything here is pure except [`apply`], which deletes snapshot files.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeDelta, TimeZone, Timelike, Utc};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::repofile::snapshot::Snapshot;
use crate::repository::{Repository, SNAPSHOTS};

/// A count that keeps every bucket (`-1` or `unlimited` on the command line).
pub const UNLIMITED: u32 = u32::MAX;

/// A span of calendar time: restic's `1y2m3d4h` (`m` is months).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepDuration {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl KeepDuration {
    pub fn is_zero(&self) -> bool {
        *self == KeepDuration::default()
    }

    /// `t` minus this span, on the calendar of `t`'s own offset, with Go's
    /// `AddDate` normalisation (a day past the end of the month rolls over
    /// into the next one). `None` when that lies before the representable
    /// range, that is: everything is newer.
    pub fn before(&self, t: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        let local = t.naive_local();
        let months = i64::from(local.year()) * 12 + i64::from(local.month0())
            - i64::from(self.years) * 12
            - i64::from(self.months);
        let year = i32::try_from(months.div_euclid(12)).ok()?;
        let month = u32::try_from(months.rem_euclid(12)).ok()? + 1;
        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
        let days = i64::from(local.day()) - 1 - i64::from(self.days);
        let date = first.checked_add_signed(TimeDelta::try_days(days)?)?;
        let naive = date
            .and_time(local.time())
            .checked_sub_signed(TimeDelta::try_hours(i64::from(self.hours))?)?;
        t.offset().from_local_datetime(&naive).single()
    }
}

impl FromStr for KeepDuration {
    type Err = Error;

    fn from_str(s: &str) -> Result<KeepDuration> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "invalid duration {s:?}: {why} (use years, months, days and hours, e.g. 1y2m3d4h)"
            ))
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let mut d = KeepDuration::default();
        let mut seen = String::new();
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad("expected a number"));
            }
            let n: u32 = rest[..digits]
                .parse()
                .map_err(|_| bad("number too large"))?;
            let mut tail = rest[digits..].chars();
            let unit = tail.next().ok_or_else(|| bad("number without a unit"))?;
            let slot = match unit {
                'y' => &mut d.years,
                'm' => &mut d.months,
                'd' => &mut d.days,
                'h' => &mut d.hours,
                _ => return Err(bad(&format!("unknown unit {unit:?}"))),
            };
            if seen.contains(unit) {
                return Err(bad(&format!("unit {unit:?} given twice")));
            }
            seen.push(unit);
            *slot = n;
            rest = tail.as_str();
        }
        if d.is_zero() {
            return Err(bad("zero"));
        }
        Ok(d)
    }
}

impl fmt::Display for KeepDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{u}")?;
            }
        }
        if self.is_zero() {
            f.write_str("0h")?;
        }
        Ok(())
    }
}

/// Parses a `--keep-*` count: a number, or `-1` / `unlimited` for all.
pub fn parse_keep_count(s: &str) -> Result<u32> {
    match s.trim() {
        "-1" | "unlimited" => Ok(UNLIMITED),
        t => t.parse::<u32>().map_err(|_| {
            Error::InvalidArgument(format!(
                "invalid count {s:?}: use a number, or -1 / unlimited for all"
            ))
        }),
    }
}

/// What a group keeps. `None` (or a zero count) turns a rule off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    pub within: Option<KeepDuration>,
    pub within_hourly: Option<KeepDuration>,
    pub within_daily: Option<KeepDuration>,
    pub within_weekly: Option<KeepDuration>,
    pub within_monthly: Option<KeepDuration>,
    pub within_yearly: Option<KeepDuration>,
    /// Keep snapshots having all tags of any of these comma-separated sets;
    /// an empty set matches snapshots without tags.
    pub tags: Vec<String>,
    /// The N newest snapshots of each group are always kept.
    pub min_keep: u32,
}

impl KeepPolicy {
    /// True when no rule would keep anything (the floor is not a rule).
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ];
        let spans = [
            self.within,
            self.within_hourly,
            self.within_daily,
            self.within_weekly,
            self.within_monthly,
            self.within_yearly,
        ];
        counts.iter().all(|c| c.unwrap_or(0) == 0)
            && spans.iter().all(|d| d.is_none_or(|d| d.is_zero()))
            && self.tags.is_empty()
    }
}

impl fmt::Display for KeepPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (c, what) in [
            (self.last, "last"),
            (self.hourly, "hourly"),
            (self.daily, "daily"),
            (self.weekly, "weekly"),
            (self.monthly, "monthly"),
            (self.yearly, "yearly"),
        ] {
            match c {
                Some(UNLIMITED) => parts.push(format!("all {what}")),
                Some(n) if n > 0 => parts.push(format!("{n} {what}")),
                _ => {}
            }
        }
        if let Some(d) = self.within {
            parts.push(format!("all within {d}"));
        }
        for (d, what) in [
            (self.within_hourly, "hourly"),
            (self.within_daily, "daily"),
            (self.within_weekly, "weekly"),
            (self.within_monthly, "monthly"),
            (self.within_yearly, "yearly"),
        ] {
            if let Some(d) = d {
                parts.push(format!("{what} within {d}"));
            }
        }
        for t in &self.tags {
            parts.push(tag_reason(&tag_set(t)));
        }
        if self.min_keep > 0 {
            parts.push(format!("at least the {} newest", self.min_keep));
        }
        write!(f, "keep {}", parts.join(", "))
    }
}

/// Which snapshot properties separate groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl FromStr for GroupBy {
    type Err = Error;

    /// `host,paths,tags`, any subset; the empty string groups nothing.
    fn from_str(s: &str) -> Result<GroupBy> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                    "invalid group-by {part:?}: use host, paths and tags, comma-separated, or ''"
                )))
                }
            }
        }
        Ok(g)
    }
}

/// What a group's snapshots share; `None` for a property not grouped by.
/// Paths and tags are sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub hostname: Option<String>,
    pub paths: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

impl GroupKey {
    pub fn of(s: &Snapshot, by: &GroupBy) -> GroupKey {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        GroupKey {
            hostname: by.host.then(|| s.hostname.clone()),
            paths: by.paths.then(|| sorted(&s.paths)),
            tags: by.tags.then(|| sorted(&s.tags)),
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.hostname {
            parts.push(format!("host {h}"));
        }
        if let Some(p) = &self.paths {
            parts.push(format!("paths [{}]", p.join(", ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags [{}]", t.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The verdict for one group: kept snapshots with their reasons and
/// removed ones, each newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDecision {
    pub key: GroupKey,
    pub keep: Vec<(Snapshot, Vec<String>)>,
    pub remove: Vec<Snapshot>,
}

/// Splits snapshots into groups, ordered by key; each group newest first.
pub fn group(snaps: Vec<Snapshot>, by: &GroupBy) -> Vec<(GroupKey, Vec<Snapshot>)> {
    let mut groups: BTreeMap<GroupKey, Vec<Snapshot>> = BTreeMap::new();
    for s in snaps {
        groups.entry(GroupKey::of(&s, by)).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(k, mut v)| {
            newest_first(&mut v);
            (k, v)
        })
        .collect()
}

fn newest_first(v: &mut [Snapshot]) {
    v.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
}

/// Applies a policy to every group of `snaps`. `now` only decides which
/// snapshots are in the future (and so cannot be the reference of the
/// `within` rules). Refuses an empty policy, and a policy that would remove
/// every snapshot of a group.
pub fn plan(
    snaps: Vec<Snapshot>,
    policy: &KeepPolicy,
    by: &GroupBy,
    now: DateTime<Utc>,
) -> Result<Vec<GroupDecision>> {
    if policy.is_empty() {
        return Err(Error::InvalidArgument(
            "no policy given: refusing to remove every snapshot (use --keep-* options, or name the snapshots to remove)"
                .into(),
        ));
    }
    let mut out = Vec::new();
    for (key, list) in group(snaps, by) {
        let (keep, remove) = apply_policy(list, policy, now);
        if keep.is_empty() && !remove.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "refusing to remove every snapshot of the group {key}: the policy keeps none of them"
            )));
        }
        out.push(GroupDecision { key, keep, remove });
    }
    Ok(out)
}

/// Removes exactly the named snapshots (which must be among `snaps`),
/// grouped like a policy would group them; nothing is listed as kept.
pub fn plan_ids(snaps: Vec<Snapshot>, ids: &[Id], by: &GroupBy) -> Result<Vec<GroupDecision>> {
    if ids.is_empty() {
        return Err(Error::InvalidArgument("no snapshots named".into()));
    }
    let wanted: HashSet<Id> = ids.iter().copied().collect();
    let found: Vec<Snapshot> = snaps
        .into_iter()
        .filter(|s| wanted.contains(&s.id))
        .collect();
    let have: HashSet<Id> = found.iter().map(|s| s.id).collect();
    if let Some(missing) = ids.iter().find(|id| !have.contains(id)) {
        return Err(Error::SnapshotNotFound(missing.to_hex()));
    }
    Ok(group(found, by)
        .into_iter()
        .map(|(key, remove)| GroupDecision {
            key,
            keep: Vec::new(),
            remove,
        })
        .collect())
}

/// Deletes the removed snapshots' files (nothing on a dry run) and returns
/// their IDs. Data stays until `prune`.
pub fn apply(repo: &Repository, decisions: &[GroupDecision], dry_run: bool) -> Result<Vec<Id>> {
    let kept: HashSet<Id> = decisions
        .iter()
        .flat_map(|d| d.keep.iter().map(|(s, _)| s.id))
        .collect();
    let mut ids = Vec::new();
    for s in decisions.iter().flat_map(|d| d.remove.iter()) {
        if kept.contains(&s.id) {
            return Err(Error::InvalidArgument(format!(
                "snapshot {} is both kept and removed; nothing removed",
                s.id.short()
            )));
        }
        if !ids.contains(&s.id) {
            ids.push(s.id);
        }
    }
    if !dry_run {
        for id in &ids {
            repo.backend().delete(&format!("{SNAPSHOTS}{id}"))?;
        }
    }
    Ok(ids)
}

#[derive(Debug, Clone, Copy)]
enum Bucket {
    /// Every snapshot is its own bucket (`last`).
    Each,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Bucket {
    fn of(self, t: &DateTime<FixedOffset>, nr: usize) -> i64 {
        let (y, m, d, h) = (
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
        );
        match self {
            Bucket::Each => i64::try_from(nr).unwrap_or(i64::MAX),
            Bucket::Hour => ((y * 100 + m) * 100 + d) * 100 + h,
            Bucket::Day => (y * 100 + m) * 100 + d,
            Bucket::Week => {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Bucket::Month => y * 100 + m,
            Bucket::Year => y,
        }
    }
}

fn tag_set(set: &str) -> Vec<&str> {
    set.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn tag_reason(set: &[&str]) -> String {
    if set.is_empty() {
        "untagged".into()
    } else {
        format!("tag {}", set.join(","))
    }
}

fn has_tags(s: &Snapshot, set: &[&str]) -> bool {
    if set.is_empty() {
        s.tags.is_empty()
    } else {
        set.iter().all(|t| s.tags.iter().any(|x| x == t))
    }
}

/// The kept (with reasons) and removed snapshots of one group, newest
/// first, under `policy` (which is not checked for emptiness here).
pub fn apply_policy(
    mut list: Vec<Snapshot>,
    policy: &KeepPolicy,
    now: DateTime<Utc>,
) -> (Vec<(Snapshot, Vec<String>)>, Vec<Snapshot>) {
    newest_first(&mut list);
    let Some(oldest) = list.len().checked_sub(1) else {
        return (Vec::new(), Vec::new());
    };

    struct Counted {
        count: u32,
        bucket: Bucket,
        last: Option<i64>,
        reason: &'static str,
    }
    let mut counted: Vec<Counted> = [
        (policy.last, Bucket::Each, "last snapshot"),
        (policy.hourly, Bucket::Hour, "hourly snapshot"),
        (policy.daily, Bucket::Day, "daily snapshot"),
        (policy.weekly, Bucket::Week, "weekly snapshot"),
        (policy.monthly, Bucket::Month, "monthly snapshot"),
        (policy.yearly, Bucket::Year, "yearly snapshot"),
    ]
    .into_iter()
    .filter_map(|(c, bucket, reason)| {
        c.filter(|&c| c > 0).map(|count| Counted {
            count,
            bucket,
            last: None,
            reason,
        })
    })
    .collect();

    // The reference of the duration rules: the newest snapshot not in the
    // future. Without one (all in the future), every snapshot is "within".
    let latest = list.iter().map(|s| s.time).find(|t| *t < now);
    let cutoff = |d: &KeepDuration| latest.and_then(|t| d.before(t));
    let newer = |s: &Snapshot, c: &Option<DateTime<FixedOffset>>| c.is_none_or(|c| s.time > c);

    let within = policy
        .within
        .filter(|d| !d.is_zero())
        .map(|d| (d, cutoff(&d)));

    struct Windowed {
        span: KeepDuration,
        cutoff: Option<DateTime<FixedOffset>>,
        bucket: Bucket,
        last: Option<i64>,
        reason: &'static str,
    }
    let mut windowed: Vec<Windowed> = [
        (policy.within_hourly, Bucket::Hour, "hourly within"),
        (policy.within_daily, Bucket::Day, "daily within"),
        (policy.within_weekly, Bucket::Week, "weekly within"),
        (policy.within_monthly, Bucket::Month, "monthly within"),
        (policy.within_yearly, Bucket::Year, "yearly within"),
    ]
    .into_iter()
    .filter_map(|(d, bucket, reason)| {
        d.filter(|d| !d.is_zero()).map(|span| Windowed {
            span,
            cutoff: cutoff(&span),
            bucket,
            last: None,
            reason,
        })
    })
    .collect();

    let tag_sets: Vec<Vec<&str>> = policy.tags.iter().map(|t| tag_set(t)).collect();

    let mut keep = Vec::new();
    let mut remove = Vec::new();
    for (nr, cur) in list.into_iter().enumerate() {
        let mut reasons: Vec<String> = Vec::new();

        for set in &tag_sets {
            if has_tags(&cur, set) {
                reasons.push(tag_reason(set));
            }
        }

        if let Some((d, c)) = &within {
            if newer(&cur, c) {
                reasons.push(format!("within {d}"));
            }
        }

        for r in counted.iter_mut().filter(|r| r.count > 0) {
            let val = r.bucket.of(&cur.time, nr);
            if r.last != Some(val) || nr == oldest {
                let reason = if r.last == Some(val) {
                    format!("oldest {}", r.reason)
                } else {
                    r.reason.to_string()
                };
                reasons.push(reason);
                r.last = Some(val);
                if r.count != UNLIMITED {
                    r.count -= 1;
                }
            }
        }

        for r in windowed.iter_mut() {
            if !newer(&cur, &r.cutoff) {
                continue;
            }
            let val = r.bucket.of(&cur.time, nr);
            if r.last != Some(val) || nr == oldest {
                let prefix = if r.last == Some(val) { "oldest " } else { "" };
                reasons.push(format!("{prefix}{} {}", r.reason, r.span));
                r.last = Some(val);
            }
        }

        if u64::try_from(nr).unwrap_or(u64::MAX) < u64::from(policy.min_keep) {
            reasons.push("floor".into());
        }

        if reasons.is_empty() {
            remove.push(cur);
        } else {
            keep.push((cur, reasons));
        }
    }
    (keep, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn snap_at(t: DateTime<FixedOffset>, host: &str, paths: &[&str], tags: &[&str]) -> Snapshot {
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        let tags: Vec<String> = tags.iter().map(|p| p.to_string()).collect();
        let id = Id::of_stored(format!("{}|{host}|{paths:?}|{tags:?}", t.to_rfc3339()).as_bytes());
        Snapshot {
            time: t,
            hostname: host.into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            paths,
            tags,
            tree: Id::default(),
            parent: None,
            program_version: "test".into(),
            summary: None,
            original: None,
            copy_of: None,
            id,
        }
    }

    fn snap(t: &str) -> Snapshot {
        snap_at(ts(t), "h", &["/data"], &[])
    }

    /// One snapshot every six hours (00, 06, 12, 18 UTC) from 2021-01-01
    /// to 2023-12-31, both included: 1095 days, 4380 snapshots, the newest
    /// 2023-12-31 18:00 (a Sunday).
    fn regular() -> Vec<Snapshot> {
        let mut out = Vec::new();
        let mut d = NaiveDate::from_ymd_opt(2021, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(2023, 12, 31).unwrap();
        while d <= end {
            for h in [0, 6, 12, 18] {
                let t = d.and_hms_opt(h, 0, 0).unwrap().and_utc().fixed_offset();
                out.push(snap_at(t, "h", &["/data"], &[]));
            }
            d = d.succ_opt().unwrap();
        }
        assert_eq!(out.len(), 4380);
        out
    }

    /// `regular()` without 2022-03-10 .. 2022-06-05 (no April or May 2022
    /// at all) and without 2023-12-25 .. 2023-12-27.
    fn gappy() -> Vec<Snapshot> {
        let gap = |t: &DateTime<FixedOffset>| {
            let d = t.date_naive();
            let (a, b) = (
                NaiveDate::from_ymd_opt(2022, 3, 10).unwrap(),
                NaiveDate::from_ymd_opt(2022, 6, 5).unwrap(),
            );
            let (c, e) = (
                NaiveDate::from_ymd_opt(2023, 12, 25).unwrap(),
                NaiveDate::from_ymd_opt(2023, 12, 27).unwrap(),
            );
            (a..=b).contains(&d) || (c..=e).contains(&d)
        };
        let out: Vec<_> = regular().into_iter().filter(|s| !gap(&s.time)).collect();
        // 88 days (22 March + 30 April + 31 May + 5 June) and 3 days.
        assert_eq!(out.len(), 4380 - (88 + 3) * 4);
        out
    }

    const NOW: &str = "2024-01-02T00:00:00Z";

    fn now() -> DateTime<Utc> {
        ts(NOW).with_timezone(&Utc)
    }

    /// The kept snapshots' times ("YYYY-MM-DD HH:MM", own offset), newest
    /// first, checking that keep and remove partition the input.
    fn run(snaps: Vec<Snapshot>, p: &KeepPolicy) -> (Vec<String>, Vec<Vec<String>>, usize) {
        let n = snaps.len();
        let all: HashSet<Id> = snaps.iter().map(|s| s.id).collect();
        let (keep, remove) = apply_policy(snaps, p, now());
        assert_eq!(keep.len() + remove.len(), n);
        let mut seen: HashSet<Id> = keep.iter().map(|(s, _)| s.id).collect();
        seen.extend(remove.iter().map(|s| s.id));
        assert_eq!(seen, all, "keep and remove must partition the input");
        for w in keep.windows(2) {
            assert!(w[0].0.time >= w[1].0.time, "kept list not newest first");
        }
        let times = keep
            .iter()
            .map(|(s, _)| s.time.format("%Y-%m-%d %H:%M").to_string())
            .collect();
        let reasons = keep.into_iter().map(|(_, r)| r).collect();
        (times, reasons, remove.len())
    }

    fn at18(days: &[&str]) -> Vec<String> {
        days.iter().map(|d| format!("{d} 18:00")).collect()
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keep_last() {
        let p = KeepPolicy {
            last: Some(5),
            ..Default::default()
        };
        let (kept, reasons, removed) = run(regular(), &p);
        assert_eq!(
            kept,
            strs(&[
                "2023-12-31 18:00",
                "2023-12-31 12:00",
                "2023-12-31 06:00",
                "2023-12-31 00:00",
                "2023-12-30 18:00"
            ])
        );
        assert!(reasons.iter().all(|r| r == &strs(&["last snapshot"])));
        assert_eq!(removed, 4375);
        // More than there are: all kept, none as "oldest".
        let few: Vec<_> = regular().into_iter().rev().take(3).collect();
        let p = KeepPolicy {
            last: Some(10),
            ..Default::default()
        };
        let (kept, reasons, removed) = run(few, &p);
        assert_eq!((kept.len(), removed), (3, 0));
        assert!(reasons.iter().all(|r| r == &strs(&["last snapshot"])));
    }

    #[test]
    fn keep_hourly_uses_hour_buckets() {
        let mut s = gappy();
        s.push(snap("2023-12-31T18:30:00Z"));
        let p = KeepPolicy {
            hourly: Some(3),
            ..Default::default()
        };
        let (kept, _, removed) = run(s, &p);
        // 18:00 shares its hour with 18:30.
        assert_eq!(
            kept,
            strs(&["2023-12-31 18:30", "2023-12-31 12:00", "2023-12-31 06:00"])
        );
        assert_eq!(removed, gappy().len() + 1 - 3);
    }

    #[test]
    fn keep_daily_skips_days_without_snapshots() {
        let p = KeepPolicy {
            daily: Some(7),
            ..Default::default()
        };
        let (kept, reasons, _) = run(regular(), &p);
        assert_eq!(
            kept,
            at18(&[
                "2023-12-31",
                "2023-12-30",
                "2023-12-29",
                "2023-12-28",
                "2023-12-27",
                "2023-12-26",
                "2023-12-25"
            ])
        );
        assert!(reasons.iter().all(|r| r == &strs(&["daily snapshot"])));
        let (kept, _, removed) = run(gappy(), &p);
        assert_eq!(
            kept,
            at18(&[
                "2023-12-31",
                "2023-12-30",
                "2023-12-29",
                "2023-12-28",
                "2023-12-24",
                "2023-12-23",
                "2023-12-22"
            ])
        );
        assert_eq!(removed, gappy().len() - 7);
    }

    #[test]
    fn keep_weekly_uses_iso_weeks() {
        let p = KeepPolicy {
            weekly: Some(4),
            ..Default::default()
        };
        // 2023-W52 is Mon 25 .. Sun 31 December.
        let want = at18(&["2023-12-31", "2023-12-24", "2023-12-17", "2023-12-10"]);
        assert_eq!(run(regular(), &p).0, want);
        assert_eq!(run(gappy(), &p).0, want);

        // Unlimited: one per ISO week. 2021-01-01..03 (Fri..Sun) is
        // 2020-W53; 2021-W01 starts Monday 4 January, and 4 Jan 2021 to
        // 31 Dec 2023 is exactly 156 weeks: 157 weeks, each kept at its
        // Sunday 18:00 (2020-W53 at Sunday 3 January), and the oldest
        // snapshot (Friday 1 January 00:00, same week as 3 January) is kept
        // as well because the rule is not used up.
        let p = KeepPolicy {
            weekly: Some(UNLIMITED),
            ..Default::default()
        };
        let (kept, reasons, removed) = run(regular(), &p);
        assert_eq!(kept.len(), 158);
        assert_eq!(removed, 4380 - 158);
        for k in &kept[..157] {
            let d = NaiveDate::parse_from_str(&k[..10], "%Y-%m-%d").unwrap();
            assert_eq!(d.weekday(), chrono::Weekday::Sun, "{k}");
            assert!(k.ends_with("18:00"), "{k}");
        }
        assert_eq!(
            kept[154..].to_vec(),
            strs(&[
                "2021-01-17 18:00",
                "2021-01-10 18:00",
                "2021-01-03 18:00",
                "2021-01-01 00:00"
            ])
        );
        assert_eq!(reasons[156], strs(&["weekly snapshot"]));
        assert_eq!(reasons[157], strs(&["oldest weekly snapshot"]));
    }

    #[test]
    fn keep_monthly_skips_months_without_snapshots() {
        let p = KeepPolicy {
            monthly: Some(12),
            ..Default::default()
        };
        let year_2023 = at18(&[
            "2023-12-31",
            "2023-11-30",
            "2023-10-31",
            "2023-09-30",
            "2023-08-31",
            "2023-07-31",
            "2023-06-30",
            "2023-05-31",
            "2023-04-30",
            "2023-03-31",
            "2023-02-28",
            "2023-01-31",
        ]);
        assert_eq!(run(regular(), &p).0, year_2023);

        // April and May 2022 have no snapshots and do not count; March 2022
        // ends at the 9th.
        let p = KeepPolicy {
            monthly: Some(24),
            ..Default::default()
        };
        let mut want = year_2023;
        want.extend(at18(&[
            "2022-12-31",
            "2022-11-30",
            "2022-10-31",
            "2022-09-30",
            "2022-08-31",
            "2022-07-31",
            "2022-06-30",
            "2022-03-09",
            "2022-02-28",
            "2022-01-31",
            "2021-12-31",
            "2021-11-30",
        ]));
        let (kept, _, removed) = run(gappy(), &p);
        assert_eq!(kept, want);
        assert_eq!(removed, gappy().len() - 24);
    }

    #[test]
    fn keep_yearly_and_the_oldest() {
        let p = KeepPolicy {
            yearly: Some(3),
            ..Default::default()
        };
        let (kept, _, _) = run(regular(), &p);
        assert_eq!(kept, at18(&["2023-12-31", "2022-12-31", "2021-12-31"]));
        // Five asked, three years exist: the oldest snapshot is kept too.
        let p = KeepPolicy {
            yearly: Some(5),
            ..Default::default()
        };
        let (kept, reasons, removed) = run(regular(), &p);
        assert_eq!(
            kept,
            strs(&[
                "2023-12-31 18:00",
                "2022-12-31 18:00",
                "2021-12-31 18:00",
                "2021-01-01 00:00"
            ])
        );
        assert_eq!(reasons[3], strs(&["oldest yearly snapshot"]));
        assert_eq!(removed, 4376);
    }

    #[test]
    fn combined_daily_weekly_monthly_yearly() {
        let p = KeepPolicy {
            daily: Some(7),
            weekly: Some(4),
            monthly: Some(12),
            yearly: Some(3),
            ..Default::default()
        };
        // daily: 31..25 Dec; weekly: 31, 24, 17, 10 Dec; monthly: last day
        // of each month of 2023; yearly: 31 Dec of 2023, 2022, 2021.
        let (kept, reasons, removed) = run(regular(), &p);
        let want = at18(&[
            "2023-12-31",
            "2023-12-30",
            "2023-12-29",
            "2023-12-28",
            "2023-12-27",
            "2023-12-26",
            "2023-12-25",
            "2023-12-24",
            "2023-12-17",
            "2023-12-10",
            "2023-11-30",
            "2023-10-31",
            "2023-09-30",
            "2023-08-31",
            "2023-07-31",
            "2023-06-30",
            "2023-05-31",
            "2023-04-30",
            "2023-03-31",
            "2023-02-28",
            "2023-01-31",
            "2022-12-31",
            "2021-12-31",
        ]);
        assert_eq!(kept, want);
        assert_eq!(removed, 4380 - 23);
        assert_eq!(
            reasons[0],
            strs(&[
                "daily snapshot",
                "weekly snapshot",
                "monthly snapshot",
                "yearly snapshot"
            ])
        );
        assert_eq!(reasons[1], strs(&["daily snapshot"]));
        assert_eq!(reasons[7], strs(&["weekly snapshot"]));
        assert_eq!(reasons[10], strs(&["monthly snapshot"]));
        assert_eq!(reasons[21], strs(&["yearly snapshot"]));

        // With 25..27 December missing the dailies reach back to the 22nd,
        // and the 24th is both daily and weekly.
        let (kept, reasons, removed) = run(gappy(), &p);
        let mut want = at18(&[
            "2023-12-31",
            "2023-12-30",
            "2023-12-29",
            "2023-12-28",
            "2023-12-24",
            "2023-12-23",
            "2023-12-22",
            "2023-12-17",
            "2023-12-10",
        ]);
        want.extend(kept[9..20].iter().cloned());
        want.extend(at18(&["2022-12-31", "2021-12-31"]));
        assert_eq!(kept[9..20], run(regular(), &p).0[10..21]);
        assert_eq!(kept, want);
        assert_eq!(reasons[4], strs(&["daily snapshot", "weekly snapshot"]));
        assert_eq!(removed, gappy().len() - 22);
    }

    #[test]
    fn keep_within_is_relative_to_the_newest_snapshot() {
        let within = |d: &str| KeepPolicy {
            within: Some(d.parse().unwrap()),
            ..Default::default()
        };
        // 7d before 2023-12-31 18:00 is 24 Dec 18:00, which is not "within".
        let (kept, reasons, removed) = run(regular(), &within("7d"));
        assert_eq!(kept.len(), 28);
        assert_eq!(kept.first().unwrap(), "2023-12-31 18:00");
        assert_eq!(kept.last().unwrap(), "2023-12-25 00:00");
        assert!(reasons.iter().all(|r| r == &strs(&["within 7d"])));
        assert_eq!(removed, 4380 - 28);
        // One month before 31 Dec is "31 Nov", that is 1 Dec (Go's
        // AddDate): 1 Dec 18:00 is the cut-off, so 2 .. 31 Dec are kept.
        let (kept, _, _) = run(regular(), &within("1m"));
        assert_eq!(kept.len(), 30 * 4);
        assert_eq!(kept.last().unwrap(), "2023-12-02 00:00");
        let (kept, _, _) = run(regular(), &within("1y"));
        assert_eq!(kept.len(), 365 * 4);
        assert_eq!(kept.last().unwrap(), "2023-01-01 00:00");
        // The boundary itself is excluded: 6h back is 12:00.
        assert_eq!(run(regular(), &within("6h")).0, strs(&["2023-12-31 18:00"]));
        assert_eq!(run(regular(), &within("7h")).0.len(), 2);
        // Everything is within a long span, the oldest too.
        assert_eq!(run(regular(), &within("10y")).2, 0);
        // Far beyond the calendar's range: still everything.
        assert_eq!(run(regular(), &within("4000000000y")).2, 0);
    }

    #[test]
    fn keep_within_ignores_future_snapshots_as_reference() {
        let mut s = regular();
        s.push(snap("2030-01-01T00:00:00Z"));
        let p = KeepPolicy {
            within: Some("7d".parse().unwrap()),
            ..Default::default()
        };
        let (kept, _, _) = run(s, &p);
        // The future snapshot is newer than the cut-off, so kept too.
        assert_eq!(kept.len(), 29);
        assert_eq!(kept[0], "2030-01-01 00:00");
        assert_eq!(kept[28], "2023-12-25 00:00");
        // Only future snapshots: no reference, everything kept.
        let s = vec![snap("2030-01-01T00:00:00Z"), snap("2029-01-01T00:00:00Z")];
        assert_eq!(run(s, &p).2, 0);
    }

    #[test]
    fn keep_within_buckets() {
        let p = |f: fn(&mut KeepPolicy, KeepDuration), d: &str| {
            let mut p = KeepPolicy::default();
            f(&mut p, d.parse().unwrap());
            p
        };
        let (kept, reasons, _) = run(regular(), &p(|p, d| p.within_hourly = Some(d), "1d"));
        assert_eq!(
            kept,
            strs(&[
                "2023-12-31 18:00",
                "2023-12-31 12:00",
                "2023-12-31 06:00",
                "2023-12-31 00:00"
            ])
        );
        assert!(reasons.iter().all(|r| r == &strs(&["hourly within 1d"])));

        // Cut-off 1 Dec 18:00 (see keep_within): days 2 .. 31 Dec.
        let (kept, reasons, _) = run(regular(), &p(|p, d| p.within_daily = Some(d), "1m"));
        assert_eq!(kept.len(), 30);
        assert_eq!(kept[0], "2023-12-31 18:00");
        assert_eq!(kept[29], "2023-12-02 18:00");
        assert!(kept.iter().all(|k| k.ends_with("18:00")));
        assert!(reasons.iter().all(|r| r == &strs(&["daily within 1m"])));

        // Weeks within 2 .. 31 Dec: W48 (27 Nov .. 3 Dec) through W52.
        let (kept, _, _) = run(regular(), &p(|p, d| p.within_weekly = Some(d), "1m"));
        assert_eq!(
            kept,
            at18(&[
                "2023-12-31",
                "2023-12-24",
                "2023-12-17",
                "2023-12-10",
                "2023-12-03"
            ])
        );

        let (kept, _, _) = run(regular(), &p(|p, d| p.within_monthly = Some(d), "1y"));
        assert_eq!(
            kept,
            run(
                regular(),
                &KeepPolicy {
                    monthly: Some(12),
                    ..Default::default()
                }
            )
            .0
        );

        let (kept, reasons, _) = run(regular(), &p(|p, d| p.within_yearly = Some(d), "2y"));
        assert_eq!(kept, at18(&["2023-12-31", "2022-12-31"]));
        assert_eq!(reasons[1], strs(&["yearly within 2y"]));

        // When the oldest snapshot is within the span it is kept as well.
        let s = vec![
            snap("2023-05-01T10:00:00Z"),
            snap("2023-05-01T08:00:00Z"),
            snap("2023-05-01T06:00:00Z"),
        ];
        let (kept, reasons, removed) = run(s, &p(|p, d| p.within_daily = Some(d), "7d"));
        assert_eq!(kept, strs(&["2023-05-01 10:00", "2023-05-01 06:00"]));
        assert_eq!(reasons[1], strs(&["oldest daily within 7d"]));
        assert_eq!(removed, 1);
    }

    #[test]
    fn buckets_use_the_snapshots_own_offset() {
        // a: 1 June 01:00 at +02:00 (31 May 23:00 UTC); b: 31 May 22:30 UTC;
        // c: 31 May 12:00 UTC. In their own offsets a is on 1 June, b and c
        // on 31 May, so daily 2 keeps a and b. Days in UTC would keep a and
        // (as the oldest) c.
        let a = snap("2023-06-01T01:00:00+02:00");
        let b = snap("2023-05-31T22:30:00Z");
        let c = snap("2023-05-31T12:00:00Z");
        let p = KeepPolicy {
            daily: Some(2),
            ..Default::default()
        };
        let (keep, remove) = apply_policy(vec![c.clone(), a.clone(), b.clone()], &p, now());
        let kept: Vec<Id> = keep.iter().map(|(s, _)| s.id).collect();
        assert_eq!(kept, vec![a.id, b.id]);
        assert_eq!(remove, vec![c]);
    }

    #[test]
    fn keep_tags() {
        let t = |h: u32, tags: &[&str]| {
            snap_at(
                ts(&format!("2023-01-01T{h:02}:00:00Z")),
                "h",
                &["/data"],
                tags,
            )
        };
        let s = vec![
            t(1, &["prod"]),
            t(2, &["a", "b"]),
            t(3, &["a"]),
            t(4, &[]),
            t(5, &["prod", "a", "b"]),
        ];
        let p = KeepPolicy {
            tags: strs(&["prod", "a,b"]),
            ..Default::default()
        };
        let (kept, reasons, removed) = run(s.clone(), &p);
        assert_eq!(
            kept,
            strs(&["2023-01-01 05:00", "2023-01-01 02:00", "2023-01-01 01:00"])
        );
        assert_eq!(reasons[0], strs(&["tag prod", "tag a,b"]));
        assert_eq!(reasons[1], strs(&["tag a,b"]));
        assert_eq!(reasons[2], strs(&["tag prod"]));
        assert_eq!(removed, 2);
        // The empty set keeps untagged snapshots only.
        let p = KeepPolicy {
            tags: strs(&[""]),
            ..Default::default()
        };
        let (kept, reasons, _) = run(s.clone(), &p);
        assert_eq!(kept, strs(&["2023-01-01 04:00"]));
        assert_eq!(reasons[0], strs(&["untagged"]));
        // A tag nobody has would remove the whole group: refused.
        let p = KeepPolicy {
            tags: strs(&["nope"]),
            ..Default::default()
        };
        let e = plan(s, &p, &GroupBy::default(), now()).unwrap_err();
        assert!(e.to_string().contains("refusing"), "{e}");
    }

    #[test]
    fn group_by_parses() {
        let g = |s: &str| s.parse::<GroupBy>().unwrap();
        assert_eq!(g("host,paths"), GroupBy::default());
        assert_eq!(
            g(""),
            GroupBy {
                host: false,
                paths: false,
                tags: false
            }
        );
        assert_eq!(
            g("tags, host"),
            GroupBy {
                host: true,
                paths: false,
                tags: true
            }
        );
        assert!("host,path".parse::<GroupBy>().is_err());
    }

    #[test]
    fn grouping() {
        let t = |d: u32, host: &str, paths: &[&str], tags: &[&str]| {
            snap_at(ts(&format!("2023-01-{d:02}T12:00:00Z")), host, paths, tags)
        };
        let s = vec![
            t(1, "h1", &["/a", "/b"], &["x"]),
            t(2, "h1", &["/b", "/a"], &[]),
            t(3, "h2", &["/a", "/b"], &["x"]),
            t(4, "h1", &["/c"], &["y", "x"]),
            t(5, "h2", &["/a", "/b"], &["x", "y"]),
            t(6, "h1", &["/c"], &["x", "y"]),
        ];
        let last1 = KeepPolicy {
            last: Some(1),
            ..Default::default()
        };
        let kept_days = |by: &str| -> Vec<(GroupKey, Vec<u32>, Vec<u32>)> {
            plan(s.clone(), &last1, &by.parse().unwrap(), now())
                .unwrap()
                .into_iter()
                .map(|d| {
                    (
                        d.key,
                        d.keep.iter().map(|(s, _)| s.time.day()).collect(),
                        d.remove.iter().map(|s| s.time.day()).collect(),
                    )
                })
                .collect()
        };
        let key = |h: Option<&str>, p: Option<&[&str]>, t: Option<&[&str]>| GroupKey {
            hostname: h.map(String::from),
            paths: p.map(strs),
            tags: t.map(strs),
        };
        // Paths are compared as sets: 1 and 2 are one group.
        assert_eq!(
            kept_days("host,paths"),
            vec![
                (key(Some("h1"), Some(&["/a", "/b"]), None), vec![2], vec![1]),
                (key(Some("h1"), Some(&["/c"]), None), vec![6], vec![4]),
                (key(Some("h2"), Some(&["/a", "/b"]), None), vec![5], vec![3]),
            ]
        );
        assert_eq!(
            kept_days(""),
            vec![(key(None, None, None), vec![6], vec![5, 4, 3, 2, 1])]
        );
        assert_eq!(
            kept_days("tags"),
            vec![
                (key(None, None, Some(&[])), vec![2], vec![]),
                (key(None, None, Some(&["x"])), vec![3], vec![1]),
                (key(None, None, Some(&["x", "y"])), vec![6], vec![5, 4]),
            ]
        );
        assert_eq!(
            kept_days("host"),
            vec![
                (key(Some("h1"), None, None), vec![6], vec![4, 2, 1]),
                (key(Some("h2"), None, None), vec![5], vec![3]),
            ]
        );
        assert_eq!(
            key(Some("h1"), Some(&["/a", "/b"]), Some(&[])).to_string(),
            "host h1, paths [/a, /b], tags []"
        );
        assert_eq!(key(None, None, None).to_string(), "all snapshots");
    }

    #[test]
    fn floor_keeps_the_newest() {
        let p = KeepPolicy {
            yearly: Some(1),
            min_keep: 5,
            ..Default::default()
        };
        let (kept, reasons, removed) = run(regular(), &p);
        assert_eq!(
            kept,
            strs(&[
                "2023-12-31 18:00",
                "2023-12-31 12:00",
                "2023-12-31 06:00",
                "2023-12-31 00:00",
                "2023-12-30 18:00"
            ])
        );
        assert_eq!(reasons[0], strs(&["yearly snapshot", "floor"]));
        assert!(reasons[1..].iter().all(|r| r == &strs(&["floor"])));
        assert_eq!(removed, 4375);
        // A floor beyond the group keeps the whole group.
        let s: Vec<_> = regular().into_iter().take(3).collect();
        let p = KeepPolicy {
            last: Some(1),
            min_keep: 10,
            ..Default::default()
        };
        assert_eq!(run(s, &p).2, 0);
        // The floor alone is not a policy.
        let p = KeepPolicy {
            min_keep: 3,
            ..Default::default()
        };
        assert!(p.is_empty());
        assert!(plan(regular(), &p, &GroupBy::default(), now()).is_err());
    }

    #[test]
    fn empty_policy_is_refused() {
        for p in [
            KeepPolicy::default(),
            KeepPolicy {
                last: Some(0),
                daily: Some(0),
                ..Default::default()
            },
        ] {
            let e = plan(regular(), &p, &GroupBy::default(), now()).unwrap_err();
            assert!(e.to_string().contains("no policy"), "{e}");
        }
        // An empty repository with a policy is fine.
        let p = KeepPolicy {
            last: Some(1),
            ..Default::default()
        };
        assert!(plan(Vec::new(), &p, &GroupBy::default(), now())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn explicit_ids() {
        let s: Vec<_> = regular().into_iter().take(10).collect();
        let ids = vec![s[3].id, s[7].id, s[3].id];
        let d = plan_ids(s.clone(), &ids, &GroupBy::default()).unwrap();
        assert_eq!(d.len(), 1);
        assert!(d[0].keep.is_empty());
        assert_eq!(
            d[0].remove.iter().map(|x| x.id).collect::<Vec<_>>(),
            vec![s[7].id, s[3].id]
        );
        let other = snap("2000-01-01T00:00:00Z").id;
        assert!(matches!(
            plan_ids(s.clone(), &[s[1].id, other], &GroupBy::default()),
            Err(Error::SnapshotNotFound(_))
        ));
        assert!(plan_ids(s, &[], &GroupBy::default()).is_err());
    }

    #[test]
    fn durations_parse() {
        let d = |y, m, dd, h| KeepDuration {
            years: y,
            months: m,
            days: dd,
            hours: h,
        };
        assert_eq!("1y2m3d4h".parse::<KeepDuration>().unwrap(), d(1, 2, 3, 4));
        assert_eq!("7d".parse::<KeepDuration>().unwrap(), d(0, 0, 7, 0));
        assert_eq!("3h2y".parse::<KeepDuration>().unwrap(), d(2, 0, 0, 3));
        assert_eq!("0y14d".parse::<KeepDuration>().unwrap(), d(0, 0, 14, 0));
        for bad in [
            "",
            "7",
            "d",
            "7w",
            "1.5d",
            "-1d",
            "1d1d",
            "0d",
            "1d ",
            " 1d",
            "99999999999d",
        ] {
            assert!(bad.parse::<KeepDuration>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(d(1, 2, 3, 4).to_string(), "1y2m3d4h");
        assert_eq!(d(0, 0, 7, 0).to_string(), "7d");
        assert_eq!(d(2, 0, 0, 3).to_string(), "2y3h");
    }

    #[test]
    fn durations_subtract_like_go_add_date() {
        let b = |d: &str, t: &str| d.parse::<KeepDuration>().unwrap().before(ts(t)).unwrap();
        assert_eq!(b("1m", "2023-03-31T10:00:00Z"), ts("2023-03-03T10:00:00Z"));
        assert_eq!(b("1m", "2024-03-31T10:00:00Z"), ts("2024-03-02T10:00:00Z"));
        assert_eq!(b("1y", "2024-02-29T10:00:00Z"), ts("2023-03-01T10:00:00Z"));
        assert_eq!(
            b("1y2m3d4h", "2023-06-15T12:00:00+02:00"),
            ts("2022-04-12T08:00:00+02:00")
        );
        assert_eq!(
            b("13m40d", "2023-01-10T00:00:00Z"),
            ts("2021-10-31T00:00:00Z")
        );
    }

    #[test]
    fn counts_parse() {
        assert_eq!(parse_keep_count("5").unwrap(), 5);
        assert_eq!(parse_keep_count("0").unwrap(), 0);
        assert_eq!(parse_keep_count("-1").unwrap(), UNLIMITED);
        assert_eq!(parse_keep_count("unlimited").unwrap(), UNLIMITED);
        for bad in ["-2", "x", "", "1.5"] {
            assert!(parse_keep_count(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn policy_describes_itself() {
        let p = KeepPolicy {
            last: Some(2),
            daily: Some(UNLIMITED),
            within: Some("7d".parse().unwrap()),
            within_weekly: Some("1m".parse().unwrap()),
            tags: strs(&["prod"]),
            min_keep: 3,
            ..Default::default()
        };
        assert_eq!(
            p.to_string(),
            "keep 2 last, all daily, all within 7d, weekly within 1m, tag prod, at least the 3 newest"
        );
    }

    #[test]
    fn apply_deletes_only_removed_snapshot_files() {
        use crate::backend::{Backend, OpendalBackend};
        use crate::repository::InitOptions;
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let b: Arc<dyn Backend> = Arc::new(OpendalBackend::local(dir.path(), true).unwrap());
        let o = InitOptions {
            kdf_memory_kib: 8 << 10,
            kdf_iterations: 1,
            ..InitOptions::default()
        };
        let repo = Repository::init(b, b"pw", &o).unwrap();
        for day in 1..=5 {
            let s = snap(&format!("2023-01-0{day}T12:00:00Z"));
            repo.save_snapshot(&s).unwrap();
        }
        let snaps = repo.snapshots().unwrap();
        assert_eq!(snaps.len(), 5);
        let p = KeepPolicy {
            last: Some(2),
            ..Default::default()
        };
        let d = plan(snaps.clone(), &p, &GroupBy::default(), now()).unwrap();
        let removed = apply(&repo, &d, true).unwrap();
        assert_eq!(removed.len(), 3);
        assert_eq!(
            repo.snapshots().unwrap().len(),
            5,
            "dry run removed something"
        );
        let removed = apply(&repo, &d, false).unwrap();
        let left = repo.snapshots().unwrap();
        let left_ids: Vec<Id> = left.iter().map(|s| s.id).collect();
        assert_eq!(left_ids, vec![snaps[3].id, snaps[4].id]);
        assert_eq!(
            removed,
            vec![snaps[2].id, snaps[1].id, snaps[0].id],
            "removed newest first"
        );
        // Explicit IDs.
        let d = plan_ids(left, &[snaps[3].id], &GroupBy::default()).unwrap();
        assert_eq!(apply(&repo, &d, false).unwrap(), vec![snaps[3].id]);
        let left: Vec<Id> = repo.snapshots().unwrap().iter().map(|s| s.id).collect();
        assert_eq!(left, vec![snaps[4].id]);
    }
}
