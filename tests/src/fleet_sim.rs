//! Fleet simulation: thousands of daemons against one GLPI server, in virtual time.
//!
//! (Not to be confused with [`crate::fleet`], the e2e tests' shared set-ups.)
//!
//! Every agent is paced by the daemon's own policy (`agent_core::daemon::policy`: first run,
//! cron + spread, interval, backoff) with the default schedule
//! (`ScheduledTask::default_entry`, `[daemon]` defaults) and its own seeded generator, and its
//! outbox by the transport's own full-jitter curve (`transport::backoff_delay` with the
//! `[outbox]` defaults), so a change of policy shows here. A discrete-event queue runs the
//! tasks; a run takes no virtual time. What each run sends is what the daemon's code sends
//! (read from `jobs/` and `tasks/`):
//!
//! * every run first flushes the outbox: one POST per due message; while the server is down
//!   the first failure ends the flush (unreachable) and the message waits its outbox backoff;
//! * Getjobs: GET jobs (the only request that fails the run: `Unavailable`, backoff);
//! * State: a `state` message (supersedes the pending one, keeping its place and backoff),
//!   then a flush;
//! * AvConfig: GET avconfigs; its message on the first run only (the hash does not change),
//!   then a flush;
//! * Scheduler: GET schedulers, a `scheduler` message, a flush;
//! * Runjobs: a flush (no jobs queued in this fleet);
//! * Alerts (every `alerts_every`, 5 s): queues the detections made since its last tick (one
//!   outbox message each), then a flush. Queued alerts leave in POSTs of up to
//!   `alerts_per_post` (the outbox's coalescing, `[outbox] coalesce_alerts`, 100 by default; 1 =
//!   one POST per message, as without it). Ticks are only simulated while there is something
//!   to do, at the interval's own phase (`first_due + k·every`, what `next_due` gives a run
//!   that takes no time).
//!
//! Detections (a world event, not the agent's policy: drawn from their own seeded generator,
//! jitter or not): a background rate per agent, plus an outbreak during the outage, when a
//! share of the fleet each detects a burst (spread over the outage) that waits in its outbox
//! until the server is back: the case alert coalescing is for.
//!
//! State/AvConfig/Scheduler runs end `Unavailable` (the daemon backs off) when their GET failed
//! or their message is still in the outbox, tried or waiting for its backoff, as the real code
//! does (`Enrolled::send`, `ServerDefined::Unreadable`).
//!
//! "Without jitter" gives every agent the same constant generator (every draw is the middle of
//! its range): all agents take the same decisions at the same instants, as a fleet whose
//! spread and backoff jitter were removed would.
//!
//! Timeline: `warmup` (the fleet starts at once), the `normal` window measured, the outage,
//! then `recovery` measured from the second the server is back.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use agent_core::config::{DaemonConfig, OutboxConfig};
use agent_core::daemon::policy::{self, Backoff, Cadence, Outcome, Plan};
use agent_core::schedule::ScheduledTask;
use agent_core::transport::RetryPolicy;
use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Params {
    pub agents: u32,
    /// Warm-up before the normal window (the fleet starts at once: first runs are spread).
    pub warmup: Duration,
    /// The normal window measured.
    pub normal: Duration,
    /// How long the server is down (right after the normal window).
    pub outage: Duration,
    /// The recovery window measured, from the second the server is back.
    pub recovery: Duration,
    /// Spread and backoff jitter as the daemon does them; `false`: one constant draw for all.
    pub jitter: bool,
    pub seed: u64,
    /// Background detections per agent per hour.
    pub detections_per_hour: f64,
    /// Share of agents (0..=1) hit by an outbreak during the outage, and detections each.
    pub outbreak_share: f64,
    pub outbreak_detections: u32,
    /// Alerts per POST: the outbox's coalescing (1 = off).
    pub alerts_per_post: u32,
}

impl Params {
    pub fn new(agents: u32, normal_hours: f64, outage_min: u64, jitter: bool) -> Self {
        Params {
            agents,
            warmup: Duration::from_secs(3600),
            normal: Duration::from_secs_f64(normal_hours * 3600.0),
            outage: Duration::from_secs(outage_min * 60),
            recovery: Duration::from_secs(1800),
            jitter,
            seed: 16,
            detections_per_hour: 0.2,
            outbreak_share: 0.05,
            outbreak_detections: 500,
            alerts_per_post: OutboxConfig::default().coalesce_alerts as u32,
        }
    }
}

