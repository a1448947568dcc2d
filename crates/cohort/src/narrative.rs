//! A cohort definition as text people read, in English or Simplified Chinese: entry events,
//! inclusion rules, exit, eras, censoring and concept sets, as Markdown (in the spirit of ATLAS's
//! print-friendly view; the wording is Qiao's own).
//!
//! Every element of the definition is described — every criteria attribute set in the JSON has a
//! phrase ([`attribute_label`]; a test checks the table covers every attribute of the model), so
//! nothing a definition does is hidden from its reader. Operators are said exactly: `"Op": "gt"` is
//! "greater than", never "at least".

use std::fmt::Write;

use crate::model::{
    Attr, CohortExpression, Concept, ConceptSetSelection, CorelatedCriteria, Criteria,
    CriteriaGroup, DateAdjustment, DateField, DateRange, DateType, DemographicCriteria,
    EndStrategy, Endpoint, GroupType, LimitType, NumericRange, Occurrence, Period, RangeOp,
    ResultLimit, TextFilter, TextOp, Window,
};

/// The language of a narrative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    ZhCn,
}

impl Lang {
    /// `en` or `zh-CN` (case-insensitive; `zh` is taken as `zh-CN`).
    pub fn parse(s: &str) -> Option<Lang> {
        match s.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "zh-cn" | "zh" => Some(Lang::ZhCn),
            _ => None,
        }
    }

    /// English or Chinese text.
    fn t<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::ZhCn => zh,
        }
    }
}

/// The narrative of a definition given as Circe JSON text (see [`narrative`]), or the parser's
/// error naming where the text is not one.
pub fn narrative_of_json(json: &str, title: &str, lang: Lang) -> Result<String, crate::ModelError> {
    Ok(narrative(&crate::parse(json)?.expression, title, lang))
}

/// The narrative of `expr` as Markdown; `title` heads it (e.g. the definition's file name).
pub fn narrative(expr: &CohortExpression, title: &str, lang: Lang) -> String {
    let w = Writer { expr, lang };
    let mut out = String::new();
    let title = expr
        .title
        .as_deref()
        .filter(|t| !t.is_empty())
        .unwrap_or(title);
    let _ = writeln!(out, "# {title}\n");
    w.entry(&mut out);
    w.inclusion(&mut out);
    w.exit(&mut out);
    w.concept_sets(&mut out);
    out
}

