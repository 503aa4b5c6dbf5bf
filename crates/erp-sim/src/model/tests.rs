//! The books' unit tests: references booked once, amendments, duplicates, faults, rules,
//! adjustments, the shipment journal.

use super::*;
use crate::faults::OrderFaults;

fn order(external_ref: &str, lines: usize) -> NewSalesOrder {
    NewSalesOrder {
        external_ref: external_ref.into(),
        customer_ref: "customer:1".into(),
        currency: "USD".into(),
        order_date: "2026-11-24".into(),
        warehouse: "WH-MAIN".into(),
        shipping_method: None,
        payment_method: None,
        shipping_amount: Decimal::TEN,
        shipping_tax_amount: Decimal::ZERO,
        lines: (0..lines)
            .map(|n| NewLine {
                item_code: format!("ITEM-{n}"),
                description: String::new(),
                quantity: Decimal::ONE,
                unit_price: Decimal::ONE_HUNDRED,
                discount_amount: Decimal::ZERO,
                tax_code: None,
                tax_rate: Decimal::ZERO,
                tax_amount: None,
                source_line: None,
            })
            .collect(),
    }
}

fn books() -> Books {
    let mut books = Books::new(Rules::default());
    books.customers(&[NewCustomer {
        external_ref: "customer:1".into(),
        name: "A".into(),
    }]);
    books
}

#[test]
fn an_external_reference_is_booked_once() -> Result<(), Rejection> {
    let mut books = books();
    let first = books.create_order(order("100", 2), OrderFaults::default())?;
    let again = books.create_order(order("100", 2), OrderFaults::default())?;
    assert!(matches!(first, Created::New(_)));
    assert!(matches!(again, Created::Existing(o) if o.id == "SO-000001"));
    assert_eq!(books.orders.len(), 1);
    Ok(())
}

#[test]
fn an_amendment_books_the_lines_again_without_faults_and_moves_the_balance() -> Result<(), Rejection>
{
    let mut books = books();
    let faults = OrderFaults {
        drop_line: true,
        ..OrderFaults::default()
    };
    let Created::New(short) = books.create_order(order("9", 3), faults)? else {
        return Err(reject("validation", "not new".into()));
    };
    assert_eq!(short.lines.len(), 2);
    let amended = books.amend(&short.id, order("9", 3))?;
    assert_eq!(
        (amended.id.as_str(), amended.lines.len()),
        (short.id.as_str(), 3)
    );
    assert_eq!(amended.totals.grand_total, Decimal::from(310));
    assert!(!books.faulted.contains_key("9"));
    assert_eq!(
        books.customers["customer:1"].open_balance,
        Decimal::from(310)
    );
    assert_eq!(books.amendments, 1);
    // Not another order's lines, and not a cancelled order.
    assert!(books.amend(&short.id, order("10", 1)).is_err());
    books.cancel(&short.id)?;
    assert!(books.amend(&short.id, order("9", 1)).is_err());
    Ok(())
}

#[test]
fn an_order_booked_after_a_delete_gets_a_new_number() -> Result<(), Rejection> {
    let mut books = books();
    for r in ["1", "2", "3"] {
        books.create_order(order(r, 1), OrderFaults::default())?;
    }
    assert!(books.forget("2").is_some());
    let Created::New(again) = books.create_order(order("2", 1), OrderFaults::default())? else {
        return Err(reject("validation", "not new".into()));
    };
    assert_eq!(again.id, "SO-000004");
    assert_eq!(
        books.order_by_ref("3").map(|o| o.id.as_str()),
        Some("SO-000003")
    );
    Ok(())
}

#[test]
fn every_booking_of_a_reference_is_found_by_it_where_duplicates_are_allowed()
-> Result<(), Rejection> {
    let mut books = books();
    books.rules.allow_duplicate_refs = true;
    for r in ["1", "2", "1", "1"] {
        books.create_order(order(r, 1), OrderFaults::default())?;
    }
    let ids = |books: &Books, r: &str| -> Vec<String> {
        books
            .orders_by_ref(r)
            .into_iter()
            .map(|o| o.id.clone())
            .collect()
    };
    assert_eq!(ids(&books, "1"), ["SO-000001", "SO-000003", "SO-000004"]);
    assert_eq!(ids(&books, "2"), ["SO-000002"]);
    assert!(ids(&books, "5").is_empty());
    assert_eq!(books.duplicate_creates, 2);
    // A delete forgets the first booking; the later ones stay, and a new one joins.
    assert!(books.forget("1").is_some());
    assert_eq!(ids(&books, "1"), ["SO-000003", "SO-000004"]);
    books.create_order(order("1", 1), OrderFaults::default())?;
    assert_eq!(ids(&books, "1"), ["SO-000003", "SO-000004", "SO-000005"]);
    Ok(())
}

