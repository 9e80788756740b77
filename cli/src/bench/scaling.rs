//! Item 5: how wall time grows with the node count for a fixed simulated
//! workload, on both backends and on raw turmoil at each size; and, on the
//! discrete-event backend, how it grows with the events of the run.

use super::report::Figure;
use super::sim_speed::Comparison;
use super::workload;
use super::Options;

/// The largest size the turmoil backend and raw turmoil run at (they grow
/// faster than linearly).
const TURMOIL_MAX: u32 = 64;

/// Runs the fixed workload at 2 to 256 nodes (2 to 8 when quick) and
/// reports each wall time and the fitted growth exponents.
pub fn measure(options: &Options) -> Vec<Figure> {
    let (sizes, secs): (&[u32], u64) =
        if options.quick { (&[2, 4, 8], 2) } else { (&[2, 4, 8, 16, 32, 64, 128, 256], 10) };
    let mut figures = Vec::new();
    let mut points = Vec::new();
    for &nodes in sizes {
        let turmoil = nodes <= TURMOIL_MAX;
        let comparison =
            Comparison::of::<tandem_pubsub::PubSub>(&workload::fixed_load(nodes, secs), options.reps, turmoil);
        let what = format!("{nodes} nodes, 10 broadcasts per simulated second in total, {secs} s");
        figures.push(comparison.wall_figure(&format!("scale.n{nodes}.wall"), &what));
        if !comparison.passed {
            // A failing run's times are no point of the growth curves.
            continue;
        }
        points.push((nodes as f64, comparison));
        if turmoil {
            figures.push(comparison.backend_figure(&format!("scale.n{nodes}.events_vs_turmoil"), &what));
        }
        figures.push(Figure::new(
            format!("scale.n{nodes}.us_per_event"),
            format!("{what}: wall per history event, discrete-event backend ({} events)", comparison.events),
            comparison.tandem_wall * 1e6 / comparison.events as f64,
            "us/event",
        ));
    }
    let fit = |f: &dyn Fn(&Comparison) -> f64, x: &dyn Fn(f64, &Comparison) -> f64, upto: u32| {
        let chosen: Vec<(f64, f64)> =
            points.iter().filter(|(n, _)| *n <= upto as f64).map(|(n, c)| (x(*n, c), f(c))).collect();
        growth_exponent(&chosen)
    };
    let nodes = |n: f64, _: &Comparison| n;
    let events = |_: f64, c: &Comparison| c.events as f64;
    let all = *sizes.last().expect("sizes");
    let up_to = TURMOIL_MAX.min(all);
    figures.push(
        Figure::new(
            "scale.exponent",
            format!("k in wall ~ nodes^k, discrete-event backend, 2 to {up_to} nodes (1: linear, 2: quadratic)"),
            fit(&|c| c.tandem_wall, &nodes, up_to),
            "",
        )
        .against("raw turmoil", fit(&|c| c.raw_wall, &nodes, up_to)),
    );
    figures.push(
        Figure::new(
            "scale.turmoil_exponent",
            format!("k in wall ~ nodes^k, turmoil backend, 2 to {up_to} nodes"),
            fit(&|c| c.turmoil_wall, &nodes, up_to),
            "",
        )
        .against("raw turmoil", fit(&|c| c.raw_wall, &nodes, up_to)),
    );
    figures.push(Figure::new(
        "scale.events_exponent",
        format!("k in wall ~ events^k, discrete-event backend, 2 to {all} nodes (1: cost linear in events)"),
        fit(&|c| c.tandem_wall, &events, all),
        "",
    ));
    figures
}
/// The slope of `ln y` against `ln x`, least squares.
fn growth_exponent(points: &[(f64, f64)]) -> f64 {
    let logs: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (x.ln(), y.ln())).collect();
    let n = logs.len() as f64;
    let (mx, my) = (logs.iter().map(|p| p.0).sum::<f64>() / n, logs.iter().map(|p| p.1).sum::<f64>() / n);
    let cov: f64 = logs.iter().map(|&(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = logs.iter().map(|&(x, _)| (x - mx).powi(2)).sum();
    cov / var
}

#[cfg(test)]
mod tests {
    #[test]
    fn exponent_of_a_square_is_two() {
        let points: Vec<(f64, f64)> = [2.0, 4.0, 8.0].iter().map(|&x| (x, 3.0 * x * x)).collect();
        assert!((super::growth_exponent(&points) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_run_that_failed_its_checks_publishes_no_time() {
        let comparison = super::Comparison {
            tandem_wall: 1.5,
            turmoil_wall: f64::NAN,
            raw_wall: f64::NAN,
            cluster_wall: 1.0,
            simulated: std::time::Duration::from_secs(10),
            passed: false,
            events: 100,
            tandem_observed: 10,
            raw_delivered: 0,
        };
        let figure = comparison.wall_figure("scale.n256.wall", "256 nodes");
        assert!(figure.value.is_nan(), "{figure:?}");
        assert!(figure.what.contains("not measured, a run FAILED its checks"), "{}", figure.what);
        let passing = super::Comparison { passed: true, ..comparison };
        assert_eq!(passing.wall_figure("scale.n2.wall", "2 nodes").value, 1.5);
    }
}
