//! Linearizable histories made to order, for benchmarks and for tests of
//! checkers: `tandem bench --section checker` times [`kv_history`].
//!
//! ```
//! use tandem::consistency::{generate, linear, models::KvModel, Budget, Verdict};
//! let calls = generate::kv_history(1_000, 4, 10, 7);
//! assert_eq!(linear::check(&KvModel, &calls, Budget::default()), Verdict::Consistent);
//! ```

use super::models::{KvInput, KvOutput};
use super::Call;

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

/// A linearizable history: `operations` calls of `clients` clients on `keys` keys of a sequential
/// map: each client invokes one call at a time, calls of different clients
/// overlap, and each takes effect at a point of its interval drawn from `seed`.
pub fn kv_history(operations: u64, clients: u64, keys: u64, seed: u64) -> Vec<Call<KvInput, KvOutput>> {
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
