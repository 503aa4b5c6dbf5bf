//! Magento's `searchCriteria` query string: filter groups (ANDed) of filters (ORed), sort
//! orders and paging — with Magento's paging quirk: a page past the end returns the last
//! page again, not an empty one (magento/magento2 #3787, #8099, #26986).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use crate::table::Table;

/// One filter: `field <condition> value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Top-level field of the entity.
    pub field: String,
    /// The raw value (`in`/`nin` take a comma-separated list).
    pub value: String,
    /// `eq` (default), `neq`, `gt`, `gteq`, `lt`, `lteq`, `from`, `to`, `in`, `nin`, `like`.
    pub condition: String,
}

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchCriteria {
    /// Groups are ANDed; the filters inside one group are ORed.
    pub groups: Vec<Vec<Filter>>,
    /// `(field, ascending)` in order of precedence.
    pub sort: Vec<(String, bool)>,
    /// `None`: every row in one page (Magento's behaviour when pageSize is omitted).
    pub page_size: Option<usize>,
    /// 1-based.
    pub current_page: usize,
}

/// Why a query string is refused (Magento answers 400 with a message like these).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SearchError {
    /// A number that does not parse.
    #[error("`{key}` must be a positive number, got `{value}`")]
    NotANumber {
        /// The query key.
        key: String,
        /// Its value.
        value: String,
    },
    /// A filter without its field.
    #[error("filter group {group} filter {filter} has no field")]
    NoField {
        /// Group index.
        group: usize,
        /// Filter index.
        filter: usize,
    },
    /// An unsupported condition.
    #[error("condition_type `{0}` is not supported")]
    Condition(String),
}

const CONDITIONS: &[&str] = &[
    "eq", "neq", "gt", "gteq", "lt", "lteq", "from", "to", "in", "nin", "like",
];

impl SearchCriteria {
    /// Parses the `searchCriteria[...]` pairs of a query string; other keys are ignored.
    pub fn parse(query: &str) -> Result<Self, SearchError> {
        // (group, filter) → (field, value, condition)
        let mut filters: BTreeMap<(usize, usize), [Option<String>; 3]> = BTreeMap::new();
        let mut sorts: BTreeMap<usize, (Option<String>, bool)> = BTreeMap::new();
        let mut criteria = SearchCriteria {
            current_page: 1,
            ..Default::default()
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let Some(rest) = key.strip_prefix("searchCriteria") else {
                continue;
            };
            let parts: Vec<&str> = rest
                .split(['[', ']'])
                .filter(|part| !part.is_empty())
                .collect();
            let number = |s: &str| {
                s.parse::<usize>().map_err(|_| SearchError::NotANumber {
                    key: key.to_string(),
                    value: s.to_owned(),
                })
            };
            match parts.as_slice() {
                ["filter_groups", g, "filters", f, what]
                | ["filterGroups", g, "filters", f, what] => {
                    let slot = match *what {
                        "field" => 0,
                        "value" => 1,
                        "condition_type" | "conditionType" => 2,
                        _ => continue,
                    };
                    filters.entry((number(g)?, number(f)?)).or_default()[slot] =
                        Some(value.to_string());
                }
                ["sortOrders", i, "field"] => {
                    sorts.entry(number(i)?).or_insert((None, true)).0 = Some(value.to_string());
                }
                ["sortOrders", i, "direction"] => {
                    sorts.entry(number(i)?).or_insert((None, true)).1 =
                        !value.eq_ignore_ascii_case("DESC");
                }
                ["pageSize"] => criteria.page_size = Some(number(&value)?.max(1)),
                ["currentPage"] => criteria.current_page = number(&value)?.max(1),
                _ => {}
            }
        }
        let mut groups: BTreeMap<usize, Vec<Filter>> = BTreeMap::new();
        for ((g, f), [field, value, condition]) in filters {
            let field = field.ok_or(SearchError::NoField {
                group: g,
                filter: f,
            })?;
            let condition = condition.unwrap_or_else(|| "eq".to_owned());
            if !CONDITIONS.contains(&condition.as_str()) {
                return Err(SearchError::Condition(condition));
            }
            groups.entry(g).or_default().push(Filter {
                field,
                value: value.unwrap_or_default(),
                condition,
            });
        }
        criteria.groups = groups.into_values().collect();
        criteria.sort = sorts
            .into_values()
            .filter_map(|(field, asc)| field.map(|f| (f, asc)))
            .collect();
        Ok(criteria)
    }

