use raftgate_raft::state::KEYVAL_ENTRY_OVERHEAD;
use raftgate_raft::{Applied, Command, KeyType, KeyvalFormat, Rejected, ZoneRef, ZoneUsage};

use crate::Log;

fn zone() -> ZoneRef {
    ZoneRef::http("one")
}

fn configure(
    zone: ZoneRef,
    capacity_bytes: u64,
    timeout_ms: Option<u64>,
    key_type: KeyType,
) -> Command {
    Command::ConfigureKeyvalZone {
        zone,
        capacity_bytes,
        timeout_ms,
        key_type,
    }
}

fn add(pairs: &[(&str, &str)], now_ms: u64) -> Command {
    Command::KeyvalAdd {
        zone: zone(),
        pairs: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        now_ms,
    }
}

fn set(key: &str, value: &str, now_ms: u64) -> Command {
    Command::KeyvalSet {
        zone: zone(),
        key: key.into(),
        value: value.into(),
        now_ms,
    }
}

fn delete(key: &str) -> Command {
    Command::KeyvalDelete {
        zone: zone(),
        key: key.into(),
    }
}

fn entries(log: &Log, zone: &ZoneRef) -> Vec<(String, String)> {
    log.state
        .keyval_entries(zone)
        .expect("zone exists")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn cost(k: &str, v: &str) -> u64 {
    (k.len() + v.len()) as u64 + KEYVAL_ENTRY_OVERHEAD
}

struct Case {
    name: &'static str,
    /// Capacity of the zone `http/one`.
    capacity: u64,
    setup: Vec<Command>,
    cmd: Command,
    want: Result<Applied, Rejected>,
    after: &'static [(&'static str, &'static str)],
}

#[test]
fn every_keyval_command_and_rejection() {
    let unknown = ZoneRef::http("nope");
    let cases = vec![
        Case {
            name: "add one into empty zone",
            capacity: 10_000,
            setup: vec![],
            cmd: add(&[("a", "1")], 1),
            want: Ok(Applied::Done),
            after: &[("a", "1")],
        },
        Case {
            name: "add several into empty zone",
            capacity: 10_000,
            setup: vec![],
            cmd: add(&[("b", "2"), ("a", "1")], 1),
            want: Ok(Applied::Done),
            after: &[("a", "1"), ("b", "2")],
        },
        Case {
            name: "add one into non-empty zone",
            capacity: 10_000,
            setup: vec![add(&[("a", "1")], 1)],
            cmd: add(&[("b", "2")], 2),
            want: Ok(Applied::Done),
            after: &[("a", "1"), ("b", "2")],
        },
        Case {
            name: "several pairs into non-empty zone",
            capacity: 10_000,
            setup: vec![add(&[("a", "1")], 1)],
            cmd: add(&[("b", "2"), ("c", "3")], 2),
            want: Err(Rejected::KeyvalFormat(KeyvalFormat::OnlyOneKeyAdded)),
            after: &[("a", "1")],
        },
        Case {
            name: "add existing key",
            capacity: 10_000,
            setup: vec![add(&[("a", "1")], 1)],
            cmd: add(&[("a", "9")], 2),
            want: Err(Rejected::KeyExists { key: "a".into() }),
            after: &[("a", "1")],
        },
        Case {
            name: "add the same key twice in one body",
            capacity: 10_000,
            setup: vec![],
            cmd: add(&[("a", "1"), ("a", "2")], 1),
            want: Err(Rejected::KeyExists { key: "a".into() }),
            after: &[],
        },
        Case {
            name: "add without pairs",
            capacity: 10_000,
            setup: vec![],
            cmd: add(&[], 1),
            want: Err(Rejected::KeyvalFormat(KeyvalFormat::NoKey)),
            after: &[],
        },
        Case {
            name: "add empty key",
            capacity: 10_000,
            setup: vec![],
            cmd: add(&[("", "1")], 1),
            want: Err(Rejected::KeyvalFormat(KeyvalFormat::EmptyKey)),
            after: &[],
        },
        Case {
            name: "add into unknown zone",
            capacity: 10_000,
            setup: vec![],
            cmd: Command::KeyvalAdd {
                zone: unknown.clone(),
                pairs: vec![("a".into(), "1".into())],
                now_ms: 1,
            },
            want: Err(Rejected::UnknownZone {
                zone: unknown.clone(),
            }),
            after: &[],
        },
        Case {
            name: "stream zone of the same name is another namespace",
            capacity: 10_000,
            setup: vec![],
            cmd: Command::KeyvalAdd {
                zone: ZoneRef::stream("one"),
                pairs: vec![("a".into(), "1".into())],
                now_ms: 1,
            },
            want: Err(Rejected::UnknownZone {
                zone: ZoneRef::stream("one"),
            }),
            after: &[],
        },
        Case {
            name: "add filling the zone exactly",
            capacity: cost("a", "1") + cost("b", "2"),
            setup: vec![add(&[("a", "1")], 1)],
            cmd: add(&[("b", "2")], 2),
            want: Ok(Applied::Done),
            after: &[("a", "1"), ("b", "2")],
        },
        Case {
            name: "add into a full zone",
            capacity: cost("a", "1") + cost("b", "2") - 1,
            setup: vec![add(&[("a", "1")], 1)],
            cmd: add(&[("b", "2")], 2),
            want: Err(Rejected::ZoneFull { zone: zone() }),
            after: &[("a", "1")],
        },
        Case {
            name: "several pairs that do not fit add none",
            capacity: cost("a", "1") * 2,
            setup: vec![],
            cmd: add(&[("a", "1"), ("b", "2"), ("c", "3")], 1),
            want: Err(Rejected::ZoneFull { zone: zone() }),
            after: &[],
        },
        Case {
            name: "set existing key",
            capacity: 10_000,
            setup: vec![add(&[("a", "1")], 1)],
            cmd: set("a", "2", 2),
            want: Ok(Applied::Done),
            after: &[("a", "2")],
        },
        Case {
            name: "set missing key",
            capacity: 10_000,
            setup: vec![add(&[("a", "1")], 1)],
            cmd: set("b", "2", 2),
            want: Err(Rejected::KeyNotFound { key: "b".into() }),
            after: &[("a", "1")],
        },
        Case {
            name: "set in unknown zone",
            capacity: 10_000,
            setup: vec![],
            cmd: Command::KeyvalSet {
                zone: unknown.clone(),
                key: "a".into(),
                value: "1".into(),
                now_ms: 1,
            },
            want: Err(Rejected::UnknownZone {
                zone: unknown.clone(),
            }),
            after: &[],
        },
        Case {
            name: "set growing a value past capacity",
            capacity: cost("a", "1") + 1,
            setup: vec![add(&[("a", "1")], 1)],
            cmd: set("a", "123", 2),
            want: Err(Rejected::ZoneFull { zone: zone() }),
            after: &[("a", "1")],
        },
        Case {
            name: "set growing a value up to capacity",
            capacity: cost("a", "1") + 1,
            setup: vec![add(&[("a", "1")], 1)],
            cmd: set("a", "12", 2),
            want: Ok(Applied::Done),
            after: &[("a", "12")],
        },
        Case {
            name: "delete existing key",
            capacity: 10_000,
            setup: vec![add(&[("a", "1"), ("b", "2")], 1)],
            cmd: delete("a"),
            want: Ok(Applied::Done),
            after: &[("b", "2")],
        },
        Case {
            name: "delete missing key",
            capacity: 10_000,
            setup: vec![add(&[("a", "1")], 1)],
            cmd: delete("b"),
            want: Err(Rejected::KeyNotFound { key: "b".into() }),
            after: &[("a", "1")],
        },
        Case {
            name: "delete in unknown zone",
            capacity: 10_000,
            setup: vec![],
            cmd: Command::KeyvalDelete {
                zone: unknown.clone(),
                key: "a".into(),
            },
            want: Err(Rejected::UnknownZone {
                zone: unknown.clone(),
            }),
            after: &[],
        },
        Case {
            name: "clear a zone",
            capacity: 10_000,
            setup: vec![add(&[("a", "1"), ("b", "2")], 1)],
            cmd: Command::KeyvalClear { zone: zone() },
            want: Ok(Applied::Done),
            after: &[],
        },
        Case {
            name: "clear an empty zone",
            capacity: 10_000,
            setup: vec![],
            cmd: Command::KeyvalClear { zone: zone() },
            want: Ok(Applied::Done),
            after: &[],
        },
        Case {
            name: "clear unknown zone",
            capacity: 10_000,
            setup: vec![],
            cmd: Command::KeyvalClear {
                zone: unknown.clone(),
            },
            want: Err(Rejected::UnknownZone {
                zone: unknown.clone(),
            }),
            after: &[],
        },
    ];
    for case in cases {
        let mut log = Log::new();
        log.ok(configure(zone(), case.capacity, None, KeyType::String));
        for c in case.setup {
            log.ok(c);
        }
        let before = log.snap();
        let got = log.run(case.cmd);
        assert_eq!(got, case.want, "{}", case.name);
        if got.is_err() {
            assert_eq!(
                log.snap(),
                before,
                "{}: a rejection changes nothing",
                case.name
            );
        }
        let want: Vec<(String, String)> = case
            .after
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(entries(&log, &zone()), want, "{}", case.name);
    }
}

#[test]
fn usage_counts_key_value_and_overhead() {
    let mut log = Log::new();
    log.ok(configure(zone(), 4096, None, KeyType::String));
    log.ok(add(&[("alpha", "1"), ("b", "value")], 1));
    let want = ZoneUsage {
        capacity_bytes: 4096,
        used_bytes: 6 + 6 + 2 * KEYVAL_ENTRY_OVERHEAD,
        entries: 2,
    };
    assert_eq!(log.state.keyval_usage(&zone()), Some(want));
    assert_eq!(want.free_bytes(), 4096 - want.used_bytes);
    log.ok(set("b", "v", 2));
    log.ok(delete("alpha"));
    assert_eq!(
        log.state.keyval_usage(&zone()).map(|u| u.used_bytes),
        Some(2 + KEYVAL_ENTRY_OVERHEAD)
    );
    log.ok(Command::KeyvalClear { zone: zone() });
    assert_eq!(
        log.state.keyval_usage(&zone()).map(|u| u.used_bytes),
        Some(0)
    );
}

#[test]
fn expiry_is_due_exactly_timeout_after_the_last_write() {
    let mut log = Log::new();
    log.ok(configure(zone(), 10_000, Some(1000), KeyType::String));
    log.ok(add(&[("a", "1")], 5000));
    log.ok(Command::KeyvalAdd {
        zone: zone(),
        pairs: vec![("b".into(), "2".into())],
        now_ms: 5000,
    });
    log.ok(set("b", "3", 5500));
    // What the leader's expiry tick waits for: the first entry's due time.
    assert_eq!(log.state.next_expiry_ms(), Some(6000));

    let expired = log.ok(Command::Expire { now_ms: 5999 });
    assert_eq!(expired, Applied::Expired(Default::default()));
    assert_eq!(log.state.keyval_get(&zone(), "a"), Some("1"));

    // now == last write + timeout: due (inclusive boundary).
    match log.ok(Command::Expire { now_ms: 6000 }) {
        Applied::Expired(n) => assert_eq!(n.keyvals, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.state.keyval_get(&zone(), "a"), None);
    // `b` was rewritten at 5500: its timeout counts from then.
    assert_eq!(log.state.keyval_get(&zone(), "b"), Some("3"));
    assert_eq!(log.state.next_expiry_ms(), Some(6500));
    log.ok(Command::Expire { now_ms: 6499 });
    assert_eq!(log.state.keyval_get(&zone(), "b"), Some("3"));
    log.ok(Command::Expire { now_ms: 6500 });
    assert_eq!(log.state.keyval_get(&zone(), "b"), None);
    assert_eq!(log.state.next_expiry_ms(), None, "nothing left to expire");
}

#[test]
fn zones_without_timeout_never_expire_and_expire_spans_zones() {
    let mut log = Log::new();
    let stream = ZoneRef::stream("one");
    log.ok(configure(zone(), 10_000, None, KeyType::String));
    log.ok(configure(stream.clone(), 10_000, Some(10), KeyType::String));
    log.ok(configure(
        ZoneRef::http("two"),
        10_000,
        Some(10),
        KeyType::String,
    ));
    log.ok(add(&[("a", "1")], 0));
    for z in [stream.clone(), ZoneRef::http("two")] {
        log.ok(Command::KeyvalAdd {
            zone: z,
            pairs: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            now_ms: 0,
        });
    }
    match log.ok(Command::Expire { now_ms: u64::MAX }) {
        Applied::Expired(n) => assert_eq!(n.keyvals, 4),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.state.keyval_get(&zone(), "a"), Some("1"));
    assert_eq!(entries(&log, &stream), vec![]);
}

#[test]
fn log_time_never_runs_backwards() {
    let mut log = Log::new();
    log.ok(configure(zone(), 10_000, Some(1000), KeyType::String));
    log.ok(add(&[("a", "1")], 10_000));
    // A new leader with a clock behind: its time reads as the log's.
    log.ok(add(&[("b", "2")], 4_000));
    assert_eq!(log.state.log_time_ms(), 10_000);
    log.ok(Command::Expire { now_ms: 10_999 });
    assert_eq!(log.state.keyval_get(&zone(), "b"), Some("2"));
    log.ok(Command::Expire { now_ms: 11_000 });
    assert_eq!(log.state.keyval_get(&zone(), "b"), None);
    // A rejected command does not move the clock.
    assert!(log.run(add(&[("", "x")], 50_000)).is_err());
    assert_eq!(log.state.log_time_ms(), 11_000);
}

#[test]
fn reconfigure_keeps_keys_and_is_idempotent() {
    let mut log = Log::new();
    let cfg = configure(zone(), 10_000, None, KeyType::String);
    log.ok(cfg.clone());
    log.ok(add(&[("a", "1"), ("b", "22")], 0));
    let snap = log.snap();
    log.ok(cfg);
    assert_eq!(log.snap(), snap, "same config twice changes nothing");

    // Shrink below usage: keys stay, growth is refused, shrinking writes pass.
    log.ok(configure(zone(), 10, None, KeyType::String));
    assert_eq!(entries(&log, &zone()).len(), 2);
    let usage = log.state.keyval_usage(&zone()).expect("zone");
    assert!(usage.used_bytes > usage.capacity_bytes);
    assert_eq!(usage.free_bytes(), 0);
    assert_eq!(
        log.run(add(&[("c", "3")], 1)),
        Err(Rejected::ZoneFull { zone: zone() })
    );
    assert_eq!(
        log.run(set("a", "11", 1)),
        Err(Rejected::ZoneFull { zone: zone() })
    );
    log.ok(set("b", "2", 1));
    log.ok(set("b", "3", 1));
    log.ok(delete("a"));

    // A timeout added later applies to existing keys from their last write.
    log.ok(configure(zone(), 10_000, Some(100), KeyType::String));
    log.ok(Command::Expire { now_ms: 100 });
    assert_eq!(log.state.keyval_get(&zone(), "b"), Some("3"));
    log.ok(Command::Expire { now_ms: 101 });
    assert_eq!(log.state.keyval_get(&zone(), "b"), None);
    assert_eq!(
        log.state.keyval_zone_config(&zone()).map(|c| c.timeout_ms),
        Some(Some(100))
    );
}

#[test]
fn ip_zone_matches_longest_block() {
    let mut log = Log::new();
    log.ok(configure(zone(), 100_000, None, KeyType::Ip));
    for (k, v) in [
        ("10.0.0.0/8", "eight"),
        ("10.1.0.0/16", "sixteen"),
        ("10.1.2.3", "host"),
        ("192.168.1.77/24", "lan"),
        ("2001:db8::/32", "doc"),
        ("::1", "loop6"),
    ] {
        log.ok(add(&[(k, v)], 0));
    }
    let lookup = |log: &Log, k: &str| log.state.keyval_lookup(&zone(), k).map(str::to_string);
    assert_eq!(lookup(&log, "10.1.2.3").as_deref(), Some("host"));
    assert_eq!(lookup(&log, "10.1.2.4").as_deref(), Some("sixteen"));
    assert_eq!(lookup(&log, "10.200.0.1").as_deref(), Some("eight"));
    assert_eq!(lookup(&log, "192.168.1.5").as_deref(), Some("lan"));
    assert_eq!(lookup(&log, "2001:db8:1::5").as_deref(), Some("doc"));
    assert_eq!(lookup(&log, "::1").as_deref(), Some("loop6"));
    assert_eq!(lookup(&log, "11.0.0.1"), None);
    assert_eq!(lookup(&log, "not-an-ip"), None);
    // The API's exact read still sees keys as written.
    assert_eq!(
        log.state.keyval_get(&zone(), "10.1.0.0/16"),
        Some("sixteen")
    );

    log.ok(delete("10.1.2.3"));
    assert_eq!(lookup(&log, "10.1.2.3").as_deref(), Some("sixteen"));
    log.ok(add(&[("0.0.0.0/0", "any")], 0));
    assert_eq!(lookup(&log, "11.0.0.1").as_deref(), Some("any"));

    for bad in [
        "10.0.0.0/33",
        "example.com",
        "10.0.0.0/",
        "10.0.0.0/x",
        "::/129",
    ] {
        assert_eq!(
            log.run(add(&[(bad, "x")], 0)),
            Err(Rejected::KeyvalFormat(KeyvalFormat::BadIpKey)),
            "{bad}"
        );
    }
}

#[test]
fn prefix_zone_matches_longest_prefix() {
    let mut log = Log::new();
    log.ok(configure(zone(), 100_000, None, KeyType::Prefix));
    log.ok(add(&[("/api", "1")], 0));
    log.ok(add(&[("/api/v2", "2")], 0));
    log.ok(add(&[("/é", "3")], 0));
    let lookup = |log: &Log, k: &str| log.state.keyval_lookup(&zone(), k).map(str::to_string);
    assert_eq!(lookup(&log, "/api/v2/users").as_deref(), Some("2"));
    assert_eq!(lookup(&log, "/api/v1").as_deref(), Some("1"));
    assert_eq!(lookup(&log, "/api").as_deref(), Some("1"));
    assert_eq!(lookup(&log, "/ap"), None);
    assert_eq!(lookup(&log, "/éa").as_deref(), Some("3"));
    assert_eq!(lookup(&log, "/\u{e9}").as_deref(), Some("3"));
}

#[test]
fn string_zone_matches_exactly_and_retyping_reindexes() {
    let mut log = Log::new();
    log.ok(configure(zone(), 100_000, None, KeyType::String));
    log.ok(add(&[("10.0.0.0/8", "net"), ("Key", "v")], 0));
    assert_eq!(log.state.keyval_lookup(&zone(), "Key"), Some("v"));
    assert_eq!(
        log.state.keyval_lookup(&zone(), "key"),
        None,
        "matching is exact"
    );
    assert_eq!(log.state.keyval_lookup(&zone(), "10.0.0.1"), None);
    log.ok(configure(zone(), 100_000, None, KeyType::Ip));
    assert_eq!(log.state.keyval_lookup(&zone(), "10.0.0.1"), Some("net"));
    log.ok(configure(zone(), 100_000, None, KeyType::Prefix));
    assert_eq!(log.state.keyval_lookup(&zone(), "Keyhole"), Some("v"));
}