/// The label of a criteria attribute (its JSON name) in `lang`; `None` for a name it does not know.
pub fn attribute_label(json: &str, lang: Lang) -> Option<&'static str> {
    let (en, zh) = match json {
        "CodesetId" => ("concept set", "概念集"),
        "First" => ("first time in the person's history", "患者病史中首次"),
        "OccurrenceStartDate" => ("start date", "开始日期"),
        "OccurrenceEndDate" => ("end date", "结束日期"),
        "ConditionType" | "ConditionTypeCS" => ("condition type", "疾病记录类型"),
        "ConditionTypeExclude"
        | "DrugTypeExclude"
        | "ProcedureTypeExclude"
        | "MeasurementTypeExclude"
        | "ObservationTypeExclude"
        | "VisitTypeExclude"
        | "DeviceTypeExclude"
        | "SpecimenTypeExclude"
        | "DeathTypeExclude" => ("type excluded", "排除类型"),
        "StopReason" => ("stop reason", "停止原因"),
        "ConditionSourceConcept" => ("condition source concept", "疾病源概念"),
        "Age" => ("age", "年龄"),
        "Gender" | "GenderCS" => ("gender", "性别"),
        "Race" | "RaceCS" => ("race", "种族"),
        "Ethnicity" | "EthnicityCS" => ("ethnicity", "民族"),
        "ProviderSpecialty" | "ProviderSpecialtyCS" => ("provider specialty", "医生专科"),
        "VisitType" | "VisitTypeCS" => ("visit type", "就诊类型"),
        "ConditionStatus" | "ConditionStatusCS" => ("condition status", "疾病状态"),
        "DrugType" | "DrugTypeCS" => ("drug type", "药物记录类型"),
        "Refills" => ("refills", "续药次数"),
        "Quantity" => ("quantity", "数量"),
        "DaysSupply" => ("days supply", "供药天数"),
        "RouteConcept" | "RouteConceptCS" => ("route", "给药途径"),
        "EffectiveDrugDose" => ("effective drug dose", "有效剂量"),
        "DoseUnit" | "DoseUnitCS" => ("dose unit", "剂量单位"),
        "LotNumber" => ("lot number", "批号"),
        "DrugSourceConcept" => ("drug source concept", "药物源概念"),
        "EraStartDate" => ("era start date", "时期开始日期"),
        "EraEndDate" => ("era end date", "时期结束日期"),
        "OccurrenceCount" => ("number of occurrences in the era", "时期内发生次数"),
        "GapDays" => ("gap days", "间隔天数"),
        "EraLength" => ("era length in days", "时期长度（天）"),
        "AgeAtStart" => ("age at start", "开始时年龄"),
        "AgeAtEnd" => ("age at end", "结束时年龄"),
        "Unit" | "UnitCS" => ("unit", "单位"),
        "DoseValue" => ("dose value", "剂量值"),
        "ProcedureType" | "ProcedureTypeCS" => ("procedure type", "诊疗操作记录类型"),
        "Modifier" | "ModifierCS" => ("modifier", "修饰符"),
        "ProcedureSourceConcept" => ("procedure source concept", "诊疗操作源概念"),
        "MeasurementType" | "MeasurementTypeCS" => ("measurement type", "检验检查记录类型"),
        "Operator" | "OperatorCS" => ("operator", "运算符"),
        "ValueAsNumber" => ("numeric value", "数值"),
        "ValueAsConcept" | "ValueAsConceptCS" => ("value as concept", "概念值"),
        "RangeLow" => ("normal range low", "参考范围下限"),
        "RangeHigh" => ("normal range high", "参考范围上限"),
        "RangeLowRatio" => ("value / normal range low", "数值与参考范围下限之比"),
        "RangeHighRatio" => ("value / normal range high", "数值与参考范围上限之比"),
        "Abnormal" => ("abnormal result", "结果异常"),
        "MeasurementSourceConcept" => ("measurement source concept", "检验检查源概念"),
        "ObservationType" | "ObservationTypeCS" => ("observation type", "观察记录类型"),
        "ValueAsString" => ("value as text", "文本值"),
        "Qualifier" | "QualifierCS" => ("qualifier", "限定词"),
        "ObservationSourceConcept" => ("observation source concept", "观察源概念"),
        "VisitSourceConcept" => ("visit source concept", "就诊源概念"),
        "VisitLength" => ("visit length in days", "就诊时长（天）"),
        "PlaceOfService" | "PlaceOfServiceCS" => ("place of service", "服务地点"),
        "PlaceOfServiceLocation" => ("place of service location", "服务地点所在地区"),
        "VisitDetailStartDate" => ("visit detail start date", "就诊明细开始日期"),
        "VisitDetailEndDate" => ("visit detail end date", "就诊明细结束日期"),
        "VisitDetailTypeCS" => ("visit detail type", "就诊明细类型"),
        "VisitDetailSourceConcept" => ("visit detail source concept", "就诊明细源概念"),
        "VisitDetailLength" => ("visit detail length in days", "就诊明细时长（天）"),
        "DeviceType" | "DeviceTypeCS" => ("device type", "器械记录类型"),
        "UniqueDeviceId" => ("unique device id", "器械唯一标识"),
        "DeviceSourceConcept" => ("device source concept", "器械源概念"),
        "SpecimenType" | "SpecimenTypeCS" => ("specimen type", "标本记录类型"),
        "AnatomicSite" | "AnatomicSiteCS" => ("anatomic site", "解剖部位"),
        "DiseaseStatus" | "DiseaseStatusCS" => ("disease status", "疾病状态"),
        "SourceId" => ("source id", "源标识"),
        "SpecimenSourceConcept" => ("specimen source concept", "标本源概念"),
        "DeathType" | "DeathTypeCS" => ("death type", "死亡记录类型"),
        "DeathSourceConcept" => ("death source concept", "死亡源概念"),
        "PeriodStartDate" => ("period start date", "期间开始日期"),
        "PeriodEndDate" => ("period end date", "期间结束日期"),
        "UserDefinedPeriod" => ("user-defined period", "自定义期间"),
        "PeriodType" | "PeriodTypeCS" => ("period type", "期间类型"),
        "PeriodLength" => ("period length in days", "期间长度（天）"),
        "PayerConcept" => ("payer", "支付方"),
        "PlanConcept" => ("plan", "保险计划"),
        "SponsorConcept" => ("sponsor", "资助方"),
        "StopReasonConcept" => ("stop reason", "停止原因"),
        "PayerSourceConcept" => ("payer source concept", "支付方源概念"),
        "PlanSourceConcept" => ("plan source concept", "保险计划源概念"),
        "SponsorSourceConcept" => ("sponsor source concept", "资助方源概念"),
        "StopReasonSourceConcept" => ("stop reason source concept", "停止原因源概念"),
        "StartDate" => ("start date", "开始日期"),
        "EndDate" => ("end date", "结束日期"),
        _ => return None,
    };
    Some(lang.t(en, zh))
}

/// The name of a criteria type ("a drug era") in `lang`, from the domain table.
fn domain_name(c: &Criteria, lang: Lang) -> &'static str {
    let (en, zh) = crate::model::domains::domain_of(c).noun;
    lang.t(en, zh)
}