#[test]
fn a_dropped_line_is_booked_silently_and_remembered() -> Result<(), Rejection> {
    let mut books = books();
    let faults = OrderFaults {
        drop_line: true,
        ..OrderFaults::default()
    };
    let Created::New(booked) = books.create_order(order("7", 3), faults)? else {
        return Err(reject("validation", "not new".into()));
    };
    assert_eq!(booked.lines.len(), 2);
    assert_eq!(booked.totals.grand_total, Decimal::from(210));
    assert_eq!(books.faulted["7"], vec!["drop_line"]);
    Ok(())
}

#[test]
fn rules_reject_with_a_code() {
    let mut books = books();
    books.rules.closed_catalogue = true;
    let e = books.create_order(order("1", 1), OrderFaults::default());
    assert_eq!(e.map(|_| ()).map_err(|r| r.code), Err("unknown_item"));
    books.rules.closed_catalogue = false;
    books.rules.closed_before = Some("2026-12-01".into());
    let e = books.create_order(order("2", 1), OrderFaults::default());
    assert_eq!(e.map(|_| ()).map_err(|r| r.code), Err("closed_period"));
    books.rules.closed_before = None;
    if let Some(c) = books.customers.get_mut("customer:1") {
        c.credit_limit = Some(Decimal::from(150));
    }
    let e = books.create_order(order("3", 1), OrderFaults::default());
    assert!(e.is_ok());
    let e = books.create_order(order("4", 1), OrderFaults::default());
    assert_eq!(e.map(|_| ()).map_err(|r| r.code), Err("credit_limit"));
}

#[test]
fn adjustments_are_unique_by_reference_and_bounded() -> Result<(), Rejection> {
    let mut books = books();
    books.rules.adjustment_batch_limit = 2;
    let adjustment = NewAdjustment {
        external_ref: "w1".into(),
        warehouse: "WH".into(),
        lines: vec![StockLine {
            item_code: "A".into(),
            quantity: Decimal::from(-3),
        }],
    };
    books.adjust(adjustment.clone())?;
    books.adjust(adjustment)?;
    assert_eq!(books.stock[&("WH".into(), "A".into())], Decimal::from(-3));
    let big = NewAdjustment {
        external_ref: "w2".into(),
        warehouse: "WH".into(),
        lines: vec![
            StockLine {
                item_code: "A".into(),
                quantity: Decimal::ONE,
            };
            3
        ],
    };
    assert_eq!(
        books.adjust(big).map(|_| ()).map_err(|r| r.code),
        Err("batch_too_large")
    );
    Ok(())
}

#[test]
fn an_order_ships_once_into_the_journal_and_a_cancelled_one_not_at_all() -> Result<(), Rejection> {
    let mut books = books();
    for r in ["1", "2", "3"] {
        books.create_order(order(r, 1), OrderFaults::default())?;
    }
    let Created::New(first) = books.ship("2", NewShipment::default(), 10)? else {
        panic!("a first shipment is new");
    };
    assert_eq!((first.seq, first.id.as_str()), (1, "SH-000001"));
    let again = books.ship("2", NewShipment::default(), 20)?;
    assert!(matches!(again, Created::Existing(s) if s == first));
    let id = books.order_refs["3"].clone();
    books.cancel(&id)?;
    assert_eq!(
        books.ship("3", NewShipment::default(), 30).map(|_| ()),
        Err(reject(
            "cancelled",
            "sales order SO-000003 is cancelled: nothing to ship".into()
        ))
    );
    assert!(books.ship("404", NewShipment::default(), 30).is_err());

    // The rule ships what is due (not the cancelled one), after the journal so far.
    // Every order is booked at one instant: the wall clock moves between the creates.
    books.rules.ship_after_ms = Some(1_000);
    let booked = 1_700_000_000_000;
    for o in books.orders.values_mut() {
        o.created_at = booked;
    }
    books.ship_due(booked + 999);
    assert_eq!(books.shipments.len(), 1, "nothing due yet");
    books.ship_due(booked + 1_000);
    let refs: Vec<&str> = books
        .shipments_after(1, 10)
        .iter()
        .map(|s| s.external_ref.as_str())
        .collect();
    assert_eq!(refs, ["1"]);
    assert!(books.shipments_after(2, 10).is_empty());
    assert_eq!(books.shipments_after(0, 1).len(), 1);
    Ok(())
}
