fn main() {
    let path = std::env::args().nth(1).unwrap();
    let seed: u64 = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(0);
    let scenario = tandem::scenario::Scenario::from_file(std::path::Path::new(&path)).unwrap();
    for i in 0..3 {
        let t = std::time::Instant::now();
        let run = tandem_sim::run_scenario(&scenario, seed);
        println!("{:?} end={:?} digest={} wall={:?} events={}", run.outcome.failure.as_ref().map(|f| f.to_string()), run.outcome.end, run.digest(), t.elapsed(), run.record.trace.events().len());
        if std::env::var("DUMP").is_ok() { std::fs::write(format!("/tmp/trace{i}.jsonl"), run.record.trace.to_jsonl()).unwrap(); }
    }
}
