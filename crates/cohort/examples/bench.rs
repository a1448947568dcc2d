//! Times parse, prepare (concept sets + plan) and run per definition:
//! `cargo run --release -p qiao-cohort --example bench -- STORE DEF.json...`

use std::time::Instant;

use qiao_cohort::exec::{Counter, Prepared};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((store, defs)) = args.split_first() else {
        eprintln!("usage: bench STORE DEF.json...");
        std::process::exit(2);
    };
    let store = qiao_store::Store::open(store).expect("store");
    let mut runs = Vec::new();
    for d in defs {
        let text = std::fs::read_to_string(d).expect("read");
        let t0 = Instant::now();
        let def = match qiao_cohort::parse(&text) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{d}: {e}");
                continue;
            }
        };
        let t1 = Instant::now();
        let p = Prepared::new(&def, &store).expect("prepare");
        let t2 = Instant::now();
        let mut c = Counter::default();
        let stats = p.run(&store, &mut c).expect("run");
        let t3 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
        println!(
            "{d}\tentries {}\tsubjects {}\tcandidates {}\tparse {:.2}\tprepare {:.2}\trun {:.2}\ttotal {:.2}",
            c.entries,
            c.subjects,
            stats.candidates,
            ms(t0, t1),
            ms(t1, t2),
            ms(t2, t3),
            ms(t0, t3)
        );
        runs.push(ms(t0, t3));
    }
    runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if !runs.is_empty() {
        println!(
            "n {}\tmedian {:.2} ms\tp90 {:.2} ms\tmax {:.2} ms\tsum {:.1} ms",
            runs.len(),
            runs[runs.len() / 2],
            runs[runs.len() * 9 / 10],
            runs[runs.len() - 1],
            runs.iter().sum::<f64>()
        );
    }
}
