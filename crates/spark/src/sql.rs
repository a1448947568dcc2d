//! The cohort plan ([`qiao_cohort::exec::plan::Plan`]) compiled to Spark SQL over the OMOP CDM
//! tables of a catalog schema.
//!
//! The SQL is a chain of steps, one per step of Circe's generation (the same steps, in the same
//! order, as the native evaluators), up to each included event's end; the rest of Circe's tail
//! (era collapse with pad, censor window) is computed on the returned rows by
//! [`qiao_cohort::exec::tail`], the code every evaluator runs. The steps read repeatedly (concept
//! sets, observation periods, the nodes' events, the inclusion masks) are [`Query::steps`],
//! materialized as temporary views (so Spark plans and runs smallish queries and never recomputes
//! a step), in waves ([`Step::wave`]: the steps of a wave at once); the others are common table
//! expressions of the queries that read them. Each materialized step costs a Spark job (planning,
//! scheduling, a shuffle or two) whatever the data's size, so the nodes are materialized a level
//! at a time, all the nodes of a level in one job ([`node_levels`]):
//!
//! | CTE | what |
//! |---|---|
//! | `codesets` | concept sets resolved over `concept`, `concept_ancestor`, `concept_relationship` (wave 0; a run resolves them first and writes each small set's concepts into the SQL, [`compile_resolved`]) |
//! | `op` | observation periods (wave 0) |
//! | `e<i>` | plan node `i`'s events: codeset, source and region joins, `First`, date adjustment, filters, correlated group |
//! | `nodes<k>` | the events of every node of level `k`, tagged by node (wave 1 + k) |
//! | `n<i>` | node `i`'s events read back from its level |
//! | `pe` | primary events in their observation period, ordered and numbered per person |
//! | `qe` | qualified events (additional criteria, qualified limit) |
//! | `r<i>` | the qualified events passing inclusion rule `i` |
//! | `masks` | each qualified event with its inclusion mask (the last wave) |
//! | `best` | each person's best event (mode 1) |
//! | `inc` | included events (all rules, expression limit) |
//! | `ends` | each included event's end: the earliest end candidate ≥ its start |
//!
//! The result has one row per fact, tagged by `kind`: 0 an included event's (`person_id`, `s`,
//! `e`), 1 a mode-0 mask count (`mask`, `n`), 2 a mode-1 mask count, 3 (last) the number of
//! kind-0 rows (`n`: a result stream that ended early is detected); on request ([`Wants`]) 4 a
//! person's best-event mask, 5 a cohort subject's gender and year of birth, 6 the number of
//! kind-5 rows.
//!
//! Every node's SQL follows the native evaluator's row semantics (`exec/run.rs`): rows without a
//! person or a start date are not events; `First` is taken after the codeset and source joins and
//! before the other filters, in (start, event id) order; `NULL` compares as circe-be's SQL does.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use qiao_cdm::date::Day;
use qiao_cdm::{self as schema, EndRule, TableSpec};
use qiao_cohort::exec::plan::{
    Bound, ConceptExpr, CorrPlan, CountKind, CritNode, DateExpr, DemoFilter, EndPlan, Filter,
    GroupPlan, Member, NumExpr, Plan, WindowPlan,
};
use qiao_cohort::model::{ConceptSet, GroupType, LimitType, RangeOp, TextOp};

/// A plan construct this backend does not compile (never a silently different answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not supported on Spark: {0}")]
pub struct Unsupported(pub String);

/// Where the CDM lives in the Spark catalog.
#[derive(Debug, Clone)]
pub struct Schemas {
    /// Clinical tables (`person`, `observation_period`, `drug_exposure`, ...).
    pub cdm: String,
    /// Vocabulary tables (`concept`, `concept_ancestor`, `concept_relationship`).
    pub vocab: String,
}

/// Result tags of the compiled query.
pub const KIND_ROW: i32 = 0;
pub const KIND_MASK_EVENTS: i32 = 1;
pub const KIND_MASK_PERSONS: i32 = 2;
pub const KIND_END_COUNT: i32 = 3;
/// With [`Wants::person_masks`]: each person's best-event mask (`person_id`, `mask`).
pub const KIND_PERSON_MASK: i32 = 4;
/// With [`Wants::person_facts`]: each cohort subject's `person` row (`person_id`, `mask`: the
/// gender concept, `n`: the year of birth).
pub const KIND_PERSON_FACT: i32 = 5;
/// With [`Wants::person_facts`]: the number of kind-5 rows (`n`).
pub const KIND_FACT_COUNT: i32 = 6;

/// What a run returns besides the rows and the statistics (what a sink needs: the site's
/// disclosure control keys each funnel line on the persons whose best-event mask passes it, and
/// its demographics on the subjects' age, gender and index year).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wants {
    /// Each person's best-event inclusion mask (mode 1), for every person with a qualified event.
    pub person_masks: bool,
    /// Each cohort subject's year of birth and gender concept.
    pub person_facts: bool,
}

/// The compiled SQL of one definition.
#[derive(Debug, Clone)]
pub struct Query {
    /// Materialized in order of their waves, each read by name by the later ones.
    pub steps: Vec<Step>,
    /// The result query (rows tagged by `kind`).
    pub result: String,
}

/// One materialized step: a query whose result becomes temporary view `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub query: String,
    /// Steps of one wave read none of each other (they may run at once); each reads only steps
    /// of earlier waves. Waves are numbered from 0, in order.
    pub wave: usize,
}

impl Query {
    /// The whole SQL, readable: each step as `CREATE TEMPORARY VIEW`, then the result.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            let _ = writeln!(
                out,
                "-- wave {}\nCREATE TEMPORARY VIEW {} AS\n{};\n",
                s.wave, s.name, s.query
            );
        }
        out.push_str(&self.result);
        out
    }

    /// The steps by wave, in order.
    pub fn waves(&self) -> Vec<Vec<&Step>> {
        let mut out: Vec<Vec<&Step>> = Vec::new();
        for s in &self.steps {
            if out.len() <= s.wave {
                out.resize_with(s.wave + 1, Vec::new);
            }
            out[s.wave].push(s);
        }
        out.retain(|w| !w.is_empty());
        out
    }
}

