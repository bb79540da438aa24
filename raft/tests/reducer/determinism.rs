use raftgate_raft::state::SNAPSHOT_FORMAT;
use raftgate_raft::{
    Applied, Command, Entry, KeyType, Rejected, Request, ServerChanges, ServerKey, ServerSpec,
    SnapshotError, State, UpstreamRef, ZoneRef,
};

use crate::Log;

/// xorshift64: a seeded, dependency-free source of test sequences.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const KEYS: &[&str] = &["k0", "k1", "k2", "k3", "k4", "k5", "", "k/long"];
const IP_KEYS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.3",
    "::1",
    "bad",
    "0.0.0.0/0",
];
const SESSIONS: &[&str] = &["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];
const ADDRS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.2:80",
    "10.0.0.3",
    "10.0.0.4",
    "10.0.0.5:81",
    "bad addr",
];

fn zones() -> [ZoneRef; 3] {
    [
        ZoneRef::http("kv"),
        ZoneRef::stream("kv"),
        ZoneRef::http("prefix"),
    ]
}

struct Gen {
    rng: Rng,
    now: u64,
    serials: [u64; 3],
}

impl Gen {
    fn time(&mut self) -> u64 {
        self.now += self.rng.below(4000);
        if self.rng.chance(10) {
            // A leader whose clock is behind.
            self.now.saturating_sub(5000)
        } else {
            self.now
        }
    }

    fn command(&mut self) -> Command {
        let r = &mut self.rng;
        let zone = zones()[r.below(3) as usize].clone();
        let key = |r: &mut Rng, z: &ZoneRef| {
            if *z == ZoneRef::stream("kv") {
                r.pick(IP_KEYS).to_string()
            } else {
                r.pick(KEYS).to_string()
            }
        };
        let up = if r.chance(80) {
            UpstreamRef::http("u")
        } else {
            UpstreamRef::stream("t")
        };
        let addr = |r: &mut Rng, u: &UpstreamRef| {
            let a = r.pick(ADDRS);
            if u.name == "t" && !a.contains(':') {
                format!("{a}:5432")
            } else {
                a.to_string()
            }
        };
        match self.rng.below(15) {
            0 => {
                let key_type = [KeyType::String, KeyType::Ip, KeyType::Prefix]
                    [if zone == ZoneRef::stream("kv") { 1 } else { 0 }];
                Command::ConfigureKeyvalZone {
                    zone,
                    capacity_bytes: 300 + self.rng.below(800),
                    timeout_ms: self.rng.chance(70).then(|| 10_000 + self.rng.below(20_000)),
                    key_type,
                }
            }
            1 | 2 => {
                let n = 1 + self.rng.below(3) * u64::from(self.rng.chance(20));
                let pairs = (0..n)
                    .map(|i| (key(&mut self.rng, &zone), format!("v{i}")))
                    .collect();
                Command::KeyvalAdd {
                    zone,
                    pairs,
                    now_ms: self.time(),
                }
            }
            3 => Command::KeyvalSet {
                key: key(&mut self.rng, &zone),
                value: "x".repeat(self.rng.below(40) as usize),
                zone,
                now_ms: self.time(),
            },
            4 => Command::KeyvalDelete {
                key: key(&mut self.rng, &zone),
                zone,
            },
            5 if self.rng.chance(20) => Command::KeyvalClear { zone },
            5 => Command::ConfigureStickyZone {
                zone: "s".into(),
                capacity_bytes: 256 * (1 + self.rng.below(6)),
                timeout_ms: 15_000 + self.rng.below(30_000),
            },
            6 | 7 => Command::StickyLearn {
                zone: if self.rng.chance(95) { "s" } else { "none" }.into(),
                session: self.rng.pick(SESSIONS).into(),
                server: ServerKey {
                    upstream: "u".into(),
                    server: self.rng.pick(ADDRS).into(),
                },
                now_ms: self.time(),
            },
            8 => Command::StickyTouch {
                zone: "s".into(),
                sessions: (0..self.rng.below(4))
                    .map(|_| self.rng.pick(SESSIONS).to_string())
                    .collect(),
                now_ms: self.time(),
            },
            9 => {
                let servers = (0..self.rng.below(5))
                    .map(|_| {
                        let mut s = ServerSpec::new(addr(&mut self.rng, &up));
                        s.backup = up.name == "u" && self.rng.chance(20);
                        s.weight = 1 + self.rng.below(3) as u32;
                        s
                    })
                    .collect();
                Command::ConfigureUpstream {
                    upstream: up,
                    servers,
                }
            }
            10 => {
                let mut spec = ServerSpec::new(addr(&mut self.rng, &up));
                spec.backup = self.rng.chance(20);
                spec.weight = self.rng.below(3) as u32;
                Command::ServerAdd { upstream: up, spec }
            }
            11 => {
                let changes = ServerChanges {
                    weight: self.rng.chance(50).then(|| self.rng.below(4) as u32),
                    down: self.rng.chance(30).then(|| self.rng.chance(50)),
                    server: self.rng.chance(20).then(|| addr(&mut self.rng, &up)),
                    route: self
                        .rng
                        .chance(10)
                        .then(|| "r".repeat(self.rng.below(40) as usize)),
                    backup: self.rng.chance(10).then(|| self.rng.chance(50)),
                    ..Default::default()
                };
                Command::ServerPatch {
                    upstream: up,
                    id: self.rng.below(12),
                    changes,
                }
            }
            12 => Command::ServerRemove {
                upstream: up,
                id: self.rng.below(12),
            },
            _ => Command::Expire {
                now_ms: self.time(),
            },
        }
    }

