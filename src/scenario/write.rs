//! Writing a scenario in the file format. Every field is written, defaults
//! included, so that the file does not depend on the defaults of a reader.

use std::fmt;

use super::{
    format_duration, Action, Aim, ClockChange, Condition, DiskFault, LinkChange, NodeIdx, Scenario, Scope, Timing,
};

/// `scenario` in the file format.
pub(crate) fn to_toml(scenario: &Scenario) -> String {
    Toml(scenario).to_string()
}

struct Toml<'a>(&'a Scenario);

/// The keys and rendered values of an inline table, in order.
type Fields = Vec<(String, String)>;

impl fmt::Display for Toml<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        writeln!(f, "name = {}", string(&s.name))?;
        writeln!(f, "description = {}", string(&s.description))?;
        writeln!(f, "nodes = {}", s.nodes)?;
        writeln!(f, "seeds = {}", group(&s.seeds))?;
        writeln!(f, "duration = {}", duration(s.duration))?;
        writeln!(f, "settle = {}", duration(s.settle))?;
        writeln!(f, "seed = {}", s.seed)?;
        if !s.stagger.is_zero() {
            writeln!(f, "stagger = {}", duration(s.stagger))?;
        }
        if s.clients != 1 {
            writeln!(f, "clients = {}", s.clients)?;
        }
        if let Some(system) = &s.system {
            writeln!(f, "system = {}", string(system))?;
        }
        if let Some(mutation) = &s.planted_bug {
            writeln!(f, "mutation = {}", string(mutation))?;
        }
        if !s.properties.is_empty() {
            let codes: Vec<String> = s.properties.iter().map(|code| string(code)).collect();
            writeln!(f, "properties = [{}]", codes.join(", "))?;
        }
        writeln!(f, "\n[network]")?;
        writeln!(f, "latency = {}", string(&s.network.latency.to_string()))?;
        writeln!(f, "loss = {}", float(s.network.loss))?;
        if !s.knobs.is_empty() {
            writeln!(f, "\n[knobs]")?;
            for (name, value) in &s.knobs {
                writeln!(f, "{name} = {value}")?;
            }
        }
        for (table, step) in
            s.steps.iter().map(|step| ("step", step)).chain(s.finals.iter().map(|step| ("final", step)))
        {
            writeln!(f, "\n[[{table}]]")?;
            match step.timing {
                Timing::Immediately => {}
                Timing::At(at) => writeln!(f, "at = {}", duration(at))?,
                Timing::After(after) => writeln!(f, "after = {}", duration(after))?,
            }
            if let Some(wait) = step.wait {
                writeln!(f, "wait = {}", duration(wait))?;
            }
            writeln!(f, "{}", action(&step.action))?;
        }
        for condition in &s.expects {
            writeln!(f, "\n[[expect]]")?;
            for (key, value) in condition_fields(condition) {
                writeln!(f, "{key} = {value}")?;
            }
        }
        Ok(())
    }
}

/// The step line of `action`: `key = value`.
pub(crate) fn action(action: &Action) -> String {
    match action {
        Action::Op(call) => format!("{} = {}", call.key, value(&call.value)),
        _ => format!("{} = {}", action.name(), inline(&action_fields(action))),
    }
}

fn action_fields(action: &Action) -> Fields {
    match action {
        Action::Link { change, scope } => {
            let (value, oneway) = match change {
                LinkChange::Partition { oneway } => (None, Some(("oneway".into(), oneway.to_string()))),
                LinkChange::Heal => (None, None),
                LinkChange::Latency(latency) => (Some(("value".into(), string(&latency.to_string()))), None),
                LinkChange::Loss(rate) => (Some(("rate".into(), float(*rate))), None),
            };
            value.into_iter().chain(groups(scope)).chain(oneway).collect()
        }
        Action::Crash { node } | Action::Restart { node } => vec![("node".into(), node.to_string())],
        Action::Rebind { node, port } => [("node".into(), node.to_string())]
            .into_iter()
            .chain(port.map(|port| ("port".into(), port.to_string())))
            .collect(),
        Action::Disk { node, fault } => [("node".into(), node.to_string()), ("fault".into(), string(fault.name()))]
            .into_iter()
            .chain(match fault {
                DiskFault::Slow(delay) => Some(("delay".into(), duration(*delay))),
                _ => None,
            })
            .collect(),
        Action::Pause { node, length } => vec![("node".into(), node.to_string()), ("for".into(), duration(*length))],
        Action::Clock { node, change } => {
            let value = match change {
                ClockChange::Offset(skew) | ClockChange::Jump(skew) => string(&skew.to_string()),
                ClockChange::Drift(rate) => float(*rate),
            };
            vec![("node".into(), node.to_string()), (change.name().into(), value)]
        }
        Action::Await { condition, timeout } => {
            let mut fields = condition_fields(condition);
            fields.push(("timeout".into(), duration(*timeout)));
            fields
        }
        Action::Expect { condition } => condition_fields(condition),
        Action::Op(_) => unreachable!("operations are written whole"),
        // The role where the node would be: `crash = { role = "primary" }`,
        // `partition = { role = "primary", oneway = false }`.
        Action::Aimed { role, aim } => {
            let role = ("role".to_string(), string(role));
            match aim {
                Aim::Isolate { oneway } => vec![role, ("oneway".into(), oneway.to_string())],
                Aim::Node(change) => action_fields(&change.on(0))
                    .into_iter()
                    .map(|field| if field.0 == "node" { role.clone() } else { field })
                    .collect(),
            }
        }
    }
}

/// The groups `a` and `b` of a scope between groups; none for every link.
fn groups(scope: &Scope) -> Fields {
    match scope {
        Scope::Every => Vec::new(),
        Scope::Between { a, b } => vec![("a".into(), group(a)), ("b".into(), group(b))],
    }
}

fn condition_fields(condition: &Condition) -> Fields {
    condition
        .node
        .map(|node| ("node".to_string(), node.to_string()))
        .into_iter()
        .chain([(condition.check.key.clone(), value(&condition.check.value))])
        .collect()
}

/// A TOML value on one line (tables inline, keys in their order).
pub(crate) fn value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => string(s),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(x) => float(*x),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(items) => format!("[{}]", items.iter().map(value).collect::<Vec<_>>().join(", ")),
        toml::Value::Table(table) => inline(&table.iter().map(|(k, v)| (key(k), value(v))).collect()),
    }
}

/// A key, bare when it can be.
fn key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        k.to_string()
    } else {
        string(k)
    }
}

fn inline(fields: &Fields) -> String {
    if fields.is_empty() {
        return "{}".to_string();
    }
    let pairs: Vec<String> = fields.iter().map(|(key, value)| format!("{key} = {value}")).collect();
    format!("{{ {} }}", pairs.join(", "))
}

/// A TOML basic string, always on one line.
fn string(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A TOML float: Rust's shortest exact form always has a `.` or an exponent.
fn float(x: f64) -> String {
    format!("{x:?}")
}

fn duration(d: std::time::Duration) -> String {
    string(&format_duration(d))
}

fn group(nodes: &[NodeIdx]) -> String {
    let nodes: Vec<String> = nodes.iter().map(ToString::to_string).collect();
    format!("[{}]", nodes.join(", "))
}