    /// Whether `row` passes every group.
    pub fn matches(&self, row: &Value) -> bool {
        Prepared::of(self).matches(row)
    }

    /// Filters, sorts and pages `rows`; returns the page and the total count. A page past
    /// the end is the last page again.
    pub fn apply<'a>(&self, rows: impl Iterator<Item = &'a Value>) -> (Vec<&'a Value>, usize) {
        let prepared = Prepared::of(self);
        let mut found: Vec<&Value> = rows.filter(|row| prepared.matches(row)).collect();
        if !self.sort.is_empty() {
            found.sort_by(|a, b| {
                for (field, asc) in &self.sort {
                    let order = compare(a.get(field), b.get(field));
                    if order != Ordering::Equal {
                        return if *asc { order } else { order.reverse() };
                    }
                }
                Ordering::Equal
            });
        }
        let total = found.len();
        (self.page_of(found), total)
    }

    /// The requested page of `found` (all of it without a page size; past the end, the
    /// last page again).
    fn page_of<T>(&self, found: Vec<T>) -> Vec<T> {
        let Some(size) = self.page_size else {
            return found;
        };
        let pages = found.len().div_ceil(size).max(1);
        let page = self.current_page.min(pages);
        found
            .into_iter()
            .skip((page - 1) * size)
            .take(size)
            .collect()
    }

    /// [`Self::apply`] over a [`Table`]: a search sorted by `updated_at` then `entity_id`
    /// (ascending) whose filters are on those two fields only — the pollers' keyset page —
    /// walks the table's index from its lower bound and reads only the page's rows; any
    /// other search scans the rows. (The index keeps timestamps as text, as a Magento
    /// timestamp compares; a row with a null `updated_at` is not one a search finds by it.)
    pub fn apply_indexed<'a>(&self, table: &'a Table) -> (Vec<&'a Value>, usize) {
        // A group that is one `increment_id eq`/`in` filter: only the rows its values
        // index can pass, and `apply` decides which do.
        for group in &self.groups {
            if let [f] = group.as_slice()
                && f.field == "increment_id"
                && matches!(f.condition.as_str(), "eq" | "in")
            {
                let values: Vec<&str> = match f.condition.as_str() {
                    "eq" => vec![f.value.as_str()],
                    _ => f.value.split(',').map(str::trim).collect(),
                };
                let ids: BTreeSet<u64> = values
                    .into_iter()
                    .flat_map(|value| table.with_increment(value))
                    .collect();
                return self.apply(ids.iter().filter_map(|id| table.get(id)));
            }
        }
        let keyset = [
            ("updated_at".to_owned(), true),
            ("entity_id".to_owned(), true),
        ];
        let indexable = self.sort == keyset
            && self
                .groups
                .iter()
                .flatten()
                .all(|f| f.field == "updated_at" || f.field == "entity_id");
        if !indexable {
            return self.apply(table.values());
        }
        // A group that is one `updated_at` bound on a timestamp (text) rules out every row
        // before it; one that is `updated_at eq` ends the walk after it.
        let mut from = String::new();
        let mut until: Option<&str> = None;
        for group in &self.groups {
            if let Some(f) = timestamp_bound(group) {
                if matches!(f.condition.as_str(), "eq" | "gteq" | "from" | "gt") {
                    from = from.max(f.value.clone());
                }
                if f.condition == "eq" {
                    until = Some(until.map_or(f.value.as_str(), |u| u.min(f.value.as_str())));
                }
            }
        }
        // Within one second (`updated_at eq`), an `entity_id` lower bound (a poller reading
        // on past a page of that second) starts the walk at its id: the second's rows
        // before it are not walked again for every page.
        let one_second = until == Some(from.as_str());
        let first_id = if one_second {
            self.groups
                .iter()
                .filter_map(|g| entity_lower_bound(g))
                .max()
        } else {
            None
        }
        .unwrap_or(0);
        // Groups the walk's start already satisfies (`updated_at` from a timestamp at or
        // below it; that `entity_id` bound) are not evaluated again per row: then a
        // poller's page over a large backlog costs a walk of the index, not a filter per
        // row.
        let prepared = Prepared::of(self);
        let checked: Vec<&Vec<PreparedFilter<'_>>> = self
            .groups
            .iter()
            .zip(&prepared.groups)
            .filter(|(group, _)| {
                let from_satisfies = timestamp_bound(group).is_some_and(|f| {
                    matches!(f.condition.as_str(), "gteq" | "from") && f.value <= from
                });
                let start_satisfies = one_second && entity_lower_bound(group).is_some();
                !(from_satisfies || start_satisfies)
            })
            .map(|(_, prepared)| prepared)
            .collect();
        let on_entity = checked
            .iter()
            .flat_map(|g| g.iter())
            .any(|f| f.field() == "entity_id");
        let mut found: Vec<u64> = Vec::new();
        for (updated, id) in table.updated_from(&from, first_id) {
            if until.is_some_and(|u| updated.as_str() > u) {
                break;
            }
            let id_text = if on_entity {
                id.to_string()
            } else {
                String::new()
            };
            let passes = checked.iter().all(|group| {
                group.iter().any(|filter| {
                    let value = if filter.field() == "updated_at" {
                        updated.as_str()
                    } else {
                        id_text.as_str()
                    };
                    filter.matches_field(Field {
                        present: true,
                        text: Some(Cow::Borrowed(value)),
                    })
                })
            });
            if passes {
                found.push(*id);
            }
        }
        let total = found.len();
        let page = self.page_of(found);
        (page.iter().filter_map(|id| table.get(id)).collect(), total)
    }

    /// The `search_criteria` echo of a search response.
    pub fn echo(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|group| {
                let filters: Vec<Value> = group
                    .iter()
                    .map(|f| {
                        serde_json::json!({
                            "field": f.field, "value": f.value, "condition_type": f.condition
                        })
                    })
                    .collect();
                serde_json::json!({ "filters": filters })
            })
            .collect();
        let sorts: Vec<Value> = self
            .sort
            .iter()
            .map(|(field, asc)| {
                serde_json::json!({"field": field, "direction": if *asc { "ASC" } else { "DESC" }})
            })
            .collect();
        let mut echo = serde_json::json!({ "filter_groups": groups });
        if !sorts.is_empty() {
            echo["sort_orders"] = Value::Array(sorts);
        }
        if let Some(size) = self.page_size {
            echo["page_size"] = size.into();
            echo["current_page"] = self.current_page.into();
        }
        echo
    }
}

