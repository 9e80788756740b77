//! Linearizability checking: the Wing-Gong-Lowe search with Porcupine's
//! memoization (Lowe, "Testing for linearizability", 2017; Horn and
//! Kroening, "Faster linearizability checking via P-compositionality",
//! 2015; anishathalye/porcupine's `checker.go`).
//!
//! The calls of each partition are laid out as a doubly linked list of
//! invocation and return events in time order. The search repeatedly takes
//! the first call in the list whose step the model accepts, removes it (and
//! its return) from the list and starts over; reaching a return whose call
//! is still in the list means the calls taken so far cannot be followed by
//! anything, so it backtracks. A cache of (calls taken, state) pairs prunes
//! every configuration already explored.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::Instant;

use xxhash_rust::xxh3::Xxh3Default;

use super::{Budget, Call, Counterexample, Model, Verdict};

/// Whether `calls` are linearizable with respect to `model`: whether each
/// call can be given a point between its invocation and its return at which
/// it takes effect, so that the model, stepping through the calls in the
/// order of those points, returns every output.
///
/// Calls are checked per [`Model::partition`]: the partitions' searches
/// take turns in key order, a slice of steps each, and the first partition
/// found not linearizable gives the counterexample, shrunk to a small set
/// of its calls that is not linearizable on its own (so a hard partition
/// cannot hide an easy violation elsewhere).
///
/// A call with `returned: None` may take effect at any time after its
/// invocation, or never; a call with `output: None` may return anything. A
/// return before the invocation counts as at the invocation.
///
/// The verdict is a pure function of the inputs when `budget.time` is
/// `None`: the budget counts model steps, and the counterexample's shrinking
/// spends what the search left (each of its searches at most twice the
/// steps the violation took to find, plus 10,000).
///
/// ```
/// use tandem::consistency::{linear, Budget, Call, Model, Verdict};
///
/// /// A register holding a number, initially 0.
/// struct Register;
/// #[derive(Debug, Clone)]
/// enum Op { Read, Write(u64) }
/// impl Model for Register {
///     type State = u64;
///     type Input = Op;
///     type Output = u64;
///     fn init(&self) -> u64 { 0 }
///     fn step(&self, state: &u64, input: &Op, output: Option<&u64>) -> Option<u64> {
///         match input {
///             Op::Read => (output.is_none() || output == Some(state)).then_some(*state),
///             Op::Write(value) => Some(*value),
///         }
///     }
/// }
/// let call = |id, input, invoked, returned, output| Call { id, client: id, input, invoked, returned, output };
/// // The write returned before the read began, yet the read saw the old value.
/// let stale = [call(1, Op::Write(5), 0, Some(10), Some(0)), call(2, Op::Read, 20, Some(30), Some(0))];
/// assert!(matches!(linear::check(&Register, &stale, Budget::default()), Verdict::Violated(_)));
/// // Overlapping, the read may take effect first.
/// let overlapping = [call(1, Op::Write(5), 0, Some(25), Some(0)), call(2, Op::Read, 20, Some(30), Some(0))];
/// assert_eq!(linear::check(&Register, &overlapping, Budget::default()), Verdict::Consistent);
/// ```
pub fn check<M: Model>(model: &M, calls: &[Call<M::Input, M::Output>], budget: Budget) -> Verdict {
    let mut meter = Meter::new(budget);
    // A BTreeMap: partitions in key order, whatever the hash seed.
    let mut partitions: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
    for (index, call) in calls.iter().enumerate() {
        partitions.entry(model.partition(&call.input)).or_default().push(index);
    }
    let total = partitions.len();
    // The partitions take turns, a slice of steps each, so that one hard
    // partition cannot hide an easy violation in another (Porcupine searches
    // them in parallel and stops at the first violation found).
    let mut searches: Vec<(Option<String>, Search<M>)> = partitions
        .into_iter()
        .map(|(key, mut members)| {
            members.sort_by_key(|&index| (calls[index].invoked, index));
            (key, Search::new(model, calls, members, None))
        })
        .collect();
    let mut linearizable = 0;
    while !searches.is_empty() {
        let mut unfinished = Vec::with_capacity(searches.len());
        for (key, mut search) in searches {
            match search.advance(&mut meter, SLICE) {
                None => unfinished.push((key, search)),
                Some(Outcome::Linearizable) => linearizable += 1,
                Some(Outcome::Violated) => {
                    let cap = search.steps.saturating_mul(2).saturating_add(SHRINK_FLOOR);
                    return Verdict::Violated(counterexample(model, calls, &key, search.members, &mut meter, cap));
                }
                Some(Outcome::OutOfBudget) => {
                    let why = meter.why_out();
                    return Verdict::Unknown(format!(
                        "{why}, with {linearizable} of {total} partitions found linearizable"
                    ));
                }
            }
        }
        searches = unfinished;
    }
    Verdict::Consistent
}

