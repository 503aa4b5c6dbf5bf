//! `searchCriteria` parsing and matching, against the quirks of Magento's own.

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
