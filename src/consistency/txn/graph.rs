//! The dependency graph, its strongly connected components, and the
//! search for a short cycle of each anomaly kind.

use std::fmt;
use std::time::Instant;

use super::index::show;
use super::{Anomaly, Budget, Found, Mop, Txn};

/// A kind of dependency, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Dep {
    /// Write-write: the target installed a later version.
    Ww,
    /// Write-read: the target read the source's write.
    Wr,
    /// Read-write: the target overwrote what the source read.
    Rw,
}

const WW: u8 = 1;
const WR: u8 = 2;
const ALL: u8 = 7;

impl Dep {
    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// What an edge carrying the dependencies `bits` counts as.
    fn strongest(bits: u8) -> Dep {
        [Dep::Ww, Dep::Wr, Dep::Rw].into_iter().find(|d| bits & d.bit() != 0).expect("an edge has a dependency")
    }
}

impl fmt::Display for Dep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dep::Ww => "ww",
            Dep::Wr => "wr",
            Dep::Rw => "rw",
        })
    }
}

/// What shows a dependency, for the report: a micro-operation of the
/// source or target (by its position in the transaction) and what it
/// implies.
#[derive(Debug, Clone, Copy)]
pub(super) enum Why {
    /// `ww` of lists: the target's `mop` appended next after the source's
    /// append of `before` (`read`: a read saw it; if not, `before` ends the
    /// longest read).
    Appended { mop: u32, before: u64, read: bool },
    /// `ww` of registers: the target's `mop` wrote after the target read
    /// the source's `before`.
    Overwrote { mop: u32, before: u64 },
    /// `wr`: the target's `mop` read the source's write.
    Saw { mop: u32 },
    /// `rw`: the source's `mop` read a version before the target's write of
    /// `value`.
    Missed { mop: u32, value: u64 },
}

/// A dependency of transaction `to` on transaction `from` (positions in
/// the history).
pub(super) struct Edge {
    from: u32,
    to: u32,
    dep: Dep,
    why: Why,
}

/// Adds an edge, unless it would be a loop.
pub(super) fn link(edges: &mut Vec<Edge>, from: usize, to: usize, dep: Dep, why: Why) {
    if from != to {
        edges.push(Edge { from: small(from), to: small(to), dep, why });
    }
}

/// A position in the history or in a transaction, in 32 bits.
pub(super) fn small(position: usize) -> u32 {
    u32::try_from(position).expect("fewer than 2^32 transactions and micro-operations per transaction")
}

/// A cycle: each step's transaction and its dependency to the next step's
/// (the last step's leads back to the first).
pub(super) struct Cycle {
    anomaly: Anomaly,
    steps: Vec<(usize, Dep)>,
    /// The search finished within its budget.
    complete: bool,
}

/// The kind of cycle each anomaly is, for the search.
struct Class {
    anomaly: Anomaly,
    /// The dependencies whose components the cycle lies in.
    scope: u8,
    /// What the first edge counts as.
    first: Dep,
    /// The dependencies the rest may use.
    rest: u8,
    /// The rest must count as `rw` at least once.
    another_rw: bool,
}

const CLASSES: [Class; 4] = [
    Class { anomaly: Anomaly::G0, scope: WW, first: Dep::Ww, rest: WW, another_rw: false },
    Class { anomaly: Anomaly::G1c, scope: WW | WR, first: Dep::Wr, rest: WW | WR, another_rw: false },
    Class { anomaly: Anomaly::GSingle, scope: ALL, first: Dep::Rw, rest: WW | WR, another_rw: false },
    Class { anomaly: Anomaly::G2, scope: ALL, first: Dep::Rw, rest: ALL, another_rw: true },
];

/// Strongly connected components of two or more vertices.
struct Components {
    /// Each vertex's component, if it has one.
    of: Vec<Option<usize>>,
    /// Their vertices, ascending; components ordered by their first vertex.
    list: Vec<Vec<usize>>,
}

/// Transactions and their dependencies.
pub(super) struct Graph {
    /// One per source, target and kind (the first reason given), sorted.
    edges: Vec<Edge>,
    /// Vertex `v`'s targets are `targets[start[v]..start[v + 1]]`, each
    /// with the bits of its dependencies.
    start: Vec<usize>,
    targets: Vec<(u32, u8)>,
}