/// Whether `name` is a plain SQL identifier (schema names are spliced into the query).
pub fn is_identifier(name: &str) -> bool {
    let mut parts = name.split('.');
    parts.all(|p| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// Compiles a plan (with the concept sets of its definition) into its steps and result query.
pub fn compile(
    plan: &Plan,
    concept_sets: &[ConceptSet],
    at: &Schemas,
) -> Result<Query, Unsupported> {
    compile_with(plan, concept_sets, at, Wants::default())
}

/// As [`compile`], the result also carrying what `wants` asks for.
pub fn compile_with(
    plan: &Plan,
    concept_sets: &[ConceptSet],
    at: &Schemas,
    wants: Wants,
) -> Result<Query, Unsupported> {
    compile_resolved(plan, concept_sets, at, wants, None)
}

/// The concept sets' concepts in the warehouse's vocabulary: what [`codesets_query`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Concept set id → its concepts, ascending (a set without concepts may be absent).
    pub concepts: BTreeMap<i32, Vec<i64>>,
}

/// A resolved concept set with more concepts than this is read from the `codesets` view (a
/// semi join) rather than written into the SQL as a list.
pub const INLINE_CONCEPTS: usize = 5_000;

impl Resolved {
    /// Concept set `id`'s concepts, if few enough to be written into the SQL.
    fn inline(&self, id: i32) -> Option<&[i64]> {
        let list = self.concepts.get(&id).map_or(&[][..], |l| &l[..]);
        (list.len() <= INLINE_CONCEPTS).then_some(list)
    }

    /// Whether some concept set is read from the `codesets` view.
    fn needs_view(&self) -> bool {
        self.concepts.values().any(|l| l.len() > INLINE_CONCEPTS)
    }
}

/// The query resolving every concept set of a definition (`codeset_id` INT, `concept_id` BIGINT),
/// one row per concept; the `codesets` step.
pub fn codesets_query(concept_sets: &[ConceptSet], at: &Schemas) -> String {
    codesets(concept_sets, &at.vocab)
}

/// As [`compile_with`]; with `resolved` (the concept sets already resolved by
/// [`codesets_query`]), small concept sets are written into the SQL and the `codesets` step is
/// left out unless a large one needs it.
pub fn compile_resolved(
    plan: &Plan,
    concept_sets: &[ConceptSet],
    at: &Schemas,
    wants: Wants,
    resolved: Option<&Resolved>,
) -> Result<Query, Unsupported> {
    for s in [&at.cdm, &at.vocab] {
        if !is_identifier(s) {
            return Err(Unsupported(format!(
                "schema name {s:?} is not an identifier"
            )));
        }
    }
    let c = Compiler { plan, at, resolved };
    let mut q = Steps::default();
    // Wave 0: the concept sets and the observation periods (independent of each other).
    if resolved.is_none_or(Resolved::needs_view) {
        q.step("codesets", codesets(concept_sets, &at.vocab), 0);
    }
    q.step(
        OP_STEP,
        format!(
            "SELECT {OP_PERSON} AS person_id, {OP_START} AS op_start, {OP_END} AS op_end, \
             ROW_NUMBER() OVER (PARTITION BY {OP_PERSON} ORDER BY {OP_START}, {OP_END}) AS op_k \
             FROM {}.{} WHERE {OP_PERSON} IS NOT NULL AND {OP_START} IS NOT NULL",
            at.cdm,
            schema::OBSERVATION_PERIOD.name
        ),
        0,
    );
    // The nodes, one step per level: a node's level is 0 without correlated criteria, else one
    // above the highest level its correlated criteria read (they are planned before it). All
    // nodes of a level are one query (a UNION ALL tagged by node), so Spark runs one job per
    // level, not one per node; each node is then read back from its level by its tag.
    let levels = node_levels(plan);
    for level in 0..levels.iter().max().map_or(0, |m| m + 1) {
        let mut own: Vec<(String, String)> = Vec::new();
        let mut members: Vec<(usize, Vec<String>)> = Vec::new();
        for (i, node) in plan.nodes.iter().enumerate() {
            if levels[i] == level {
                members.push((i, c.node(i, node, &mut own)?));
            }
        }
        let mut extras: Vec<&str> = Vec::new();
        for (_, ex) in &members {
            for e in ex {
                if !extras.contains(&e.as_str()) {
                    extras.push(e);
                }
            }
        }
        let branches: Vec<String> = members
            .iter()
            .map(|(i, ex)| {
                let mut cols = format!("{i} AS node, {NODE_COLS}");
                for e in &extras {
                    if ex.iter().any(|x| x == e) {
                        let _ = write!(cols, ", {e}");
                    } else {
                        let _ = write!(cols, ", NULL AS {e}");
                    }
                }
                format!("SELECT {cols} FROM e{i}")
            })
            .collect();
        let name = format!("nodes{level}");
        // Wave 1 + level: after the concept sets and observation periods (a node with
        // correlated criteria joins its events to them) and the levels below.
        q.step_with(&name, &own, branches.join("\nUNION ALL "), 1 + level);
        for (i, ex) in &members {
            let mut cols = NODE_COLS.to_string();
            for e in ex {
                let _ = write!(cols, ", {e}");
            }
            q.inline(
                format!("n{i}"),
                format!("SELECT {cols} FROM {name} WHERE node = {i}"),
            );
        }
    }
    let after_nodes = 1 + levels.iter().max().map_or(0, |m| m + 1);
    let mut tail: Vec<(String, String)> = Vec::new();
    c.tail(&mut tail);
    for (name, body) in tail {
        if name == "masks" {
            q.step(&name, body, after_nodes);
        } else {
            q.inline(name, body);
        }
    }
    let Steps { inline, steps } = q;
    let mut body = format!(
        "SELECT {KIND_ROW} AS kind, person_id, s, e, CAST(NULL AS BIGINT) AS mask, CAST(NULL AS BIGINT) AS n FROM ends\n\
         UNION ALL SELECT {KIND_MASK_EVENTS}, NULL, NULL, NULL, mask, COUNT(*) FROM masks GROUP BY mask\n\
         UNION ALL SELECT {KIND_MASK_PERSONS}, NULL, NULL, NULL, mask, COUNT(*) FROM best GROUP BY mask\n"
    );
    if wants.person_masks {
        // Their number is the mode-1 base count (kind 2): checked on this side.
        let _ = writeln!(
            body,
            "UNION ALL SELECT {KIND_PERSON_MASK}, person_id, NULL, NULL, mask, NULL FROM best"
        );
    }
    if wants.person_facts {
        let facts = format!(
            "SELECT f.person_id, CAST(pe.{GENDER} AS BIGINT) AS g, CAST(pe.{YEAR_OF_BIRTH} AS BIGINT) AS y \
             FROM (SELECT DISTINCT person_id FROM ends) f JOIN {}.{} pe ON pe.{PERSON_ID} = f.person_id",
            at.cdm,
            schema::PERSON.name
        );
        let _ = writeln!(
            body,
            "UNION ALL SELECT {KIND_PERSON_FACT}, person_id, NULL, NULL, g, y FROM ({facts})\n\
             UNION ALL SELECT {KIND_FACT_COUNT}, NULL, NULL, NULL, NULL, COUNT(*) FROM ({facts})"
        );
    }
    let _ = write!(
        body,
        "UNION ALL SELECT {KIND_END_COUNT}, NULL, NULL, NULL, NULL, COUNT(*) FROM ends"
    );
    let result = with(&inline, &body);
    Ok(Query { steps, result })
}

/// The observation periods' step.
pub const OP_STEP: &str = "op";

/// The columns every node's events carry (besides those for distinct occurrence counts).
const NODE_COLS: &str =
    "person_id, event_id, start_date, end_date, sort_date, visit_occurrence_id, pos";

/// Each node's level: 0 without correlated criteria, else 1 + the highest level of the nodes its
/// correlated criteria read (planned before it, so one pass in node order suffices).
fn node_levels(plan: &Plan) -> Vec<usize> {
    fn reads(g: &GroupPlan, out: &mut Vec<usize>) {
        for m in &g.members {
            match m {
                Member::Corr(c) => out.push(c.node),
                Member::Group(sub) => reads(sub, out),
                Member::Demo(_) => {}
            }
        }
    }
    let mut levels: Vec<usize> = Vec::with_capacity(plan.nodes.len());
    for n in &plan.nodes {
        let mut read = Vec::new();
        if let Some(g) = &n.correlated {
            reads(g, &mut read);
        }
        let level = read
            .iter()
            .map(|&j| levels.get(j).map_or(0, |l| l + 1))
            .max()
            .unwrap_or(0);
        levels.push(level);
    }
    levels
}

/// The steps being compiled: materialized ones (each with the common table expressions defined
/// before it) and the inlined ones.
#[derive(Default)]
struct Steps {
    inline: Vec<(String, String)>,
    steps: Vec<Step>,
}

impl Steps {
    fn step(&mut self, name: &str, body: String, wave: usize) {
        self.step_with(name, &[], body, wave)
    }

    /// A step whose query also has the CTEs `own` (read by it only).
    fn step_with(&mut self, name: &str, own: &[(String, String)], body: String, wave: usize) {
        let mut ctes = self.inline.clone();
        ctes.extend_from_slice(own);
        self.steps.push(Step {
            name: name.into(),
            query: with(&ctes, &body),
            wave,
        });
    }

    fn inline(&mut self, name: String, body: String) {
        self.inline.push((name, body));
    }
}

/// `body` with the common table expressions `ctes` (Spark drops those it does not read).
fn with(ctes: &[(String, String)], body: &str) -> String {
    let mut q = String::new();
    for (i, (name, b)) in ctes.iter().enumerate() {
        q.push_str(if i == 0 { "WITH " } else { ",\n" });
        let _ = write!(q, "{name} AS (\n{b}\n)");
    }
    if !q.is_empty() {
        q.push('\n');
    }
    q.push_str(body);
    q
}

// ------------------------------------------------------------------ CDM columns

/// `column` of `table`, checked when this crate is built ([`schema::stored`]): a column the
/// schema does not know or store fails the build, never a query that Spark refuses or that reads
/// NULLs.
const fn col(table: &'static TableSpec, column: &'static str) -> &'static str {
    schema::stored(table, column)
}

