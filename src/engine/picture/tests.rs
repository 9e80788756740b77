use super::*;

fn dot(node: NodeIdx, incarnation: u64, mark: Mark) -> Dot {
    Dot { event: 0, t_us: 0, node, incarnation, mark, detail: String::new() }
}

#[test]
fn causes_join_their_effects_and_a_second_effect_in_one_incarnation_is_a_duplicate() {
    let mut dots = vec![
        dot(0, 0, Mark::new("send", "send a").cause("a").expect([2])),
        dot(1, 0, Mark::new("deliver", "deliver a").effect("a")),
        dot(1, 0, Mark::new("deliver", "deliver a").effect("a")),
        dot(1, 1, Mark::new("deliver", "deliver a").effect("a")),
        dot(2, 0, Mark::new("deliver", "deliver b").effect("b")),
    ];
    let arrows = join(&mut dots);
    assert_eq!(arrows, vec![Arrow { from: 0, to: 1 }, Arrow { from: 0, to: 2 }, Arrow { from: 0, to: 3 }]);
    let problems: Vec<_> = dots.iter().map(|d| d.mark.problem.as_deref()).collect();
    assert_eq!(problems, vec![None, None, Some("duplicate"), None, None], "a new incarnation may deliver again");
}

fn between(a: &[NodeIdx], b: &[NodeIdx]) -> Scope {
    Scope::Between { a: a.to_vec(), b: b.to_vec() }
}

/// Bands and the links they are drawn over, as a run's history has them.
struct Drawn {
    bands: Bands,
    links: LinkState,
}

impl Drawn {
    fn new(nodes: u32, end_us: u64) -> Self {
        Drawn { bands: Bands::new(nodes, &Network::default(), end_us), links: LinkState::new(&Network::default()) }
    }

    fn apply(&mut self, change: LinkChange, scope: Scope, t_us: u64) {
        self.links.apply(&change, &scope);
        self.bands.apply(&change, &scope, &self.links, t_us);
    }

    fn settle(&mut self, t_us: u64) {
        self.links.settle();
        self.bands.settle(&self.links, t_us);
    }
}

#[test]
fn partitions_last_until_healed_and_loss_until_replaced() {
    let mut drawn = Drawn::new(3, 100);
    drawn.apply(LinkChange::Partition { oneway: false }, between(&[0], &[1]), 10);
    drawn.apply(LinkChange::Partition { oneway: true }, between(&[2], &[0]), 15);
    drawn.apply(LinkChange::Loss(0.5), Scope::Every, 20);
    drawn.apply(LinkChange::Heal, between(&[1], &[0]), 30);
    drawn.apply(LinkChange::Loss(0.0), Scope::Every, 40);
    drawn.settle(60);
    let got: Vec<_> = drawn.bands.finish().into_iter().map(|b| (b.kind, b.nodes, b.from_us, b.to_us)).collect();
    assert_eq!(
        got,
        vec![("partition", vec![0, 1], 10, 30), ("one-way", vec![0, 2], 15, 60), ("loss", vec![0, 1, 2], 20, 40),],
        "healing 1 from 0 ends the partition between them, not the one-way one from 2; the settle tail ends the rest"
    );
}

#[test]
fn a_partition_lasts_while_a_link_of_it_is_partitioned() {
    let mut drawn = Drawn::new(3, 100);
    drawn.apply(LinkChange::Partition { oneway: false }, between(&[0], &[1, 2]), 10);
    drawn.apply(LinkChange::Heal, between(&[0], &[1]), 20);
    drawn.apply(LinkChange::Heal, between(&[2], &[0]), 30);
    let got: Vec<_> = drawn.bands.finish().into_iter().map(|b| (b.kind, b.from_us, b.to_us)).collect();
    assert_eq!(got, vec![("partition", 10, 30)], "0 <-> 2 stays partitioned until its own heal");
}

#[test]
fn the_page_is_self_contained_and_its_data_cannot_end_the_script() {
    let picture = Picture {
        title: "a <b> & c".into(),
        verdict: "PASS".into(),
        end_us: 1,
        lanes: Vec::new(),
        steps: vec![StepMark { index: Some(0), t_us: 0, action: "</script><script>alert(1)</script>".into() }],
        bands: Vec::new(),
        dots: Vec::new(),
        arrows: Vec::new(),
        violation: None,
    };
    let page = picture.html();
    assert_eq!(page.matches("</script>").count(), 2, "only the page's own two scripts end");
    assert!(page.contains("<title>a &lt;b&gt; &amp; c - tandem</title>"));
    assert!(!page.contains("src=") && !page.contains("href="), "nothing is loaded from elsewhere");
}
