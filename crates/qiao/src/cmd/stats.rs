//! `qiao stats`: what a store holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use qiao_store::Store;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// The store file.
    pub store: PathBuf,
    /// One JSON object: {"tables": {...}, "persons": N, "first_date", "last_date", "orphans": {...}}.
    #[arg(long)]
    pub json: bool,
    /// How many top concepts to list per domain.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let store = Store::open(&args.store)?;
    let meta = store.meta();
    if args.json {
        let tables: BTreeMap<_, _> = meta
            .tables
            .iter()
            .map(|(n, t)| (n.clone(), t.rows))
            .collect();
        let orphans: BTreeMap<_, _> = meta
            .tables
            .iter()
            .filter(|(_, t)| t.orphans > 0)
            .map(|(n, t)| (n.clone(), t.orphans))
            .collect();
        let v = json!({
            "tables": tables,
            "persons": meta.persons,
            "first_date": meta.first_date,
            "last_date": meta.last_date,
            "orphans": orphans,
        });
        println!("{v}");
        return Ok(());
    }
    println!("store      {}", args.store.display());
    println!(
        "persons    {} ({} person ids incl. orphans)",
        meta.persons, meta.person_universe
    );
    println!(
        "dates      {} .. {}",
        meta.first_date.as_deref().unwrap_or("-"),
        meta.last_date.as_deref().unwrap_or("-")
    );
    println!(
        "\n{:<22} {:>12} {:>9} {:>11}",
        "table", "rows", "orphans", "outside OP"
    );
    for (name, t) in &meta.tables {
        println!(
            "{:<22} {:>12} {:>9} {:>11}",
            name, t.rows, t.orphans, t.outside_observation
        );
    }
    let vocab = store.vocabulary();
    for name in store.domain_names() {
        let Some(d) = store.domain(&name) else {
            continue;
        };
        let mut top: Vec<(i32, u64)> = d.concept_counts().collect();
        if top.is_empty() {
            continue;
        }
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        println!("\ntop concepts in {name}:");
        for (c, n) in top.into_iter().take(args.top) {
            let label = vocab
                .concept(c)
                .and_then(|i| i.concept_name)
                .unwrap_or("(not in vocabulary)");
            println!("  {n:>10}  {c:>10}  {label}");
        }
    }
    Ok(())
}
