//! Figures, their baselines and targets, and the report they make up.

use serde::Serialize;

/// Which number a [`Target`] constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Of {
    /// The figure's own value.
    Value,
    /// The figure's value divided by its baseline's.
    Ratio,
}

/// A goal a figure is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Target {
    /// The number it constrains.
    pub of: Of,
    /// `true`: the number must be at least `bound`; `false`: at most.
    pub at_least: bool,
    /// The bound.
    pub bound: f64,
}

impl Target {
    /// The figure's value must be at least `bound`.
    pub fn value_at_least(bound: f64) -> Self {
        Target { of: Of::Value, at_least: true, bound }
    }

    /// The figure's value must be at most `bound`.
    pub fn value_at_most(bound: f64) -> Self {
        Target { of: Of::Value, at_least: false, bound }
    }

    /// The value/baseline ratio must be at least `bound`.
    #[cfg_attr(not(feature = "msquic"), allow(dead_code))]
    pub fn ratio_at_least(bound: f64) -> Self {
        Target { of: Of::Ratio, at_least: true, bound }
    }

    /// The value/baseline ratio must be at most `bound`.
    pub fn ratio_at_most(bound: f64) -> Self {
        Target { of: Of::Ratio, at_least: false, bound }
    }

    fn describe(&self) -> String {
        let of = match self.of {
            Of::Value => "value",
            Of::Ratio => "ratio",
        };
        format!("{of} {} {}", if self.at_least { ">=" } else { "<=" }, self.bound)
    }
}

/// What a figure is compared with: the same work done without tandem, in the
/// same process and run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baseline {
    /// What the baseline is (e.g. `raw turmoil`).
    pub name: String,
    /// Its value, in the figure's unit.
    pub value: f64,
}

/// One measured number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// A stable identifier, e.g. `sim.broadcast5.wall`.
    pub id: String,
    /// What was measured, for people.
    pub what: String,
    /// The measured value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// The same work without tandem, when there is one.
    pub baseline: Option<Baseline>,
    /// `value / baseline.value`.
    pub ratio: Option<f64>,
    /// The goal, when there is one.
    pub target: Option<Target>,
    /// Whether the goal is met.
    pub met: Option<bool>,
}

impl Figure {
    /// A figure without a baseline or target.
    pub fn new(id: impl Into<String>, what: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        Figure {
            id: id.into(),
            what: what.into(),
            value,
            unit: unit.into(),
            baseline: None,
            ratio: None,
            target: None,
            met: None,
        }
    }

    /// Adds the baseline (and with it the ratio).
    pub fn against(mut self, name: impl Into<String>, value: f64) -> Self {
        self.ratio = Some(self.value / value);
        self.baseline = Some(Baseline { name: name.into(), value });
        self.judge()
    }

    /// Adds a target.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self.judge()
    }

    fn judge(mut self) -> Self {
        self.met = self.target.and_then(|t| {
            let number = match t.of {
                Of::Value => Some(self.value),
                Of::Ratio => self.ratio,
            }?;
            Some(if t.at_least { number >= t.bound } else { number <= t.bound })
        });
        self
    }
}

/// The machine the figures were measured on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// The CPU model from `/proc/cpuinfo`.
    pub cpu: String,
}

impl Machine {
    /// Describes this machine.
    pub fn this() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, model)| model.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine { cores, cpu }
    }
}

/// Every figure of one `tandem bench` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// Whether it was the quick (CI) run, whose numbers are not the published ones.
    pub quick: bool,
    /// The figures, in the order measured.
    pub figures: Vec<Figure>,
    /// Sections that could not run, with the reason.
    pub skipped: Vec<String>,
}

impl Report {
    /// The report as a human-readable table.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "machine: {} cores, {}{}\n",
            self.machine.cores,
            self.machine.cpu,
            if self.quick { " (quick run)" } else { "" }
        );
        for f in &self.figures {
            out += &format!("{:<34} {:>14} {:<10}", f.id, format_number(f.value), f.unit);
            if let (Some(b), Some(r)) = (&f.baseline, f.ratio) {
                out += &format!(" vs {} {} (ratio {:.2})", b.name, format_number(b.value), r);
            }
            if let (Some(t), Some(met)) = (f.target, f.met) {
                out += &format!(" [target {}: {}]", t.describe(), if met { "met" } else { "MISSED" });
            }
            out += &format!("\n    {}\n", f.what);
        }
        for s in &self.skipped {
            out += &format!("skipped: {s}\n");
        }
        out
    }
}

fn format_number(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}
