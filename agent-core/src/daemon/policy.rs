//! When each task runs next: the daemon's pure scheduling policy.
//!
//! No I/O, no clock, no global random source: the time is passed in (`now`, any chrono time
//! zone; cron is evaluated in it, DST included) and so is the random generator, so a fleet
//! simulation can drive thousands of agents in virtual time with seeded generators and get the
//! same answers as the daemon.
//!
//! The rules:
//! * **Cadence**: a cron expression (`freq`, the next matching minute strictly after `now`) or
//!   a fixed interval (`every`, `now + every`), from `[schedule.tasks.<Task>]` or the server.
//! * **Jitter** (`wait_rand`): a fleet must not hit GLPI in the same second. A cron task waits a
//!   fresh uniform `0..wait_rand` after each matching minute, as `--wait-rand` did under cron.
//!   An interval task is spread once, by its first run (uniform `0..min(wait_rand, every)`):
//!   afterwards each agent keeps its own phase, and `every = "5s"` still means every 5 s.
//! * **First run**: at start every task is due after its spread only (a daemon that starts
//!   reports its state and fetches its jobs without waiting for the next cron minute).
//! * **Backoff**: while the server is unreachable, answers 5xx, or answers something that is
//!   not the plugin's reply (an HTML page, broken JSON: maintenance, a proxy, a PHP fatal
//!   error sent as 200), or its messages could not be delivered for one of these reasons
//!   (`AgentError::Unavailable`), or the store cannot be written (disk full), a task's next
//!   run is at least
//!   `base · 2^(failures-1)`, capped at `max`, with "equal jitter" (half fixed, half random) so
//!   a fleet coming back after an outage does not retry in lock-step; never sooner than the
//!   regular schedule. One success resets it. Other failures (a backend error, a message the
//!   server rejects with a 4xx) keep the regular schedule: retrying faster or slower would
//!   not help.

use std::time::Duration;

use chrono::{DateTime, TimeZone};
use rand::Rng;

use crate::schedule::{CronExpr, TaskEntry};

/// How often a task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cadence {
    Cron(CronExpr),
    Every(Duration),
}

/// One task's schedule, as the policy reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub cadence: Cadence,
    /// Upper bound of the random spread (`wait_rand`); zero = none.
    pub wait_rand: Duration,
}

impl Plan {
    /// From a schedule entry: `every` when set, else `freq`.
    pub fn from_entry(entry: &TaskEntry) -> Self {
        Plan {
            cadence: match entry.every {
                Some(d) => Cadence::Every(d),
                None => Cadence::Cron(entry.freq.clone()),
            },
            wait_rand: Duration::from_secs(entry.wait_rand.unwrap_or(0)),
        }
    }
}

/// Capped exponential backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure (half of it fixed, half random).
    pub base: Duration,
    /// Longest wait, however many failures.
    pub max: Duration,
}

/// Base of the backoff: short enough to notice a server back within a minute.
pub const BACKOFF_BASE: Duration = Duration::from_secs(30);

/// How a run ended, as far as pacing is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Server unreachable, timed out, answering 5xx or not as the plugin does, or the local
    /// store unwritable (disk full): back off.
    Unavailable,
    /// Any other failure: keep the regular schedule.
    Failed,
}

/// Consecutive `Unavailable` runs of a task after `outcome` (`failures` before it).
pub fn failures_after(failures: u32, outcome: Outcome) -> u32 {
    match outcome {
        Outcome::Success => 0,
        Outcome::Unavailable => failures.saturating_add(1),
        Outcome::Failed => failures,
    }
}

/// Uniform in `0..=max` at millisecond resolution (`0` when `max` is zero).
fn uniform<R: Rng + ?Sized>(rng: &mut R, max: Duration) -> Duration {
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rng.random_range(0..=ms))
}

fn add<Tz: TimeZone>(t: &DateTime<Tz>, d: Duration) -> DateTime<Tz> {
    let delta = chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX);
    t.clone()
        .checked_add_signed(delta)
        .unwrap_or_else(|| t.clone())
}

/// When a task first runs after the daemon starts: after its spread only.
pub fn first_due<Tz: TimeZone, R: Rng + ?Sized>(
    plan: &Plan,
    now: &DateTime<Tz>,
    rng: &mut R,
) -> DateTime<Tz> {
    let spread = match plan.cadence {
        Cadence::Cron(_) => plan.wait_rand,
        Cadence::Every(every) => plan.wait_rand.min(every),
    };
    add(now, uniform(rng, spread))
}

/// The regular next run after `now`, without backoff: `None` when a cron expression never
/// fires again.
pub fn next_regular<Tz: TimeZone, R: Rng + ?Sized>(
    plan: &Plan,
    now: &DateTime<Tz>,
    rng: &mut R,
) -> Option<DateTime<Tz>> {
    match &plan.cadence {
        Cadence::Every(every) => Some(add(now, *every)),
        Cadence::Cron(expr) => Some(add(&expr.next_after(now)?, uniform(rng, plan.wait_rand))),
    }
}

/// The wait after `failures` consecutive `Unavailable` runs (zero when none).
pub fn backoff_delay<R: Rng + ?Sized>(backoff: Backoff, failures: u32, rng: &mut R) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exp = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
    let full = backoff.base.saturating_mul(exp).min(backoff.max);
    full / 2 + uniform(rng, full / 2)
}

