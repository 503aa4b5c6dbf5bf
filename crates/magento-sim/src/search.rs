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
mod tests {
    use super::*;
    use serde_json::json;

    const POLL: &str = "searchCriteria[filter_groups][0][filters][0][field]=updated_at&searchCriteria[filter_groups][0][filters][0][value]=2024-03-01%2000:00:00&searchCriteria[filter_groups][0][filters][0][condition_type]=gteq&searchCriteria[sortOrders][0][field]=updated_at&searchCriteria[sortOrders][0][direction]=ASC&searchCriteria[pageSize]=2&searchCriteria[currentPage]=1&fields=items[entity_id]";

    fn rows() -> Vec<Value> {
        vec![
            json!({"entity_id": 3, "updated_at": "2024-03-02 10:00:00", "increment_id": "000000003"}),
            json!({"entity_id": 1, "updated_at": "2024-02-01 10:00:00", "increment_id": "000000001"}),
            json!({"entity_id": "2", "updated_at": "2024-03-01 00:00:00", "increment_id": "000000002"}),
            json!({"entity_id": 10, "updated_at": "2024-03-05 00:00:00", "increment_id": "000000010"}),
        ]
    }

    fn ids(page: &[&Value]) -> Vec<String> {
        page.iter()
            .map(|v| text(v.get("entity_id")).unwrap_or_default().into_owned())
            .collect()
    }

    #[test]
    fn the_polling_query_parses_filters_sorts_and_pages() -> Result<(), SearchError> {
        let criteria = SearchCriteria::parse(POLL)?;
        assert_eq!(criteria.groups.len(), 1);
        assert_eq!(criteria.groups[0][0].value, "2024-03-01 00:00:00");
        assert_eq!(criteria.groups[0][0].condition, "gteq");
        assert_eq!(criteria.sort, vec![("updated_at".to_owned(), true)]);
        assert_eq!(criteria.page_size, Some(2));
        let rows = rows();
        let (page, total) = criteria.apply(rows.iter());
        assert_eq!(total, 3);
        assert_eq!(ids(&page), ["2", "3"]);
        Ok(())
    }

    #[test]
    fn a_page_past_the_end_is_the_last_page_again() -> Result<(), SearchError> {
        let rows = rows();
        for page in [2, 3, 99] {
            let query = POLL.replace("currentPage]=1", &format!("currentPage]={page}"));
            let (found, total) = SearchCriteria::parse(&query)?.apply(rows.iter());
            assert_eq!(
                (ids(&found), total),
                (vec!["10".to_owned()], 3),
                "page {page}"
            );
        }
        Ok(())
    }

    #[test]
    fn groups_and_filters_combine_and_numbers_compare_as_numbers() -> Result<(), SearchError> {
        let query = "searchCriteria[filter_groups][0][filters][0][field]=entity_id&searchCriteria[filter_groups][0][filters][0][value]=2&searchCriteria[filter_groups][0][filters][0][condition_type]=gteq&searchCriteria[filter_groups][0][filters][1][field]=increment_id&searchCriteria[filter_groups][0][filters][1][value]=000000001&searchCriteria[filter_groups][1][filters][0][field]=entity_id&searchCriteria[filter_groups][1][filters][0][value]=3,10,1&searchCriteria[filter_groups][1][filters][0][condition_type]=in";
        let rows = rows();
        let (found, total) = SearchCriteria::parse(query)?.apply(rows.iter());
        // (id >= 2 OR increment 1) AND id in {3, 10, 1}; no pageSize → everything.
        assert_eq!((ids(&found).len(), total), (3, 3));
        assert_eq!(
            SearchCriteria::parse("searchCriteria[pageSize]=x"),
            Err(SearchError::NotANumber {
                key: "searchCriteria[pageSize]".into(),
                value: "x".into()
            })
        );
        // An `in` list compares as `eq` does: numbers as numbers, the rest as text.
        let listed = |condition: &str| -> Result<Vec<String>, SearchError> {
            let query = format!(
                "searchCriteria[filter_groups][0][filters][0][field]=increment_id&searchCriteria[filter_groups][0][filters][0][value]=000000003,%2010%20,x&searchCriteria[filter_groups][0][filters][0][condition_type]={condition}&searchCriteria[sortOrders][0][field]=entity_id"
            );
            Ok(ids(&SearchCriteria::parse(&query)?.apply(rows.iter()).0))
        };
        assert_eq!(listed("in")?, ["3", "10"]);
        assert_eq!(listed("nin")?, ["1", "2"]);
        assert!(matches!(
            SearchCriteria::parse(
                "searchCriteria[filter_groups][0][filters][0][field]=a&searchCriteria[filter_groups][0][filters][0][condition_type]=regex"
            ),
            Err(SearchError::Condition(_))
        ));
        Ok(())
    }

