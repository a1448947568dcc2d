//! Concept set expression resolution, exactly as circe-be's `ConceptSetExpressionQueryBuilder`:
//!
//! ```text
//! S(items)  = listed concepts that exist in CONCEPT (no validity check)
//!           ∪ valid (invalid_reason IS NULL) descendants, via CONCEPT_ANCESTOR, of items with includeDescendants
//! M(items)  = concept_id_1 of valid 'Maps to' rows whose concept_id_2 ∈ S(items with includeMapped)
//! Include   = S(non-excluded) ∪ M(non-excluded)      (nothing at all if there is no non-excluded item)
//! Exclude   = S(excluded) ∪ M(excluded)
//! Codeset   = Include − Exclude
//! ```

use std::collections::{BTreeSet, HashMap};

use crate::model::ConceptSetExpression;

/// The vocabulary lookups concept-set resolution needs.
pub trait Vocabulary {
    /// The concept is in CONCEPT.
    fn concept_exists(&self, id: i32) -> bool;
    /// The concept is in CONCEPT and its `invalid_reason` IS NULL.
    fn concept_is_valid(&self, id: i32) -> bool;
    /// `descendant_concept_id`s of `concept_ancestor` rows with this ancestor, as stored (the
    /// self-row is there only if the vocabulary has it).
    fn descendants(&self, ancestor: i32) -> &[i32];
    /// `concept_id_1` of valid 'Maps to' rows whose `concept_id_2` is `target`.
    fn mapped_from(&self, target: i32) -> &[i32];
}

impl Vocabulary for qiao_store::Vocabulary<'_> {
    fn concept_exists(&self, id: i32) -> bool {
        self.contains(id)
    }
    fn concept_is_valid(&self, id: i32) -> bool {
        self.is_valid(id)
    }
    fn descendants(&self, ancestor: i32) -> &[i32] {
        qiao_store::Vocabulary::descendants(self, ancestor)
    }
    fn mapped_from(&self, target: i32) -> &[i32] {
        qiao_store::Vocabulary::mapped_from(self, target)
    }
}

/// A small in-memory vocabulary (tests, fixtures).
#[derive(Debug, Clone, Default)]
pub struct MemVocabulary {
    /// concept id → valid (invalid_reason IS NULL)
    concepts: HashMap<i32, bool>,
    descendants: HashMap<i32, Vec<i32>>,
    mapped_from: HashMap<i32, Vec<i32>>,
}

impl MemVocabulary {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a concept; `invalid_reason` None means valid.
    pub fn concept(&mut self, id: i32, invalid_reason: Option<&str>) -> &mut Self {
        self.concepts.insert(id, invalid_reason.is_none());
        self
    }
    /// Adds a `concept_ancestor` row.
    pub fn ancestor(&mut self, ancestor: i32, descendant: i32) -> &mut Self {
        let v = self.descendants.entry(ancestor).or_default();
        if let Err(i) = v.binary_search(&descendant) {
            v.insert(i, descendant);
        }
        self
    }
    /// Adds a `concept_relationship` row; only valid 'Maps to' rows are kept.
    pub fn relationship(
        &mut self,
        id_1: i32,
        id_2: i32,
        relationship_id: &str,
        invalid_reason: Option<&str>,
    ) -> &mut Self {
        if relationship_id == "Maps to" && invalid_reason.is_none() {
            let v = self.mapped_from.entry(id_2).or_default();
            if let Err(i) = v.binary_search(&id_1) {
                v.insert(i, id_1);
            }
        }
        self
    }
}

impl Vocabulary for MemVocabulary {
    fn concept_exists(&self, id: i32) -> bool {
        self.concepts.contains_key(&id)
    }
    fn concept_is_valid(&self, id: i32) -> bool {
        self.concepts.get(&id).copied().unwrap_or(false)
    }
    fn descendants(&self, ancestor: i32) -> &[i32] {
        self.descendants.get(&ancestor).map_or(&[], |v| v)
    }
    fn mapped_from(&self, target: i32) -> &[i32] {
        self.mapped_from.get(&target).map_or(&[], |v| v)
    }
}

/// S(concepts, descendant concepts).
fn base_set<V: Vocabulary + ?Sized>(
    vocab: &V,
    concepts: &[i32],
    with_descendants: &[i32],
    out: &mut BTreeSet<i32>,
) {
    for &c in concepts {
        if vocab.concept_exists(c) {
            out.insert(c);
        }
    }
    for &a in with_descendants {
        for &d in vocab.descendants(a) {
            if vocab.concept_is_valid(d) {
                out.insert(d);
            }
        }
    }
}