/// When a task that just ended (at `now`, after `failures` consecutive `Unavailable` runs, as
/// counted by [`failures_after`]) runs next: its regular time, or later while backing off.
pub fn next_due<Tz: TimeZone, R: Rng + ?Sized>(
    plan: &Plan,
    backoff: Backoff,
    failures: u32,
    now: &DateTime<Tz>,
    rng: &mut R,
) -> Option<DateTime<Tz>> {
    let regular = next_regular(plan, now, rng)?;
    let backed_off = add(now, backoff_delay(backoff, failures, rng));
    Some(regular.max(backed_off))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike, Utc};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn cron(expr: &str, wait_rand: u64) -> Plan {
        Plan {
            cadence: Cadence::Cron(CronExpr::parse(expr).unwrap()),
            wait_rand: Duration::from_secs(wait_rand),
        }
    }

    fn every(secs: u64, wait_rand: u64) -> Plan {
        Plan {
            cadence: Cadence::Every(Duration::from_secs(secs)),
            wait_rand: Duration::from_secs(wait_rand),
        }
    }

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_secs(30),
        max: Duration::from_secs(600),
    };

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 10, 7, 42).unwrap()
    }

    #[test]
    fn cron_runs_at_the_next_minute_plus_a_fresh_spread() {
        let mut rng = StdRng::seed_from_u64(1);
        let plan = cron("*/20 * * * *", 600);
        let mut seen = Vec::new();
        for _ in 0..200 {
            let next = next_due(&plan, BACKOFF, 0, &t0(), &mut rng).unwrap();
            let base = Utc.with_ymd_and_hms(2026, 3, 1, 10, 20, 0).unwrap();
            let spread = (next - base).num_milliseconds();
            assert!((0..=600_000).contains(&spread), "{next}");
            seen.push(spread);
        }
        // Spread over the window, not one value.
        seen.sort();
        assert!(seen[0] < 60_000 && seen[199] > 540_000, "{seen:?}");
        // Without spreading: exactly the cron minute.
        let next = next_due(&cron("30 * * * *", 0), BACKOFF, 0, &t0(), &mut rng).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 3, 1, 10, 30, 0).unwrap());
        assert_eq!(next.second(), 0);
    }

    #[test]
    fn intervals_keep_their_period_and_are_spread_once() {
        let mut rng = StdRng::seed_from_u64(2);
        let plan = every(5, 30);
        for _ in 0..50 {
            let next = next_due(&plan, BACKOFF, 0, &t0(), &mut rng).unwrap();
            assert_eq!(next - t0(), chrono::TimeDelta::seconds(5));
            // The first run is spread over at most one period (not wait_rand = 30 s).
            let first = first_due(&plan, &t0(), &mut rng);
            assert!((0..=5_000).contains(&(first - t0()).num_milliseconds()));
        }
        let first = first_due(&every(60, 0), &t0(), &mut rng);
        assert_eq!(first, t0());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_and_resets_on_success() {
        let mut rng = StdRng::seed_from_u64(3);
        for (failures, full) in [
            (1u32, 30u64),
            (2, 60),
            (3, 120),
            (4, 240),
            (5, 480),
            (6, 600),
            (40, 600),
        ] {
            for _ in 0..50 {
                let d = backoff_delay(BACKOFF, failures, &mut rng);
                let full = Duration::from_secs(full);
                assert!(d >= full / 2 && d <= full, "{failures}: {d:?}");
            }
        }
        assert_eq!(backoff_delay(BACKOFF, 0, &mut rng), Duration::ZERO);
        // Getjobs every 5 s, server down 3 times: at least 60 s, at most 120 s.
        let next = next_due(&every(5, 0), BACKOFF, 3, &t0(), &mut rng).unwrap();
        let wait = (next - t0()).num_seconds();
        assert!((60..=120).contains(&wait), "{wait}");
        // Backoff never brings a run forward: a daily task stays daily.
        let next = next_due(&cron("0 3 * * *", 0), BACKOFF, 1, &t0(), &mut rng).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 3, 2, 3, 0, 0).unwrap());
        // Counting.
        let mut f = 0;
        for o in [Outcome::Unavailable, Outcome::Unavailable, Outcome::Failed] {
            f = failures_after(f, o);
        }
        assert_eq!(f, 2);
        assert_eq!(failures_after(f, Outcome::Success), 0);
    }

    #[test]
    fn a_fleet_is_spread_and_reproducible() {
        // 1000 agents with the default Getjobs plan (every minute, 30 s spread): no second of
        // the spread window gets more than a few percent of them.
        let plan = cron("* * * * *", 30);
        let mut per_second = [0u32; 31];
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..1000 {
            let next = next_due(&plan, BACKOFF, 0, &t0(), &mut rng).unwrap();
            let off = (next - Utc.with_ymd_and_hms(2026, 3, 1, 10, 8, 0).unwrap()).num_seconds();
            per_second[usize::try_from(off).unwrap()] += 1;
        }
        assert!(per_second.iter().all(|n| *n < 70), "{per_second:?}");
        // Same seed, same answers.
        let a = next_due(&plan, BACKOFF, 2, &t0(), &mut StdRng::seed_from_u64(9));
        let b = next_due(&plan, BACKOFF, 2, &t0(), &mut StdRng::seed_from_u64(9));
        assert_eq!(a, b);
    }

    #[test]
    fn a_cron_that_never_fires_has_no_next_run() {
        let mut rng = StdRng::seed_from_u64(5);
        assert_eq!(
            next_due(&cron("0 0 31 2 *", 0), BACKOFF, 0, &t0(), &mut rng),
            None
        );
    }

    #[test]
    fn plans_come_from_schedule_entries() {
        let mut e = crate::schedule::ScheduledTask::State.default_entry();
        assert_eq!(Plan::from_entry(&e), cron("*/20 * * * *", 600));
        e.every = Some(Duration::from_secs(7));
        assert_eq!(
            Plan::from_entry(&e).cadence,
            Cadence::Every(Duration::from_secs(7))
        );
    }
}
