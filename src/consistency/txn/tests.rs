use std::time::Instant;

use super::*;

fn txn(id: u64, outcome: Outcome, ops: Vec<Mop>) -> Txn {
    Txn { id, client: id, invoked: 10 * id, returned: Some(10 * id + 5), outcome, ops }
}

fn ok(id: u64, ops: Vec<Mop>) -> Txn {
    txn(id, Outcome::Committed, ops)
}

fn found(txns: &[Txn]) -> Vec<Found> {
    anomalies(txns, Budget::default()).expect("well-formed")
}

/// The kinds found, and the transactions of each.
fn summary(txns: &[Txn]) -> Vec<(Anomaly, Vec<u64>)> {
    found(txns).into_iter().map(|f| (f.anomaly, f.txns)).collect()
}

#[test]
fn serializable_list_append_is_consistent() {
    let history = [
        ok(1, vec![Mop::append("x", 1)]),
        ok(2, vec![Mop::read("x", [1]), Mop::append("y", 1)]),
        ok(3, vec![Mop::read("x", [1]), Mop::read("y", [1]), Mop::append("x", 2)]),
        ok(4, vec![Mop::read("x", [1, 2]), Mop::read("y", [1])]),
        txn(5, Outcome::Aborted, vec![Mop::append("y", 2)]),
    ];
    assert_eq!(check(&history, Budget::default()), Verdict::Consistent);
}

#[test]
fn g0_write_cycle() {
    let history = [
        ok(1, vec![Mop::append("x", 1), Mop::append("y", 1)]),
        ok(2, vec![Mop::append("x", 2), Mop::append("y", 2)]),
        ok(3, vec![Mop::read("x", [1, 2]), Mop::read("y", [2, 1])]),
    ];
    let found = found(&history);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].detail,
        "G0 (write cycle): T1 -ww-> T2 -ww-> T1\n  \
         T2 appended 2 to \"x\" after T1 appended 1 (ww)\n  \
         T1 appended 1 to \"y\" after T2 appended 2 (ww)"
    );
    let Verdict::Violated(why) = check(&history, Budget::default()) else { panic!("G0 is a violation") };
    assert_eq!(why.calls, [1, 2]);
}

#[test]
fn g1a_aborted_read() {
    let history = [
        txn(1, Outcome::Aborted, vec![Mop::append("x", 1), Mop::append("y", 1)]),
        ok(2, vec![Mop::read("x", [1]), Mop::read("y", [])]),
    ];
    // The aborted writer is no vertex: no read skew through it.
    assert_eq!(summary(&history), [(Anomaly::G1a, vec![2, 1])]);
}

#[test]
fn g1b_intermediate_read() {
    let history = [ok(1, vec![Mop::append("x", 1), Mop::append("x", 2)]), ok(2, vec![Mop::read("x", [1])])];
    let found = found(&history);
    assert_eq!((found[0].anomaly, &found[0].txns[..]), (Anomaly::G1b, &[2, 1][..]));
    assert_eq!(
        found[0].detail,
        r#"G1b (intermediate read): T2 read "x" = [1], but T1 appended 1 and then more to "x""#
    );
    // Reading half of T1 also puts T2 both after and before it.
    assert_eq!(found[1].anomaly, Anomaly::GSingle);
    let Verdict::Violated(why) = check(&history, Budget::default()) else { panic!("G1b is a violation") };
    assert_eq!(why.calls, [1, 2]);
    assert!(why.detail.starts_with("G1b") && why.detail.ends_with("\n(and 1 more: 1 G-single)"), "{}", why.detail);
}

#[test]
fn g1c_cyclic_information_flow() {
    let history =
        [ok(1, vec![Mop::append("x", 1), Mop::read("y", [1])]), ok(2, vec![Mop::append("y", 1), Mop::read("x", [1])])];
    let found = found(&history);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].detail,
        "G1c (cyclic information flow): T1 -wr-> T2 -wr-> T1\n  \
         T2 read \"x\" = [1] which ended with T1's append of 1 (wr)\n  \
         T1 read \"y\" = [1] which ended with T2's append of 1 (wr)"
    );
}

#[test]
fn g_single_read_skew() {
    let history =
        [ok(1, vec![Mop::append("x", 1), Mop::append("y", 1)]), ok(2, vec![Mop::read("x", [1]), Mop::read("y", [])])];
    let found = found(&history);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].detail,
        "G-single (read skew): T2 -rw-> T1 -wr-> T2\n  \
         T2 read \"y\" = [] which did not include T1's append of 1 (rw)\n  \
         T2 read \"x\" = [1] which ended with T1's append of 1 (wr)"
    );
}

#[test]
fn g2_write_skew() {
    let history = [
        ok(1, vec![Mop::read("x", []), Mop::read("y", []), Mop::append("x", 1)]),
        ok(2, vec![Mop::read("x", []), Mop::read("y", []), Mop::append("y", 2)]),
    ];
    assert_eq!(summary(&history), [(Anomaly::G2, vec![1, 2])]);
}