/// Requests per second the server sees over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub mean: f64,
    pub p99: u32,
    pub peak: u32,
}

/// What the server saw.
#[derive(Debug, Clone)]
pub struct Report {
    pub normal: Rates,
    pub recovery: Rates,
    /// Seconds after the server came back at which the recovery peak happened.
    pub recovery_peak_after: u64,
    /// Requests sent while the server was down (refused or failed).
    pub attempts_during_outage: u64,
    /// Events (task runs) simulated.
    pub runs: u64,
    /// Detections made, alerts the server received, and the POSTs that carried them
    /// (all, and in the recovery window).
    pub detections: u64,
    pub alerts_delivered: u64,
    pub alert_posts: u64,
    pub alert_posts_recovery: u64,
    /// Detected but not delivered when the simulation ended (read or not yet).
    pub alerts_pending_at_end: u64,
}

impl Report {
    /// Recovery peak over normal p99.
    pub fn herd_ratio(&self) -> f64 {
        f64::from(self.recovery.peak) / f64::from(self.normal.p99.max(1))
    }
}

/// Every draw is the middle of its range: the same for every agent.
struct Midpoint;

impl RngCore for Midpoint {
    fn next_u32(&mut self) -> u32 {
        u32::MAX / 2
    }
    fn next_u64(&mut self) -> u64 {
        u64::MAX / 2
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0x7f);
    }
}

/// An agent's generator: seeded, or `None` for the shared [`Midpoint`] (jitter off).
struct AgentRng(Option<StdRng>);

impl RngCore for AgentRng {
    fn next_u32(&mut self) -> u32 {
        match &mut self.0 {
            Some(r) => r.next_u32(),
            None => Midpoint.next_u32(),
        }
    }
    fn next_u64(&mut self) -> u64 {
        match &mut self.0 {
            Some(r) => r.next_u64(),
            None => Midpoint.next_u64(),
        }
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        match &mut self.0 {
            Some(r) => r.fill_bytes(dest),
            None => Midpoint.fill_bytes(dest),
        }
    }
}

/// The scheduled tasks simulated (index into [`Agent::failures`]), then the Alerts tick.
const TASKS: [ScheduledTask; 5] = [
    ScheduledTask::Getjobs,
    ScheduledTask::Runjobs,
    ScheduledTask::State,
    ScheduledTask::AvConfig,
    ScheduledTask::Scheduler,
];
const ALERTS: u8 = TASKS.len() as u8;
/// A detection event.
const DETECT: u8 = ALERTS + 1;

/// The outbox's superseding slots (at most one pending message each).
#[derive(Clone, Copy)]
enum Slot {
    State = 0,
    AvConfig = 1,
    Scheduler = 2,
    /// Not superseding: `Agent::alerts_queued_count` alerts wait behind it.
    Alerts = 3,
}

#[derive(Clone, Copy)]
struct Pending {
    /// Virtual ms when it may be tried.
    due: u64,
    attempts: u32,
    /// FIFO position (the outbox delivers oldest first).
    seq: u64,
}

struct Agent {
    rng: AgentRng,
    failures: [u32; TASKS.len()],
    outbox: [Option<Pending>; 4],
    /// Alerts in the outbox (one message each), and detections not yet read by an Alerts tick.
    alerts_in_outbox: u32,
    alerts_new: u32,
    /// Detection times still to come (virtual ms, latest first).
    detections: Vec<u64>,
    avconfig_sent: bool,
    /// First Alerts tick (the interval's phase).
    alerts_phase: u64,
    /// The Alerts tick queued, if any (older queued ticks are stale).
    alerts_queued: Option<u64>,
}

