//! `linear::check` against Porcupine's test data (tests/data/porcupine):
//! Jepsen's etcd register logs and the kv logs, each with the verdict
//! Porcupine's own tests give it; and a generated 10,000-operation kv
//! history. Run with `--release -- --nocapture` for the timings.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tandem::consistency::models::{KvInput, KvModel, KvOutput, Register, RegisterInput, RegisterOutput};
use tandem::consistency::{linear, Budget, Call, Model, Verdict};

/// The etcd logs Porcupine's tests find linearizable; the others (000 to
/// 102, but 095, empty: the cluster did not start) are not.
const LINEARIZABLE_ETCD_LOGS: [u32; 23] =
    [2, 5, 7, 18, 25, 31, 38, 45, 48, 49, 51, 53, 56, 67, 75, 76, 80, 87, 92, 98, 100, 101, 102];

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/porcupine").join(path)
}

/// Invocations waiting for their completion, by process.
struct Pending(std::collections::HashMap<u64, usize>);

impl Pending {
    fn invoke<I, O>(&mut self, calls: &mut Vec<Call<I, O>>, process: u64, input: I, time: u64) {
        let id = calls.len() as u64;
        calls.push(Call { id, client: process, input, invoked: time, returned: None, output: None });
        self.0.insert(process, calls.len() - 1);
    }

    fn complete<I, O>(&mut self, calls: &mut [Call<I, O>], process: u64, output: Option<O>, time: u64) {
        let index = self.0.remove(&process).unwrap_or_else(|| panic!("process {process} completes nothing"));
        calls[index].returned = Some(time);
        calls[index].output = output;
    }
}

/// A Jepsen etcd log (Porcupine's `parseJepsenLog`): a register with read,
/// write and cas; times are line numbers. A read that timed out returned
/// nothing known; an operation that never completed (`:info`) has an
/// unknown fate.
fn parse_etcd(path: &Path) -> Vec<Call<RegisterInput, RegisterOutput>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut calls = Vec::new();
    let mut pending = Pending(Default::default());
    for (time, line) in text.lines().enumerate() {
        let time = time as u64;
        let words: Vec<&str> = line.split_whitespace().collect();
        let [_, "jepsen.util", "-", process, kind, f, args @ ..] = words.as_slice() else { continue };
        let process: u64 = process.parse().unwrap();
        let number = |word: &str| word.trim_matches(['[', ']']).parse::<u64>().unwrap();
        match (*kind, *f, args) {
            (":invoke", ":read", _) => pending.invoke(&mut calls, process, RegisterInput::Read, time),
            (":invoke", ":write", [value]) => {
                pending.invoke(&mut calls, process, RegisterInput::Write(number(value)), time)
            }
            (":invoke", ":cas", [from, to]) => {
                let input = RegisterInput::Cas { from: number(from), to: number(to) };
                pending.invoke(&mut calls, process, input, time)
            }
            (":ok", ":read", ["nil"]) => pending.complete(&mut calls, process, Some(RegisterOutput::Read(None)), time),
            (":ok", ":read", [value]) => {
                pending.complete(&mut calls, process, Some(RegisterOutput::Read(Some(number(value)))), time)
            }
            (":ok", ":write", _) => pending.complete(&mut calls, process, Some(RegisterOutput::Ok), time),
            (":ok" | ":fail", ":cas", _) => {
                pending.complete(&mut calls, process, Some(RegisterOutput::Cas(*kind == ":ok")), time)
            }
            (":fail", ":read", [":timed-out"]) => pending.complete(&mut calls, process, None, time),
            (":info", _, _) => {}
            other => panic!("{}: unexpected line {other:?}", path.display()),
        }
    }
    calls
}

/// A kv log (Porcupine's `parseKvLog`): get, put and append; times are line
/// numbers. Nothing puts or appends an empty string, so a get of "" is
/// exactly an absent key.
fn parse_kv(path: &Path) -> Vec<Call<KvInput, KvOutput>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut calls = Vec::new();
    let mut pending = Pending(Default::default());
    for (time, line) in text.lines().enumerate() {
        let time = time as u64;
        let field = |name: &str| {
            let start = line.find(name).unwrap_or_else(|| panic!("no {name} in {line}")) + name.len();
            let rest = &line[start..];
            &rest[..rest.find([',', '}']).unwrap()]
        };
        let process: u64 = field(":process ").parse().unwrap();
        let key = field(":key ").trim_matches('"').to_string();
        // The value runs to the closing brace (it may hold spaces).
        let value = &line[line.find(":value ").unwrap() + ":value ".len()..line.len() - 1];
        let value = value.trim_matches('"').to_string();
        match (field(":type "), field(":f ")) {
            (":invoke", ":get") => pending.invoke(&mut calls, process, KvInput::Get(key), time),
            (":invoke", ":put" | ":append") => {
                assert!(!value.is_empty(), "{line}");
                let input = if field(":f ") == ":put" { KvInput::Put(key, value) } else { KvInput::Append(key, value) };
                pending.invoke(&mut calls, process, input, time)
            }
            (":ok", ":get") => {
                let read = KvOutput::Value(Some(value).filter(|value| !value.is_empty()));
                pending.complete(&mut calls, process, Some(read), time)
            }
            (":ok", _) => pending.complete(&mut calls, process, Some(KvOutput::Ok), time),
            other => panic!("{}: unexpected line {other:?}", path.display()),
        }
    }
    calls
}

