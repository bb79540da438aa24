//! A linearizability checker for a history of keyval operations, one register per key,
//! with the keyvals API's semantics. Keys are independent (every operation names one), so
//! each key's history is checked on its own.
//!
//! The model, per key (`None` = absent):
//! - `Add(v)` (POST): absent → `v`, answered `Ok`; present → unchanged, answered `Exists`
//!   (409).
//! - `Set(v)` (PATCH): present → `v`, `Ok`; absent → unchanged, `Missing` (404).
//! - `Delete` (PATCH `null`): present → absent, `Ok`; absent → `Missing`.
//! - `Read` (GET): answers the value.
//!
//! An operation whose outcome the client does not know (a timeout, a 504, a connection
//! cut after sending) is `Unknown`: it may have taken effect at any point after its
//! invocation, or never. It is checked as an operation that returns at infinity and
//! whose answer is not compared: the search may place it anywhere after its call,
//! including after everything else, which is the same as never. An operation that
//! certainly did not take effect (503, connection refused) is not part of the history.
//!
//! The search is Wing and Gong's, with Lowe's memoization of (linearized set, state), as
//! in Knossos and Porcupine: it finds an order of the operations that respects real time
//! (an operation that returned before another was invoked comes first) and in which every
//! answer is the model's, or shows there is none.

use std::collections::{BTreeMap, HashSet};

/// What an operation asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Kind {
    Add(String),
    Set(String),
    Delete,
    Read,
}

/// What the client was told.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A write applied (201 / 204).
    Ok,
    /// POST of a key that existed (409).
    Exists,
    /// PATCH of a key that did not exist (404).
    Missing,
    /// A read's answer: the value, or `None` for 404 `KeyvalKeyNotFound`.
    Value(Option<String>),
    /// Nobody knows (timeout, 504, connection lost after sending).
    Unknown,
}

/// One client operation. Times are any monotonic clock (e.g. nanoseconds since the run
/// began); `ret` is `None` when the client never got an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub client: u32,
    pub key: String,
    pub kind: Kind,
    pub call: u64,
    pub ret: Option<u64>,
    pub outcome: Outcome,
}

/// The model's step: the state after `op` from `state`, or `None` when the answer the
/// client got is not what the model answers.
fn step(state: &Option<String>, op: &Op) -> Option<Option<String>> {
    let unknown = op.outcome == Outcome::Unknown;
    match (&op.kind, state) {
        (Kind::Add(v), None) => (unknown || op.outcome == Outcome::Ok).then(|| Some(v.clone())),
        (Kind::Add(_), Some(_)) => {
            (unknown || op.outcome == Outcome::Exists).then(|| state.clone())
        }
        (Kind::Set(v), Some(_)) => (unknown || op.outcome == Outcome::Ok).then(|| Some(v.clone())),
        (Kind::Set(_), None) => (unknown || op.outcome == Outcome::Missing).then_some(None),
        (Kind::Delete, Some(_)) => (unknown || op.outcome == Outcome::Ok).then_some(None),
        (Kind::Delete, None) => (unknown || op.outcome == Outcome::Missing).then_some(None),
        (Kind::Read, s) => match &op.outcome {
            Outcome::Unknown => Some(s.clone()),
            Outcome::Value(v) => (v == s).then(|| s.clone()),
            _ => None,
        },
    }
}

/// The verdict for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order explains the history. `at` is the operation the search could never get
    /// past (the earliest-returning one it failed to place), for the report.
    NotLinearizable {
        key: String,
        at: Op,
    },
}

/// Checks every key of `history`; the first key that is not linearizable, if any.
pub fn check(history: &[Op]) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        // A read whose answer nobody saw constrains nothing.
        if op.kind == Kind::Read && op.outcome == Outcome::Unknown {
            continue;
        }
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    for (key, ops) in by_key {
        if let Err(at) = check_key(&ops) {
            return Verdict::NotLinearizable {
                key: key.to_string(),
                at: at.clone(),
            };
        }
    }
    Verdict::Linearizable
}

#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
}

