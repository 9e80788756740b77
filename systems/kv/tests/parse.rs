//! Every bundled kv scenario parses for the kv system, and the scenario
//! vocabulary (operations, conditions, capabilities) is the documented one.

use std::path::{Path, PathBuf};

use tandem::{Action, Adapter, Operation, Scenario, Workload};
use tandem_kv::{Kv, KvCondition, KvOp};

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/kv");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn parse(text: &str) -> Result<Scenario, String> {
    Scenario::parse(text, "test.toml", &Kv).map_err(|e| e.to_string())
}

#[test]
fn bundled_scenarios_parse_and_use_every_fault() {
    let files = scenario_files();
    assert!(files.len() >= 6, "{} kv scenarios", files.len());
    let mut actions = std::collections::BTreeSet::new();
    for file in &files {
        let scenario = Scenario::from_file(file, &Kv).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scenario.system.as_deref(), Some("kv"), "{}", file.display());
        assert!(scenario.is_for(&Kv));
        assert!(Kv.fair(&scenario).is_ok(), "{}", file.display());
        actions.extend(scenario.steps.iter().map(|s| s.action.name().to_string()));
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.starts_with("system = \"kv\""), "{}: `system` comes first", file.display());
    }
    for needed in ["partition", "heal", "crash", "restart", "rebind", "await", "expect", "put", "get", "delete"] {
        assert!(actions.contains(needed), "no bundled scenario uses `{needed}`");
    }
}

#[test]
fn operations_and_conditions_round_trip() {
    let text = r#"
system = "kv"
nodes = 2

[[step]]
put = { node = 1, key = "k", value = "v" }

[[step]]
delete = { node = 0, key = "k" }

[[step]]
get = { node = 1, key = "k" }

[[step]]
await = { node = 1, holds = { key = "k" }, timeout = "1s" }

[[step]]
expect = { holds = { key = "k", value = "v" } }

[[expect]]
converged = true
"#;
    let scenario = parse(text).unwrap();
    let ops: Vec<KvOp> = scenario
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Op(call) => Some(call.typed().unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ops,
        [
            KvOp::Put { node: 1, key: "k".into(), value: "v".into() },
            KvOp::Delete { node: 0, key: "k".into() },
            KvOp::Get { node: 1, key: "k".into() },
        ]
    );
    let condition = |i: usize| match &scenario.steps[i].action {
        Action::Await { condition, .. } | Action::Expect { condition } => {
            condition.check.typed::<KvCondition>().unwrap()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(condition(3), KvCondition::Holds { key: "k".into(), value: None });
    assert_eq!(condition(4), KvCondition::Holds { key: "k".into(), value: Some("v".into()) });
    assert_eq!(scenario.expects[0].check.typed::<KvCondition>(), Ok(KvCondition::Converged(tandem::True)));
    // Written back, it parses to the same scenario.
    assert_eq!(parse(&scenario.to_toml()).unwrap(), Scenario { name: "test".into(), ..scenario });
}

#[test]
fn bad_operations_and_conditions_are_rejected_with_a_location() {
    let bad = [
        ("put = { node = 0, key = \"k\" }", "value"),
        ("put = { node = 0, key = \"k\", value = \"v\", extra = 1 }", "extra"),
        ("get = { node = 5, key = \"k\" }", "out of range"),
        ("get = { node = 0, key = \"\" }", "key"),
        ("scan = { node = 0 }", "scan"),
        ("expect = { holds = { key = \"k\", colour = \"x\" } }", "colour"),
        ("expect = { converged = false }", "true"),
        ("expect = { received = 1 }", "received"),
    ];
    for (step, needle) in bad {
        let text = format!("system = \"kv\"\nnodes = 2\n\n[[step]]\n{step}\n");
        let error = parse(&text).expect_err(step);
        assert!(error.contains("test.toml:5:"), "{step}: {error}");
        assert!(error.contains(needle), "{step}: {error}");
    }
}

#[test]
fn adapter_surface() {
    assert_eq!(Kv.name(), "kv");
    assert!(Kv.capabilities().rebind);
    let bugs: Vec<&str> = Kv.planted_bugs().iter().map(|b| b.name).collect();
    if cfg!(feature = "mutations") {
        assert_eq!(
            bugs,
            [
                "no-tiebreak",
                "no-clock-merge",
                "drop-tombstones",
                "skip-missing-keys",
                "restart-reuses-version",
                "purge-tombstones"
            ]
        );
    } else {
        assert!(bugs.is_empty(), "planted bugs exist only with the `mutations` feature");
    }
    let op = KvOp::Put { node: 0, key: "k".into(), value: "x".repeat(tandem_kv::MAX_VALUE + 1) };
    assert!(op.validate(1).is_err());
    assert_eq!(op.simpler(), [KvOp::Get { node: 0, key: "k".into() }]);
    let mut two_movers =
        parse("system = \"kv\"\nnodes = 3\n[[step]]\nrebind = { node = 1 }\n[[step]]\nrebind = { node = 1 }\n")
            .unwrap();
    assert!(Kv.fair(&two_movers).is_ok());
    two_movers.steps.push(two_movers.steps[0].clone());
    if let Action::Rebind { node, .. } = &mut two_movers.steps[2].action {
        *node = 2;
    }
    assert!(Kv.fair(&two_movers).unwrap_err().contains("node 2 rebinds, but node 1 already did"));
}