struct Writer<'a> {
    expr: &'a CohortExpression,
    lang: Lang,
}

impl Writer<'_> {
    fn t<'b>(&self, en: &'b str, zh: &'b str) -> &'b str {
        self.lang.t(en, zh)
    }

    fn zh(&self) -> bool {
        self.lang == Lang::ZhCn
    }

    /// A concept set reference: its name in quotes and its id.
    fn codeset(&self, id: i32) -> String {
        let name = self
            .expr
            .concept_sets
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.name.as_deref())
            .filter(|n| !n.is_empty());
        match (name, self.lang) {
            (Some(n), Lang::En) => format!("“{n}” (concept set {id})"),
            (Some(n), Lang::ZhCn) => format!("“{n}”（概念集 {id}）"),
            (None, Lang::En) => format!("concept set {id}"),
            (None, Lang::ZhCn) => format!("概念集 {id}"),
        }
    }

    fn limit(&self, l: &Option<ResultLimit>) -> &'static str {
        match ResultLimit::kind(l) {
            LimitType::First => self
                .lang
                .t("the earliest event per person", "每人最早的一个事件"),
            LimitType::Last => self
                .lang
                .t("the latest event per person", "每人最晚的一个事件"),
            LimitType::All => self.lang.t("all events per person", "每人的全部事件"),
        }
    }

    fn entry(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## {}\n",
            self.t("Cohort entry events", "队列入组事件")
        );
        let Some(pc) = &self.expr.primary_criteria else {
            let _ = writeln!(
                out,
                "{}\n",
                self.t(
                    "No entry events are defined: the cohort is empty.",
                    "未定义入组事件：队列为空。"
                )
            );
            return;
        };
        let _ = writeln!(
            out,
            "{}\n",
            self.t(
                "People enter the cohort at any of the following events:",
                "患者在发生以下任一事件时入组："
            )
        );
        for (i, c) in pc.criteria_list.iter().enumerate() {
            let _ = writeln!(out, "{}. {}", i + 1, self.criteria(c));
            self.nested(out, c, 1);
        }
        let ow = pc.observation_window.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "\n{}",
            if self.zh() {
                format!(
                    "事件须在连续观察期内，且事件日期前至少 {} 天、后至少 {} 天处于观察中。",
                    ow.prior_days, ow.post_days
                )
            } else {
                format!(
                    "The event must lie in continuous observation, with at least {} of observation before and {} after the event date.",
                    days(ow.prior_days), days(ow.post_days)
                )
            }
        );
        let _ = writeln!(
            out,
            "{}",
            if self.zh() {
                format!("入组事件限定为{}。", self.limit(&pc.primary_limit))
            } else {
                format!(
                    "Entry events are limited to {}.",
                    self.limit(&pc.primary_limit)
                )
            }
        );
        let additional = self
            .expr
            .additional_criteria
            .as_ref()
            .filter(|g| !g.is_empty());
        if let Some(g) = additional {
            let _ = writeln!(
                out,
                "\n{}",
                self.t(
                    "Entry events are restricted to those having",
                    "入组事件仅保留满足以下条件者："
                )
            );
            self.group(out, g, 0);
        }
        // Circe applies the qualified limit when the definition has an additional criteria
        // element, even an empty one.
        if self.expr.additional_criteria.is_some() {
            let _ = writeln!(
                out,
                "\n{}",
                if self.zh() {
                    format!("合格事件限定为{}。", self.limit(&self.expr.qualified_limit))
                } else {
                    format!(
                        "Qualifying events are limited to {}.",
                        self.limit(&self.expr.qualified_limit)
                    )
                }
            );
        }
        out.push('\n');
    }

    fn inclusion(&self, out: &mut String) {
        let rules = &self.expr.inclusion_rules;
        if rules.is_empty() {
            if ResultLimit::kind(&self.expr.expression_limit) != LimitType::All {
                let _ = writeln!(out, "{}\n", self.expression_limit());
            }
            return;
        }
        let _ = writeln!(out, "## {}\n", self.t("Inclusion criteria", "纳入标准"));
        let _ = writeln!(
            out,
            "{}\n",
            self.t(
                "Entry events stay in the cohort when they meet every rule below, in order:",
                "入组事件须依次满足以下全部规则方可保留："
            )
        );
        for (i, r) in rules.iter().enumerate() {
            let name = r.name.as_deref().filter(|n| !n.is_empty()).unwrap_or("");
            let _ = writeln!(
                out,
                "### {} {}{}\n",
                self.t("Rule", "规则"),
                i + 1,
                if name.is_empty() {
                    String::new()
                } else {
                    format!("{}{name}", self.t(": ", "："))
                }
            );
            if let Some(d) = r.description.as_deref().filter(|d| !d.is_empty()) {
                let _ = writeln!(out, "> {d}\n");
            }
            match r.expression.as_ref().filter(|g| !g.is_empty()) {
                Some(g) => {
                    let _ = writeln!(out, "{}", self.t("Having", "需满足："));
                    self.group(out, g, 0);
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{}",
                        self.t(
                            "(no criteria: every event passes)",
                            "（无条件：所有事件均通过）"
                        )
                    );
                }
            }
            out.push('\n');
        }
        let _ = writeln!(out, "{}\n", self.expression_limit());
    }

    fn expression_limit(&self) -> String {
        let l = self.limit(&self.expr.expression_limit);
        if self.zh() {
            format!("最终队列限定为{l}。")
        } else {
            format!("The cohort is limited to {l}.")
        }
    }

    fn exit(&self, out: &mut String) {
        let _ = writeln!(out, "## {}\n", self.t("Cohort exit", "队列退出"));
        let text = match &self.expr.end_strategy {
            None => self
                .t(
                    "A person leaves the cohort at the end of the continuous observation period of the entry event.",
                    "患者在入组事件所在连续观察期结束时退出队列。",
                )
                .to_string(),
            Some(EndStrategy::DateOffset(d)) => {
                let field = match d.date_field {
                    Some(DateField::EndDate) => self.t("end date", "结束日期"),
                    _ => self.t("start date", "开始日期"),
                };
                if self.zh() {
                    format!(
                        "队列结束日期为入组事件的{field}加 {} 天（不晚于连续观察期结束）。",
                        d.offset
                    )
                } else {
                    format!(
                        "The cohort end date is the entry event's {field} plus {} (no later than the end of continuous observation).",
                        days(d.offset)
                    )
                }
            }
            Some(EndStrategy::CustomEra(c)) => {
                let drug = c
                    .drug_codeset_id
                    .map(|id| self.codeset(id))
                    .unwrap_or_else(|| self.t("(no concept set)", "（未指定概念集）").to_string());
                let supply = match (c.days_supply_override, self.lang) {
                    (Some(d), Lang::En) => format!(", every exposure taken to last {}", days(d)),
                    (Some(d), Lang::ZhCn) => format!("，每次暴露按 {d} 天供药计"),
                    (None, _) => String::new(),
                };
                if self.zh() {
                    format!(
                        "队列结束日期为对{drug}的连续暴露结束日：两次暴露间隔不超过 {} 天视为连续，最后一次暴露结束后再加 {} 天{supply}（不晚于连续观察期结束）。",
                        c.gap_days, c.offset
                    )
                } else {
                    format!(
                        "The cohort end date is the end of continuous exposure to {drug}: exposures at most {} apart are continuous, and {} are added after the last exposure ends{supply} (no later than the end of continuous observation).",
                        days(c.gap_days), days(c.offset)
                    )
                }
            }
        };
        let _ = writeln!(out, "{text}\n");
        if !self.expr.censoring_criteria.is_empty() {
            let _ = writeln!(
                out,
                "{}\n",
                self.t(
                    "A person also leaves the cohort at the first of these events after entry (censoring):",
                    "入组后发生以下任一事件时，患者亦退出队列（删失）："
                )
            );
            for (i, c) in self.expr.censoring_criteria.iter().enumerate() {
                let _ = writeln!(out, "{}. {}", i + 1, self.criteria(c));
                self.nested(out, c, 1);
            }
            out.push('\n');
        }
        let pad = self
            .expr
            .collapse_settings
            .as_ref()
            .map(|c| c.era_pad)
            .unwrap_or(0);
        let _ = writeln!(out, "## {}\n", self.t("Cohort eras", "队列时段合并"));
        let _ = writeln!(
            out,
            "{}\n",
            if self.zh() {
                format!("同一患者相隔不超过 {pad} 天的队列时段合并为一个时段。")
            } else {
                format!(
                    "A person's cohort periods at most {} apart are combined into one era.",
                    days(pad)
                )
            }
        );
        if let Some(p) = &self.expr.censor_window {
            if p.start_date.is_some() || p.end_date.is_some() {
                let _ = writeln!(
                    out,
                    "{}\n",
                    if self.zh() {
                        format!("队列时段截取在{}内。", self.period(p))
                    } else {
                        format!("Cohort periods are cut to {}.", self.period(p))
                    }
                );
            }
        }
    }

    fn concept_sets(&self, out: &mut String) {
        let sets = &self.expr.concept_sets;
        if sets.is_empty() {
            return;
        }
        let _ = writeln!(out, "## {}\n", self.t("Concept sets", "概念集"));
        for cs in sets {
            let name = cs.name.as_deref().filter(|n| !n.is_empty()).unwrap_or("");
            let _ = writeln!(
                out,
                "### {} {}{}\n",
                self.t("Concept set", "概念集"),
                cs.id,
                if name.is_empty() {
                    String::new()
                } else {
                    format!("{}{name}", self.t(": ", "："))
                }
            );
            let items = cs
                .expression
                .as_ref()
                .map(|e| e.items.as_slice())
                .unwrap_or(&[]);
            if items.is_empty() {
                let _ = writeln!(
                    out,
                    "{}\n",
                    self.t("(empty: matches no concept)", "（空：不匹配任何概念）")
                );
                continue;
            }
            let _ = writeln!(
                out,
                "| {} |\n|---|---|---|---|---|---|---|",
                self.t(
                    "concept id | concept name | vocabulary | code | excluded | descendants | mapped",
                    "概念 ID | 概念名称 | 词表 | 代码 | 排除 | 含下位概念 | 含映射概念"
                )
            );
            let yes_no = |b: bool| {
                if b {
                    self.t("yes", "是")
                } else {
                    self.t("no", "否")
                }
            };
            for it in items {
                let c = &it.concept;
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    c.concept_id.map(|i| i.to_string()).unwrap_or_default(),
                    cell(c.concept_name.as_deref()),
                    cell(c.vocabulary_id.as_deref()),
                    cell(c.concept_code.as_deref()),
                    yes_no(it.is_excluded),
                    yes_no(it.include_descendants),
                    yes_no(it.include_mapped),
                );
            }
            out.push('\n');
        }
    }

    /// One criteria on one line: its domain, concept set and attributes.
    fn criteria(&self, c: &Criteria) -> String {
        let attrs = c.attributes();
        let mut s = domain_name(c, self.lang).to_string();
        if let Some((_, Attr::Codeset(id))) = attrs.iter().find(|(k, _)| *k == "CodesetId") {
            s = if self.zh() {
                format!("{}的{s}", self.codeset(*id))
            } else {
                format!("{s} of {}", self.codeset(*id))
            };
        }
        let mut parts = Vec::new();
        for (k, a) in &attrs {
            if *k == "CodesetId" || k.ends_with("Exclude") {
                continue;
            }
            // A type list with its `…TypeExclude` flag set reads "is none of".
            let excluded = attrs.iter().any(|(x, v)| {
                x.strip_suffix("Exclude") == Some(k) && matches!(v, Attr::Flag(true))
            });
            parts.push(self.attribute(k, a, excluded));
        }
        if let Some(d) = c.common().1 {
            parts.push(self.date_adjustment(d));
        }
        if !parts.is_empty() {
            s.push_str(self.t(", ", "，"));
            s.push_str(&parts.join(self.t("; ", "；")));
        }
        s
    }

    /// A criteria's own correlated criteria, indented under it.
    fn nested(&self, out: &mut String, c: &Criteria, depth: usize) {
        if let Some(g) = c.common().0.as_ref().filter(|g| !g.is_empty()) {
            let _ = writeln!(
                out,
                "{}- {}",
                indent(depth),
                self.t("where the event has", "且该事件满足：")
            );
            self.group(out, g, depth + 1);
        }
    }

    fn attribute(&self, key: &str, a: &Attr<'_>, excluded: bool) -> String {
        let label = attribute_label(key, self.lang).unwrap_or(key);
        let z = self.zh();
        match a {
            Attr::Flag(true) if key == "First" => label.to_string(),
            Attr::Flag(b) => {
                if z {
                    format!("{label}：{}", if *b { "是" } else { "否" })
                } else {
                    format!("{label}: {}", if *b { "yes" } else { "no" })
                }
            }
            Attr::Codeset(id) => {
                if z {
                    format!("{label}属于{}", self.codeset(*id))
                } else {
                    format!("{label} in {}", self.codeset(*id))
                }
            }
            Attr::Number(r) => format!("{label}{}{}", self.t(" ", ""), self.numeric(r)),
            Attr::Date(r) => format!("{label}{}{}", self.t(" ", ""), self.date(r)),
            Attr::Concepts(cs) => {
                let list = concept_list(cs);
                match (excluded, z) {
                    (false, false) => format!("{label} is any of {list}"),
                    (true, false) => format!("{label} is none of {list}"),
                    (false, true) => format!("{label}为以下之一：{list}"),
                    (true, true) => format!("{label}不为以下任何一项：{list}"),
                }
            }
            Attr::ConceptSet(sel) => self.selection(label, sel),
            Attr::Text(t) => self.text(label, t),
            Attr::Period(p) => {
                if z {
                    format!("{label}：{}", self.period(p))
                } else {
                    format!("{label}: {}", self.period(p))
                }
            }
        }
    }

    fn selection(&self, label: &str, sel: &ConceptSetSelection) -> String {
        let set = sel
            .codeset_id
            .map(|id| self.codeset(id))
            .unwrap_or_else(|| self.t("(no concept set)", "（未指定概念集）").to_string());
        match (sel.is_exclusion, self.zh()) {
            (false, false) => format!("{label} in {set}"),
            (true, false) => format!("{label} not in {set}"),
            (false, true) => format!("{label}属于{set}"),
            (true, true) => format!("{label}不属于{set}"),
        }
    }

    fn text(&self, label: &str, t: &TextFilter) -> String {
        let v = t.text.as_deref().unwrap_or("");
        let (en, zh) = match t.op {
            Some(TextOp::StartsWith) | None => ("starts with", "以…开头"),
            Some(TextOp::Contains) => ("contains", "包含"),
            Some(TextOp::EndsWith) => ("ends with", "以…结尾"),
            Some(TextOp::NotStartsWith) => ("does not start with", "不以…开头"),
            Some(TextOp::NotContains) => ("does not contain", "不包含"),
            Some(TextOp::NotEndsWith) => ("does not end with", "不以…结尾"),
        };
        if self.zh() {
            format!("{label}{zh}“{v}”")
        } else {
            format!("{label} {en} “{v}”")
        }
    }

    fn numeric(&self, r: &NumericRange) -> String {
        let v = r.value.map(num).unwrap_or_else(|| "?".into());
        let e = r.extent.map(num).unwrap_or_else(|| "?".into());
        self.range(r.op, &v, &e, false)
    }

    fn date(&self, r: &DateRange) -> String {
        let v = r.value.clone().unwrap_or_else(|| "?".into());
        let e = r.extent.clone().unwrap_or_else(|| "?".into());
        self.range(r.op, &v, &e, true)
    }

    /// An operator with its value(s): exact words for each (gt is "greater than", gte "at least").
    fn range(&self, op: Option<RangeOp>, v: &str, e: &str, date: bool) -> String {
        let op = op.unwrap_or(RangeOp::Eq);
        match (self.lang, date, op) {
            (Lang::En, false, RangeOp::Lt) => format!("less than {v}"),
            (Lang::En, false, RangeOp::Lte) => format!("at most {v}"),
            (Lang::En, false, RangeOp::Eq) => format!("equal to {v}"),
            (Lang::En, false, RangeOp::NotEq) => format!("not equal to {v}"),
            (Lang::En, false, RangeOp::Gt) => format!("greater than {v}"),
            (Lang::En, false, RangeOp::Gte) => format!("at least {v}"),
            (Lang::En, _, RangeOp::Bt) => format!("between {v} and {e} (inclusive)"),
            (Lang::En, _, RangeOp::NotBt) => format!("not between {v} and {e}"),
            (Lang::En, true, RangeOp::Lt) => format!("before {v}"),
            (Lang::En, true, RangeOp::Lte) => format!("on or before {v}"),
            (Lang::En, true, RangeOp::Eq) => format!("on {v}"),
            (Lang::En, true, RangeOp::NotEq) => format!("not on {v}"),
            (Lang::En, true, RangeOp::Gt) => format!("after {v}"),
            (Lang::En, true, RangeOp::Gte) => format!("on or after {v}"),
            (Lang::ZhCn, false, RangeOp::Lt) => format!("小于 {v}"),
            (Lang::ZhCn, false, RangeOp::Lte) => format!("小于或等于 {v}"),
            (Lang::ZhCn, false, RangeOp::Eq) => format!("等于 {v}"),
            (Lang::ZhCn, false, RangeOp::NotEq) => format!("不等于 {v}"),
            (Lang::ZhCn, false, RangeOp::Gt) => format!("大于 {v}"),
            (Lang::ZhCn, false, RangeOp::Gte) => format!("大于或等于 {v}"),
            (Lang::ZhCn, _, RangeOp::Bt) => format!("介于 {v} 与 {e} 之间（含两端）"),
            (Lang::ZhCn, _, RangeOp::NotBt) => format!("不介于 {v} 与 {e} 之间"),
            (Lang::ZhCn, true, RangeOp::Lt) => format!("早于 {v}"),
            (Lang::ZhCn, true, RangeOp::Lte) => format!("不晚于 {v}"),
            (Lang::ZhCn, true, RangeOp::Eq) => format!("为 {v}"),
            (Lang::ZhCn, true, RangeOp::NotEq) => format!("不为 {v}"),
            (Lang::ZhCn, true, RangeOp::Gt) => format!("晚于 {v}"),
            (Lang::ZhCn, true, RangeOp::Gte) => format!("不早于 {v}"),
        }
    }

    fn period(&self, p: &Period) -> String {
        let open = self.t("(open)", "（不限）");
        let a = p.start_date.as_deref().unwrap_or(open);
        let b = p.end_date.as_deref().unwrap_or(open);
        if self.zh() {
            format!("{a} 至 {b}")
        } else {
            format!("{a} to {b}")
        }
    }

    fn date_adjustment(&self, d: &DateAdjustment) -> String {
        let which = |t: Option<DateType>| match t {
            Some(DateType::EndDate) => self.t("end date", "结束日期"),
            _ => self.t("start date", "开始日期"),
        };
        if self.zh() {
            format!(
                "日期调整：开始 = 事件{} {:+} 天，结束 = 事件{} {:+} 天",
                which(d.start_with),
                d.start_offset,
                which(d.end_with.or(Some(DateType::EndDate))),
                d.end_offset
            )
        } else {
            format!(
                "dates adjusted: start = event {} {:+} days, end = event {} {:+} days",
                which(d.start_with),
                d.start_offset,
                which(d.end_with.or(Some(DateType::EndDate))),
                d.end_offset
            )
        }
    }

    /// A criteria group as a nested list.
    fn group(&self, out: &mut String, g: &CriteriaGroup, depth: usize) {
        let n = g.count.unwrap_or(0);
        let head = match (g.group_type.unwrap_or(GroupType::All), self.lang) {
            (GroupType::All, Lang::En) => "all of the following:".to_string(),
            (GroupType::Any, Lang::En) => "any of the following:".to_string(),
            (GroupType::AtLeast, Lang::En) => format!("at least {n} of the following:"),
            (GroupType::AtMost, Lang::En) => format!("at most {n} of the following:"),
            (GroupType::All, Lang::ZhCn) => "以下全部条件：".to_string(),
            (GroupType::Any, Lang::ZhCn) => "以下任一条件：".to_string(),
            (GroupType::AtLeast, Lang::ZhCn) => format!("以下条件中至少 {n} 项："),
            (GroupType::AtMost, Lang::ZhCn) => format!("以下条件中至多 {n} 项："),
        };
        let _ = writeln!(out, "{}- {head}", indent(depth));
        for d in &g.demographic_criteria_list {
            let _ = writeln!(out, "{}- {}", indent(depth + 1), self.demographic(d));
        }
        for c in &g.criteria_list {
            self.correlated(out, c, depth + 1);
        }
        for sub in &g.groups {
            self.group(out, sub, depth + 1);
        }
    }

    fn demographic(&self, d: &DemographicCriteria) -> String {
        let mut parts = Vec::new();
        let mut push = |key: &str, a: Option<Attr<'_>>| {
            if let Some(a) = a {
                parts.push(self.attribute(key, &a, false));
            }
        };
        push("Age", d.age.as_ref().map(Attr::Number));
        push("Gender", d.gender.as_deref().map(Attr::Concepts));
        push("GenderCS", d.gender_cs.as_ref().map(Attr::ConceptSet));
        push("Race", d.race.as_deref().map(Attr::Concepts));
        push("RaceCS", d.race_cs.as_ref().map(Attr::ConceptSet));
        push("Ethnicity", d.ethnicity.as_deref().map(Attr::Concepts));
        push("EthnicityCS", d.ethnicity_cs.as_ref().map(Attr::ConceptSet));
        push(
            "OccurrenceStartDate",
            d.occurrence_start_date.as_ref().map(Attr::Date),
        );
        push(
            "OccurrenceEndDate",
            d.occurrence_end_date.as_ref().map(Attr::Date),
        );
        let lead = self.t("at the entry event: ", "入组事件时：");
        if parts.is_empty() {
            return format!("{lead}{}", self.t("(no condition)", "（无条件）"));
        }
        format!("{lead}{}", parts.join(self.t("; ", "；")))
    }

    fn correlated(&self, out: &mut String, c: &CorelatedCriteria, depth: usize) {
        let what = c
            .criteria
            .as_ref()
            .map(|x| self.criteria(x))
            .unwrap_or_else(|| self.t("(no criteria)", "（无条件）").to_string());
        let occ = self.occurrence(c.occurrence.as_ref());
        let mut when = Vec::new();
        if let Some(w) = &c.start_window {
            when.push(self.window(w, false));
        }
        if let Some(w) = &c.end_window {
            when.push(self.window(w, true));
        }
        if c.restrict_visit {
            when.push(
                self.t(
                    "at the same visit as the entry event",
                    "与入组事件为同一次就诊",
                )
                .to_string(),
            );
        }
        if c.ignore_observation_period {
            when.push(
                self.t(
                    "events outside the observation period count too",
                    "观察期外的事件亦计入",
                )
                .to_string(),
            );
        }
        let when = if when.is_empty() {
            String::new()
        } else {
            format!("{}{}", self.t(", ", "，"), when.join(self.t(", ", "，")))
        };
        let _ = if self.zh() {
            writeln!(out, "{}- {occ}{what}{when}", indent(depth))
        } else {
            writeln!(out, "{}- {occ} {what}{when}", indent(depth))
        };
        if let Some(x) = &c.criteria {
            self.nested(out, x, depth + 1);
        }
    }

    fn occurrence(&self, o: Option<&Occurrence>) -> String {
        let (ty, n, distinct, col) = match o {
            Some(o) => (
                o.occurrence_type,
                o.count.unwrap_or(0),
                o.is_distinct,
                o.count_column,
            ),
            None => (2, 1, false, None),
        };
        let col = col.map(|c| format!("{c:?}").to_ascii_lowercase().replace('_', " "));
        if self.zh() {
            let q = match ty {
                0 => "恰好",
                1 => "至多",
                _ => "至少",
            };
            let d = match (distinct, &col) {
                (true, Some(c)) => format!("（按不同的 {c} 计）"),
                (true, None) => "（按不同的概念计）".to_string(),
                _ => String::new(),
            };
            format!("{q} {n} 次{d}：")
        } else {
            let q = match ty {
                0 => "exactly",
                1 => "at most",
                _ => "at least",
            };
            let d = match (distinct, &col) {
                (true, Some(c)) => format!(" distinct ({c})"),
                (true, None) => " distinct".to_string(),
                _ => String::new(),
            };
            let s = if n == 1 { "" } else { "s" };
            format!("{q} {n}{d} occurrence{s} of")
        }
    }

    /// When a correlated event must happen relative to the entry event.
    fn window(&self, w: &Window, end_window: bool) -> String {
        let event_end = w.use_event_end.unwrap_or(end_window);
        let index_end = w.use_index_end.unwrap_or(false);
        let ep = |e: &Option<Endpoint>| -> String {
            let (n, coeff) = e.as_ref().map(|e| (e.days, e.coeff)).unwrap_or((None, -1));
            match (n, coeff < 0, self.lang) {
                (None, true, Lang::En) => "any time before".to_string(),
                (None, false, Lang::En) => "any time after".to_string(),
                (Some(d), true, Lang::En) => format!("{} before", days(d)),
                (Some(d), false, Lang::En) => format!("{} after", days(d)),
                (None, true, Lang::ZhCn) => "之前任意时间".to_string(),
                (None, false, Lang::ZhCn) => "之后任意时间".to_string(),
                (Some(d), true, Lang::ZhCn) => format!("前 {d} 天"),
                (Some(d), false, Lang::ZhCn) => format!("后 {d} 天"),
            }
        };
        let (a, b) = (ep(&w.start), ep(&w.end));
        let what = if event_end {
            self.t("ending", "结束于")
        } else {
            self.t("starting", "开始于")
        };
        let idx = if index_end {
            self.t("the entry event's end date", "入组事件结束日期")
        } else {
            self.t("the entry event's start date", "入组事件开始日期")
        };
        if self.zh() {
            format!("事件{what}{idx}{a}至{b}之间")
        } else {
            format!("{what} between {a} and {b} {idx}")
        }
    }
}

