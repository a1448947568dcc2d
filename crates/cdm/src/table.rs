//! A CDM table held in memory, column by column, as ingest produces it and the store consumes it.

use crate::schema::{ColType, TableSpec};

/// NULL in an [`ColType::Id`] column.
pub const NULL_ID: i64 = i64::MIN;
/// NULL in a [`ColType::Concept`] column.
pub const NULL_CONCEPT: i32 = i32::MIN;
/// NULL in an [`ColType::Int`] column (and, as [`crate::date::NULL_DAY`], in a date column).
pub const NULL_INT: i32 = i32::MIN;

/// One kept column's values. NULL is `i64::MIN` / `i32::MIN` / NaN / `None`.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Id(Vec<i64>),
    /// Concept ids, integers and dates (days since 1970-01-01).
    I32(Vec<i32>),
    Float(Vec<f64>),
    Text(TextColumn),
}

/// Strings stored end to end; row `i` is `data[offsets[i]..offsets[i+1]]` unless `nulls[i]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextColumn {
    pub offsets: Vec<u64>,
    pub data: Vec<u8>,
    pub nulls: Vec<bool>,
}

impl TextColumn {
    pub fn new() -> Self {
        TextColumn {
            offsets: vec![0],
            data: Vec::new(),
            nulls: Vec::new(),
        }
    }
    pub fn push(&mut self, value: Option<&str>) {
        if let Some(v) = value {
            self.data.extend_from_slice(v.as_bytes());
        }
        self.offsets.push(self.data.len() as u64);
        self.nulls.push(value.is_none());
    }
    /// Row `i`, None if NULL or past the end.
    pub fn get(&self, i: usize) -> Option<&str> {
        if *self.nulls.get(i)? {
            return None;
        }
        let bytes = &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize];
        // Only ever filled from &str.
        std::str::from_utf8(bytes).ok()
    }
    pub fn len(&self) -> usize {
        self.nulls.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nulls.is_empty()
    }
}

impl Column {
    /// An empty column for a kept column type.
    pub fn for_type(ty: ColType) -> Option<Column> {
        Some(match ty {
            ColType::Id => Column::Id(Vec::new()),
            ColType::Concept | ColType::Int | ColType::Date => Column::I32(Vec::new()),
            ColType::Float => Column::Float(Vec::new()),
            ColType::Text => Column::Text(TextColumn::new()),
            ColType::Skip => return None,
        })
    }