    #[test]
    fn the_index_answers_the_keyset_pages_as_a_scan_does() -> Result<(), SearchError> {
        // Rows in few seconds (ties by entity id), changed after they were stored.
        let mut table = Table::default();
        let second = |n: u64| format!("2024-03-0{} 10:00:0{}", 1 + n % 3, n % 4);
        for id in 1..=60u64 {
            let increment = match id % 10 {
                0 => Value::Null,
                1 => json!("x"),
                _ => json!(format!("{id:09}")),
            };
            table.insert(
                id,
                json!({"entity_id": id, "updated_at": second(id * 7), "increment_id": increment}),
            );
        }
        for id in (1..=60u64).step_by(5) {
            if let Some(mut row) = table.get_mut(&id) {
                row["updated_at"] = second(id + 1).into();
            }
        }
        let rows: Vec<Value> = table.values().cloned().collect();
        let keyset = "&searchCriteria[sortOrders][0][field]=updated_at&searchCriteria[sortOrders][1][field]=entity_id";
        let filter = |g: usize, field: &str, value: &str, condition: &str| {
            format!(
                "&searchCriteria[filter_groups][{g}][filters][0][field]={field}&searchCriteria[filter_groups][{g}][filters][0][value]={value}&searchCriteria[filter_groups][{g}][filters][0][condition_type]={condition}"
            )
        };
        let mut queries = Vec::new();
        for n in 0..12u64 {
            let at = second(n).replace(' ', "%20");
            for (size, page) in [(5, 1), (7, 2), (100, 1), (4, 99)] {
                let paging =
                    format!("&searchCriteria[pageSize]={size}&searchCriteria[currentPage]={page}");
                queries.push(format!(
                    "{}{keyset}{paging}",
                    filter(0, "updated_at", &at, "gteq")
                ));
                queries.push(format!(
                    "{}{}{keyset}{paging}",
                    filter(0, "updated_at", &at, "eq"),
                    filter(1, "entity_id", &(n * 4).to_string(), "gt")
                ));
                // The walk starts at the id within the second (`gteq`), or cannot (text).
                for (id, condition) in [(n * 5, "gteq"), (n * 3, "gt"), (n, "lt")] {
                    queries.push(format!(
                        "{}{}{}{keyset}{paging}",
                        filter(0, "entity_id", &id.to_string(), condition),
                        filter(1, "updated_at", &at, "eq"),
                        filter(2, "entity_id", "9x", "neq")
                    ));
                }
                queries.push(format!(
                    "{}{keyset}{paging}",
                    filter(0, "entity_id", "3,9,27,40", "in")
                ));
                queries.push(format!(
                    "{}{paging}",
                    filter(0, "increment_id", &format!("{:09}", n * 5), "eq")
                ));
                queries.push(format!(
                    "{}{}&searchCriteria[sortOrders][0][field]=entity_id{paging}",
                    filter(
                        0,
                        "increment_id",
                        &format!("{},{:09},x", n * 3, n + 40),
                        "in"
                    ),
                    filter(1, "updated_at", &at, "gteq")
                ));
                // Not the index's shape: a scan.
                queries.push(format!("{}{paging}", filter(0, "updated_at", &at, "gteq")));
            }
        }
        for query in &queries {
            let criteria = SearchCriteria::parse(query)?;
            let (scanned, scanned_total) = criteria.apply(rows.iter());
            let (indexed, indexed_total) = criteria.apply_indexed(&table);
            assert_eq!(
                (ids(&indexed), indexed_total),
                (ids(&scanned), scanned_total),
                "{query}"
            );
        }
        Ok(())
    }
}