struct Sim<'a> {
    plans: Vec<Plan>,
    backoff: Backoff,
    alerts_every: u64,
    outbox_retry: RetryPolicy,
    t0: DateTime<Utc>,
    outage: (u64, u64),
    per_second: Vec<u32>,
    attempts_during_outage: u64,
    alerts_per_post: u32,
    alerts_delivered: u64,
    alert_posts: u64,
    alert_posts_recovery: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u32, u8)>>,
    agents: &'a mut [Agent],
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Sim<'_> {
    fn at(&self, t: u64) -> DateTime<Utc> {
        self.t0 + chrono::TimeDelta::milliseconds(i64::try_from(t).unwrap_or(i64::MAX))
    }

    fn server_up(&self, t: u64) -> bool {
        !(self.outage.0..self.outage.1).contains(&t)
    }

    /// One request at `t`; whether the server answered it.
    fn request(&mut self, t: u64) -> bool {
        let up = self.server_up(t);
        if up {
            if let Some(n) = self.per_second.get_mut((t / 1000) as usize) {
                *n += 1;
            }
        } else {
            self.attempts_during_outage += 1;
        }
        up
    }

    /// A new message in `slot`; one that supersedes a pending message keeps its place and its
    /// retry schedule (store/outbox.rs invariants).
    fn enqueue(&mut self, a: usize, slot: Slot, t: u64) {
        if self.agents[a].outbox[slot as usize].is_some() {
            return;
        }
        self.seq += 1;
        self.agents[a].outbox[slot as usize] = Some(Pending {
            due: t,
            attempts: 0,
            seq: self.seq,
        });
    }

    /// A task's end after it queued a message in `slot` (and maybe read the server's
    /// configuration, `read_ok`): `Enrolled::send` fails `Unavailable` while the message is
    /// kept, tried or waiting for its backoff; so does an unreadable server configuration.
    fn reported(&self, a: usize, slot: Slot, read_ok: bool) -> Outcome {
        if read_ok && self.agents[a].outbox[slot as usize].is_none() {
            Outcome::Success
        } else {
            Outcome::Unavailable
        }
    }

    /// `delivery::flush`: the due messages oldest first; the first failure (server
    /// unreachable) ends it and reschedules that message with the outbox backoff.
    fn flush(&mut self, a: usize, t: u64) {
        loop {
            let next = self.agents[a]
                .outbox
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.filter(|p| p.due <= t).map(|p| (p.seq, i)))
                .min();
            let Some((_, i)) = next else { break };
            if self.request(t) {
                if i == Slot::Alerts as usize {
                    let agent = &mut self.agents[a];
                    let sent = agent.alerts_in_outbox.min(self.alerts_per_post.max(1));
                    agent.alerts_in_outbox -= sent;
                    self.alerts_delivered += u64::from(sent);
                    self.alert_posts += 1;
                    if t >= self.outage.1 {
                        self.alert_posts_recovery += 1;
                    }
                    if agent.alerts_in_outbox > 0 {
                        continue; // the next POST of the same backlog
                    }
                }
                self.agents[a].outbox[i] = None;
                continue;
            }
            let agent = &mut self.agents[a];
            if let Some(p) = agent.outbox[i].as_mut() {
                p.attempts += 1;
                let wait = agent_core::transport::backoff_delay(
                    &self.outbox_retry,
                    p.attempts.saturating_sub(1),
                    &mut agent.rng,
                )
                .as_secs()
                .max(1);
                p.due = t + wait * 1000;
            }
            break;
        }
        self.queue_alerts_tick(a, t);
    }

    /// While the outbox holds a message, the Alerts tick that will flush it when due.
    fn queue_alerts_tick(&mut self, a: usize, t: u64) {
        let agent = &mut self.agents[a];
        let unread = (agent.alerts_new > 0).then_some(t);
        let Some(due) = agent
            .outbox
            .iter()
            .flatten()
            .map(|p| p.due)
            .chain(unread)
            .min()
        else {
            return;
        };
        let from = due.max(t + 1).max(agent.alerts_phase);
        let k = (from - agent.alerts_phase).div_ceil(self.alerts_every);
        let tick = agent.alerts_phase + k * self.alerts_every;
        if agent.alerts_queued.is_some_and(|q| q <= tick && q > t) {
            return;
        }
        agent.alerts_queued = Some(tick);
        self.queue.push(Reverse((tick, a as u32, ALERTS)));
    }

    /// The Alerts tick: detections read since the last one join the outbox, then a flush.
    fn alerts_tick(&mut self, a: usize, t: u64) {
        let new = std::mem::take(&mut self.agents[a].alerts_new);
        if new > 0 {
            self.agents[a].alerts_in_outbox += new;
            self.enqueue(a, Slot::Alerts, t);
        }
        self.flush(a, t);
    }

    /// One run of task `k` of agent `a` at `t`, as the daemon's code does it.
    fn run(&mut self, a: usize, k: usize, t: u64) -> Outcome {
        self.flush(a, t);
        match TASKS[k] {
            ScheduledTask::Getjobs => {
                if self.request(t) {
                    Outcome::Success
                } else {
                    Outcome::Unavailable
                }
            }
            ScheduledTask::Runjobs => Outcome::Success,
            ScheduledTask::State => {
                self.enqueue(a, Slot::State, t);
                self.flush(a, t);
                self.reported(a, Slot::State, true)
            }
            ScheduledTask::AvConfig => {
                let read = self.request(t); // GET avconfigs (`[avconfig] apply`)
                if !self.agents[a].avconfig_sent {
                    self.agents[a].avconfig_sent = true;
                    self.enqueue(a, Slot::AvConfig, t);
                    self.flush(a, t);
                }
                self.reported(a, Slot::AvConfig, read)
            }
            ScheduledTask::Scheduler => {
                let read = self.request(t); // GET schedulers
                self.enqueue(a, Slot::Scheduler, t);
                self.flush(a, t);
                self.reported(a, Slot::Scheduler, read)
            }
            ScheduledTask::Alerts => Outcome::Success,
        }
    }
}