/// Steps a partition's search takes before the next partition's turn.
const SLICE: u64 = 1024;

/// The search's spending against the budget.
struct Meter {
    steps: u64,
    budget: Budget,
    /// When `budget.time` runs out ([`Budget::deadline`]).
    deadline: Option<Instant>,
    timed_out: bool,
    /// A step count the current search may not pass, short of the budget.
    cap: u64,
}

/// How many steps pass between looks at the clock (the first step looks).
const CLOCK_EVERY: u64 = 4096;

impl Meter {
    fn new(budget: Budget) -> Meter {
        Meter { steps: 0, budget, deadline: budget.deadline(), timed_out: false, cap: u64::MAX }
    }

    /// Counts one step; false when the budget or the cap forbids it.
    fn tick(&mut self) -> bool {
        if self.spent() || self.steps >= self.cap {
            return false;
        }
        self.steps += 1;
        if let Some(deadline) = self.deadline {
            if self.steps % CLOCK_EVERY == 1 && Instant::now() >= deadline {
                self.timed_out = true;
                return false;
            }
        }
        true
    }

    /// Whether the whole budget is spent.
    fn spent(&self) -> bool {
        self.timed_out || self.steps >= self.budget.steps
    }

    fn why_out(&self) -> String {
        match self.budget.time {
            Some(time) if self.timed_out => format!("the time limit of {time:?} passed after {} steps", self.steps),
            _ => format!("the budget of {} search steps ran out", self.budget.steps),
        }
    }
}

/// What a search found.
enum Outcome {
    Linearizable,
    Violated,
    OutOfBudget,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// One event of the list: a call's invocation or its return.
struct Node {
    /// Position of the call in `members`.
    member: usize,
    /// For an invocation, its return's node (NIL when its fate is unknown).
    ret: usize,
    is_return: bool,
    prev: usize,
    next: usize,
}

/// The events of `members` in time order, behind a head sentinel (node 0).
/// At equal times invocations come first: calls that touch overlap. The
/// call at position `free`, if any, may take effect at any time (but must).
fn timeline<I, O>(calls: &[Call<I, O>], members: &[usize], free: Option<usize>) -> Vec<Node> {
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * members.len());
    for (member, &index) in members.iter().enumerate() {
        let call = &calls[index];
        let (invoked, returned) = match call.returned {
            Some(_) if free == Some(member) => (0, Some(u64::MAX)),
            returned => (call.invoked, returned.map(|returned| returned.max(call.invoked))),
        };
        events.push((invoked, false, member));
        if let Some(returned) = returned {
            events.push((returned, true, member));
        }
    }
    // Keys are distinct, so the order is fully determined.
    events.sort_unstable();
    let mut nodes = Vec::with_capacity(events.len() + 1);
    nodes.push(Node {
        member: NIL,
        ret: NIL,
        is_return: false,
        prev: NIL,
        next: if events.is_empty() { NIL } else { 1 },
    });
    let mut return_node = vec![NIL; members.len()];
    for (position, &(_, is_return, member)) in events.iter().enumerate() {
        let node = position + 1;
        if is_return {
            return_node[member] = node;
        }
        let next = if node < events.len() { node + 1 } else { NIL };
        nodes.push(Node { member, ret: NIL, is_return, prev: position, next });
    }
    for node in &mut nodes[1..] {
        if !node.is_return {
            node.ret = return_node[node.member];
        }
    }
    nodes
}