#[test]
fn g2_needs_two_anti_dependencies_in_one_simple_cycle() {
    // Two read skews share T2: T1 -rw-> T2 -wr-> T1 and T2 -rw-> T3 -wr-> T2.
    // The walk T1 -rw-> T2 -rw-> T3 -wr-> T2 -wr-> T1 has two
    // anti-dependencies but passes T2 twice, and no simple cycle has two:
    // no G2.
    let history = [
        ok(1, vec![Mop::read("x", []), Mop::read("y", [2])]),
        ok(2, vec![Mop::append("x", 1), Mop::append("y", 2), Mop::read("z", []), Mop::read("w", [3])]),
        ok(3, vec![Mop::append("z", 1), Mop::append("w", 3)]),
    ];
    let kinds: Vec<Anomaly> = found(&history).iter().map(|f| f.anomaly).collect();
    assert_eq!(kinds, [Anomaly::GSingle]);
}

#[test]
fn incompatible_order() {
    let history = [
        ok(1, vec![Mop::append("x", 1)]),
        ok(2, vec![Mop::append("x", 2)]),
        ok(3, vec![Mop::read("x", [1, 2])]),
        ok(4, vec![Mop::read("x", [2])]),
    ];
    let found = found(&history);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].txns, [4, 3]);
    assert_eq!(
        found[0].detail,
        "incompatible-order (no single order of appends): T4 read \"x\" = [2] and T3 read [1, 2]; \
         neither is a prefix of the other"
    );
}

#[test]
fn unknown_transaction_whose_write_is_read_committed() {
    let history = [
        txn(1, Outcome::Unknown, vec![Mop::append("x", 1), Mop::append("y", 1)]),
        ok(2, vec![Mop::read("x", [1]), Mop::read("y", [])]),
    ];
    assert_eq!(summary(&history), [(Anomaly::GSingle, vec![2, 1])]);
}

#[test]
fn unknown_transactions_read_by_counted_ones_count_too() {
    // T3 read T2's append, so T2 committed; T2 read T1's, so T1 did too.
    let history = [
        txn(1, Outcome::Unknown, vec![Mop::append("x", 1), Mop::append("z", 1)]),
        txn(2, Outcome::Unknown, vec![Mop::read("x", [1]), Mop::append("y", 1)]),
        ok(3, vec![Mop::read("y", [1]), Mop::read("z", [])]),
    ];
    assert_eq!(summary(&history), [(Anomaly::GSingle, vec![3, 1, 2])]);
}

#[test]
fn unknown_transaction_nobody_read_is_left_out() {
    // Had T1 committed, this would be write skew; nothing shows it did.
    let history = [
        txn(1, Outcome::Unknown, vec![Mop::read("y", []), Mop::append("x", 1)]),
        ok(2, vec![Mop::read("x", []), Mop::append("y", 1)]),
    ];
    assert_eq!(check(&history, Budget::default()), Verdict::Consistent);
}

#[test]
fn register_g1a() {
    let history = [txn(1, Outcome::Aborted, vec![Mop::write("x", 1)]), ok(2, vec![Mop::read_register("x", Some(1))])];
    let found = found(&history);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].detail, r#"G1a (aborted read): T2 read "x" = 1, but T1, which aborted, wrote 1"#);
}

#[test]
fn register_g1c() {
    let history = [
        ok(1, vec![Mop::write("x", 1), Mop::read_register("y", Some(2))]),
        ok(2, vec![Mop::write("y", 2), Mop::read_register("x", Some(1))]),
    ];
    assert_eq!(summary(&history), [(Anomaly::G1c, vec![1, 2])]);
}

#[test]
fn register_g_single_through_an_unknown_writer() {
    let history = [
        txn(1, Outcome::Unknown, vec![Mop::write("x", 1), Mop::write("y", 1)]),
        ok(2, vec![Mop::read_register("x", Some(1)), Mop::read_register("y", None)]),
    ];
    let found = found(&history);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].detail,
        "G-single (read skew): T2 -rw-> T1 -wr-> T2\n  \
         T2 read \"y\" = nil, the initial value, which T1 overwrote with 1 (rw)\n  \
         T2 read \"x\" = 1 which T1 wrote (wr)"
    );
}

#[test]
fn register_lost_update_from_reads_then_writes() {
    // Both read T1's 1 and overwrote it: each overwrote what the other read.
    let history = [
        ok(1, vec![Mop::write("x", 1)]),
        ok(2, vec![Mop::read_register("x", Some(1)), Mop::write("x", 2)]),
        ok(3, vec![Mop::read_register("x", Some(1)), Mop::write("x", 3)]),
    ];
    let found = found(&history);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].detail,
        "G2 (anti-dependency cycle): T2 -rw-> T3 -rw-> T2\n  \
         T2 read \"x\" = 1, which T3 overwrote with 3 after reading it (rw)\n  \
         T3 read \"x\" = 1, which T2 overwrote with 2 after reading it (rw)"
    );
}