/// Checks `calls`, asserts the verdict, and that a counterexample is a
/// violated history on its own; returns the time the check took.
fn check_expecting<M: Model>(
    model: &M,
    calls: &[Call<M::Input, M::Output>],
    linearizable: bool,
    name: &str,
) -> Duration {
    let started = Instant::now();
    let verdict = linear::check(model, calls, Budget::default());
    let took = started.elapsed();
    match verdict {
        Verdict::Consistent => assert!(linearizable, "{name}: Porcupine finds it not linearizable"),
        Verdict::Violated(counterexample) => {
            assert!(!linearizable, "{name}: Porcupine finds it linearizable, we found {counterexample:?}");
            let alone: Vec<_> = calls.iter().filter(|call| counterexample.calls.contains(&call.id)).cloned().collect();
            assert_eq!(alone.len(), counterexample.calls.len(), "{name}: {counterexample:?}");
            let again = linear::check(model, &alone, Budget::default());
            assert!(matches!(again, Verdict::Violated(_)), "{name}: the counterexample alone is {again:?}");
        }
        Verdict::Unknown(why) => panic!("{name}: {why}"),
    }
    took
}

/// "min / median / max" of `times`, in milliseconds.
fn spread(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |time: Duration| format!("{:.3} ms", time.as_secs_f64() * 1e3);
    format!("min {} / median {} / max {}", ms(times[0]), ms(times[times.len() / 2]), ms(times[times.len() - 1]))
}

#[test]
fn etcd_logs_get_porcupines_verdicts() {
    let mut times = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    for log in (0..=102).filter(|&log| log != 95) {
        let name = format!("jepsen/etcd_{log:03}.log");
        let calls = parse_etcd(&data(&name));
        assert!(calls.len() > 50, "{name}");
        let took = check_expecting(&Register::default(), &calls, LINEARIZABLE_ETCD_LOGS.contains(&log), &name);
        slowest = slowest.max((took, name));
        times.push(took);
    }
    eprintln!("etcd logs ({} files): {}; slowest {}", times.len(), spread(&mut times), slowest.1);
}

#[test]
fn kv_logs_get_porcupines_verdicts() {
    for clients in ["c01", "c10", "c50"] {
        for (verdict, linearizable) in [("ok", true), ("bad", false)] {
            let name = format!("kv/{clients}-{verdict}.txt");
            let calls = parse_kv(&data(&name));
            let took = check_expecting(&KvModel, &calls, linearizable, &name);
            eprintln!("{name} ({} calls): {:.3} ms", calls.len(), took.as_secs_f64() * 1e3);
        }
    }
}

/// A seeded xorshift64*: deterministic, and enough for a workload.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

/// `operations` calls of `clients` clients on `keys` keys of a sequential
/// map: each client invokes one call at a time, calls of different clients
/// overlap, and each takes effect at a random point of its interval.
fn generated_kv(operations: u64, clients: u64, keys: u64, seed: u64) -> Vec<Call<KvInput, KvOutput>> {
    let mut rng = Rng(seed);
    let mut client_time = vec![0; clients as usize];
    // (point of effect, call)
    let mut calls = Vec::new();
    for id in 0..operations {
        let client = rng.below(clients);
        let invoked = client_time[client as usize] + rng.below(20);
        let returned = invoked + 1 + rng.below(50);
        client_time[client as usize] = returned + 1;
        let key = rng.below(keys).to_string();
        let input = match rng.below(4) {
            0 => KvInput::Put(key, format!("p{id}")),
            1 => KvInput::Append(key, format!("a{id}")),
            _ => KvInput::Get(key),
        };
        let point = invoked + rng.below(returned - invoked + 1);
        calls.push((point, Call { id, client, input, invoked, returned: Some(returned), output: None }));
    }
    calls.sort_by_key(|(point, call)| (*point, call.id));
    let mut map = std::collections::BTreeMap::new();
    let mut calls: Vec<_> = calls
        .into_iter()
        .map(|(_, mut call)| {
            call.output = Some(match &call.input {
                KvInput::Get(key) => KvOutput::Value(map.get(key).cloned()),
                KvInput::Put(key, value) => {
                    map.insert(key.clone(), value.clone());
                    KvOutput::Ok
                }
                KvInput::Append(key, value) => {
                    map.entry(key.clone()).or_insert_with(String::new).push_str(value);
                    KvOutput::Ok
                }
                KvInput::Delete(key) => {
                    map.remove(key);
                    KvOutput::Ok
                }
            });
            call
        })
        .collect();
    calls.sort_by_key(|call| call.id);
    calls
}

#[test]
fn a_generated_ten_thousand_call_kv_history_is_consistent() {
    let calls = generated_kv(10_000, 8, 30, 0x5eed);
    let started = Instant::now();
    assert_eq!(linear::check(&KvModel, &calls, Budget::default()), Verdict::Consistent);
    eprintln!(
        "generated kv history (10,000 calls, 8 clients, 30 keys): {:.3} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    // The last get of a key written before it began, made to read nothing.
    let mut stale = calls;
    let last_get = stale
        .iter()
        .rposition(|call| matches!(call.output, Some(KvOutput::Value(Some(_)))))
        .expect("some get reads a value");
    stale[last_get].output = Some(KvOutput::Value(None));
    let started = Instant::now();
    let Verdict::Violated(counterexample) = linear::check(&KvModel, &stale, Budget::default()) else {
        panic!("a read of an absent key after it was written");
    };
    eprintln!(
        "the same with one stale get ({} calls in the counterexample): {:.3} ms",
        counterexample.calls.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    assert!(counterexample.calls.contains(&(last_get as u64)), "{counterexample:?}");
}