impl Graph {
    /// The graph of `n` vertices with `edges`.
    pub fn new(n: usize, mut edges: Vec<Edge>) -> Graph {
        edges.sort_by_key(|e| (e.from, e.to, e.dep));
        edges.dedup_by_key(|e| (e.from, e.to, e.dep));
        let mut start = vec![0; n + 1];
        let mut targets: Vec<(u32, u8)> = Vec::new();
        let mut last = None;
        for e in &edges {
            match targets.last_mut() {
                Some((_, bits)) if last == Some((e.from, e.to)) => *bits |= e.dep.bit(),
                _ => targets.push((e.to, e.dep.bit())),
            }
            last = Some((e.from, e.to));
            start[e.from as usize + 1] = targets.len();
        }
        for v in 1..=n {
            start[v] = start[v].max(start[v - 1]);
        }
        Graph { edges, start, targets }
    }

    /// `v`'s targets and the bits of their dependencies.
    fn out(&self, v: usize) -> impl Iterator<Item = (usize, u8)> + '_ {
        self.targets[self.start[v]..self.start[v + 1]].iter().map(|&(w, bits)| (w as usize, bits))
    }

    /// A short cycle of each anomaly kind in each component where there is
    /// one, most severe kinds first. When the budget runs out, each
    /// component without a cycle yet gets some cycle through it.
    pub fn cycles(&self, budget: Budget) -> Vec<Cycle> {
        let all = self.components(ALL);
        if all.list.is_empty() {
            return Vec::new();
        }
        let scopes = [(WW, self.components(WW)), (WW | WR, self.components(WW | WR)), (ALL, all)];
        let all = &scopes[2].1;
        let mut search = Search::new(self, budget);
        let mut covered = vec![false; all.list.len()];
        let mut cycles = Vec::new();
        for class in &CLASSES {
            let scope = &scopes.iter().find(|(mask, _)| *mask == class.scope).expect("a scope per class").1;
            for component in &scope.list {
                if search.spent() {
                    break;
                }
                if let Some(steps) = search.shortest(class, component, &scope.of) {
                    covered[all.of[steps[0].0].expect("a cycle lies in a component")] = true;
                    cycles.push(Cycle { anomaly: class.anomaly, steps, complete: !search.spent() });
                }
            }
        }
        if search.spent() {
            let mut unlimited = Search::new(self, Budget { steps: u64::MAX, time: None });
            for (component, _) in all.list.iter().zip(&covered).filter(|(_, covered)| !**covered) {
                let steps = unlimited.any(component, &all.of);
                cycles.push(Cycle { anomaly: classify(&steps), steps, complete: false });
            }
        }
        cycles
    }

    /// Strongly connected components of the edges carrying any of `mask`
    /// (Tarjan's algorithm, iterative).
    fn components(&self, mask: u8) -> Components {
        let n = self.start.len() - 1;
        let mut order: Vec<Option<usize>> = vec![None; n];
        let mut low = vec![0; n];
        let mut on_stack = vec![false; n];
        let mut stack = Vec::new();
        let mut list = Vec::new();
        let mut next = 0;
        for root in 0..n {
            if order[root].is_some() {
                continue;
            }
            order[root] = Some(next);
            low[root] = next;
            next += 1;
            stack.push(root);
            on_stack[root] = true;
            // Each frame: a vertex and its next edge to look at.
            let mut calls = vec![(root, self.start[root])];
            while let Some(frame) = calls.last_mut() {
                let v = frame.0;
                let mut child = None;
                while frame.1 < self.start[v + 1] {
                    let (w, bits) = self.targets[frame.1];
                    let w = w as usize;
                    frame.1 += 1;
                    if bits & mask == 0 {
                        continue;
                    }
                    match order[w] {
                        None => {
                            child = Some(w);
                            break;
                        }
                        Some(w_order) if on_stack[w] => low[v] = low[v].min(w_order),
                        Some(_) => {}
                    }
                }
                if let Some(w) = child {
                    order[w] = Some(next);
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, self.start[w]));
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if Some(low[v]) == order[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        component.sort_unstable();
                        list.push(component);
                    }
                }
            }
        }
        list.sort_unstable();
        let mut of = vec![None; n];
        for (c, component) in list.iter().enumerate() {
            for &v in component {
                of[v] = Some(c);
            }
        }
        Components { of, list }
    }

    /// The anomaly a cycle shows, each edge explained.
    pub fn explain(&self, txns: &[Txn], cycle: &Cycle) -> Found {
        let name = |v: usize| format!("T{}", txns[v].id);
        let mut path = String::new();
        let mut lines = String::new();
        for (i, &(from, dep)) in cycle.steps.iter().enumerate() {
            let to = cycle.steps[(i + 1) % cycle.steps.len()].0;
            path.push_str(&format!("{} -{dep}-> ", name(from)));
            let at = self.edges.binary_search_by_key(&(small(from), small(to), dep), |e| (e.from, e.to, e.dep));
            let why = self.edges[at.expect("a cycle follows edges")].why;
            lines.push_str(&format!("\n  {} ({dep})", reason(why, &txns[from], &txns[to])));
        }
        path.push_str(&name(cycle.steps[0].0));
        let anomaly = cycle.anomaly;
        let mut detail = format!("{anomaly} ({}): {path}{lines}", anomaly.meaning());
        if !cycle.complete {
            detail.push_str("\n  (the search budget ran out: there may be a shorter or more severe cycle)");
        }
        Found { anomaly, txns: cycle.steps.iter().map(|&(v, _)| txns[v].id).collect(), detail }
    }
}

