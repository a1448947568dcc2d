//! Covariate names without a vocabulary at the hub: FeatureExtraction's analysis names and
//! demographic labels (as its SQL templates write them), and concept names from the concept
//! sets of the project's cohort definitions (Circe stores each concept's vocabulary name with
//! it). A concept named nowhere is shown by its id.

use std::collections::HashMap;

use qiao_analysis::characterization::{prespec, Count, Kind, Measure};

/// Concept names known to the portal for one project.
#[derive(Default)]
pub(crate) struct Names {
    concepts: HashMap<i64, String>,
}

impl Names {
    /// The concept names in the concept sets of `definitions` (`ConceptSets[].expression.items[]
    /// .concept.{CONCEPT_ID, CONCEPT_NAME}`), and the OMOP gender concepts.
    pub fn from_definitions(definitions: &[serde_json::Value]) -> Names {
        let mut concepts: HashMap<i64, String> = [(8507, "MALE"), (8532, "FEMALE")]
            .into_iter()
            .map(|(id, n)| (id, n.to_owned()))
            .collect();
        for d in definitions {
            let sets = d["ConceptSets"].as_array().into_iter().flatten();
            for item in sets.flat_map(|s| s["expression"]["items"].as_array().into_iter().flatten())
            {
                let c = &item["concept"];
                if let (Some(id), Some(name)) =
                    (c["CONCEPT_ID"].as_i64(), c["CONCEPT_NAME"].as_str())
                {
                    concepts.entry(id).or_insert_with(|| name.to_owned());
                }
            }
        }
        Names { concepts }
    }

    fn concept(&self, id: i64) -> String {
        self.concepts
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("concept {id}"))
    }

    /// A covariate's name as FeatureExtraction writes it, as far as the names known allow.
    pub fn covariate(&self, covariate_id: i64, analysis_id: u32) -> String {
        let k = covariate_id / 1000;
        let Some(a) = prespec(analysis_id) else {
            return format!("covariate {covariate_id}");
        };
        match a.kind {
            Kind::AgeGroup => format!("age group: {:>3} - {:>3}", 5 * k, 5 * k + 4),
            Kind::IndexYear => format!("index year: {k}"),
            Kind::IndexMonth => format!("index month: {k}"),
            Kind::PersonConcept(_, label, _) => format!("{label} = {}", self.concept(k)),
            Kind::IndexYearMonth => format!("index year and month: {k}"),
            Kind::CareSite => format!("care site ID = {k}"),
            Kind::Measure(Measure::Count {
                how: Count::ByConcept,
                ..
            }) => format!("{}: {}", a.name, self.concept(k)),
            Kind::Score(_) | Kind::Measure(_) => a.name.to_owned(),
            Kind::Concept(..) | Kind::Group(..) | Kind::Inpatient(_) => {
                format!("{}: {}", a.name, self.concept(k))
            }
            Kind::ValueAsConcept(_) | Kind::RangeGroup => {
                format!("{}: covariate {covariate_id}", a.name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_fe_labels_and_the_definitions_concept_sets() {
        let def = serde_json::json!({"ConceptSets": [{"expression": {"items": [
            {"concept": {"CONCEPT_ID": 192671, "CONCEPT_NAME": "Gastrointestinal hemorrhage"}}
        ]}}]});
        let n = Names::from_definitions(&[def]);
        assert_eq!(n.covariate(8507001, 1), "gender = MALE");
        assert_eq!(n.covariate(8003, 3), "age group:  40 -  44");
        assert_eq!(n.covariate(2012006, 6), "index year: 2012");
        assert_eq!(n.covariate(201204011, 11), "index year and month: 201204");
        assert_eq!(n.covariate(1920, 920), "VisitCountLongTerm");
        assert_eq!(
            n.covariate(9201923, 923),
            "VisitConceptCountLongTerm: concept 9201",
            "a visit concept count is named by its concept"
        );
        let gi = n.covariate(192671102, 102);
        assert!(gi.ends_with(": Gastrointestinal hemorrhage"), "{gi}");
        assert!(n.covariate(4000102, 102).ends_with(": concept 4000"));
    }
}