/// A column of a node's own table (known when the plan is compiled): Err names both.
fn own(table: &TableSpec, column: &'static str) -> Result<&'static str, Unsupported> {
    match table.column(column) {
        Some(c) if c.is_kept() => Ok(c.name),
        _ => Err(Unsupported(format!(
            "internal: the Spark SQL reads {}.{column}, which qiao_cdm's schema does not store",
            table.name
        ))),
    }
}

const PERSON_ID: &str = col(&schema::PERSON, "person_id");
const YEAR_OF_BIRTH: &str = col(&schema::PERSON, "year_of_birth");
const GENDER: &str = col(&schema::PERSON, "gender_concept_id");
const OP_PERSON: &str = col(&schema::OBSERVATION_PERIOD, "person_id");
pub(crate) const OP_START: &str = col(&schema::OBSERVATION_PERIOD, "observation_period_start_date");
pub(crate) const OP_END: &str = col(&schema::OBSERVATION_PERIOD, "observation_period_end_date");
const PROVIDER_ID: &str = col(&schema::PROVIDER, "provider_id");
const SPECIALTY: &str = col(&schema::PROVIDER, "specialty_concept_id");
const VISIT_ID: &str = col(&schema::VISIT_OCCURRENCE, "visit_occurrence_id");
const VISIT_PERSON: &str = col(&schema::VISIT_OCCURRENCE, "person_id");
const VISIT_CONCEPT: &str = col(&schema::VISIT_OCCURRENCE, "visit_concept_id");
const VISIT_START: &str = col(&schema::VISIT_OCCURRENCE, "visit_start_date");
const CARE_SITE_ID: &str = col(&schema::CARE_SITE, "care_site_id");
const PLACE_OF_SERVICE: &str = col(&schema::CARE_SITE, "place_of_service_concept_id");
const LOCATION_ID: &str = col(&schema::LOCATION, "location_id");
const REGION_CONCEPT_ID: &str = col(&schema::LOCATION, "region_concept_id");
const DRUG_PERSON: &str = col(&schema::DRUG_EXPOSURE, "person_id");
const DRUG_START: &str = col(&schema::DRUG_EXPOSURE, "drug_exposure_start_date");
const DRUG_END: &str = col(&schema::DRUG_EXPOSURE, "drug_exposure_end_date");
const DAYS_SUPPLY: &str = col(&schema::DRUG_EXPOSURE, "days_supply");
const DRUG_CONCEPT: &str = col(&schema::DRUG_EXPOSURE, "drug_concept_id");
const DRUG_SOURCE: &str = col(&schema::DRUG_EXPOSURE, "drug_source_concept_id");
const CONCEPT_ID: &str = col(&schema::CONCEPT, "concept_id");
const CONCEPT_INVALID: &str = col(&schema::CONCEPT, "invalid_reason");
const ANCESTOR: &str = col(&schema::CONCEPT_ANCESTOR, "ancestor_concept_id");
const DESCENDANT: &str = col(&schema::CONCEPT_ANCESTOR, "descendant_concept_id");
const REL_1: &str = col(&schema::CONCEPT_RELATIONSHIP, "concept_id_1");
const REL_2: &str = col(&schema::CONCEPT_RELATIONSHIP, "concept_id_2");
const REL_ID: &str = col(&schema::CONCEPT_RELATIONSHIP, "relationship_id");
const REL_INVALID: &str = col(&schema::CONCEPT_RELATIONSHIP, "invalid_reason");

// ------------------------------------------------------------------ literals

/// A day number as a SQL date.
fn date_lit(d: Day) -> String {
    format!("DATE_ADD(DATE'1970-01-01', {d})")
}

/// A date expression as its day number (compared with the plan's day literals, NULL_DAY included).
fn day_num(e: &str) -> String {
    format!("DATEDIFF({e}, DATE'1970-01-01')")
}

fn num_lit(v: f64) -> String {
    if v.is_finite() {
        format!("CAST('{v:?}' AS DOUBLE)")
    } else if v.is_nan() {
        "CAST('NaN' AS DOUBLE)".into()
    } else if v > 0.0 {
        "CAST('Infinity' AS DOUBLE)".into()
    } else {
        "CAST('-Infinity' AS DOUBLE)".into()
    }
}

/// A SQL string literal (Spark escapes with backslashes).
fn str_lit(s: &str) -> String {
    let mut out = String::from("'");
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            _ => out.push(ch),
        }
    }
    out.push('\'');
    out
}

fn range(op: RangeOp, v: &str, a: &str, b: &str) -> String {
    match op {
        RangeOp::Lt => format!("({v} < {a})"),
        RangeOp::Lte => format!("({v} <= {a})"),
        RangeOp::Eq => format!("({v} = {a})"),
        RangeOp::NotEq => format!("({v} <> {a})"),
        RangeOp::Gt => format!("({v} > {a})"),
        RangeOp::Gte => format!("({v} >= {a})"),
        RangeOp::Bt => format!("({v} >= {a} AND {v} <= {b})"),
        RangeOp::NotBt => format!("(NOT ({v} >= {a} AND {v} <= {b}))"),
    }
}

fn date_range(op: RangeOp, e: &str, a: Day, b: Day) -> String {
    range(op, &day_num(e), &a.to_string(), &b.to_string())
}

/// The `codesets` view's concepts of concept set `id`, as a subquery.
fn codeset_of(id: i32) -> String {
    format!("(SELECT concept_id FROM codesets WHERE codeset_id = {id})")
}

fn in_list(v: &str, ids: &[i32], negate: bool) -> String {
    if ids.is_empty() {
        return if negate {
            format!("({v} IS NOT NULL)")
        } else {
            "FALSE".into()
        };
    }
    let list = ids
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!("({v} {}IN ({list}))", if negate { "NOT " } else { "" })
}

