//! Item 5: how wall time grows with the node count for a fixed simulated
//! workload, against raw turmoil at each size.

use super::report::Figure;
use super::sim_speed::Comparison;
use super::workload;
use super::Options;

/// Runs the fixed workload at 2 to 64 nodes (2 to 8 when quick) and reports
/// each wall time and the fitted growth exponent.
pub fn measure(options: &Options) -> Vec<Figure> {
    let (sizes, secs): (&[u32], u64) = if options.quick { (&[2, 4, 8], 2) } else { (&[2, 4, 8, 16, 32, 64], 10) };
    let mut figures = Vec::new();
    let mut points = Vec::new();
    for &nodes in sizes {
        let comparison = Comparison::of::<tandem_pubsub::PubSub>(&workload::fixed_load(nodes, secs), options.reps);
        points.push((nodes as f64, comparison.tandem_wall, comparison.raw_wall));
        let what = format!("{nodes} nodes, 10 broadcasts per simulated second in total, {secs} s");
        figures.push(comparison.wall_figure(&format!("scale.n{nodes}.wall"), &what));
    }
    let tandem: Vec<(f64, f64)> = points.iter().map(|&(n, t, _)| (n, t)).collect();
    let raw: Vec<(f64, f64)> = points.iter().map(|&(n, _, r)| (n, r)).collect();
    figures.push(
        Figure::new("scale.exponent", "k in wall ~ nodes^k, least squares on log-log over every size (1: linear, 2: quadratic)", growth_exponent(&tandem), "")
            .against("raw turmoil", growth_exponent(&raw)),
    );
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
}
