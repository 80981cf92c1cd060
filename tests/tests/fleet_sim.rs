//! The fleet simulation in short mode: a fleet paced by the daemon's own policy comes back
//! from a one-hour outage without a herd, and the same fleet without jitter is measurably
//! worse (so the test would catch a policy that lost its spread or its backoff jitter); an
//! outbreak of detections during the outage leaves in coalesced POSTs, not one per alert.
//! Long mode: `cargo run --release -p armadito-tests --bin bench -- fleet --agents 10000`.

use armadito_tests::fleet_sim::{Params, simulate};

#[test]
fn a_fleet_recovers_from_an_outage_without_a_herd_and_jitter_is_what_prevents_it() {
    let agents = 400;
    let on = simulate(&Params::new(agents, 1.0, 60, true));
    let off = simulate(&Params::new(agents, 1.0, 60, false));
    eprintln!("jitter on: {on:?}\njitter off: {off:?}");

    // Normal operation: Getjobs every minute is most of the traffic.
    let per_min = f64::from(agents) / 60.0;
    assert!(
        on.normal.mean > per_min && on.normal.mean < 2.0 * per_min,
        "normal mean {} for {agents} agents",
        on.normal.mean
    );
    // The goal: the recovery peak within 2x the normal p99.
    assert!(
        on.recovery.peak <= 2 * on.normal.p99,
        "recovery peak {} > 2 x normal p99 {}",
        on.recovery.peak,
        on.normal.p99
    );
    // The outage was felt: agents kept trying, gently (backoff), not every second.
    assert!(on.attempts_during_outage > u64::from(agents), "{on:?}");
    assert!(on.attempts_during_outage < 60 * u64::from(agents), "{on:?}");
    // Without jitter every agent hits the same second, in normal operation and on recovery.
    assert!(off.normal.peak >= agents, "{off:?}");
    assert!(
        off.recovery.peak >= 5 * on.recovery.peak,
        "jitter off {} vs on {}",
        off.recovery.peak,
        on.recovery.peak
    );
    assert!(off.normal.p99 >= 5 * on.normal.p99, "{off:?} vs {on:?}");
    // Reproducible: same seed, same answers.
    let small = |seed| {
        let mut p = Params::new(40, 0.5, 30, true);
        p.seed = seed;
        let r = simulate(&p);
        (r.normal.p99, r.recovery.peak, r.attempts_during_outage)
    };
    assert_eq!(small(7), small(7));

    // Detections: nothing lost (delivered, or still waiting out its outbox backoff when the
    // run ends), and the outbreak that waited out the outage left in POSTs of 100, not one
    // POST per alert.
    for r in [&on, &off] {
        assert_eq!(
            r.alerts_delivered + r.alerts_pending_at_end,
            r.detections,
            "{r:?}"
        );
    }
    assert!(on.detections > 1000, "the outbreak happened: {on:?}");
    let mut p = Params::new(agents, 1.0, 60, true);
    p.alerts_per_post = 1;
    let one_per_post = simulate(&p);
    eprintln!("one alert per POST: {one_per_post:?}");
    assert_eq!(one_per_post.detections, on.detections, "same detections");
    assert!(
        one_per_post.alert_posts_recovery >= 20 * on.alert_posts_recovery,
        "coalescing: {} POSTs after the outage vs {} one per alert",
        on.alert_posts_recovery,
        one_per_post.alert_posts_recovery
    );
    assert!(
        one_per_post.recovery.peak > 2 * on.recovery.peak,
        "without coalescing the outbreak is a herd: peak {} vs {}",
        one_per_post.recovery.peak,
        on.recovery.peak
    );
}