/// "1 day", "7 days".
fn days(n: i32) -> String {
    if n.abs() == 1 {
        format!("{n} day")
    } else {
        format!("{n} days")
    }
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

/// A number as written in the definition (no trailing `.0` for whole numbers).
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn cell(s: Option<&str>) -> String {
    s.unwrap_or("").replace('|', "\\|")
}

fn concept_list(cs: &[Concept]) -> String {
    cs.iter()
        .map(|c| {
            let id = c
                .concept_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "?".into());
            match c.concept_name.as_deref().filter(|n| !n.is_empty()) {
                Some(n) => format!("{n} ({id})"),
                None => id,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_of_the_model_has_a_label_in_both_languages() {
        for name in Criteria::all_attribute_names() {
            assert!(
                attribute_label(name, Lang::En).is_some(),
                "no English label for {name}"
            );
            assert!(
                attribute_label(name, Lang::ZhCn).is_some(),
                "no Chinese label for {name}"
            );
        }
        for name in ["Race", "RaceCS", "Ethnicity", "EthnicityCS"] {
            assert!(
                attribute_label(name, Lang::ZhCn).is_some(),
                "no label for {name}"
            );
        }
    }

    #[test]
    fn operators_are_said_exactly() {
        let w = |lang| Writer {
            expr: Box::leak(Box::new(crate::model::parse_expression("{}").unwrap())),
            lang,
        };
        let gt = NumericRange {
            value: Some(40.0),
            op: Some(RangeOp::Gt),
            extent: None,
        };
        assert_eq!(w(Lang::En).numeric(&gt), "greater than 40");
        assert_eq!(w(Lang::ZhCn).numeric(&gt), "大于 40");
        let gte = NumericRange {
            op: Some(RangeOp::Gte),
            ..gt.clone()
        };
        assert_eq!(w(Lang::En).numeric(&gte), "at least 40");
        let bt = NumericRange {
            value: Some(1.5),
            op: Some(RangeOp::Bt),
            extent: Some(3.0),
        };
        assert_eq!(w(Lang::En).numeric(&bt), "between 1.5 and 3 (inclusive)");
    }
}