fn unlink(nodes: &mut [Node], node: usize) {
    let (prev, next) = (nodes[node].prev, nodes[node].next);
    nodes[prev].next = next;
    if next != NIL {
        nodes[next].prev = prev;
    }
}

fn relink(nodes: &mut [Node], node: usize) {
    let (prev, next) = (nodes[node].prev, nodes[node].next);
    nodes[prev].next = node;
    if next != NIL {
        nodes[next].prev = node;
    }
}

/// The set of calls taken so far, with a hash kept up to date as bits flip
/// (Zobrist hashing: each call has a random word, XORed in and out).
struct Taken {
    words: Vec<u64>,
    hash: u64,
}

impl Taken {
    fn new(len: usize) -> Taken {
        Taken { words: vec![0; len.div_ceil(64)], hash: 0 }
    }

    fn flip(&mut self, member: usize) {
        self.words[member / 64] ^= 1 << (member % 64);
        self.hash ^= splitmix64(member as u64);
    }
}

fn splitmix64(seed: u64) -> u64 {
    let mut x = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A search for a linearization of some calls, resumable: it runs in
/// slices of steps.
struct Search<'a, M: Model> {
    model: &'a M,
    calls: &'a [Call<M::Input, M::Output>],
    /// The calls searched: indices into `calls`, in invocation order.
    members: Vec<usize>,
    nodes: Vec<Node>,
    /// Calls that must still take effect; those of unknown fate need not.
    pending: usize,
    taken: Taken,
    /// The calls taken, each with the state before it: an explicit stack,
    /// so long histories cannot overflow the thread's.
    stack: Vec<(usize, M::State)>,
    /// Configurations already explored, by hash; only looked up, never
    /// iterated, so the hash seed cannot change the result.
    seen: Seen<M::State>,
    state: M::State,
    /// The next node to try.
    node: usize,
    /// Steps this search took.
    steps: u64,
    /// When tracked, the longest sequence of calls (positions in `members`)
    /// the search could order.
    longest: Option<Vec<usize>>,
}

impl<'a, M: Model> Search<'a, M> {
    /// A search over `members`, with the call at position `free` allowed to
    /// take effect at any time.
    fn new(model: &'a M, calls: &'a [Call<M::Input, M::Output>], members: Vec<usize>, free: Option<usize>) -> Self {
        let nodes = timeline(calls, &members, free);
        let pending = members.iter().filter(|&&index| calls[index].returned.is_some()).count();
        let taken = Taken::new(members.len());
        let seen = Seen::new(taken.words.len());
        let node = nodes[HEAD].next;
        let state = model.init();
        Search {
            model,
            calls,
            members,
            nodes,
            pending,
            taken,
            stack: Vec::new(),
            seen,
            state,
            node,
            steps: 0,
            longest: None,
        }
    }

