//! Code tandem did not write, unmodified, is deterministic in the simulation:
//! a node that draws from `rand::thread_rng()` (rand 0.8), `rand::rng()`
//! (rand 0.9), `getrandom`, reads `Instant::now()` and `SystemTime::now()`
//! and iterates a `HashMap` gives the same digest in separate processes, and
//! a node that reads `/dev/urandom` (which tandem cannot cover) is caught by
//! `--check-determinism` with the first differing event.
//!
//! The test is its own `main`: with arguments it is a user's `tandem`
//! binary (`cli::main_with`), and `--check-determinism` runs it again as
//! its child processes.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tandem::history::History;
use tandem::scenario::NodeIdx;
use tandem::system::{Adapter, Drawing, Invocation, NodeContext, OpError, Operation, Oracle, Workload};
use tandem::transport::{Listener, Transport};

/// Nodes that draw numbers the way third-party code does; with `leaky`,
/// from `/dev/urandom` too.
#[derive(Debug, Clone, Copy)]
struct Dice {
    leaky: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Roll {
    Roll { node: NodeIdx },
}

impl Operation for Roll {
    fn node(&self) -> NodeIdx {
        let Roll::Roll { node } = self;
        *node
    }
    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        let Roll::Roll { node } = self;
        vec![node]
    }
}

struct DiceNode {
    addr: SocketAddr,
    born: Instant,
    leaky: bool,
    _listener: Box<dyn std::any::Any + Send + Sync>,
}

/// What unmodified third-party code draws and reads, as one number each.
fn draw(born: Instant, leaky: bool) -> Vec<u64> {
    let mut bytes = [0u8; 8];
    getrandom02::getrandom(&mut bytes).expect("getrandom");
    let map: HashMap<u64, u64> = (0..32).map(|i| (i, i)).collect();
    let mut order = DefaultHasher::new();
    map.keys().for_each(|k| k.hash(&mut order));
    let mut values = vec![
        rand08::Rng::gen::<u64>(&mut rand08::thread_rng()),
        rand::Rng::random::<u64>(&mut rand::rng()),
        u64::from_le_bytes(bytes),
        order.finish(),
        born.elapsed().as_nanos() as u64,
        SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos() as u64,
    ];
    if leaky {
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("/dev/urandom");
        values.push(u64::from_le_bytes(bytes));
    }
    values
}

impl Adapter for Dice {
    type Op = Roll;
    type Output = Vec<u64>;
    type Observation = Vec<u64>;
    type Node = DiceNode;

    fn name(&self) -> &'static str {
        if self.leaky {
            "leaky"
        } else {
            "dice"
        }
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<DiceNode, String> {
        let listener = ctx.transport.listen(ctx.listen).await.map_err(|e| e.to_string())?;
        let born = Instant::now();
        ctx.observer.observe(draw(born, self.leaky));
        Ok(DiceNode { addr: listener.local_addr(), born, leaky: self.leaky, _listener: Box::new(listener) })
    }

    fn addr(&self, node: &DiceNode) -> SocketAddr {
        node.addr
    }

    async fn invoke(&self, node: &DiceNode, _: Roll, _: Invocation) -> Result<Vec<u64>, OpError> {
        tokio::time::sleep(std::time::Duration::from_millis(7)).await;
        Ok(draw(node.born, node.leaky))
    }

    async fn stop(&self, _: DiceNode) {}
}

impl Oracle for Dice {
    type Condition = ();
    type Outcome = ();
    type State = ();

    fn check(&self, _: &History<Self>, _: NodeIdx, _: &()) -> Result<(), String> {
        Ok(())
    }

    fn outcome(&self, _: &History<Self>, _: NodeIdx) {}
}

impl Workload for Dice {
    fn operations(&self, nodes: u32, _: Option<NodeIdx>) -> BoxedStrategy<Roll> {
        (0..nodes).prop_map(|node| Roll::Roll { node }).boxed()
    }
}

impl Drawing for Dice {}

const SCENARIO: &str = "nodes = 3\nduration = \"2s\"\nsettle = \"100ms\"\n\n[[step]]\nat = \"300ms\"\nroll = { node = 1 }\n\n[[step]]\ncrash = { node = 2 }\n\n[[step]]\nrestart = { node = 2 }\n\n[[step]]\nroll = { node = 2 }\n";

/// Runs this binary as `tandem` with `args`: (exit code, standard output).
fn tandem(args: &[&str]) -> (i32, String) {
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe).args(args).output().expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), stdout + &String::from_utf8_lossy(&output.stderr))
}

fn trace(file: &Path, seed: u64) -> String {
    let (code, out) = tandem(&["run", file.to_str().expect("utf-8"), "--seed", &seed.to_string(), "--json"]);
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.contains("\"trace\"")).unwrap_or_else(|| panic!("no report: {out}"));
    let report: serde_json::Value = serde_json::from_str(line).expect("a JSON report");
    report["trace"].as_str().expect("a trace").to_string()
}

fn main() -> ExitCode {
    if std::env::args().nth(1).is_some_and(|command| command == "run") {
        return tandem_cli::main_with(&[&Dice { leaky: false }, &Dice { leaky: true }]);
    }
    let dir = std::env::temp_dir().join(format!("tandem-third-party-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let (dice, leaky) = (dir.join("dice.toml"), dir.join("leaky.toml"));
    std::fs::write(&dice, format!("system = \"dice\"\n{SCENARIO}")).expect("written");
    std::fs::write(&leaky, format!("system = \"leaky\"\n{SCENARIO}")).expect("written");
    let mut passed = 0;

    // Two processes, one digest; another seed, another digest.
    let (a, b, other) = (trace(&dice, 3), trace(&dice, 3), trace(&dice, 4));
    assert_eq!(a, b, "the same seed in two processes");
    assert_ne!(a, other, "the draws follow the seed");
    println!("test third-party code gives one digest across processes ... ok");
    passed += 1;

    let (code, out) = tandem(&["run", dice.to_str().expect("utf-8"), "--seeds", "2", "--check-determinism"]);
    assert_eq!(code, 0, "{out}");
    println!("test --check-determinism passes the covered node ... ok");
    passed += 1;

    let (code, out) = tandem(&["run", leaky.to_str().expect("utf-8"), "--check-determinism"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nondeterministic") && out.contains("first difference at event"), "{out}");
    println!("test --check-determinism catches /dev/urandom with the first differing event ... ok");
    passed += 1;

    std::fs::remove_dir_all(&dir).expect("removed");
    println!("\ntest result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
    ExitCode::SUCCESS
}