/// Wing–Gong–Lowe over one key's operations, on a doubly linked list of call and return
/// events in time order (calls before returns at equal times: such operations count as
/// concurrent). Returns the operation it could not place.
fn check_key<'a>(ops: &[&'a Op]) -> Result<(), &'a Op> {
    let n = ops.len();
    let mut events: Vec<(u64, u8, Event)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        events.push((
            op.call,
            0,
            Event {
                op: i,
                is_call: true,
            },
        ));
        events.push((
            op.ret.unwrap_or(u64::MAX),
            1,
            Event {
                op: i,
                is_call: false,
            },
        ));
    }
    events.sort_by_key(|e| (e.0, e.1));
    let len = events.len();
    // A circular list through the sentinel slot `len`: next[len] is the first event.
    let mut next: Vec<usize> = (1..=len).chain([0]).collect();
    let mut prev: Vec<usize> = [len].into_iter().chain(0..len).collect();
    let mut call_at = vec![0; n];
    let mut ret_at = vec![0; n];
    for (pos, e) in events.iter().enumerate() {
        if e.2.is_call {
            call_at[e.2.op] = pos;
        } else {
            ret_at[e.2.op] = pos;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = b;
        prev[b] = a;
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = p;
        prev[b] = p;
    };

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut memo: HashSet<(Vec<u64>, Option<String>)> = HashSet::new();
    let mut state: Option<String> = None;
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    let mut cur = next[len];
    let mut stuck: Option<usize> = None;
    while next[len] != len {
        if cur == len {
            // Only reachable when every remaining event was tried from here.
            let Some((op, old)) = stack.pop() else {
                return Err(ops[stuck.unwrap_or(0)]);
            };
            state = old;
            linearized[op / 64] &= !(1 << (op % 64));
            relink(&mut next, &mut prev, ret_at[op]);
            relink(&mut next, &mut prev, call_at[op]);
            cur = next[call_at[op]];
            continue;
        }
        let e = events[cur].2;
        if e.is_call {
            let op = e.op;
            if let Some(after) = step(&state, ops[op]) {
                let mut lin = linearized.clone();
                lin[op / 64] |= 1 << (op % 64);
                if memo.insert((lin.clone(), after.clone())) {
                    stack.push((op, std::mem::replace(&mut state, after)));
                    linearized = lin;
                    unlink(&mut next, &mut prev, call_at[op]);
                    unlink(&mut next, &mut prev, ret_at[op]);
                    cur = next[len];
                    continue;
                }
            }
            cur = next[cur];
        } else {
            // A return reached before its operation was placed: back up.
            if stuck.is_none_or(|s| ops[e.op].ret < ops[s].ret) {
                stuck = Some(e.op);
            }
            let Some((op, old)) = stack.pop() else {
                return Err(ops[stuck.unwrap_or(e.op)]);
            };
            state = old;
            linearized[op / 64] &= !(1 << (op % 64));
            relink(&mut next, &mut prev, ret_at[op]);
            relink(&mut next, &mut prev, call_at[op]);
            cur = next[call_at[op]];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u32, kind: Kind, call: u64, ret: Option<u64>, outcome: Outcome) -> Op {
        Op {
            client,
            key: "k".into(),
            kind,
            call,
            ret,
            outcome,
        }
    }

    fn add(c: u32, v: &str, call: u64, ret: u64, o: Outcome) -> Op {
        op(c, Kind::Add(v.into()), call, Some(ret), o)
    }

    fn set(c: u32, v: &str, call: u64, ret: u64, o: Outcome) -> Op {
        op(c, Kind::Set(v.into()), call, Some(ret), o)
    }

    fn read(c: u32, v: Option<&str>, call: u64, ret: u64) -> Op {
        op(
            c,
            Kind::Read,
            call,
            Some(ret),
            Outcome::Value(v.map(String::from)),
        )
    }

    fn bad(h: &[Op]) -> bool {
        matches!(check(h), Verdict::NotLinearizable { .. })
    }

    #[test]
    fn sequential_and_concurrent_histories_that_are_fine() {
        let h = [
            add(1, "a", 0, 1, Outcome::Ok),
            read(2, Some("a"), 2, 3),
            set(1, "b", 4, 5, Outcome::Ok),
            read(2, Some("b"), 6, 7),
            op(1, Kind::Delete, 8, Some(9), Outcome::Ok),
            read(2, None, 10, 11),
            set(1, "c", 12, 13, Outcome::Missing),
        ];
        assert_eq!(check(&h), Verdict::Linearizable);
        // Concurrent writes: a read during both may see either, and later reads agree.
        let h = [
            add(1, "a", 0, 10, Outcome::Ok),
            add(2, "b", 0, 10, Outcome::Exists),
            read(3, Some("a"), 5, 6),
            read(3, Some("a"), 11, 12),
        ];
        assert_eq!(check(&h), Verdict::Linearizable);
    }

    #[test]
    fn an_unknown_write_may_apply_late_or_never() {
        let late = [
            op(1, Kind::Add("a".into()), 0, None, Outcome::Unknown),
            read(2, None, 5, 6),
            read(2, Some("a"), 20, 21),
        ];
        assert_eq!(check(&late), Verdict::Linearizable);
        let never = [
            op(1, Kind::Set("x".into()), 0, Some(3), Outcome::Unknown),
            read(2, None, 5, 6),
        ];
        assert_eq!(check(&never), Verdict::Linearizable);
        // ...but never before it was invoked.
        let early = [
            read(2, Some("a"), 0, 1),
            op(1, Kind::Add("a".into()), 5, None, Outcome::Unknown),
        ];
        assert!(bad(&early));
    }

    #[test]
    fn a_stale_read_is_flagged() {
        let h = [
            add(1, "a", 0, 1, Outcome::Ok),
            set(1, "b", 2, 3, Outcome::Ok),
            read(2, Some("a"), 4, 5),
        ];
        assert!(bad(&h));
    }

    #[test]
    fn a_lost_acknowledged_write_is_flagged() {
        let h = [add(1, "a", 0, 1, Outcome::Ok), read(2, None, 10, 11)];
        assert!(bad(&h));
    }

    #[test]
    fn a_value_nobody_wrote_is_flagged() {
        let h = [add(1, "a", 0, 1, Outcome::Ok), read(2, Some("z"), 2, 3)];
        assert!(bad(&h));
    }

    #[test]
    fn a_write_acknowledged_by_a_stale_leader_is_flagged() {
        // Client 1's PATCH was acknowledged by an old leader that had lost its majority;
        // the new leader's history never had it: a later read sees the value before it.
        let h = [
            add(1, "a", 0, 1, Outcome::Ok),
            set(1, "b", 2, 3, Outcome::Ok),
            set(2, "c", 4, 5, Outcome::Ok),
            read(3, Some("c"), 6, 7),
            read(3, Some("a"), 8, 9),
        ];
        assert!(bad(&h));
        // Two POSTs of one absent key both acknowledged: only one can have been first.
        let h = [
            add(1, "a", 0, 1, Outcome::Ok),
            add(2, "b", 2, 3, Outcome::Ok),
        ];
        assert!(bad(&h));
    }

    #[test]
    fn keys_are_checked_apart_and_the_verdict_names_the_key() {
        let mut other = add(1, "a", 0, 1, Outcome::Ok);
        other.key = "other".into();
        let h = [other, read(2, Some("a"), 2, 3)];
        match check(&h) {
            Verdict::NotLinearizable { key, .. } => assert_eq!(key, "k"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_long_history_with_many_concurrent_clients_checks_quickly() {
        // 8 clients, 2,000 overlapping operations on one key, generated by running the
        // model itself in a random sequential order inside overlapping windows.
        let mut rng = fastrand::Rng::with_seed(7);
        let mut state: Option<String> = None;
        let mut h = Vec::new();
        for i in 0..2000u64 {
            let kind = match rng.u8(0..4) {
                0 => Kind::Add(format!("v{i}")),
                1 => Kind::Set(format!("v{i}")),
                2 => Kind::Delete,
                _ => Kind::Read,
            };
            let mut o = op((i % 8) as u32, kind, i * 10, Some(i * 10 + 5), Outcome::Ok);
            let before = state.clone();
            o.outcome = match (&o.kind, &before) {
                (Kind::Read, s) => Outcome::Value(s.clone()),
                (Kind::Add(_), Some(_)) => Outcome::Exists,
                (Kind::Set(_) | Kind::Delete, None) => Outcome::Missing,
                _ => Outcome::Ok,
            };
            state = step(&before, &o).expect("the model accepts its own answer");
            // Stretch calls back so that neighbours overlap.
            o.call = o.call.saturating_sub(rng.u64(0..25));
            h.push(o);
        }
        let t = std::time::Instant::now();
        assert_eq!(check(&h), Verdict::Linearizable);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        // One read in the middle answers a value nobody wrote: found, and quickly.
        let i = h
            .iter()
            .position(|o| o.kind == Kind::Read && o.call > 10_000)
            .expect("a read");
        h[i].outcome = Outcome::Value(Some("nobody".into()));
        let t = std::time::Instant::now();
        assert!(bad(&h));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }
}