fn rates(counts: &[u32]) -> Rates {
    if counts.is_empty() {
        return Rates {
            mean: 0.0,
            p99: 0,
            peak: 0,
        };
    }
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    let idx = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
    Rates {
        mean: counts.iter().map(|&c| f64::from(c)).sum::<f64>() / counts.len() as f64,
        p99: sorted[idx],
        peak: sorted[sorted.len() - 1],
    }
}

/// Runs the simulation.
pub fn simulate(p: &Params) -> Report {
    let daemon = DaemonConfig::default();
    let outbox = OutboxConfig::default();
    let plans: Vec<Plan> = TASKS
        .iter()
        .map(|t| Plan::from_entry(&t.default_entry()))
        .collect();
    let alerts_plan = Plan {
        cadence: Cadence::Every(daemon.alerts_every),
        wait_rand: Duration::from_secs(
            ScheduledTask::Alerts.default_entry().wait_rand.unwrap_or(0),
        ),
    };
    // A whole hour: cron minutes line up as on a real clock.
    let t0 = Utc
        .with_ymd_and_hms(2026, 3, 2, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let normal_start = ms(p.warmup);
    let outage_start = normal_start + ms(p.normal);
    let outage_end = outage_start + ms(p.outage);
    let end = outage_end + ms(p.recovery);

    let mut agents: Vec<Agent> = (0..p.agents)
        .map(|i| Agent {
            rng: AgentRng(
                p.jitter
                    .then(|| StdRng::seed_from_u64(p.seed.wrapping_mul(1_000_003) ^ u64::from(i))),
            ),
            failures: [0; TASKS.len()],
            outbox: [None; 4],
            alerts_in_outbox: 0,
            alerts_new: 0,
            detections: detections_of(p, i, (outage_start, outage_end), end),
            avconfig_sent: false,
            alerts_phase: 0,
            alerts_queued: None,
        })
        .collect();
    let mut sim = Sim {
        plans,
        backoff: Backoff {
            base: policy::BACKOFF_BASE,
            max: daemon.backoff_max,
        },
        alerts_every: ms(daemon.alerts_every).max(1),
        outbox_retry: RetryPolicy {
            max_attempts: u32::MAX,
            base_delay_ms: outbox.retry_base.saturating_mul(1000),
            max_delay_ms: outbox.retry_max.max(outbox.retry_base).saturating_mul(1000),
        },
        t0,
        outage: (outage_start, outage_end),
        per_second: vec![0; (end / 1000) as usize + 1],
        attempts_during_outage: 0,
        alerts_per_post: p.alerts_per_post,
        alerts_delivered: 0,
        alert_posts: 0,
        alert_posts_recovery: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        agents: &mut agents,
    };
    let start = sim.at(0);
    for a in 0..p.agents as usize {
        let rng = &mut sim.agents[a].rng;
        let phase = policy::first_due(&alerts_plan, &start, rng);
        sim.agents[a].alerts_phase = u64::try_from((phase - start).num_milliseconds()).unwrap_or(0);
        for (k, plan) in sim.plans.iter().enumerate() {
            let due = policy::first_due(plan, &start, &mut sim.agents[a].rng);
            let due = u64::try_from((due - start).num_milliseconds()).unwrap_or(0);
            sim.queue.push(Reverse((due, a as u32, k as u8)));
        }
        if let Some(&first) = sim.agents[a].detections.last() {
            sim.queue.push(Reverse((first, a as u32, DETECT)));
        }
    }
    let detections: u64 = sim.agents.iter().map(|a| a.detections.len() as u64).sum();
    let mut runs = 0u64;
    while let Some(Reverse((t, a, k))) = sim.queue.pop() {
        if t >= end {
            break;
        }
        let a = a as usize;
        runs += 1;
        if k == DETECT {
            let agent = &mut sim.agents[a];
            agent.detections.pop();
            agent.alerts_new += 1;
            if let Some(&next) = agent.detections.last() {
                sim.queue.push(Reverse((next, a as u32, DETECT)));
            }
            sim.queue_alerts_tick(a, t);
            continue;
        }
        if k == ALERTS {
            if sim.agents[a].alerts_queued != Some(t) {
                continue; // superseded by an earlier tick
            }
            sim.agents[a].alerts_queued = None;
            sim.alerts_tick(a, t);
            continue;
        }
        let k = usize::from(k);
        let outcome = sim.run(a, k, t);
        let failures = policy::failures_after(sim.agents[a].failures[k], outcome);
        sim.agents[a].failures[k] = failures;
        let now = sim.at(t);
        let plan = sim.plans[k].clone();
        let backoff = sim.backoff;
        if let Some(next) = policy::next_due(&plan, backoff, failures, &now, &mut sim.agents[a].rng)
        {
            let next = u64::try_from((next - start).num_milliseconds()).unwrap_or(u64::MAX);
            sim.queue
                .push(Reverse((next.max(t + 1), a as u32, k as u8)));
        }
    }
    let secs = |from: u64, to: u64| &sim.per_second[(from / 1000) as usize..(to / 1000) as usize];
    let normal = rates(secs(normal_start, outage_start));
    let recovery_counts = secs(outage_end, end);
    let recovery = rates(recovery_counts);
    let recovery_peak_after = recovery_counts
        .iter()
        .position(|&c| c == recovery.peak)
        .unwrap_or(0) as u64;
    Report {
        normal,
        recovery,
        recovery_peak_after,
        attempts_during_outage: sim.attempts_during_outage,
        runs,
        detections,
        alerts_delivered: sim.alerts_delivered,
        alert_posts: sim.alert_posts,
        alert_posts_recovery: sim.alert_posts_recovery,
        alerts_pending_at_end: sim
            .agents
            .iter()
            .map(|a| u64::from(a.alerts_in_outbox + a.alerts_new) + a.detections.len() as u64)
            .sum(),
    }
}

/// Agent `i`'s detection times (virtual ms, latest first): Poisson background over the whole
/// run, plus its outbreak burst spread over the outage when it is among the share hit.
fn detections_of(p: &Params, i: u32, outage: (u64, u64), end: u64) -> Vec<u64> {
    use rand::Rng;
    let mut rng = StdRng::seed_from_u64(p.seed.wrapping_mul(7_919) ^ (u64::from(i) << 20) ^ 0xde7);
    let mut out = Vec::new();
    if p.detections_per_hour > 0.0 {
        let mean_ms = 3_600_000.0 / p.detections_per_hour;
        let mut t = 0.0f64;
        loop {
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            t += -u.ln() * mean_ms;
            if t >= end as f64 {
                break;
            }
            out.push(t as u64);
        }
    }
    if rng.random_bool(p.outbreak_share.clamp(0.0, 1.0)) && outage.1 > outage.0 {
        for _ in 0..p.outbreak_detections {
            out.push(rng.random_range(outage.0..outage.1));
        }
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_of_a_window() {
        let mut counts = vec![1u32; 99];
        counts.push(50);
        let r = rates(&counts);
        assert_eq!((r.p99, r.peak), (1, 50));
        assert!((r.mean - 1.49).abs() < 1e-9);
        counts.push(60);
        assert_eq!(rates(&counts).p99, 50);
    }

    #[test]
    fn the_midpoint_generator_draws_the_middle() {
        use rand::Rng;
        let mut r = Midpoint;
        let v: u64 = r.random_range(0..=1000);
        assert!((499..=501).contains(&v), "{v}");
    }
}