/// A search's filters made ready once for every row: an `in` list as sets, so a
/// reconciler's page (`increment_id in` 200 numbers) over 100,000 orders is 100,000 set
/// lookups, not 20 million comparisons.
struct Prepared<'c> {
    groups: Vec<Vec<PreparedFilter<'c>>>,
}

enum PreparedFilter<'c> {
    /// `in` / `nin`: the list's numbers (compared as numbers, as [`compare`] does) and
    /// its other values (as text).
    Listed {
        field: &'c str,
        numbers: HashSet<u64>,
        texts: HashSet<&'c str>,
        wanted: bool,
    },
    /// Any other condition, with its value as a number when it is one.
    Compared(&'c Filter, Option<f64>),
}

impl<'c> Prepared<'c> {
    fn of(criteria: &'c SearchCriteria) -> Self {
        let groups = criteria
            .groups
            .iter()
            .map(|group| group.iter().map(PreparedFilter::of).collect())
            .collect();
        Self { groups }
    }

    fn matches(&self, row: &Value) -> bool {
        self.groups
            .iter()
            .all(|group| group.iter().any(|filter| filter.matches(row)))
    }
}

impl<'c> PreparedFilter<'c> {
    fn of(filter: &'c Filter) -> Self {
        if !matches!(filter.condition.as_str(), "in" | "nin") {
            return Self::Compared(filter, filter.value.parse().ok());
        }
        let mut numbers = HashSet::new();
        let mut texts = HashSet::new();
        for value in filter.value.split(',').map(str::trim) {
            match value.parse::<f64>() {
                Ok(number) => numbers.insert(number_key(number)),
                Err(_) => texts.insert(value),
            };
        }
        Self::Listed {
            field: &filter.field,
            numbers,
            texts,
            wanted: filter.condition == "in",
        }
    }