    fn entry(&mut self) -> Entry {
        let command = self.command();
        if !self.rng.chance(40) {
            return Entry::Command(command);
        }
        let client = self.rng.below(3) as usize;
        if self.rng.chance(85) {
            self.serials[client] += 1;
        }
        // Sometimes a retry of an earlier serial (possibly with another command body: the
        // reducer must answer from the table, not from the body).
        let serial = self.serials[client].saturating_sub(self.rng.below(3));
        Entry::Request(Request {
            client: client as u128 + 1,
            serial,
            command,
        })
    }
}

fn log(seed: u64, len: usize) -> Vec<Entry> {
    let mut g = Gen {
        rng: Rng(seed),
        now: 1_000_000,
        serials: [0; 3],
    };
    (0..len).map(|_| g.entry()).collect()
}

#[test]
fn pseudo_random_logs_give_identical_states_and_snapshots() {
    for seed in [1, 0x9e37_79b9_7f4a_7c15, 42, 7_777_777] {
        let entries = log(seed, 3000);
        let (mut a, mut b) = (State::new(), State::new());
        let mut restored: Option<State> = None;
        let (mut ok, mut rejected) = (0, 0);
        for (i, e) in entries.into_iter().enumerate() {
            let index = i as u64 + 1;
            let ra = a.apply(index, e.clone());
            let rb = b.apply(index, e.clone());
            assert_eq!(ra, rb, "seed {seed}, entry {index}");
            if let Some(c) = restored.as_mut() {
                assert_eq!(
                    c.apply(index, e),
                    ra,
                    "seed {seed}, restored, entry {index}"
                );
            }
            match ra {
                Ok(_) => ok += 1,
                Err(_) => rejected += 1,
            }
            if index.is_multiple_of(500) {
                let sa = a.snapshot().expect("encode");
                assert_eq!(sa, b.snapshot().expect("encode"), "seed {seed} at {index}");
                let decoded = State::from_snapshot(&sa).expect("decode");
                // Equality covers the indexes kept incrementally, which decoding rebuilds
                // from scratch.
                assert_eq!(decoded, a, "seed {seed} at {index}");
                assert_eq!(decoded.snapshot().expect("encode"), sa);
                if index == 1500 {
                    restored = Some(decoded);
                }
            }
        }
        let end = a.snapshot().expect("encode");
        assert_eq!(end, b.snapshot().expect("encode"));
        assert_eq!(restored.expect("restored").snapshot().expect("encode"), end);
        // The generator exercises both outcomes, or this test would prove little.
        assert!(
            ok > 500 && rejected > 300,
            "seed {seed}: {ok} ok, {rejected} rejected"
        );
    }
}

#[test]
fn snapshot_depends_on_contents_not_history() {
    let zone = ZoneRef::http("z");
    let configure = Command::ConfigureKeyvalZone {
        zone: zone.clone(),
        capacity_bytes: 10_000,
        timeout_ms: Some(1000),
        key_type: KeyType::String,
    };
    let add = |k: &str| Command::KeyvalAdd {
        zone: zone.clone(),
        pairs: vec![(k.into(), "v".into())],
        now_ms: 5,
    };
    let mut a = Log::new();
    a.ok(configure.clone());
    a.ok(add("a"));
    a.ok(add("b"));
    let mut b = Log::new();
    b.ok(configure);
    b.ok(add("b"));
    b.ok(add("x"));
    b.ok(add("a"));
    b.ok(Command::KeyvalDelete {
        zone: zone.clone(),
        key: "x".into(),
    });
    assert_eq!(a.snap(), b.snap());
}

#[test]
fn snapshot_format_is_checked() {
    let mut log = Log::new();
    log.ok(Command::ConfigureStickyZone {
        zone: "s".into(),
        capacity_bytes: 1024,
        timeout_ms: 1,
    });
    let snap = log.snap();
    assert_eq!(snap[0], SNAPSHOT_FORMAT);
    assert!(matches!(
        State::from_snapshot(&[]),
        Err(SnapshotError::Empty)
    ));
    let mut other = snap.clone();
    other[0] = SNAPSHOT_FORMAT + 1;
    assert!(matches!(
        State::from_snapshot(&other),
        Err(SnapshotError::UnknownFormat(v)) if v == SNAPSHOT_FORMAT + 1
    ));
    assert!(matches!(
        State::from_snapshot(&snap[..snap.len() - 1]),
        Err(SnapshotError::Codec(_))
    ));
    let mut trailing = snap.clone();
    trailing.push(0);
    assert!(State::from_snapshot(&trailing).is_err());
    assert_eq!(State::from_snapshot(&snap).expect("decode"), log.state);
}

#[test]
fn entries_and_outcomes_round_trip_through_bincode() {
    let entry = Entry::Request(Request {
        client: u128::MAX - 1,
        serial: 9,
        command: Command::ServerPatch {
            upstream: UpstreamRef::stream("t"),
            id: 3,
            changes: ServerChanges {
                route: Some(String::new()),
                ..Default::default()
            },
        },
    });
    let bytes = bincode::serialize(&entry).expect("encode");
    assert_eq!(
        bincode::deserialize::<Entry>(&bytes).expect("decode"),
        entry
    );
    let outcome: Result<Applied, Rejected> = Err(Rejected::KeyExists { key: "k".into() });
    let bytes = bincode::serialize(&outcome).expect("encode");
    let back: Result<Applied, Rejected> = bincode::deserialize(&bytes).expect("decode");
    assert_eq!(back, outcome);
}