    /// Runs to the end, or until `slice` more steps are taken (`None`).
    fn advance(&mut self, meter: &mut Meter, slice: u64) -> Option<Outcome> {
        let slice_end = meter.steps.saturating_add(slice);
        let nodes = &mut self.nodes;
        loop {
            if self.pending == 0 {
                return Some(Outcome::Linearizable);
            }
            let node = self.node;
            if node == NIL || nodes[node].is_return {
                // Nothing can come next: undo the last call taken and try
                // the calls after it.
                if let Some(longest) = &mut self.longest {
                    if self.stack.len() > longest.len() {
                        *longest = self.stack.iter().map(|&(taken, _)| nodes[taken].member).collect();
                    }
                }
                let Some((last, before)) = self.stack.pop() else { return Some(Outcome::Violated) };
                self.state = before;
                self.taken.flip(nodes[last].member);
                let ret = nodes[last].ret;
                if ret != NIL {
                    self.pending += 1;
                    relink(nodes, ret);
                }
                relink(nodes, last);
                self.node = nodes[last].next;
                continue;
            }
            if meter.steps >= slice_end {
                return None;
            }
            if !meter.tick() {
                return Some(Outcome::OutOfBudget);
            }
            self.steps += 1;
            let member = nodes[node].member;
            let call = &self.calls[self.members[member]];
            let Some(after) = self.model.step(&self.state, &call.input, call.output.as_ref()) else {
                self.node = nodes[node].next;
                continue;
            };
            self.taken.flip(member);
            if self.seen.insert(&self.taken, &after) {
                self.stack.push((node, std::mem::replace(&mut self.state, after)));
                unlink(nodes, node);
                let ret = nodes[node].ret;
                if ret != NIL {
                    self.pending -= 1;
                    unlink(nodes, ret);
                }
                self.node = nodes[HEAD].next;
            } else {
                self.taken.flip(member);
                self.node = nodes[node].next;
            }
        }
    }
}

/// Whether `members` are linearizable, searched within `cap` steps
/// (`OutOfBudget` when the cap or the budget runs out).
fn run<M: Model>(
    model: &M,
    calls: &[Call<M::Input, M::Output>],
    members: &[usize],
    free: Option<usize>,
    meter: &mut Meter,
    cap: u64,
) -> Outcome {
    meter.cap = meter.steps.saturating_add(cap);
    let outcome = Search::new(model, calls, members.to_vec(), free).advance(meter, u64::MAX);
    meter.cap = u64::MAX;
    outcome.unwrap_or(Outcome::OutOfBudget)
}

/// The least number of steps each search may take while shrinking.
const SHRINK_FLOOR: u64 = 10_000;

/// A small set of `members` (known to be violated) that is violated on its
/// own.
///
/// First the shortest violated prefix in invocation order; its last call is
/// the culprit, kept throughout. Then, as in delta debugging, windows of
/// the other calls (halves, quarters, ... single calls; latest first) are
/// dropped while the rest stays violated. When the culprit's output is
/// explainable at some time, a drop must keep it so: the set then shows
/// the calls that make the culprit's timing wrong rather than a value out
/// of nowhere (a stale read keeps the write it read).
///
/// Each search may take `cap` steps (a set it cannot show violated within
/// them stays); shrinking stops when the budget runs out, keeping the last
/// violated set.
fn counterexample<M: Model>(
    model: &M,
    calls: &[Call<M::Input, M::Output>],
    key: &Option<String>,
    members: Vec<usize>,
    meter: &mut Meter,
    cap: u64,
) -> Counterexample {
    let run = |members: &[usize], free: Option<usize>, meter: &mut Meter| run(model, calls, members, free, meter, cap);
    let mut gave_up = false;
    // Invariant: the first `violated` calls are violated; the first
    // `consistent` are not shown to be.
    let (mut consistent, mut violated) = (0, members.len());
    while violated - consistent > 1 && !meter.spent() {
        let middle = consistent + (violated - consistent) / 2;
        match run(&members[..middle], None, meter) {
            Outcome::Violated => violated = middle,
            Outcome::Linearizable => consistent = middle,
            Outcome::OutOfBudget => (gave_up, consistent) = (true, middle),
        }
    }
    let mut kept = members[..violated].to_vec();
    let keep_culprit_explainable = matches!(run(&kept, Some(kept.len() - 1), meter), Outcome::Linearizable);
    let mut window = (kept.len() / 2).max(1);
    while kept.len() > 1 {
        // Windows over the calls before the culprit, latest first.
        let mut end = kept.len() - 1;
        while end > 0 && !meter.spent() {
            let start = end.saturating_sub(window);
            let without: Vec<usize> = kept[..start].iter().chain(&kept[end..]).copied().collect();
            let shrinks = match run(&without, None, meter) {
                Outcome::Violated if !keep_culprit_explainable => Some(true),
                Outcome::Violated => match run(&without, Some(without.len() - 1), meter) {
                    Outcome::Linearizable => Some(true),
                    Outcome::Violated => Some(false),
                    Outcome::OutOfBudget => None,
                },
                Outcome::Linearizable => Some(false),
                Outcome::OutOfBudget => None,
            };
            match shrinks {
                Some(true) => kept = without,
                Some(false) => {}
                None => gave_up = true,
            }
            end = start;
        }
        if window == 1 || meter.spent() {
            break;
        }
        window /= 2;
    }
    gave_up |= meter.spent();
    let mut search = Search::new(model, calls, kept, None);
    search.longest = Some(Vec::new());
    meter.cap = meter.steps.saturating_add(cap);
    let ordered = match search.advance(meter, u64::MAX) {
        Some(Outcome::Violated) => search.longest.take(),
        _ => None,
    };
    meter.cap = u64::MAX;
    let kept = search.members;
    Counterexample {
        partition: key.clone(),
        calls: kept.iter().map(|&index| calls[index].id).collect(),
        detail: describe(calls, key, &kept, ordered.as_deref(), !gave_up),
    }
}

