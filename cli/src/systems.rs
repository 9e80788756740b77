//! `tandem systems [--json]`: the systems this binary can test.

use clap::Args;

use crate::bundle::Bundle;
use crate::shared::Exit;

/// Arguments of `tandem systems`.
#[derive(Debug, Args)]
pub struct SystemsArgs {
    /// Print one JSON object per system.
    #[arg(long)]
    json: bool,
}

/// Lists every system with its operations, conditions, properties and
/// planted bugs; the first is the default of scenario files naming none.
pub fn systems(args: SystemsArgs, systems: &[&dyn Bundle]) -> Exit {
    for (index, system) in systems.iter().enumerate() {
        let info = system.info();
        if args.json {
            println!("{}", serde_json::to_string(&info).expect("system infos serialise"));
            continue;
        }
        let default = if index == 0 { " (default)" } else { "" };
        println!("{}{default}: {}", info.name, info.description);
        println!("  operations: {}", info.operations.join(", "));
        println!("  conditions: {}", info.conditions.join(", "));
        println!("  rebind: {}", if info.capabilities.rebind { "yes" } else { "no" });
        println!("  storage: {}", if info.capabilities.storage { "yes" } else { "no" });
        if !info.roles.is_empty() {
            println!("  roles: {}", info.roles.join(", "));
        }
        println!(
            "  tolerates: latency up to {}, settle {}, boot stagger {}",
            tandem::scenario::format_duration(info.tolerance.max_latency),
            tandem::scenario::format_duration(info.tolerance.settle),
            tandem::scenario::format_duration(info.tolerance.stagger)
        );
        for survived in info.tolerance.disk_faults {
            let node = survived.node.map_or("any node".to_string(), |node| format!("node {node}"));
            println!("  survives: disk {} on {node}", survived.fault.name());
        }
        if let Some((default, others)) = info.workloads.split_first() {
            let others: String = others.iter().map(|w| format!(", {w}")).collect();
            println!("  workloads: {default} (default){others}");
        }
        if info.final_phase {
            println!("  final phase: yes (explored scenarios end with final operations, faults healed)");
        }
        for p in &info.properties {
            println!("  {} {} {}", p.kind, p.code, p.name);
        }
        for knob in &info.knobs {
            println!("  knob {} = {} ({}..={}): {}", knob.name, knob.default, knob.min, knob.max, knob.description);
        }
        for bug in &info.planted_bugs {
            println!("  planted bug {}: {}", bug.name, bug.description);
        }
    }
    Exit::Pass
}