    fn field(&self) -> &str {
        match self {
            Self::Compared(filter, _) => &filter.field,
            Self::Listed { field, .. } => field,
        }
    }

    fn matches(&self, row: &Value) -> bool {
        let field = row.get(self.field());
        self.matches_field(Field {
            present: field.is_some(),
            text: text(field),
        })
    }

    fn matches_field(&self, field: Field<'_>) -> bool {
        match self {
            Self::Compared(filter, number) => filter.matches_field(field, *number),
            Self::Listed {
                numbers,
                texts,
                wanted,
                ..
            } => {
                let hit = field.text.is_some_and(|t| match t.parse::<f64>() {
                    Ok(number) => numbers.contains(&number_key(number)),
                    Err(_) => texts.contains(t.as_ref()),
                });
                hit == *wanted
            }
        }
    }
}

/// Equal numbers, equal keys (`-0.0` is `0.0`).
fn number_key(number: f64) -> u64 {
    if number == 0.0 { 0 } else { number.to_bits() }
}

impl Filter {
    /// Whether a row with `field` passes, `number` being the value parsed as a number (if
    /// it is one).
    fn matches_field(&self, field: Field<'_>, number: Option<f64>) -> bool {
        let order = || compare_to(&field, &self.value, number);
        match self.condition.as_str() {
            "eq" => order() == Ordering::Equal,
            "neq" => order() != Ordering::Equal,
            "gt" => order() == Ordering::Greater,
            "gteq" | "from" => order() != Ordering::Less,
            "lt" => order() == Ordering::Less,
            "lteq" | "to" => order() != Ordering::Greater,
            "in" | "nin" => PreparedFilter::of(self).matches_field(field),
            "like" => {
                let needle = self.value.trim_matches('%').to_lowercase();
                field
                    .text
                    .is_some_and(|t| t.to_lowercase().contains(&needle))
            }
            _ => false,
        }
    }
}

/// The first `entity_id` a group that is one `entity_id gt`/`gteq` bound on a number lets
/// through.
fn entity_lower_bound(group: &[Filter]) -> Option<u64> {
    match group {
        [f] if f.field == "entity_id" => {
            let n: u64 = f.value.trim().parse().ok()?;
            match f.condition.as_str() {
                "gt" => n.checked_add(1),
                "gteq" => Some(n),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The filter of a group that is one condition on `updated_at` against a timestamp (text,
/// not a number): a bound the index walk can use.
fn timestamp_bound(group: &[Filter]) -> Option<&Filter> {
    match group {
        [f] if f.field == "updated_at" && f.value.parse::<f64>().is_err() => Some(f),
        _ => None,
    }
}

/// A row's field as a filter sees it.
struct Field<'v> {
    /// The row has it (maybe null).
    present: bool,
    /// Its text; `None` when missing or null.
    text: Option<Cow<'v, str>>,
}

/// A field as text, borrowed when it is a string.
fn text(value: Option<&Value>) -> Option<Cow<'_, str>> {
    match value? {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Null => None,
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// [`compare`] of `field` with a filter's text `value` (`number`: the value as a number),
/// without building a JSON value per row.
fn compare_to(field: &Field<'_>, value: &str, number: Option<f64>) -> Ordering {
    let Some(t) = &field.text else {
        // As `compare`: a null field is equal to anything, a missing one less.
        return field.present.cmp(&true);
    };
    match (t.parse::<f64>(), number) {
        (Ok(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => t.as_ref().cmp(value),
    }
}

/// Numbers compare as numbers (ids come as ints or strings), everything else as text —
/// Magento timestamps (`2024-03-11 14:02:52`) sort correctly as text.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let (Some(a), Some(b)) = (text(a), text(b)) else {
        return a.is_some().cmp(&b.is_some());
    };
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.cmp(&b),
    }
}

#[cfg(test)]
mod tests;