    pub fn len(&self) -> usize {
        match self {
            Column::Id(v) => v.len(),
            Column::I32(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Text(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when every value is NULL (or the column is empty).
    pub fn all_null(&self) -> bool {
        match self {
            Column::Id(v) => v.iter().all(|&x| x == NULL_ID),
            Column::I32(v) => v.iter().all(|&x| x == NULL_INT),
            Column::Float(v) => v.iter().all(|x| x.is_nan()),
            Column::Text(t) => t.nulls.iter().all(|&n| n),
        }
    }

    /// True when some value is NULL.
    pub fn any_null(&self) -> bool {
        match self {
            Column::Id(v) => v.contains(&NULL_ID),
            Column::I32(v) => v.contains(&NULL_INT),
            Column::Float(v) => v.iter().any(|x| x.is_nan()),
            Column::Text(t) => t.nulls.contains(&true),
        }
    }

    /// Appends a NULL.
    pub fn push_null(&mut self) {
        match self {
            Column::Id(v) => v.push(NULL_ID),
            Column::I32(v) => v.push(NULL_INT),
            Column::Float(v) => v.push(f64::NAN),
            Column::Text(t) => t.push(None),
        }
    }

    /// Drops the last value (used to undo a half-parsed row).
    pub fn truncate(&mut self, len: usize) {
        match self {
            Column::Id(v) => v.truncate(len),
            Column::I32(v) => v.truncate(len),
            Column::Float(v) => v.truncate(len),
            Column::Text(t) => {
                if len < t.len() {
                    t.nulls.truncate(len);
                    t.offsets.truncate(len + 1);
                    t.data.truncate(t.offsets[len] as usize);
                }
            }
        }
    }

    /// The rows of this column taken in `order` (a permutation or selection of row indices); an index
    /// past the end (e.g. `u32::MAX` for "no row") reads as NULL.
    pub fn gather(&self, order: &[u32]) -> Column {
        let at = |i: u32| i as usize;
        match self {
            Column::Id(v) => Column::Id(
                order
                    .iter()
                    .map(|&i| v.get(at(i)).copied().unwrap_or(NULL_ID))
                    .collect(),
            ),
            Column::I32(v) => Column::I32(
                order
                    .iter()
                    .map(|&i| v.get(at(i)).copied().unwrap_or(NULL_INT))
                    .collect(),
            ),
            Column::Float(v) => Column::Float(
                order
                    .iter()
                    .map(|&i| v.get(at(i)).copied().unwrap_or(f64::NAN))
                    .collect(),
            ),
            Column::Text(t) => {
                let mut out = TextColumn::new();
                for &i in order {
                    out.push(t.get(at(i)));
                }
                Column::Text(out)
            }
        }
    }

    pub fn as_id(&self) -> Option<&[i64]> {
        match self {
            Column::Id(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_i32(&self) -> Option<&[i32]> {
        match self {
            Column::I32(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<&[f64]> {
        match self {
            Column::Float(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_text(&self) -> Option<&TextColumn> {
        match self {
            Column::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// A CDM table in memory: one [`Column`] per kept column of its spec, in spec order.
/// Columns absent from the source are all NULL.
#[derive(Debug, Clone)]
pub struct RawTable {
    pub spec: &'static TableSpec,
    /// `(column name, values)` for every kept column of `spec`, in spec order.
    pub columns: Vec<(&'static str, Column)>,
}

impl RawTable {
    /// An empty table with every kept column of `spec`.
    pub fn new(spec: &'static TableSpec) -> RawTable {
        let columns = spec
            .columns
            .iter()
            .filter_map(|c| Column::for_type(c.ty).map(|col| (c.name, col)))
            .collect();
        RawTable { spec, columns }
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c)
    }

    pub fn column_mut(&mut self, name: &str) -> Option<&mut Column> {
        self.columns
            .iter_mut()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c)
    }

    /// Appends all rows of `other` (same spec) to this table.
    pub fn append(&mut self, other: RawTable) {
        debug_assert_eq!(self.spec.name, other.spec.name);
        for ((_, a), (_, b)) in self.columns.iter_mut().zip(other.columns) {
            match (a, b) {
                (Column::Id(a), Column::Id(b)) => a.extend(b),
                (Column::I32(a), Column::I32(b)) => a.extend(b),
                (Column::Float(a), Column::Float(b)) => a.extend(b),
                (Column::Text(a), Column::Text(b)) => {
                    for i in 0..b.len() {
                        a.push(b.get(i));
                    }
                }
                _ => unreachable!("same spec, same column types"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_column_keeps_nulls_apart_from_empty_strings() {
        let mut t = TextColumn::new();
        t.push(Some("a"));
        t.push(None);
        t.push(Some(""));
        assert_eq!((t.get(0), t.get(1), t.get(2)), (Some("a"), None, Some("")));
        let g = Column::Text(t).gather(&[2, 0]);
        assert_eq!(g.as_text().unwrap().get(1), Some("a"));
    }

    #[test]
    fn truncate_undoes_a_partial_row() {
        let mut c = Column::for_type(ColType::Text).unwrap();
        if let Column::Text(t) = &mut c {
            t.push(Some("keep"));
            t.push(Some("drop"));
        }
        c.truncate(1);
        assert_eq!(c.len(), 1);
        assert_eq!(c.as_text().unwrap().data, b"keep");
    }
}