fn like(v: &str, op: TextOp, text: &str) -> String {
    let negate = matches!(
        op,
        TextOp::NotStartsWith | TextOp::NotContains | TextOp::NotEndsWith
    );
    let prefix = matches!(
        op,
        TextOp::EndsWith | TextOp::NotEndsWith | TextOp::Contains | TextOp::NotContains
    );
    let postfix = matches!(
        op,
        TextOp::StartsWith | TextOp::NotStartsWith | TextOp::Contains | TextOp::NotContains
    );
    // `%` and `_` in the text stay wildcards (as in circe-be's SQL); a backslash is literal.
    let mut pat = String::new();
    if prefix {
        pat.push('%');
    }
    pat.push_str(&text.replace('\\', "\\\\"));
    if postfix {
        pat.push('%');
    }
    format!(
        "({v} {}LIKE {})",
        if negate { "NOT " } else { "" },
        str_lit(&pat)
    )
}

// ------------------------------------------------------------------ concept sets

/// Every concept set resolved in one query (one pass over the vocabulary tables, whatever the
/// number of concept sets), as circe-be's codeset SQL: an item's concept (if in `concept`), its
/// valid descendants (`includeDescendants`), and the concepts mapped to either ("Maps to",
/// `includeMapped`); the excluded items' concepts taken away.
fn codesets(concept_sets: &[ConceptSet], vocab: &str) -> String {
    let mut items = Vec::new();
    for cs in concept_sets {
        let list = cs.expression.as_ref().map_or(&[][..], |x| &x.items[..]);
        // A concept set without an included item has no concept (circe-be skips it).
        if !list.iter().any(|it| {
            !it.is_excluded
                && it
                    .concept
                    .concept_id
                    .is_some_and(|c| i32::try_from(c).is_ok())
        }) {
            continue;
        }
        for it in list {
            let Some(id) = it.concept.concept_id.and_then(|c| i32::try_from(c).ok()) else {
                continue;
            };
            items.push(format!(
                "({}, {id}, {}, {}, {})",
                cs.id, it.is_excluded, it.include_descendants, it.include_mapped
            ));
        }
    }
    if items.is_empty() {
        return "SELECT CAST(NULL AS INT) AS codeset_id, CAST(NULL AS BIGINT) AS concept_id WHERE FALSE"
            .into();
    }
    let item = format!(
        "SELECT i.codeset_id, i.excluded, i.mapped, c.{CONCEPT_ID} AS concept_id FROM items i"
    );
    let (concept, ancestor, relationship) = (
        schema::CONCEPT.name,
        schema::CONCEPT_ANCESTOR.name,
        schema::CONCEPT_RELATIONSHIP.name,
    );
    format!(
        "SELECT * FROM (WITH items AS (SELECT * FROM VALUES {} \
         AS t(codeset_id, concept_id, excluded, descendants, mapped)),\n\
         exp AS ({item} JOIN {vocab}.{concept} c ON c.{CONCEPT_ID} = i.concept_id \
         UNION ALL {item} JOIN {vocab}.{ancestor} ca ON ca.{ANCESTOR} = i.concept_id \
         JOIN {vocab}.{concept} c ON c.{CONCEPT_ID} = ca.{DESCENDANT} \
         WHERE i.descendants AND c.{CONCEPT_INVALID} IS NULL),\n\
         side AS (SELECT codeset_id, excluded, concept_id FROM exp \
         UNION ALL SELECT e.codeset_id, e.excluded, cr.{REL_1} FROM exp e \
         JOIN {vocab}.{relationship} cr ON cr.{REL_2} = e.concept_id \
         WHERE e.mapped AND cr.{REL_ID} = 'Maps to' AND cr.{REL_INVALID} IS NULL)\n\
         SELECT DISTINCT s.codeset_id, CAST(s.concept_id AS BIGINT) AS concept_id FROM side s \
         WHERE NOT s.excluded AND NOT EXISTS (SELECT 1 FROM side x WHERE x.excluded \
         AND x.codeset_id = s.codeset_id AND x.concept_id = s.concept_id))",
        items.join(", ")
    )
}

// ------------------------------------------------------------------ nodes

struct Compiler<'a> {
    plan: &'a Plan,
    at: &'a Schemas,
    /// The concept sets resolved before compiling (their concepts written into the SQL), or
    /// None (every concept set read from the `codesets` view).
    resolved: Option<&'a Resolved>,
}

/// The columns a node's CTE carries for distinct occurrence counts.
fn count_col_name(k: CountKind) -> Option<String> {
    match k {
        CountKind::Col(c) => Some(format!("k_{c}")),
        CountKind::Concept { .. } => Some("k_concept".into()),
        _ => None,
    }
}

