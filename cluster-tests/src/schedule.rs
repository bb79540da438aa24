//! The faults of each scenario. One call injects one round of a scenario's fault: it
//! puts the fault in place, says when it was in place (the start of the unavailability
//! window), holds it for a seeded time, and undoes it.

use std::time::Duration;

use crate::history::{Nodes, Recorder};
use crate::probe::Probe;
use crate::Cluster;

/// The scenarios, by the name the command takes, with what one round does.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("leader-kill", "kill -9 of the leader, restarted after a while"),
    ("follower-kill", "kill -9 of a follower, restarted after a while"),
    ("leader-partition", "the leader cut off from every peer (it must not acknowledge anything), then healed"),
    ("minority-partition", "one follower cut off from every peer, then healed"),
    ("majority-partition", "the nodes split at random into a majority and a minority, the leader on either side, then healed"),
    ("leader-pause", "SIGSTOP of the leader for longer than an election, then SIGCONT"),
    ("rolling-restart", "every node in turn stopped gracefully and started again once the cluster has a leader"),
    ("slow-link", "every message to and from one node (the leader half the time) delayed by 2-15 ms each way, then restored"),
    ("full-disk", "one node's data directory (the leader half the time) filled to the last byte, then freed; a node that stopped meanwhile is started again, as a supervisor would (needs root: the data directories are tmpfs mounts)"),
    ("membership-change", "a follower cut off; a new node added and the cut-off one removed through the majority; healed; the removed node stopped"),
    ("leader-transfer", "leadership handed to a random follower through POST /api/2/cluster/leader on a random node; it must answer 200 naming the follower as leader, or 504 ClusterNodeNotCaughtUp (given up, nothing changed)"),
];

/// One injected fault: when it was in place, and what it was.
pub struct Injected {
    pub at: u64,
    pub what: String,
}

/// The harness's view of the run that faults may change (clients' and probes' nodes).
pub struct World<'a> {
    pub cluster: &'a mut Cluster,
    pub rec: &'a Recorder,
    pub nodes: &'a Nodes,
    pub probe: &'a mut Probe,
    pub rng: &'a mut fastrand::Rng,
}

/// One round of `scenario`; `None` when there is nothing to do it to (no leader).
pub fn inject(scenario: &str, w: &mut World<'_>) -> Result<Vec<Injected>, String> {
    let hold = Duration::from_millis(w.rng.u64(800..2500));
    let Some(leader) = w.cluster.leader(Duration::from_secs(10)) else {
        return Ok(Vec::new());
    };
    let live = w.cluster.live();
    let followers: Vec<usize> = live.iter().copied().filter(|i| *i != leader).collect();
    let Some(&follower) = followers.get(w.rng.usize(..followers.len().max(1))) else {
        return Err("a scenario needs at least two live nodes".into());
    };
    let c = &mut *w.cluster;
    let ids: Vec<u64> = c.members.iter().map(|m| m.id).collect();
    let id = |i: usize| ids[i];
    let one = |at: u64, what: String| Ok(vec![Injected { at, what }]);
    match scenario {
        "leader-kill" | "follower-kill" => {
            let (victim, role) = if scenario == "leader-kill" {
                (leader, "the leader")
            } else {
                (follower, "a follower")
            };
            let at = held(c, w.rec, hold, |c| c.kill9(victim), |c| c.spawn(victim));
            one(
                at,
                format!(
                    "kill -9 of {role} (node {}), restarted after {hold:?}",
                    id(victim)
                ),
            )
        }
        "leader-partition" | "minority-partition" => {
            let victim = if scenario == "leader-partition" {
                leader
            } else {
                follower
            };
            let at = held(c, w.rec, hold, |c| c.partition(&[victim]), |c| c.heal());
            one(at, format!("node {} cut off for {hold:?}", id(victim)))
        }
        "majority-partition" => {
            let mut shuffled = live.clone();
            w.rng.shuffle(&mut shuffled);
            let minority = &shuffled[..(live.len() - 1) / 2];
            let at = held(c, w.rec, hold, |c| c.partition(minority), |c| c.heal());
            let ids: Vec<u64> = minority.iter().map(|i| id(*i)).collect();
            let side = if minority.contains(&leader) {
                "with"
            } else {
                "without"
            };
            one(
                at,
                format!("minority {ids:?} ({side} the leader) cut off for {hold:?}"),
            )
        }
        "leader-pause" => {
            let pause = hold + Duration::from_millis(800);
            let at = held(c, w.rec, pause, |c| c.pause(leader), |c| c.resume(leader));
            one(
                at,
                format!("the leader (node {}) paused for {pause:?}", id(leader)),
            )
        }
        "slow-link" => {
            let victim = if w.rng.bool() { leader } else { follower };
            // Round trips up to 30 ms: slow for a LAN, within what the default
            // election_timeout (200 ms: heartbeats, and so replication round trips,
            // bounded by 50 ms) is made for. Slower links need a longer timeout.
            let delay = Duration::from_millis(w.rng.u64(2..16));
            let at = held(c, w.rec, hold, |c| c.slow(victim, delay), |c| c.heal());
            one(
                at,
                format!(
                    "node {}'s links slowed by {delay:?} for {hold:?}",
                    id(victim)
                ),
            )
        }
        "rolling-restart" => {
            let mut done = Vec::new();
            for i in live {
                let at = w.rec.now();
                c.stop(i);
                c.spawn(i);
                if c.leader(Duration::from_secs(20)).is_none() {
                    return Err(format!("no leader after restarting node {}", id(i)));
                }
                let role = if i == leader {
                    "the leader"
                } else {
                    "a follower"
                };
                done.push(Injected {
                    at,
                    what: format!("graceful restart of node {} ({role})", id(i)),
                });
            }
            Ok(done)
        }
        "full-disk" => {
            let victim = if w.rng.bool() { leader } else { follower };
            let data = c.members[victim].dir.join("data");
            let fill = |_: &mut Cluster| crate::faults::fill(&data);
            let at = held(c, w.rec, hold, fill, |_| crate::faults::unfill(&data));
            // A node that ran into the full disk stops (at its next append, which may
            // come just after the space is back): wait until it has either stopped or
            // serves, and start it again if it stopped, as its supervisor would.
            let http = c.members[victim].http;
            let mut stopped = false;
            crate::eventually(Duration::from_secs(5), || {
                stopped = c.exited(victim);
                stopped || crate::call(http, "GET", "/api/2/cluster", "").is_ok_and(|r| r.0 == 200)
            });
            if stopped {
                c.spawn(victim);
            }
            let role = if victim == leader {
                "the leader"
            } else {
                "a follower"
            };
            let after = if stopped {
                "it had stopped and was started again"
            } else {
                "it kept running"
            };
            one(
                at,
                format!(
                    "node {}'s disk ({role}) full for {hold:?}; {after}",
                    id(victim)
                ),
            )
        }
        "membership-change" => membership_change(w, leader, follower, hold),
        "leader-transfer" => {
            let via = live[w.rng.usize(..live.len())];
            let body = format!("{{\"id\": {}}}", id(follower));
            let at = w.rec.now();
            let r = c.call(via, "POST", "/api/2/cluster/leader", &body);
            let what = format!(
                "leadership handed from node {} to node {} through node {} ({})",
                id(leader),
                id(follower),
                id(via),
                status(&r)
            );
            let named = r.as_ref().ok().and_then(|(s, b)| {
                let v: serde_json::Value = serde_json::from_str(b).ok()?;
                (*s == 200 && v["role"] == "leader").then(|| v["id"].as_u64())?
            });
            // A handover given up before the follower was asked to stand (it did not
            // match the log in time, say on a loaded machine) changed nothing, and says
            // so; anything else than that or success is a failure.
            let refused = matches!(&r, Ok((504, b)) if b.contains("ClusterNodeNotCaughtUp"));
            if named != Some(id(follower)) && !refused {
                return Err(format!("{what}: {r:?}"));
            }
            std::thread::sleep(hold);
            one(at, what)
        }
        other => Err(format!("unknown scenario {other:?}")),
    }
}