/// Why `to` depends on `from`, in words.
fn reason(why: Why, from: &Txn, to: &Txn) -> String {
    let (f, t) = (from.id, to.id);
    match why {
        Why::Appended { mop, before, read } => {
            let (key, after) = (to.ops[mop as usize].key(), written(&to.ops[mop as usize]));
            if read {
                format!("T{t} appended {after} to {key:?} after T{f} appended {before}")
            } else {
                format!(
                    "T{t} appended {after} to {key:?}, which no read saw, after T{f} appended {before}, the last read"
                )
            }
        }
        Why::Overwrote { mop, before } => {
            let (key, after) = (to.ops[mop as usize].key(), written(&to.ops[mop as usize]));
            format!("T{t} read {key:?} = {before}, which T{f} wrote, and then wrote {after}")
        }
        Why::Saw { mop } => match &to.ops[mop as usize] {
            read @ Mop::Read { value, .. } => {
                format!("T{t} read {} which ended with T{f}'s append of {}", show(read), value[value.len() - 1])
            }
            read => format!("T{t} read {} which T{f} wrote", show(read)),
        },
        Why::Missed { mop, value } => match &from.ops[mop as usize] {
            read @ Mop::Read { .. } => {
                format!("T{f} read {} which did not include T{t}'s append of {value}", show(read))
            }
            read @ Mop::ReadRegister { value: None, .. } => {
                format!("T{f} read {}, the initial value, which T{t} overwrote with {value}", show(read))
            }
            read => format!("T{f} read {}, which T{t} overwrote with {value} after reading it", show(read)),
        },
    }
}

/// The value an append or write wrote.
fn written(mop: &Mop) -> u64 {
    match mop {
        Mop::Append { value, .. } | Mop::Write { value, .. } => *value,
        Mop::Read { .. } | Mop::ReadRegister { .. } => unreachable!("a ww edge's micro-operation writes"),
    }
}

/// The kind of anomaly a cycle is.
fn classify(steps: &[(usize, Dep)]) -> Anomaly {
    let count = |dep| steps.iter().filter(|s| s.1 == dep).count();
    match count(Dep::Rw) {
        0 if count(Dep::Wr) == 0 => Anomaly::G0,
        0 => Anomaly::G1c,
        1 => Anomaly::GSingle,
        _ => Anomaly::G2,
    }
}

/// Breadth-first search for cycles, within a budget of edges looked at.
struct Search<'g> {
    graph: &'g Graph,
    steps_left: u64,
    deadline: Option<Instant>,
    /// Search states are `2 * vertex + rw`, `rw` being 1 once the path
    /// counted as `rw` (used by `another_rw` kinds only). A state was
    /// reached in the current search when its stamp is `generation`, from
    /// `parent` (a state) along a dependency.
    stamp: Vec<u64>,
    parent: Vec<(usize, Dep)>,
    generation: u64,
}

