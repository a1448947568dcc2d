//! A cohort definition run on a store: the rows every analysis starts from.

use qiao_cohort::{parse, CohortRow, Prepared};
use qiao_store::Store;

/// Why a cohort could not be made for an analysis.
#[derive(Debug, thiserror::Error)]
pub enum CohortInputError {
    #[error("{name}: {source}")]
    Definition {
        name: String,
        #[source]
        source: qiao_cohort::ModelError,
    },
    #[error("{name}: {source}")]
    Run {
        name: String,
        #[source]
        source: qiao_cohort::CohortError,
    },
}

/// Parses the Circe JSON `json` (named `name` in errors) and runs it on `store`: its rows in
/// (subject_id, start) order.
pub fn cohort_rows(
    store: &Store,
    name: &str,
    json: &str,
) -> Result<Vec<CohortRow>, CohortInputError> {
    let def = parse(json).map_err(|source| CohortInputError::Definition {
        name: name.to_string(),
        source,
    })?;
    let prepared = Prepared::new(&def, store).map_err(|source| CohortInputError::Run {
        name: name.to_string(),
        source,
    })?;
    let mut rows = Vec::new();
    prepared
        .run(store, &mut rows)
        .map_err(|source| CohortInputError::Run {
            name: name.to_string(),
            source,
        })?;
    Ok(rows)
}

/// Each row's person index in `ids` (the store's sorted person ids): rows sorted by subject, as
/// the cohort engine gives them, are found by searching forward from the previous one.
pub fn person_indexes(ids: &[i64], rows: &[CohortRow]) -> Vec<Option<u32>> {
    let mut from = 0usize;
    let mut last: Option<(i64, Option<u32>)> = None;
    rows.iter()
        .map(|r| {
            let subject = r.subject_id;
            match last {
                Some((s, i)) if s == subject => return i,
                Some((s, _)) if s > subject => from = 0,
                _ => {}
            }
            // Gallop forward from `from`, then search the last step.
            let mut step = 1usize;
            let mut hi = from;
            while hi < ids.len() && ids[hi] < subject {
                from = hi + 1;
                hi += step;
                step *= 2;
            }
            let hi = hi.min(ids.len());
            let at = from + ids[from..hi].partition_point(|&id| id < subject);
            from = at;
            let i = (ids.get(at) == Some(&subject)).then_some(at as u32);
            last = Some((subject, i));
            i
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_indexes_equal_a_binary_search_in_any_order() {
        let ids: Vec<i64> = (0..1000).map(|i| i * 3 + 1).collect();
        let subjects = [1, 1, 4, 5, 700, 2998, 2998, 3000, 0, 7, 1501, 40, 40, -5];
        let rows: Vec<CohortRow> = subjects
            .iter()
            .map(|&subject_id| CohortRow {
                subject_id,
                start: 0,
                end: 0,
            })
            .collect();
        let want: Vec<Option<u32>> = subjects
            .iter()
            .map(|s| ids.binary_search(s).ok().map(|i| i as u32))
            .collect();
        assert_eq!(person_indexes(&ids, &rows), want);
        assert_eq!(want[3], None);
        assert_eq!(want[5], Some(999));
        assert_eq!(person_indexes(&[], &rows), vec![None; rows.len()]);
    }
}
