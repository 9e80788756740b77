//! `--coverage-html FILE` of `explore` and `merge`: the exploration's
//! coverage over time as one self-contained HTML page (inline SVG, no
//! script, nothing loaded from the network). Four panels: signature hashes
//! and goals reached, against cases and against wall seconds. A curve still
//! rising means more cases (more machines) find more; a flat one means the
//! tests need strengthening.

use std::fmt::Write as _;
use std::path::Path;

use tandem_sim::explore::guide::Growth;
use tandem_sim::explore::results::Identity;
use tandem_sim::explore::runner::UNBOUNDED;

/// One curve of the page: a name (like `shard 2/4`) and its points.
pub struct Curve<'a> {
    /// What the legend calls it.
    pub name: String,
    /// Its points, in case order.
    pub points: &'a [Growth],
}

/// The page's title: the exploration's system, seed, guide and budget.
pub fn title(exploration: &Identity, shards: u64) -> String {
    let mut system = exploration.system.clone();
    if let Some(mutation) = &exploration.mutation {
        system.push_str(&format!(" (planted bug {mutation})"));
    }
    let mut budget = match (exploration.cases, &exploration.budget) {
        (UNBOUNDED, Some(time)) => time.clone(),
        (cases, Some(time)) => format!("{cases} cases or {time}"),
        (cases, None) => format!("{cases} cases"),
    };
    if shards > 1 {
        budget.push_str(&format!(", {shards} shards"));
    }
    format!("Coverage of system {system}, seed {}, guide {}, budget {budget}", exploration.seed, exploration.guide)
}

/// Writes the page of `curves` under `title` to `path`.
pub fn write(path: &Path, title: &str, curves: &[Curve]) -> Result<(), String> {
    std::fs::write(path, page(title, curves)).map_err(|e| format!("{}: {e}", path.display()))
}

/// The page of `curves` under `title`.
pub fn page(title: &str, curves: &[Curve]) -> String {
    let title = escape(title);
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title><style>\
         body{{font-family:sans-serif;margin:1.5em}} .panels{{display:flex;flex-wrap:wrap;gap:1em}} \
         svg{{border:1px solid #ddd}} text{{font-size:11px}}</style></head><body>\n<h1>{title}</h1>\n\
         <p>Rising: more cases, on more machines, keep reaching new behaviour. \
         Flat: more of the same finds nothing new; strengthen the tests (operations, faults, goals).</p>\n"
    );
    if curves.len() > 1 {
        html.push_str("<p>");
        for (i, curve) in curves.iter().enumerate() {
            let _ = write!(html, "<span style=\"color:{}\">&#9632; {}</span> ", color(i), escape(&curve.name));
        }
        html.push_str("</p>\n");
    }
    html.push_str("<div class=\"panels\">\n");
    let cases = |g: &Growth| g.cases as f64;
    let secs = |g: &Growth| g.secs;
    let hashes = |g: &Growth| g.signature as f64;
    let goals = |g: &Growth| g.goals as f64;
    html.push_str(&panel(curves, ("cases", cases), ("signature hashes", hashes)));
    html.push_str(&panel(curves, ("wall seconds", secs), ("signature hashes", hashes)));
    html.push_str(&panel(curves, ("cases", cases), ("goals reached", goals)));
    html.push_str(&panel(curves, ("wall seconds", secs), ("goals reached", goals)));
    html.push_str("</div>\n</body></html>\n");
    html
}

/// A named coordinate of a point.
type Axis<'a> = (&'a str, fn(&Growth) -> f64);

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;

/// One panel: every curve's `y` against its `x`, a dot per point.
fn panel(curves: &[Curve], (x_name, x): Axis, (y_name, y): Axis) -> String {
    let points = || curves.iter().flat_map(|c| c.points.iter());
    let (x_step, x_end) = scale(points().map(x).fold(0.0, f64::max));
    let (y_step, y_end) = scale(points().map(y).fold(0.0, f64::max));
    let px = |v: f64| LEFT + v / x_end * (WIDTH - LEFT - RIGHT);
    let py = |v: f64| HEIGHT - BOTTOM - v / y_end * (HEIGHT - TOP - BOTTOM);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\">\n<text x=\"{LEFT}\" y=\"16\" font-weight=\"bold\">{y_name} against {x_name}</text>\n"
    );
    for tick in ticks(x_step, x_end) {
        let at = px(tick);
        let _ = writeln!(
            svg,
            "<line x1=\"{at:.1}\" y1=\"{TOP}\" x2=\"{at:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{at:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 14.0,
            label(tick)
        );
    }
    for tick in ticks(y_step, y_end) {
        let at = py(tick);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{at:.1}\" x2=\"{:.1}\" y2=\"{at:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            at + 4.0,
            label(tick)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{x_name}</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 6.0
    );
    for (i, curve) in curves.iter().enumerate() {
        let line: Vec<String> = curve.points.iter().map(|g| format!("{:.1},{:.1}", px(x(g)), py(y(g)))).collect();
        let color = color(i);
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            line.join(" ")
        );
        for g in curve.points {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"><title>{}: {} cases, {:.2} s: {} goals, {} hashes</title></circle>",
                px(x(g)),
                py(y(g)),
                escape(&curve.name),
                g.cases,
                g.secs,
                g.goals,
                g.signature
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// A tick step of 1, 2 or 5 times a power of ten giving about five ticks
/// up to `max`, and the axis' end: the first tick at or above `max`.
fn scale(max: f64) -> (f64, f64) {
    if max <= 0.0 {
        return (1.0, 1.0);
    }
    let rough = max / 5.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|s| *s >= rough).unwrap_or(10.0 * power);
    (step, (max / step).ceil() * step)
}

/// The ticks `0, step, 2 step, ...` up to `end`.
fn ticks(step: f64, end: f64) -> impl Iterator<Item = f64> {
    let count = (end / step).round() as u64;
    (0..=count).map(move |i| i as f64 * step)
}

/// A tick's label: no decimals for whole numbers.
fn label(value: f64) -> String {
    if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}").trim_end_matches('0').to_string()
    }
}

/// The `i`th curve's colour.
fn color(i: usize) -> &'static str {
    const PALETTE: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
    PALETTE[i % PALETTE.len()]
}

/// `text` with HTML's special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_end_at_a_round_tick_above_the_largest_value() {
        assert_eq!(scale(0.0), (1.0, 1.0));
        assert_eq!(scale(7.0), (2.0, 8.0));
        assert_eq!(scale(100.0), (20.0, 100.0));
        assert_eq!(scale(1.3), (0.5, 1.5));
        assert_eq!(ticks(2.0, 8.0).collect::<Vec<_>>(), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!((label(4.0), label(0.5)), ("4".to_string(), "0.5".to_string()));
    }

    #[test]
    fn a_page_draws_every_point_in_each_panel_and_escapes_names() {
        let points = [
            Growth { cases: 1, goals: 0, signature: 3, secs: 0.01 },
            Growth { cases: 64, goals: 2, signature: 40, secs: 0.9 },
        ];
        let curves = [Curve { name: "a<b".into(), points: &points }, Curve { name: "c".into(), points: &points[..1] }];
        let html = page("seed 1 & more", &curves);
        assert_eq!(html.matches("<svg ").count(), 4);
        assert_eq!(html.matches("<circle ").count(), 4 * 3);
        assert!(html.contains("<h1>seed 1 &amp; more</h1>") && html.contains("a&lt;b"), "{html}");
        assert!(!html.contains("<script") && !html.contains(" src=") && !html.contains(" href="), "self-contained");
    }
}