impl<'g> Search<'g> {
    fn new(graph: &'g Graph, budget: Budget) -> Search<'g> {
        let states = 2 * (graph.start.len() - 1);
        Search {
            graph,
            steps_left: budget.steps,
            deadline: budget.deadline(),
            stamp: vec![0; states],
            parent: vec![(0, Dep::Ww); states],
            generation: 0,
        }
    }

    fn spent(&self) -> bool {
        self.steps_left == 0
    }

    /// Spends a step, or says there is none left.
    fn step(&mut self) -> bool {
        if self.steps_left == 0 {
            return false;
        }
        self.steps_left -= 1;
        if self.steps_left % 4096 == 0 && self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.steps_left = 0;
        }
        true
    }

    /// The shortest cycle of `class` in `component` (of `of`), trying each
    /// edge that can start it.
    fn shortest(&mut self, class: &Class, component: &[usize], of: &[Option<usize>]) -> Option<Vec<(usize, Dep)>> {
        let graph = self.graph;
        let mut best: Option<Vec<(usize, Dep)>> = None;
        for &a in component {
            for (b, bits) in graph.out(a) {
                if of[b] != of[a] || Dep::strongest(bits) != class.first {
                    continue;
                }
                // Two steps is as short as a cycle gets.
                let longest = best.as_ref().map_or(usize::MAX, |c| c.len() - 2);
                if longest == 0 || self.spent() {
                    return best;
                }
                let Some(path) = self.path(b, a, (class.rest, class.another_rw), of, longest) else { continue };
                let mut cycle = vec![(a, class.first)];
                cycle.extend(path);
                let cycle = if class.another_rw { simple_with_two_rw(cycle) } else { Some(cycle) };
                best = cycle.filter(|c| best.as_ref().is_none_or(|b| c.len() < b.len())).or(best);
            }
        }
        best
    }

    /// Some shortest cycle through `component`'s first vertex.
    fn any(&mut self, component: &[usize], of: &[Option<usize>]) -> Vec<(usize, Dep)> {
        let a = component[0];
        let (b, bits) = self.graph.out(a).find(|(b, _)| of[*b] == of[a]).expect("a component has a cycle");
        let mut cycle = vec![(a, Dep::strongest(bits))];
        cycle.extend(self.path(b, a, (ALL, false), of, usize::MAX).expect("b reaches a in their component"));
        cycle
    }