/// Puts a fault in place with `apply`, holds it for `hold`, and undoes it with `undo`;
/// returns when it was in place (the start of the unavailability window).
fn held(
    c: &mut Cluster,
    rec: &Recorder,
    hold: Duration,
    apply: impl FnOnce(&mut Cluster),
    undo: impl FnOnce(&mut Cluster),
) -> u64 {
    apply(c);
    let at = rec.now();
    std::thread::sleep(hold);
    undo(c);
    at
}

/// Cuts `follower` off, adds a new node and removes `follower` through the majority,
/// heals, and stops the removed node: a membership change during a partition.
fn membership_change(
    w: &mut World<'_>,
    leader: usize,
    follower: usize,
    hold: Duration,
) -> Result<Vec<Injected>, String> {
    let c = &mut *w.cluster;
    let gone = c.members[follower].id;
    c.partition(&[follower]);
    let at = w.rec.now();
    let new = c.start_new_member();
    let (new_id, dial, http) = (c.members[new].id, c.members[new].dial, c.members[new].http);
    let body = format!("{{\"id\":{new_id},\"address\":\"{dial}\",\"voter\":true}}");
    let added = c.call(leader, "POST", "/api/2/cluster/nodes", &body);
    let removed = c.call(
        leader,
        "DELETE",
        &format!("/api/2/cluster/nodes/{gone}"),
        "",
    );
    std::thread::sleep(hold);
    c.heal();
    let (old_http, what) = (c.members[follower].http, format!(
        "node {gone} cut off; node {new_id} added ({}) and node {gone} removed ({}) through node {}",
        status(&added),
        status(&removed),
        c.members[leader].id
    ));
    if !matches!(added, Ok((201, _))) || !matches!(removed, Ok((200, _))) {
        return Err(format!("{what}: {added:?} {removed:?}"));
    }
    c.kill9(follower);
    w.nodes.remove(old_http);
    w.nodes.add(http);
    w.probe.add(http);
    Ok(vec![Injected { at, what }])
}

fn status(r: &Result<(u16, String), String>) -> String {
    match r {
        Ok((s, _)) => s.to_string(),
        Err(e) => e.clone(),
    }
}