/// Configurations explored: (calls taken, state) pairs, in flat arrays
/// (one allocation each rather than one per entry), chained by hash.
struct Seen<S> {
    /// The latest entry of each hash. Only looked up, never iterated, so
    /// the hash seed cannot change the result.
    latest: HashMap<u64, usize, BuildHasherDefault<Prehashed>>,
    /// Per entry, the previous entry of the same hash (NIL: none).
    previous: Vec<usize>,
    /// Per entry, its set of calls taken (`width` words).
    words: Vec<u64>,
    width: usize,
    states: Vec<S>,
}

impl<S: Clone + Eq + Hash> Seen<S> {
    fn new(width: usize) -> Self {
        Seen { latest: HashMap::default(), previous: Vec::new(), words: Vec::new(), width, states: Vec::new() }
    }

    /// Adds (taken, state); false when it was there already.
    fn insert(&mut self, taken: &Taken, state: &S) -> bool {
        // xxh3: states can be long strings, where SipHash would dominate.
        let mut hasher = Xxh3Default::new();
        state.hash(&mut hasher);
        let hash = taken.hash ^ hasher.finish();
        let latest = self.latest.get(&hash).copied().unwrap_or(NIL);
        let mut entry = latest;
        while entry != NIL {
            let words = &self.words[entry * self.width..(entry + 1) * self.width];
            if words == taken.words.as_slice() && self.states[entry] == *state {
                return false;
            }
            entry = self.previous[entry];
        }
        self.latest.insert(hash, self.states.len());
        self.previous.push(latest);
        self.words.extend_from_slice(&taken.words);
        self.states.push(state.clone());
        true
    }
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

/// Most calls a counterexample's detail lists.
const LISTED: usize = 20;

fn describe<I: std::fmt::Debug, O: std::fmt::Debug>(
    calls: &[Call<I, O>],
    key: &Option<String>,
    kept: &[usize],
    ordered: Option<&[usize]>,
    complete: bool,
) -> String {
    let partition = key.as_ref().map(|key| format!(" in partition {key:?}")).unwrap_or_default();
    let listed: Vec<String> = kept
        .iter()
        .take(LISTED)
        .map(|&index| {
            let call = &calls[index];
            let output = call.output.as_ref().map_or("?".to_string(), |output| format!("{output:?}"));
            let returned = call.returned.map_or("never".to_string(), |returned| returned.max(call.invoked).to_string());
            format!("#{} (client {}) {:?} -> {output} [{}, {returned}]", call.id, call.client, call.input, call.invoked)
        })
        .collect();
    let more = if kept.len() > LISTED { format!("; and {} more", kept.len() - LISTED) } else { String::new() };
    let mut detail = format!(
        "no order of these {} calls{partition} explains their outputs: {}{more}.",
        kept.len(),
        listed.join("; ")
    );
    match ordered {
        Some([]) => detail.push_str(" No call can take effect first."),
        Some(ordered) => {
            let ids: Vec<String> = ordered.iter().map(|&position| format!("#{}", calls[kept[position]].id)).collect();
            detail.push_str(&format!(" The longest order found, {}, cannot be continued.", ids.join(", ")));
        }
        None => {}
    }
    if !complete {
        detail.push_str(" (Shrinking ran short of steps: a smaller set may exist.)");
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register of numbers, initially 0, partitioned by a name.
    struct Register;

    #[derive(Debug, Clone)]
    enum Op {
        Read(&'static str),
        Write(&'static str, u64),
    }

    impl Model for Register {
        type State = u64;
        type Input = Op;
        type Output = u64;
        fn init(&self) -> u64 {
            0
        }
        fn step(&self, state: &u64, input: &Op, output: Option<&u64>) -> Option<u64> {
            match input {
                Op::Read(_) => (output.is_none() || output == Some(state)).then_some(*state),
                Op::Write(_, value) => Some(*value),
            }
        }
        fn partition(&self, input: &Op) -> Option<String> {
            match input {
                Op::Read(key) | Op::Write(key, _) => Some(key.to_string()),
            }
        }
    }

    fn call(id: u64, input: Op, invoked: u64, returned: Option<u64>, output: Option<u64>) -> Call<Op, u64> {
        Call { id, client: id, input, invoked, returned, output }
    }

    fn write(id: u64, value: u64, invoked: u64, returned: u64) -> Call<Op, u64> {
        call(id, Op::Write("a", value), invoked, Some(returned), Some(0))
    }

    fn read(id: u64, value: u64, invoked: u64, returned: u64) -> Call<Op, u64> {
        call(id, Op::Read("a"), invoked, Some(returned), Some(value))
    }

    fn verdict(calls: &[Call<Op, u64>]) -> Verdict {
        check(&Register, calls, Budget::default())
    }

    fn violated(calls: &[Call<Op, u64>]) -> Counterexample {
        match verdict(calls) {
            Verdict::Violated(counterexample) => counterexample,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn empty_and_sequential_histories_are_linearizable() {
        assert_eq!(verdict(&[]), Verdict::Consistent);
        let calls = [write(1, 1, 0, 10), read(2, 1, 20, 30), write(3, 2, 40, 50), read(4, 2, 60, 70)];
        assert_eq!(verdict(&calls), Verdict::Consistent);
    }

    #[test]
    fn porcupine_register_examples() {
        // From Porcupine's TestRegisterModel (MIT 6.824 2017 quiz 2).
        let calls = [write(0, 100, 0, 100), read(1, 100, 25, 75), read(2, 0, 30, 60)];
        assert_eq!(verdict(&calls), Verdict::Consistent);
        let calls = [write(0, 200, 0, 100), read(1, 200, 10, 30), read(2, 0, 40, 90)];
        assert!(matches!(verdict(&calls), Verdict::Violated(_)));
    }

    #[test]
    fn calls_that_touch_overlap() {
        // Porcupine's TestZeroDuration: equal times count as concurrent.
        let calls = [write(0, 100, 0, 100), read(1, 100, 25, 75), read(2, 0, 30, 30), read(3, 0, 30, 30)];
        assert_eq!(verdict(&calls), Verdict::Consistent);
        let calls = [write(0, 200, 0, 100), read(1, 200, 10, 10), read(2, 200, 10, 10), read(3, 0, 40, 90)];
        assert!(matches!(verdict(&calls), Verdict::Violated(_)));
    }

    #[test]
    fn a_call_of_unknown_fate_may_take_effect_late() {
        // The write never returned, yet a read long after saw it.
        let calls = [call(1, Op::Write("a", 7), 0, None, None), read(2, 0, 10, 20), read(3, 7, 100, 110)];
        assert_eq!(verdict(&calls), Verdict::Consistent);
    }

    #[test]
    fn a_call_of_unknown_fate_may_never_take_effect() {
        let calls = [call(1, Op::Write("a", 7), 0, None, None), read(2, 0, 100, 110)];
        assert_eq!(verdict(&calls), Verdict::Consistent);
    }

    #[test]
    fn a_call_of_unknown_fate_cannot_take_effect_before_its_invocation() {
        let calls = [read(1, 7, 0, 10), call(2, Op::Write("a", 7), 20, None, None)];
        assert!(matches!(verdict(&calls), Verdict::Violated(_)));
    }

    #[test]
    fn a_call_of_unknown_fate_cannot_take_effect_twice() {
        // Once the read saw 7 and a later write replaced it, 7 cannot return.
        let calls =
            [call(1, Op::Write("a", 7), 0, None, None), read(2, 7, 10, 20), write(3, 8, 30, 40), read(4, 7, 50, 60)];
        assert!(matches!(verdict(&calls), Verdict::Violated(_)));
    }

    #[test]
    fn a_call_of_unknown_fate_that_nothing_explains_never_took_effect() {
        // A read of a value never written, with no known return: it cannot
        // take effect anywhere, so it did not (Porcupine, which makes every
        // call take effect, would call this history violated).
        let calls = [write(1, 5, 0, 10), call(2, Op::Read("a"), 20, None, Some(9)), read(3, 5, 30, 40)];
        assert_eq!(verdict(&calls), Verdict::Consistent);
    }

    #[test]
    fn an_unknown_output_goes() {
        let calls = [write(1, 5, 0, 10), call(2, Op::Read("a"), 20, Some(30), None), read(3, 5, 40, 50)];
        assert_eq!(verdict(&calls), Verdict::Consistent);
    }

    #[test]
    fn a_return_before_the_invocation_counts_as_at_it() {
        let calls = [write(1, 5, 10, 0), read(2, 5, 10, 20)];
        assert_eq!(verdict(&calls), Verdict::Consistent);
        let calls = [write(1, 5, 10, 0), read(2, 0, 11, 20)];
        assert!(matches!(verdict(&calls), Verdict::Violated(_)));
    }

    #[test]
    fn partitions_are_checked_apart_in_key_order() {
        let b = |id, input, invoked, returned, output| call(id, input, invoked, Some(returned), Some(output));
        // Each key alone is fine; the reads of "b" would contradict a
        // single register shared with "a".
        let calls = [write(1, 1, 0, 10), b(2, Op::Read("b"), 20, 30, 0), read(3, 1, 40, 50)];
        assert_eq!(verdict(&calls), Verdict::Consistent);
        // Both "b" and "c" are violated; "b" comes first.
        let calls = [
            b(1, Op::Write("c", 1), 0, 10, 0),
            b(2, Op::Read("c"), 20, 30, 2),
            b(3, Op::Write("b", 1), 0, 10, 0),
            b(4, Op::Read("b"), 20, 30, 0),
            write(5, 1, 0, 10),
        ];
        let counterexample = violated(&calls);
        assert_eq!(counterexample.partition.as_deref(), Some("b"));
        assert_eq!(counterexample.calls, vec![3, 4]);
    }

    #[test]
    fn a_hard_partition_does_not_hide_an_easy_violation() {
        // "a": 24 concurrent writes, then a read of a value none wrote: the
        // search must try every subset of the writes (about 2^24).
        let mut calls: Vec<_> = (0..24).map(|i| write(i, i + 1, 0, 10)).collect();
        calls.push(read(24, 99, 20, 30));
        let hard = check(&Register, &calls, Budget { steps: 200_000, time: None });
        assert!(matches!(hard, Verdict::Unknown(_)), "{hard:?}");
        let b = |id, input, invoked, returned, output| call(id, input, invoked, Some(returned), Some(output));
        calls.push(b(25, Op::Write("b", 1), 0, 10, 0));
        calls.push(b(26, Op::Read("b"), 20, 30, 0));
        let counterexample = violated(&calls);
        assert_eq!(counterexample.partition.as_deref(), Some("b"));
        assert_eq!(counterexample.calls, vec![25, 26]);
    }

    #[test]
    fn the_counterexample_is_the_stale_read_and_the_write_it_missed() {
        // Noise around a stale read: #4 returned 5 (written by #1) after #3
        // wrote 6.
        let calls = [
            write(1, 5, 0, 10),
            read(2, 5, 5, 15),
            write(3, 6, 20, 30),
            read(4, 5, 40, 50),
            write(5, 7, 45, 60),
            read(6, 7, 70, 80),
        ];
        let counterexample = violated(&calls);
        assert_eq!(counterexample.partition.as_deref(), Some("a"));
        assert_eq!(counterexample.calls, vec![1, 3, 4]);
        assert!(
            counterexample.detail.starts_with("no order of these 3 calls in partition \"a\""),
            "{}",
            counterexample.detail
        );
        assert!(
            counterexample.detail.contains("#3 (client 3) Write(\"a\", 6) -> 0 [20, 30]"),
            "{}",
            counterexample.detail
        );
        assert!(counterexample.detail.contains("The longest order found, #1, #3, cannot be continued."));
    }

    #[test]
    fn a_read_of_a_value_never_written_stands_alone() {
        let calls = [write(1, 5, 0, 10), read(2, 9, 20, 30)];
        let counterexample = violated(&calls);
        assert_eq!(counterexample.calls, vec![2]);
        assert!(counterexample.detail.contains("No call can take effect first."), "{}", counterexample.detail);
    }

    #[test]
    fn budget_exhaustion_gives_unknown() {
        let calls: Vec<_> = (0..20).map(|i| write(i, i, 0, 100)).collect();
        let Verdict::Unknown(why) = check(&Register, &calls, Budget { steps: 5, time: None }) else { panic!() };
        assert!(why.contains("budget of 5 search steps"), "{why}");
        let Verdict::Unknown(why) =
            check(&Register, &calls, Budget { steps: u64::MAX, time: Some(std::time::Duration::ZERO) })
        else {
            panic!()
        };
        assert!(why.contains("time limit"), "{why}");
    }

    #[test]
    fn a_budget_spent_while_shrinking_keeps_a_violated_set() {
        let mut calls: Vec<_> = (0..50).map(|i| write(i, i, 10 * i, 10 * i + 5)).collect();
        calls.push(read(50, 3, 1000, 1010));
        let full = violated(&calls);
        assert_eq!(full.calls, vec![3, 4, 50]);
        // Enough steps to find the violation, not to shrink it.
        let Verdict::Violated(partial) = check(&Register, &calls, Budget { steps: 60, time: None }) else { panic!() };
        assert!(partial.calls.len() > 2 && partial.calls.contains(&50), "{partial:?}");
        assert!(partial.detail.contains("Shrinking ran short of steps"), "{}", partial.detail);
    }

    #[test]
    fn a_long_partition_does_not_overflow_the_stack() {
        let mut calls = Vec::new();
        for i in 0..10_000 {
            // Pairs of overlapping writes and reads.
            calls.push(write(2 * i, i, 10 * i, 10 * i + 6));
            calls.push(read(2 * i + 1, i, 10 * i + 5, 10 * i + 9));
        }
        assert_eq!(verdict(&calls), Verdict::Consistent);
    }
}