    /// A shortest path of at most `longest` edges from `from` to `to`
    /// within their component, along edges carrying any of `rest` (and, if
    /// `another_rw`, one that counts as `rw`), as steps.
    fn path(
        &mut self,
        from: usize,
        to: usize,
        (rest, another_rw): (u8, bool),
        of: &[Option<usize>],
        longest: usize,
    ) -> Option<Vec<(usize, Dep)>> {
        let graph = self.graph;
        self.generation += 1;
        let start = 2 * from;
        self.stamp[start] = self.generation;
        let mut frontier = vec![start];
        let mut next = Vec::new();
        for _ in 0..longest {
            for &state in &frontier {
                let (v, rw) = (state / 2, state % 2);
                for (w, bits) in graph.out(v) {
                    if !self.step() {
                        return None;
                    }
                    if bits & rest == 0 || of[w] != of[from] {
                        continue;
                    }
                    let dep = Dep::strongest(bits);
                    let rw = rw | usize::from(another_rw && dep == Dep::Rw);
                    if w == to {
                        if another_rw && rw == 0 {
                            continue;
                        }
                        let mut steps = vec![(v, dep)];
                        let mut state = state;
                        while state != start {
                            let (before, dep) = self.parent[state];
                            steps.push((before / 2, dep));
                            state = before;
                        }
                        steps.reverse();
                        return Some(steps);
                    }
                    let reached = 2 * w + rw;
                    if self.stamp[reached] != self.generation {
                        self.stamp[reached] = self.generation;
                        self.parent[reached] = (state, dep);
                        next.push(reached);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            std::mem::swap(&mut frontier, &mut next);
            next.clear();
        }
        None
    }
}

/// A simple cycle with two or more `rw` steps out of a closed walk that has
/// them, if one of its simple cycles does: a search that counts `rw` may
/// pass a vertex twice. If none does, the walk is two cycles with one `rw`
/// each (read skew, found before), and a longer G2 through the same first
/// edge goes unlisted.
fn simple_with_two_rw(steps: Vec<(usize, Dep)>) -> Option<Vec<(usize, Dep)>> {
    let rw = |steps: &[(usize, Dep)]| steps.iter().filter(|s| s.1 == Dep::Rw).count();
    if rw(&steps) < 2 {
        return None;
    }
    for i in 1..steps.len() {
        if let Some(j) = steps[..i].iter().position(|s| s.0 == steps[i].0) {
            let inner = steps[j..i].to_vec();
            let outer = [&steps[..j], &steps[i..]].concat();
            return simple_with_two_rw(inner).or_else(|| simple_with_two_rw(outer));
        }
    }
    Some(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consistency::txn::tests::random;

    /// Every simple cycle of `graph`, each once (from its least vertex).
    fn simple_cycles(graph: &Graph, n: usize) -> Vec<Vec<(usize, Dep)>> {
        fn extend(graph: &Graph, path: &mut Vec<(usize, Dep)>, at: usize, cycles: &mut Vec<Vec<(usize, Dep)>>) {
            let start = path.first().map_or(at, |s| s.0);
            for (w, bits) in graph.out(at) {
                path.push((at, Dep::strongest(bits)));
                if w == start {
                    cycles.push(path.clone());
                } else if w > start && !path.iter().any(|s| s.0 == w) {
                    extend(graph, path, w, cycles);
                }
                path.pop();
            }
        }
        let mut cycles = Vec::new();
        for v in 0..n {
            extend(graph, &mut Vec::new(), v, &mut cycles);
        }
        cycles
    }

    #[test]
    fn search_agrees_with_brute_force() {
        let mut random = random(11);
        for _ in 0..1000 {
            let n = 6;
            let mut edges = Vec::new();
            for from in 0..n {
                for to in 0..n {
                    let bits = (random() % 7 + 1) as u8;
                    if from != to && random() % 3 == 0 {
                        for dep in [Dep::Ww, Dep::Wr, Dep::Rw].into_iter().filter(|d| bits & d.bit() != 0) {
                            link(&mut edges, from, to, dep, Why::Saw { mop: 0 });
                        }
                    }
                }
            }
            let graph = Graph::new(n, edges);
            let all = simple_cycles(&graph, n);
            let found = graph.cycles(Budget::default());
            for cycle in &found {
                assert!(cycle.complete);
                let expected = all.iter().find(|c| {
                    c.len() == cycle.steps.len()
                        && (0..c.len()).any(|r| c.iter().cycle().skip(r).take(c.len()).eq(cycle.steps.iter()))
                });
                assert!(expected.is_some(), "{:?} is a simple cycle of the graph", cycle.steps);
                assert_eq!(classify(&cycle.steps), cycle.anomaly);
            }
            // G0, G1c and G-single: one shortest per component, wherever
            // there is one. G2 may go unlisted, but only next to read skew.
            let components = graph.components(ALL);
            for (i, _) in components.list.iter().enumerate() {
                let has = |anomaly| all.iter().any(|c| classify(c) == anomaly && components.of[c[0].0] == Some(i));
                let listed =
                    |anomaly| found.iter().any(|c| c.anomaly == anomaly && components.of[c.steps[0].0] == Some(i));
                assert!(!has(Anomaly::G2) || listed(Anomaly::G2) || listed(Anomaly::GSingle));
            }
            for class in &CLASSES[..3] {
                let scope = graph.components(class.scope);
                let mut shortest: Vec<Option<usize>> = vec![None; scope.list.len()];
                for c in all.iter().filter(|c| classify(c) == class.anomaly) {
                    let component = scope.of[c[0].0].expect("a cycle lies in a component");
                    shortest[component] = Some(shortest[component].map_or(c.len(), |s| s.min(c.len())));
                }
                let mut reported: Vec<Option<usize>> = vec![None; scope.list.len()];
                for cycle in found.iter().filter(|c| c.anomaly == class.anomaly) {
                    reported[scope.of[cycle.steps[0].0].expect("in a component")] = Some(cycle.steps.len());
                }
                assert_eq!(reported, shortest, "{}", class.anomaly);
            }
        }
    }
}