#[derive(Default)]
struct Side {
    concepts: Vec<i32>,
    descendants: Vec<i32>,
    mapped: Vec<i32>,
    mapped_descendants: Vec<i32>,
}

impl Side {
    fn resolve<V: Vocabulary + ?Sized>(&self, vocab: &V) -> BTreeSet<i32> {
        let mut out = BTreeSet::new();
        if self.concepts.is_empty() {
            return out; // "where 0=1"
        }
        base_set(vocab, &self.concepts, &self.descendants, &mut out);
        if !self.mapped.is_empty() || !self.mapped_descendants.is_empty() {
            let mut targets = BTreeSet::new();
            base_set(vocab, &self.mapped, &self.mapped_descendants, &mut targets);
            for t in targets {
                out.extend(vocab.mapped_from(t).iter().copied());
            }
        }
        out
    }
}

/// Resolves a concept set expression to its distinct concept ids (ascending).
/// Concept ids outside the i32 range cannot exist in a store and are skipped.
pub fn resolve<V: Vocabulary + ?Sized>(expr: &ConceptSetExpression, vocab: &V) -> Vec<i32> {
    let mut include = Side::default();
    let mut exclude = Side::default();
    for item in &expr.items {
        let Some(id) = item.concept.concept_id.and_then(|c| i32::try_from(c).ok()) else {
            continue;
        };
        let side = if item.is_excluded {
            &mut exclude
        } else {
            &mut include
        };
        side.concepts.push(id);
        if item.include_descendants {
            side.descendants.push(id);
        }
        if item.include_mapped {
            side.mapped.push(id);
            if item.include_descendants {
                side.mapped_descendants.push(id);
            }
        }
    }
    let inc = include.resolve(vocab);
    if exclude.concepts.is_empty() {
        return inc.into_iter().collect();
    }
    let exc = exclude.resolve(vocab);
    inc.difference(&exc).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Concept, ConceptSetItem};

    fn item(id: i64, excluded: bool, desc: bool, mapped: bool) -> ConceptSetItem {
        ConceptSetItem {
            concept: Concept {
                concept_id: Some(id),
                concept_name: None,
                standard_concept: None,
                invalid_reason: None,
                concept_code: None,
                domain_id: None,
                vocabulary_id: None,
                concept_class_id: None,
                _standard_concept_caption: None,
                _invalid_reason_caption: None,
                _valid_start_date: None,
                _valid_end_date: None,
                _record_count: None,
                _descendant_record_count: None,
            },
            is_excluded: excluded,
            include_descendants: desc,
            include_mapped: mapped,
        }
    }

    fn vocab() -> MemVocabulary {
        let mut v = MemVocabulary::new();
        v.concept(1, None)
            .concept(2, None)
            .concept(3, None)
            .concept(4, Some("D"))
            .concept(10, None)
            .concept(11, None);
        v.ancestor(1, 2).ancestor(1, 3).ancestor(1, 4);
        v.relationship(10, 2, "Maps to", None)
            .relationship(11, 3, "Maps to", Some("D"))
            .relationship(12, 1, "Maps to", None)
            .relationship(13, 1, "Is a", None);
        v
    }

    fn run(items: Vec<ConceptSetItem>) -> Vec<i32> {
        resolve(&ConceptSetExpression { items }, &vocab())
    }

    #[test]
    fn listed_concepts_need_only_exist() {
        assert_eq!(run(vec![item(4, false, false, false)]), vec![4]);
        assert_eq!(run(vec![item(99, false, false, false)]), Vec::<i32>::new());
    }

    #[test]
    fn descendants_must_be_valid_and_self_rows_come_from_the_ancestor_table() {
        // No self-row for 1 in concept_ancestor, but 1 is listed itself.
        assert_eq!(run(vec![item(1, false, true, false)]), vec![1, 2, 3]);
    }

    #[test]
    fn mapped_adds_valid_maps_to_sources() {
        assert_eq!(run(vec![item(2, false, false, true)]), vec![2, 10]);
        assert_eq!(run(vec![item(1, false, true, true)]), vec![1, 2, 3, 10, 12]);
    }

    #[test]
    fn exclusion_removes_and_excluded_only_is_empty() {
        assert_eq!(
            run(vec![
                item(1, false, true, false),
                item(2, true, false, false)
            ]),
            vec![1, 3]
        );
        assert_eq!(
            run(vec![
                item(1, false, true, false),
                item(1, true, true, false)
            ]),
            Vec::<i32>::new()
        );
        assert_eq!(run(vec![item(1, true, false, false)]), Vec::<i32>::new());
    }
}