impl Compiler<'_> {
    /// `v [NOT] IN concept set id`: its concepts as a list when resolved and small enough
    /// ([`INLINE_CONCEPTS`]: a filter Spark pushes into the scan, no join), else a subquery on
    /// the `codesets` view (a semi join). An empty set: `IN` is false and `NOT IN` true, even for
    /// a NULL `v` (as the subquery on no rows).
    fn member(&self, v: &str, id: i32, negate: bool) -> String {
        let not = if negate { "NOT " } else { "" };
        match self.resolved.and_then(|r| r.inline(id)) {
            Some([]) => (if negate { "TRUE" } else { "FALSE" }).into(),
            Some(list) => {
                let mut l = String::with_capacity(list.len() * 8);
                for (k, c) in list.iter().enumerate() {
                    if k > 0 {
                        l.push_str(", ");
                    }
                    let _ = write!(l, "{c}");
                }
                format!("({v} {not}IN ({l}))")
            }
            None => format!("({v} {not}IN {})", codeset_of(id)),
        }
    }

    /// `v [not] in (codeset)` with the native NULL semantics (`NULL not in (empty)` is true; Spark's
    /// `NOT IN` subquery is null-aware the same way); without a codeset, `v is [not] null`.
    fn in_codeset(&self, v: &str, codeset: Option<i32>, exclude: bool) -> String {
        match codeset {
            Some(id) => self.member(v, id, exclude),
            None if exclude => format!("({v} IS NULL)"),
            None => format!("({v} IS NOT NULL)"),
        }
    }

    fn count_kinds_of(&self, node: usize) -> Vec<CountKind> {
        let mut out = Vec::new();
        fn walk(g: &GroupPlan, node: usize, out: &mut Vec<CountKind>) {
            for m in &g.members {
                match m {
                    Member::Corr(c) => {
                        if c.node == node {
                            if let Some(k) = c.distinct {
                                out.push(k);
                            }
                        }
                    }
                    Member::Group(sub) => walk(sub, node, out),
                    Member::Demo(_) => {}
                }
            }
        }
        let p = self.plan;
        for n in &p.nodes {
            if let Some(g) = &n.correlated {
                walk(g, node, &mut out);
            }
        }
        if let Some(g) = &p.additional {
            walk(g, node, &mut out);
        }
        for (_, g) in &p.rules {
            walk(g, node, &mut out);
        }
        out
    }

    /// Node `i`'s events as CTE `e{i}` (after the CTEs it needs), and the names of the extra
    /// columns it carries for distinct occurrence counts.
    fn node(
        &self,
        i: usize,
        n: &CritNode,
        ctes: &mut Vec<(String, String)>,
    ) -> Result<Vec<String>, Unsupported> {
        let spec = schema::table(n.table)
            .ok_or_else(|| Unsupported(format!("{} reads unknown table {}", n.kind, n.table)))?;
        let ev = spec.event.as_ref().ok_or_else(|| {
            Unsupported(format!("{} reads {}, not an event table", n.kind, n.table))
        })?;
        let cdm = &self.at.cdm;
        let pk = ev.pk.unwrap_or(ev.person);
        let start = ev.start;
        let e0 = match (ev.end_rule, ev.end) {
            (EndRule::Column, Some(e)) => format!("t.{e}"),
            (EndRule::ColumnOrStartPlusOne, Some(e)) => {
                format!("COALESCE(t.{e}, DATE_ADD(t.{start}, 1))")
            }
            (EndRule::ColumnOrDaysSupplyOrStartPlusOne, Some(e)) => format!(
                "COALESCE(t.{e}, DATE_ADD(t.{start}, CAST(t.{} AS INT)), DATE_ADD(t.{start}, 1))",
                own(spec, "days_supply")?
            ),
            (EndRule::ColumnOr2099, Some(e)) => format!("COALESCE(t.{e}, DATE'2099-12-31')"),
            (EndRule::StartPlusOne, _) | (_, None) => format!("DATE_ADD(t.{start}, 1)"),
        };
        // Rows that are events, in the codeset and source concept set.
        let mut row_where = vec![
            format!("t.{} IS NOT NULL", ev.person),
            format!("t.{start} IS NOT NULL"),
        ];
        if let Some(cs) = n.codeset {
            let col = ev.concept.ok_or_else(|| {
                Unsupported(format!(
                    "{} has a CodesetId but {} no concept column",
                    n.kind, n.table
                ))
            })?;
            row_where.push(self.member(&format!("t.{col}"), cs, false));
        }
        if let Some((col, cs)) = n.source {
            row_where.push(self.member(&format!("t.{col}"), cs, false));
        }
        // LocationRegion: the row's location's region in the codeset (an inner join, as the
        // native evaluator's lookup: a row without a location, or a location without a region,
        // fails it).
        let mut row_joins = String::new();
        if let Some(cs) = n.region_codeset {
            let _ = write!(
                row_joins,
                " JOIN {cdm}.{loc} loc ON loc.{LOCATION_ID} = t.{}",
                own(spec, "location_id")?,
                loc = schema::LOCATION.name,
            );
            row_where.push(self.member(&format!("loc.{REGION_CONCEPT_ID}"), cs, false));
        }
        let first = if n.first {
            format!(
                ", ROW_NUMBER() OVER (PARTITION BY t.{p} ORDER BY t.{start}, t.{pk}) AS _rn",
                p = ev.person
            )
        } else {
            String::new()
        };
        let rows = format!(
            "SELECT t.*, t.{p} AS _person, t.{pk} AS _id, t.{start} AS _s0, {e0} AS _e0, \
             ROW_NUMBER() OVER (PARTITION BY t.{p} ORDER BY t.{start}, t.{pk}) AS _pos{first} \
             FROM {cdm}.{table} t{row_joins} WHERE {w}",
            p = ev.person,
            table = n.table,
            w = row_where.join(" AND ")
        );
        let (s_adj, e_adj) = match n.adjust {
            Some(a) => (
                format!(
                    "DATE_ADD({}, {})",
                    if a.start_from_end { "_e0" } else { "_s0" },
                    a.start_offset
                ),
                format!(
                    "DATE_ADD({}, {})",
                    if a.end_from_end { "_e0" } else { "_s0" },
                    a.end_offset
                ),
            ),
            None => ("_s0".into(), "_e0".into()),
        };
        let adjusted = format!(
            "SELECT t.*, {s_adj} AS _s, {e_adj} AS _e FROM ({rows}) t{}",
            if n.first { " WHERE _rn = 1" } else { "" }
        );
        // Joins the filters read.
        let reads = |pred: &dyn Fn(&ConceptExpr) -> bool| {
            n.filters.iter().any(|f| match f {
                Filter::InList { col, .. } | Filter::InCodeset { col, .. } => pred(col),
                _ => false,
            })
        };
        let mut joins = String::new();
        if n.needs_person {
            let _ = write!(
                joins,
                " JOIN {cdm}.{} pe ON pe.{PERSON_ID} = t._person",
                schema::PERSON.name
            );
        }
        if reads(&|c| matches!(c, ConceptExpr::ProviderSpecialty)) {
            let _ = write!(
                joins,
                " LEFT JOIN {cdm}.{} pr ON pr.{PROVIDER_ID} = t.{}",
                schema::PROVIDER.name,
                own(spec, "provider_id")?
            );
        }
        if reads(&|c| matches!(c, ConceptExpr::VisitConcept)) {
            let _ = write!(
                joins,
                " LEFT JOIN {cdm}.{} vo ON vo.{VISIT_ID} = t.{} \
                 AND vo.{VISIT_PERSON} = t._person AND vo.{VISIT_START} IS NOT NULL",
                schema::VISIT_OCCURRENCE.name,
                own(spec, "visit_occurrence_id")?
            );
        }
        if reads(&|c| matches!(c, ConceptExpr::PlaceOfService)) {
            let _ = write!(
                joins,
                " LEFT JOIN {cdm}.{} cst ON cst.{CARE_SITE_ID} = t.{}",
                schema::CARE_SITE.name,
                own(spec, "care_site_id")?
            );
        }
        let mut filters: Vec<String> = n
            .filters
            .iter()
            .map(|f| self.filter(f, spec))
            .collect::<Result<_, _>>()?;
        if filters.is_empty() {
            filters.push("TRUE".into());
        }
        let visit = match n.visit_col {
            Some(c) => format!("CAST(t.{c} AS BIGINT)"),
            None => "CAST(NULL AS BIGINT)".into(),
        };
        let mut extra: Vec<String> = Vec::new();
        for k in self.count_kinds_of(i) {
            let col = match k {
                CountKind::Col(c) => Some(c),
                CountKind::Concept { .. } => ev.concept,
                _ => None,
            };
            if let (Some(col), Some(name)) = (col, count_col_name(k)) {
                let e = format!(", t.{col} AS {name}");
                if !extra.contains(&e) {
                    extra.push(e);
                }
            }
        }
        let extras: Vec<String> = extra
            .iter()
            .map(|e| e.rsplit(' ').next().unwrap_or_default().to_string())
            .collect();
        let extra = extra.concat();
        let out_start = n.user_start.map_or("t._s".into(), date_lit);
        let out_end = n.user_end.map_or("t._e".into(), date_lit);
        let events = format!(
            "SELECT t._person AS person_id, CAST(t._id AS BIGINT) AS event_id, {out_start} AS start_date, \
             {out_end} AS end_date, t._s AS sort_date, {visit} AS visit_occurrence_id, t._pos AS pos{extra} \
             FROM ({adjusted}) t{joins} WHERE {}",
            filters.join(" AND ")
        );
        match &n.correlated {
            None => ctes.push((format!("e{i}"), events)),
            Some(g) => {
                // The events as index events: each joined to the observation periods containing
                // its start; an event is kept when one of its index rows passes the group.
                ctes.push((format!("n{i}_all"), events));
                ctes.push((
                    format!("n{i}_idx"),
                    format!(
                        "SELECT a.*, o.op_start, o.op_end, o.op_k FROM n{i}_all a JOIN op o \
                         ON o.person_id = a.person_id AND o.op_start <= a.start_date AND o.op_end >= a.start_date"
                    ),
                ));
                let keys = ["person_id", "pos", "op_k"];
                let pass = self.group(g, &format!("n{i}_idx"), &keys);
                ctes.push((
                    format!("e{i}"),
                    format!(
                        "SELECT * FROM n{i}_all a WHERE EXISTS (SELECT 1 FROM ({pass}) p \
                         WHERE p.person_id = a.person_id AND p.pos = a.pos)"
                    ),
                ));
            }
        }
        Ok(extras)
    }

    /// A concept a filter reads, and whether the row may be tested at all (the native evaluator
    /// fails the filter when a visit or care site is not found).
    fn concept(&self, c: ConceptExpr) -> (String, Option<String>) {
        match c {
            ConceptExpr::Col(col) => (format!("t.{col}"), None),
            ConceptExpr::Person(col) => (format!("pe.{col}"), None),
            ConceptExpr::ProviderSpecialty => (format!("pr.{SPECIALTY}"), None),
            ConceptExpr::VisitConcept => (
                format!("vo.{VISIT_CONCEPT}"),
                Some(format!("vo.{VISIT_ID} IS NOT NULL")),
            ),
            ConceptExpr::PlaceOfService => (
                format!("cst.{PLACE_OF_SERVICE}"),
                Some(format!("cst.{CARE_SITE_ID} IS NOT NULL")),
            ),
        }
    }

    /// A filter on the rows of `table` (the node's).
    fn filter(&self, f: &Filter, table: &TableSpec) -> Result<String, Unsupported> {
        let date = |e: DateExpr| if e == DateExpr::Start { "t._s" } else { "t._e" };
        Ok(match f {
            Filter::Date { expr, op, a, b } => date_range(*op, date(*expr), *a, *b),
            Filter::Num { expr, op, a, b } => {
                let v = match expr {
                    NumExpr::Col(c) => format!("CAST(t.{c} AS DOUBLE)"),
                    NumExpr::Age { at_end } => format!(
                        "CAST(YEAR({}) - pe.{YEAR_OF_BIRTH} AS DOUBLE)",
                        if *at_end { "t._e" } else { "t._s" }
                    ),
                    NumExpr::Duration => "CAST(DATEDIFF(t._e, t._s) AS DOUBLE)".into(),
                    NumExpr::Ratio(c) => format!(
                        "(CAST(t.{} AS DOUBLE) / NULLIF(CAST(t.{c} AS DOUBLE), 0))",
                        own(table, "value_as_number")?
                    ),
                };
                range(*op, &v, &num_lit(*a), &num_lit(*b))
            }
            Filter::InList { col, ids, negate } => {
                let (v, guard) = self.concept(*col);
                let t = in_list(&v, ids, *negate);
                match guard {
                    Some(g) => format!("({g} AND {t})"),
                    None => t,
                }
            }
            Filter::InCodeset {
                col,
                codeset,
                exclude,
            } => {
                let (v, guard) = self.concept(*col);
                let t = self.in_codeset(&v, *codeset, *exclude);
                match guard {
                    Some(g) => format!("({g} AND {t})"),
                    None => t,
                }
            }
            Filter::Text { col, op, text } => like(&format!("t.{col}"), *op, text),
            Filter::Abnormal => format!(
                "(t.{v} < t.{lo} OR t.{v} > t.{hi} OR t.{vc} IN (4155142, 4155143))",
                v = own(table, "value_as_number")?,
                lo = own(table, "range_low")?,
                hi = own(table, "range_high")?,
                vc = own(table, "value_as_concept_id")?
            ),
            Filter::Covers(d) => format!(
                "({} <= {d} AND {} >= {d})",
                day_num("t._s"),
                day_num("t._e")
            ),
            Filter::EndGeStart => "(t._e >= t._s)".into(),
            Filter::DomainIsPerson => format!("(t.{} = 'PERSON')", own(table, "domain_id")?),
        })
    }

    // -------------------------------------------------------------- groups

    /// The index rows of `idx` (identified by `keys`) that pass group `g`, as a SELECT of `keys`.
    fn group(&self, g: &GroupPlan, idx: &str, keys: &[&str]) -> String {
        let key_list = keys
            .iter()
            .map(|k| format!("i.{k}"))
            .collect::<Vec<_>>()
            .join(", ");
        if g.members.is_empty() {
            return format!("SELECT DISTINCT {key_list} FROM {idx} i");
        }
        let mut joins = String::new();
        let mut sum = Vec::new();
        for (m, member) in g.members.iter().enumerate() {
            let sat = match member {
                Member::Corr(c) => self.corelated(c, idx, keys),
                Member::Demo(d) => self.demographic(&d.filters, idx, keys),
                Member::Group(sub) => self.group(sub, idx, keys),
            };
            let on = keys
                .iter()
                .map(|k| format!("m{m}.{k} <=> i.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let _ = write!(joins, " LEFT JOIN ({sat}) m{m} ON {on}");
            sum.push(format!(
                "CASE WHEN m{m}.{} IS NOT NULL THEN 1 ELSE 0 END",
                keys[0]
            ));
        }
        let n = sum.join(" + ");
        let test = match g.kind {
            GroupType::All => format!("({n}) = {}", g.members.len()),
            GroupType::Any => format!("({n}) > 0"),
            GroupType::AtLeast => format!("({n}) >= {}", g.count),
            GroupType::AtMost => format!("({n}) <= {}", g.count),
        };
        format!("SELECT DISTINCT {key_list} FROM {idx} i{joins} WHERE {test}")
    }

    fn window(&self, w: &WindowPlan) -> Vec<String> {
        let index = if w.index_end {
            "i.end_date"
        } else {
            "i.start_date"
        };
        let ev = if w.event_end {
            "a.end_date"
        } else {
            "a.start_date"
        };
        let mut out = Vec::new();
        let bound = |b: Bound, cmp: &str, out: &mut Vec<String>| match b {
            Bound::Days(d) => out.push(format!("{} {cmp} {} + {d}", day_num(ev), day_num(index))),
            Bound::OpStart => out.push(format!("{ev} {cmp} i.op_start")),
            Bound::OpEnd => out.push(format!("{ev} {cmp} i.op_end")),
            Bound::Unbounded => {}
        };
        bound(w.lo, ">=", &mut out);
        bound(w.hi, "<=", &mut out);
        out
    }

    fn corelated(&self, c: &CorrPlan, idx: &str, keys: &[&str]) -> String {
        let mut on = vec!["a.person_id = i.person_id".to_string()];
        if c.check_op {
            on.push("a.start_date >= i.op_start AND a.start_date <= i.op_end".into());
        }
        on.extend(self.window(&c.start));
        if let Some(w) = &c.end {
            on.extend(self.window(w));
        }
        if c.restrict_visit {
            on.push("a.visit_occurrence_id = i.visit_occurrence_id".into());
        }
        let count = match c.distinct {
            None => "COUNT(a.person_id)".to_string(),
            Some(k) => {
                let e = match k {
                    CountKind::Start => "a.start_date".to_string(),
                    CountKind::End => "a.end_date".into(),
                    CountKind::Visit => "a.visit_occurrence_id".into(),
                    CountKind::Concept {
                        coalesce_zero: true,
                    } => "COALESCE(a.k_concept, 0)".into(),
                    CountKind::Concept { .. } | CountKind::Col(_) => {
                        format!("a.{}", count_col_name(k).unwrap_or_default())
                    }
                    CountKind::Duration => "DATEDIFF(a.end_date, a.start_date)".into(),
                    CountKind::One => "CASE WHEN a.person_id IS NOT NULL THEN 1 END".into(),
                };
                format!("COUNT(DISTINCT {e})")
            }
        };
        let test = match c.occ_type {
            0 => format!("{count} = {}", c.occ_count),
            1 => format!("{count} <= {}", c.occ_count),
            _ => format!("{count} >= {}", c.occ_count),
        };
        // An inner join where zero matches cannot pass.
        let join = if c.occ_type == 2 && c.occ_count > 0 {
            "JOIN"
        } else {
            "LEFT JOIN"
        };
        let key_list = keys
            .iter()
            .map(|k| format!("i.{k}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT {key_list} FROM {idx} i {join} n{node} a ON {on} GROUP BY {key_list} HAVING {test}",
            node = c.node,
            on = on.join(" AND ")
        )
    }

    fn demographic(&self, filters: &[DemoFilter], idx: &str, keys: &[&str]) -> String {
        let mut w = Vec::new();
        for f in filters {
            w.push(match f {
                DemoFilter::Age { op, a, b } => range(
                    *op,
                    &format!("CAST(YEAR(i.start_date) - pe.{YEAR_OF_BIRTH} AS DOUBLE)"),
                    &num_lit(*a),
                    &num_lit(*b),
                ),
                DemoFilter::InList { col, ids } => in_list(&format!("pe.{col}"), ids, false),
                DemoFilter::InCodeset {
                    col,
                    codeset,
                    exclude,
                } => self.in_codeset(&format!("pe.{col}"), *codeset, *exclude),
                DemoFilter::Date { end, op, a, b } => date_range(
                    *op,
                    if *end { "i.end_date" } else { "i.start_date" },
                    *a,
                    *b,
                ),
            });
        }
        if w.is_empty() {
            w.push("TRUE".into());
        }
        let key_list = keys
            .iter()
            .map(|k| format!("i.{k}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT DISTINCT {key_list} FROM {idx} i JOIN {}.{} pe ON pe.{PERSON_ID} = i.person_id WHERE {}",
            self.at.cdm,
            schema::PERSON.name,
            w.join(" AND ")
        )
    }

    // -------------------------------------------------------------- the Circe tail

    fn tail(&self, ctes: &mut Vec<(String, String)>) {
        let p = self.plan;
        let cdm = &self.at.cdm;
        // Primary events in their observation period, numbered per person.
        let mut union = Vec::new();
        for (ci, &node) in p.primary.iter().enumerate() {
            union.push(format!(
                "SELECT person_id, event_id AS src_id, start_date, end_date, sort_date, visit_occurrence_id, pos, {ci} AS crit FROM n{node}"
            ));
        }
        let desc = if p.primary_limit == LimitType::Last {
            " DESC"
        } else {
            ""
        };
        ctes.push((
            "pe_all".into(),
            format!(
                "SELECT e.*, o.op_start, o.op_end, ROW_NUMBER() OVER (PARTITION BY e.person_id \
                 ORDER BY e.sort_date{desc}, e.src_id, e.crit, e.pos, o.op_start, o.op_end) AS event_id \
                 FROM ({}) e JOIN op o ON o.person_id = e.person_id \
                 AND e.start_date >= o.op_start AND e.start_date <= o.op_end \
                 AND {} + {} <= {} AND {} + {} <= {}",
                union.join(" UNION ALL "),
                day_num("o.op_start"),
                p.prior_days,
                day_num("e.start_date"),
                day_num("e.start_date"),
                p.post_days,
                day_num("o.op_end"),
            )
        ));
        let cols =
            "person_id, event_id, start_date, end_date, visit_occurrence_id, op_start, op_end";
        ctes.push((
            "pe".into(),
            format!(
                "SELECT {cols} FROM pe_all{}",
                if p.primary_limit == LimitType::All {
                    ""
                } else {
                    " WHERE event_id = 1"
                }
            ),
        ));
        let keys = ["person_id", "event_id"];
        let additional = match &p.additional {
            Some(g) => {
                let pass = self.group(g, "pe", &keys);
                format!(
                    "SELECT i.* FROM pe i LEFT SEMI JOIN ({pass}) g ON g.person_id = i.person_id AND g.event_id = i.event_id"
                )
            }
            None => "SELECT * FROM pe".into(),
        };
        ctes.push(("qe_add".into(), additional));
        let qualified = if p.additional_present && p.qualified_limit != LimitType::All {
            first_per_person("qe_add", p.qualified_limit == LimitType::Last, cols)
        } else {
            "SELECT * FROM qe_add".into()
        };
        ctes.push(("qe".into(), qualified));
        // Inclusion rules.
        let mut mask = vec!["CAST(0 AS BIGINT)".to_string()];
        let mut joins = String::new();
        for (i, (_, g)) in p.rules.iter().enumerate() {
            ctes.push((format!("r{i}"), self.group(g, "qe", &keys)));
            let _ = write!(
                joins,
                " LEFT JOIN r{i} ON r{i}.person_id = q.person_id AND r{i}.event_id = q.event_id"
            );
            mask.push(format!(
                "CASE WHEN r{i}.person_id IS NOT NULL THEN CAST({} AS BIGINT) ELSE 0 END",
                1u64 << i
            ));
        }
        ctes.push((
            "masks".into(),
            format!("SELECT q.*, {} AS mask FROM qe q{joins}", mask.join(" + ")),
        ));
        ctes.push((
            "best".into(),
            "SELECT person_id, mask FROM (SELECT person_id, mask, ROW_NUMBER() OVER (PARTITION BY person_id \
             ORDER BY BIT_COUNT(mask) DESC, CASE WHEN mask = 0 THEN 0 ELSE mask & -mask END, start_date, event_id) AS rn \
             FROM masks) WHERE rn = 1"
                .into(),
        ));
        let full: u64 = if p.rules.is_empty() {
            0
        } else {
            (1u64 << p.rules.len()) - 1
        };
        ctes.push((
            "inc_all".into(),
            format!("SELECT {cols} FROM masks WHERE mask = {full}"),
        ));
        let included = if p.expression_limit != LimitType::All {
            first_per_person("inc_all", p.expression_limit == LimitType::Last, cols)
        } else {
            "SELECT * FROM inc_all".into()
        };
        ctes.push(("inc".into(), included));
        // End candidates.
        let mut cands = Vec::new();
        let key = "i.person_id, i.event_id, i.start_date";
        match &p.end {
            EndPlan::OpEnd => cands.push(format!("SELECT {key}, i.op_end AS d FROM inc i")),
            EndPlan::DateOffset { from_end, offset } => {
                let base = if *from_end {
                    "i.end_date"
                } else {
                    "i.start_date"
                };
                cands.push(format!(
                    "SELECT {key}, CASE WHEN DATE_ADD({base}, {offset}) > i.op_end THEN i.op_end \
                     ELSE DATE_ADD({base}, {offset}) END AS d FROM inc i"
                ));
            }
            EndPlan::CustomEra {
                codeset,
                gap,
                offset,
                supply_override,
            } => {
                cands.push(format!("SELECT {key}, i.op_end AS d FROM inc i"));
                let end = match supply_override {
                    Some(o) => format!("DATE_ADD(t.{DRUG_START}, {o})"),
                    None => format!(
                        "COALESCE(t.{DRUG_END}, DATE_ADD(t.{DRUG_START}, CAST(t.{DAYS_SUPPLY} AS INT)), \
                         DATE_ADD(t.{DRUG_START}, 1))"
                    ),
                };
                ctes.push((
                    "era_exp".into(),
                    format!(
                        "SELECT t.{DRUG_PERSON} AS person_id, t.{DRUG_START} AS s, DATE_ADD({end}, {}) AS e \
                         FROM {cdm}.{} t WHERE t.{DRUG_PERSON} IS NOT NULL \
                         AND t.{DRUG_START} IS NOT NULL \
                         AND ({} OR {})",
                        *gap as i64 + *offset as i64,
                        schema::DRUG_EXPOSURE.name,
                        self.member(&format!("t.{DRUG_CONCEPT}"), *codeset, false),
                        self.member(&format!("t.{DRUG_SOURCE}"), *codeset, false),
                    ),
                ));
                ctes.push(("eras".into(), merge_eras("era_exp", *gap)));
                cands.push(format!(
                    "SELECT {key}, r.e AS d FROM inc i JOIN eras r ON r.person_id = i.person_id \
                     AND i.start_date >= r.s AND i.start_date <= r.e"
                ));
            }
        }
        for &node in &p.censoring {
            cands.push(format!(
                "SELECT {key}, MIN(c.start_date) AS d FROM inc i JOIN n{node} c ON c.person_id = i.person_id \
                 AND c.start_date >= i.start_date AND c.start_date <= i.op_end GROUP BY {key}"
            ));
        }
        ctes.push((
            "ends".into(),
            format!(
                "SELECT person_id, start_date AS s, MIN(d) AS e FROM ({}) WHERE d >= start_date \
                 GROUP BY person_id, event_id, start_date",
                cands.join(" UNION ALL ")
            ),
        ));
        // Era collapse and the censor window: `qiao_cohort::exec::tail`, on the returned rows.
    }
}

/// The first (or last) event per person by start date, ties by event id.
fn first_per_person(from: &str, last: bool, cols: &str) -> String {
    format!(
        "SELECT {cols} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY start_date{}, event_id) AS _k \
         FROM {from}) WHERE _k = 1",
        if last { " DESC" } else { "" }
    )
}

/// Merges each person's (s, e) intervals (overlapping or touching a running maximum end) into
/// eras, and takes `gap` days off each era's end.
fn merge_eras(from: &str, gap: i32) -> String {
    format!(
        "SELECT person_id, MIN(s) AS s, DATE_ADD(MAX(e), {neg}) AS e FROM (\
         SELECT *, SUM(CASE WHEN pm IS NOT NULL AND pm >= s THEN 0 ELSE 1 END) \
         OVER (PARTITION BY person_id ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS grp FROM (\
         SELECT person_id, s, e, MAX(e) OVER (PARTITION BY person_id ORDER BY s, e \
         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS pm FROM {from})) \
         GROUP BY person_id, grp",
        neg = -(gap as i64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(json: &str) -> (Plan, Vec<ConceptSet>) {
        let def = qiao_cohort::parse(json).expect("parses");
        let plan = qiao_cohort::exec::plan::compile(&def.expression).expect("plans");
        (plan, def.expression.concept_sets)
    }

    fn at() -> Schemas {
        Schemas {
            cdm: "cdm".into(),
            vocab: "vocab".into(),
        }
    }

    const CONCEPT_SET: &str = r#"{"id": 0, "name": "x", "expression": {"items": [
        {"concept": {"CONCEPT_ID": 8532}, "isExcluded": false, "includeDescendants": false, "includeMapped": false}]}}"#;

    /// A LocationRegion criterion reads the persons' rows of `location_history` whose location's
    /// region is in the concept set (an inner join on `location`), as the native evaluator does.
    #[test]
    fn location_region_joins_the_location_region() {
        let json = format!(
            r#"{{"ConceptSets": [{CONCEPT_SET}],
              "PrimaryCriteria": {{"CriteriaList": [{{"LocationRegion": {{"CodesetId": 0}}}}],
                "ObservationWindow": {{"PriorDays": 0, "PostDays": 0}}, "PrimaryCriteriaLimit": {{"Type": "All"}}}}}}"#
        );
        let (plan, sets) = plan_of(&json);
        let q = compile(&plan, &sets, &at()).expect("compiled");
        let nodes = &q.steps.iter().find(|s| s.name == "nodes0").unwrap().query;
        assert!(
            nodes.contains(
                "FROM cdm.location_history t JOIN cdm.location loc ON loc.location_id = t.location_id"
            ),
            "{nodes}"
        );
        assert!(nodes.contains(
            "loc.region_concept_id IN (SELECT concept_id FROM codesets WHERE codeset_id = 0)"
        ));
        assert!(nodes.contains("(t.domain_id = 'PERSON')"));
        assert!(nodes.contains("COALESCE(t.end_date, DATE'2099-12-31')"));
    }

    /// Nodes are materialized one level at a time: a node with correlated criteria in the level
    /// above those it reads; codesets and observation periods first, at once; masks after.
    #[test]
    fn steps_are_levels_of_nodes_in_waves() {
        let json = format!(
            r#"{{"ConceptSets": [{CONCEPT_SET}],
              "PrimaryCriteria": {{"CriteriaList": [{{"ConditionOccurrence": {{"CodesetId": 0,
                "CorrelatedCriteria": {{"Type": "ALL", "CriteriaList": [{{"Criteria": {{"DrugExposure": {{"CodesetId": 0}}}},
                  "StartWindow": {{"Start": {{"Days": 30, "Coeff": -1}}, "End": {{"Days": 0, "Coeff": 1}}}},
                  "Occurrence": {{"Type": 2, "Count": 1}}}}]}}}}}}, {{"Measurement": {{"CodesetId": 0}}}}],
                "ObservationWindow": {{"PriorDays": 0, "PostDays": 0}}, "PrimaryCriteriaLimit": {{"Type": "All"}}}}}}"#
        );
        let (plan, sets) = plan_of(&json);
        assert_eq!(node_levels(&plan).iter().max(), Some(&1));
        let q = compile(&plan, &sets, &at()).unwrap();
        let waves: Vec<Vec<&str>> = q
            .waves()
            .iter()
            .map(|w| w.iter().map(|s| s.name.as_str()).collect())
            .collect();
        assert_eq!(
            waves,
            vec![
                vec!["codesets", "op"],
                vec!["nodes0"],
                vec!["nodes1"],
                vec!["masks"]
            ]
        );
        // Level 0 holds the two nodes without correlated criteria, each read back by its tag.
        let n0 = &q.steps[2].query;
        assert_eq!(n0.matches(" AS node, ").count(), 2, "{n0}");
        assert!(q.steps[3].query.contains("FROM nodes0 WHERE node = "));
    }

    /// What a sink needs is asked for by name: each person's best-event mask and the subjects'
    /// `person` rows are separate branches of the result, each with its own count.
    #[test]
    fn person_masks_and_facts_only_when_wanted() {
        let json = format!(
            r#"{{"ConceptSets": [{CONCEPT_SET}],
              "PrimaryCriteria": {{"CriteriaList": [{{"ConditionOccurrence": {{"CodesetId": 0}}}}],
                "ObservationWindow": {{"PriorDays": 0, "PostDays": 0}}, "PrimaryCriteriaLimit": {{"Type": "All"}}}}}}"#
        );
        let (plan, sets) = plan_of(&json);
        let plain = compile(&plan, &sets, &at()).unwrap();
        for k in [KIND_PERSON_MASK, KIND_PERSON_FACT, KIND_FACT_COUNT] {
            assert!(!plain.result.contains(&format!("SELECT {k},")), "{k}");
        }
        let wants = Wants {
            person_masks: true,
            person_facts: true,
        };
        let full = compile_with(&plan, &sets, &at(), wants).unwrap();
        for k in [KIND_PERSON_MASK, KIND_PERSON_FACT, KIND_FACT_COUNT] {
            assert!(full.result.contains(&format!("SELECT {k},")), "{k}");
        }
        assert!(full.result.contains("JOIN cdm.person pe"));
        // The count of included events stays the last branch.
        assert!(full.result.trim_end().ends_with(&format!(
            "SELECT {KIND_END_COUNT}, NULL, NULL, NULL, NULL, COUNT(*) FROM ends"
        )));
        assert_eq!(plain.steps, full.steps);
    }
}