#[test]
fn malformed_histories_are_unknown() {
    let twice = [ok(1, vec![Mop::append("x", 1)]), ok(2, vec![Mop::append("x", 1)])];
    assert_eq!(
        check(&twice, Budget::default()),
        Verdict::Unknown(r#"malformed history: 1 is written to "x" twice (T2); values must be unique"#.into())
    );
    let both = [ok(1, vec![Mop::append("x", 1), Mop::write("x", 2)])];
    assert!(matches!(check(&both, Budget::default()), Verdict::Unknown(_)));
}

#[test]
fn out_of_budget_still_reports_a_cycle() {
    let history = [
        ok(1, vec![Mop::read("x", []), Mop::read("y", []), Mop::append("x", 1)]),
        ok(2, vec![Mop::read("x", []), Mop::read("y", []), Mop::append("y", 2)]),
    ];
    let Verdict::Violated(why) = check(&history, Budget { steps: 0, time: None }) else { panic!("a cycle") };
    assert!(why.detail.starts_with("G2 (anti-dependency cycle): T1 -rw-> T2 -rw-> T1"), "{}", why.detail);
    assert!(why.detail.contains("budget ran out"), "{}", why.detail);
}

/// A seeded generator (splitmix64).
pub(super) fn random(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A serial execution of `n` transactions of four micro-operations each
/// over lists that retire after 32 appends (as Elle's generator does).
fn serial_appends(n: u64, seed: u64) -> Vec<Txn> {
    let mut random = random(seed);
    let mut lists: Vec<Vec<u64>> = vec![Vec::new(); 16];
    let mut active: Vec<usize> = (0..16).collect();
    (0..n)
        .map(|id| {
            let ops = (0..4)
                .map(|_| {
                    let r = random();
                    let slot = (r % 16) as usize;
                    let key = active[slot];
                    if r & 16 == 0 {
                        return Mop::read(format!("k{key}"), lists[key].clone());
                    }
                    let value = lists[key].len() as u64 + 1;
                    lists[key].push(value);
                    if value == 32 {
                        active[slot] = lists.len();
                        lists.push(Vec::new());
                    }
                    Mop::append(format!("k{key}"), value)
                })
                .collect();
            ok(id, ops)
        })
        .collect()
}

/// A serial execution of `n` transactions over four lists and four
/// registers. A tenth abort and a fifth end unknown; those take effect or
/// not (half each), and keep only their writes, as their reads are unknown.
fn serial_mixed(n: u64, seed: u64) -> Vec<Txn> {
    let mut random = random(seed);
    let mut lists: Vec<Vec<u64>> = vec![Vec::new(); 4];
    let mut registers: Vec<Option<u64>> = vec![None; 4];
    let mut next_value = 0;
    (0..n)
        .map(|id| {
            let outcome = match random() % 10 {
                0 => Outcome::Aborted,
                1 | 2 => Outcome::Unknown,
                _ => Outcome::Committed,
            };
            let takes_effect = outcome == Outcome::Committed || (outcome == Outcome::Unknown && random() % 2 == 0);
            let (lists_before, registers_before) = (lists.clone(), registers.clone());
            let mut ops = Vec::new();
            for _ in 0..4 {
                let r = random();
                let key = (r % 4) as usize;
                next_value += 1;
                let mop = match (r >> 8) % 4 {
                    0 => Mop::read(format!("l{key}"), lists[key].clone()),
                    1 => {
                        lists[key].push(next_value);
                        Mop::append(format!("l{key}"), next_value)
                    }
                    2 => Mop::read_register(format!("r{key}"), registers[key]),
                    _ => {
                        registers[key] = Some(next_value);
                        Mop::write(format!("r{key}"), next_value)
                    }
                };
                if outcome != Outcome::Unknown || matches!(mop, Mop::Append { .. } | Mop::Write { .. }) {
                    ops.push(mop);
                }
            }
            if !takes_effect {
                (lists, registers) = (lists_before, registers_before);
            }
            txn(id, outcome, ops)
        })
        .collect()
}

#[test]
fn serial_executions_are_consistent() {
    for seed in 0..20 {
        let history = serial_mixed(300, seed);
        assert_eq!(check(&history, Budget::default()), Verdict::Consistent, "seed {seed}");
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "release-only timing")]
fn hundred_thousand_serializable_appends() {
    let history = serial_appends(100_000, 7);
    let started = Instant::now();
    let verdict = check(&history, Budget::default());
    let took = started.elapsed();
    println!("100,000 list-append transactions checked in {took:?}");
    assert_eq!(verdict, Verdict::Consistent);
    assert!(took.as_secs_f64() < 2.0, "{took:?}");
}

#[test]
fn results_depend_on_the_history_alone() {
    let mut history = serial_appends(300, 3);
    // Break it: an early transaction reads all that will ever be appended
    // to k0.
    let appends = history.iter().flat_map(|t| &t.ops).filter(|m| matches!(m, Mop::Append { key, .. } if key == "k0"));
    let everything: Vec<u64> = (1..=appends.count() as u64).collect();
    history[10].ops.push(Mop::read("k0", everything));
    let found = found(&history);
    assert!(!found.is_empty());
    // A map iterated in a random order would show here.
    assert_eq!(Ok(found), anomalies(&history, Budget::default()));
}
