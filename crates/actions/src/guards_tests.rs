#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Each guard on its own, with time given explicitly.

use super::*;
use crate::config::{Dur, GuardsConfig, RateConfig};

const M: i64 = 60_000;

fn admit(g: &mut PolicyGuards, cfg: &GuardsConfig, t: &str, now: i64) -> Result<(), Suppression> {
    g.admit(cfg, t, now, &Facts::default(), false, 0)
}

#[test]
fn rate_limits_per_sliding_window_and_trips() {
    let cfg = GuardsConfig {
        rate: Some(RateConfig {
            limit: 2,
            window: Dur(10 * M),
        }),
        ..Default::default()
    };
    let mut g = PolicyGuards::default();
    admit(&mut g, &cfg, "a", 0).unwrap();
    admit(&mut g, &cfg, "b", M).unwrap();
    let e = admit(&mut g, &cfg, "c", 2 * M).unwrap_err();
    assert_eq!(e.guard, Guard::Rate);
    assert!(e.reason.contains("rate limit 2 per 10m"), "{}", e.reason);
    // Tripped: even after the window has moved on, nothing runs until a reset.
    let e = admit(&mut g, &cfg, "d", 30 * M).unwrap_err();
    assert_eq!(e.guard, Guard::Tripped);
    assert!(e.reason.contains("policy tripped by rate"), "{}", e.reason);
    assert_eq!(g.reset().map(|t| t.guard), Some(Guard::Rate));
    admit(&mut g, &cfg, "d", 30 * M).unwrap();
}

#[test]
fn trip_reset_clears_the_trip_after_its_time() {
    let cfg = GuardsConfig {
        max_targets: Some(1),
        ..Default::default()
    };
    let mut g = PolicyGuards::default();
    g.admit(&cfg, "a", 0, &Facts::default(), false, 5 * M)
        .unwrap();
    let e = g
        .admit(&cfg, "b", M, &Facts::default(), false, 5 * M)
        .unwrap_err();
    assert_eq!(e.guard, Guard::MaxTargets);
    assert_eq!(g.trip().unwrap().reset_at_ms, 6 * M);
    assert!(!g.auto_reset(6 * M - 1));
    assert!(g.auto_reset(6 * M));
    assert!(g.trip().is_none());
}

#[test]
fn cooldown_is_per_target_and_does_not_trip() {
    let cfg = GuardsConfig {
        cooldown: Some(Dur(10 * M)),
        ..Default::default()
    };
    let mut g = PolicyGuards::default();
    admit(&mut g, &cfg, "a", 0).unwrap();
    admit(&mut g, &cfg, "b", M).unwrap();
    let e = admit(&mut g, &cfg, "a", 9 * M).unwrap_err();
    assert_eq!(e.guard, Guard::Cooldown);
    assert!(g.trip().is_none());
    admit(&mut g, &cfg, "a", 10 * M + 1).unwrap();
}

#[test]
fn max_targets_counts_distinct_targets_in_the_window() {
    let cfg = GuardsConfig {
        max_targets: Some(2),
        window: Some(Dur(10 * M)),
        ..Default::default()
    };
    let mut g = PolicyGuards::default();
    admit(&mut g, &cfg, "a", 0).unwrap();
    admit(&mut g, &cfg, "a", M).unwrap();
    admit(&mut g, &cfg, "b", 2 * M).unwrap();
    // Same targets again: still two.
    admit(&mut g, &cfg, "b", 3 * M).unwrap();
    assert_eq!(
        admit(&mut g, &cfg, "c", 4 * M).unwrap_err().guard,
        Guard::MaxTargets
    );
}

#[test]
fn max_fraction_bounds_the_blast_radius_and_refuses_an_unknown_fleet() {
    let cfg = GuardsConfig {
        max_fraction: Some(0.01),
        fleet_size: Some("count(up)".into()),
        ..Default::default()
    };
    let fleet = |n: f64| Facts {
        fleet: Some(Ok(n)),
        ..Default::default()
    };
    let mut g = PolicyGuards::default();
    for i in 0..5 {
        g.admit(&cfg, &format!("vm{i}"), i, &fleet(500.0), false, 0)
            .unwrap();
    }
    let e = g
        .admit(&cfg, "vm5", 10, &fleet(500.0), false, 0)
        .unwrap_err();
    assert_eq!(e.guard, Guard::MaxFraction);
    assert!(e.reason.contains("1% of a fleet of 500"), "{}", e.reason);

    let mut g = PolicyGuards::default();
    let unknown = Facts {
        fleet: Some(Err("query returned nothing".into())),
        ..Default::default()
    };
    let e = g.admit(&cfg, "vm0", 0, &unknown, false, 0).unwrap_err();
    assert_eq!(e.guard, Guard::MaxFraction);
    assert!(e.reason.contains("query returned nothing"));
    let e = PolicyGuards::default()
        .admit(&cfg, "vm0", 0, &fleet(0.0), false, 0)
        .unwrap_err();
    assert_eq!(e.guard, Guard::MaxFraction);
}

#[test]
fn min_age_leaves_young_and_unknown_targets_alone() {
    let cfg = GuardsConfig {
        min_age: Some(Dur(10 * M)),
        age: Some("up".into()),
        ..Default::default()
    };
    let age = |s: f64| Facts {
        age_s: Some(Ok(s)),
        ..Default::default()
    };
    let mut g = PolicyGuards::default();
    let e = g.admit(&cfg, "a", 0, &age(599.0), false, 0).unwrap_err();
    assert_eq!(e.guard, Guard::MinAge);
    assert!(g.trip().is_none());
    g.admit(&cfg, "a", 0, &age(600.0), false, 0).unwrap();
    let e = g
        .admit(&cfg, "b", 0, &Facts::default(), false, 0)
        .unwrap_err();
    assert_eq!(e.guard, Guard::MinAge);
}

#[test]
fn max_concurrent_counts_running_actions() {
    let cfg = GuardsConfig {
        max_concurrent: Some(2),
        ..Default::default()
    };
    let mut g = PolicyGuards::default();
    g.admit(&cfg, "a", 0, &Facts::default(), true, 0).unwrap();
    g.admit(&cfg, "b", 0, &Facts::default(), true, 0).unwrap();
    assert_eq!(g.in_flight(), 2);
    g.finished();
    g.admit(&cfg, "c", 0, &Facts::default(), true, 0).unwrap();
    let e = g
        .admit(&cfg, "d", 0, &Facts::default(), true, 0)
        .unwrap_err();
    assert_eq!(e.guard, Guard::MaxConcurrent);
    assert!(e.guard.trips());
}

#[test]
fn restored_history_counts_like_live_history() {
    let cfg = GuardsConfig {
        rate: Some(RateConfig {
            limit: 2,
            window: Dur(10 * M),
        }),
        cooldown: Some(Dur(30 * M)),
        ..Default::default()
    };
    let mut g = PolicyGuards::default();
    g.restore_ran(2 * M, "b");
    g.restore_ran(M, "a");
    g.finish_restore();
    assert_eq!(
        admit(&mut g, &cfg, "a", 3 * M).unwrap_err().guard,
        Guard::Cooldown
    );
    assert_eq!(
        admit(&mut g, &cfg, "c", 3 * M).unwrap_err().guard,
        Guard::Rate
    );
}
