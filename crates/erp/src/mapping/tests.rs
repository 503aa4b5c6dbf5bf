//! The mapping file's parsing, validation and lookups, and the documents it makes, on the
//! shipped mapping and the Magento fixtures.

use super::*;

const SHIPPED: &str = include_str!("../../../../deploy/config/mapping.toml");
const BUNDLE_ORDER: &str = include_str!(
    "../../../magento/tests/fixtures/magento/orders/order_simple_bundle_configurable_pending.json"
);
const TAX_ORDER: &str = include_str!(
    "../../../magento/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
);

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn placed(json: &str) -> Result<OrderPlaced, Box<dyn std::error::Error>> {
    let value: serde_json::Value = serde_json::from_str(json)?;
    let mapped = magento::map_order(&magento::Obj::root(&value), "magento:default", 0)?;
    mapped
        .orders
        .into_iter()
        .find_map(|e| match e {
            bridge_events::Event::OrderPlaced(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| "no OrderPlaced".into())
}

fn refused(text: &str) -> String {
    Mapping::parse(text).err().unwrap_or_default()
}

#[test]
fn the_shipped_mapping_is_valid() {
    assert!(Mapping::parse(SHIPPED).is_ok(), "{}", refused(SHIPPED));
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    let text = SHIPPED.replace("bundles = ", "bundels = ");
    assert!(refused(&text).contains("bundels"), "{}", refused(&text));
    let text = format!("{SHIPPED}\n[warehouse_typo]\nx = \"y\"\n");
    assert!(refused(&text).contains("warehouse_typo"));
}

#[test]
fn a_field_owned_both_ways_is_refused_by_name() {
    let text = SHIPPED.replace(
        r#"erp = ["totals", "order_verdicts", "stock_levels", "prices"]"#,
        r#"erp = ["totals", "order_verdicts", "stock_levels", "prices", "stock_movements"]"#,
    );
    let message = refused(&text);
    assert!(
        message.contains("`stock_movements` is owned by both"),
        "{message}"
    );
    let text = SHIPPED.replace(r#""prices"]"#, r#""pricing"]"#);
    assert!(refused(&text).contains("unknown field `pricing`"));
    let text = SHIPPED
        .replace(r#"magento = ["orders", "#, "magento = [")
        .replace(r#""prices"]"#, r#""prices", "orders"]"#);
    assert!(
        refused(&text).contains("`orders` is written into the ERP"),
        "{}",
        refused(&text)
    );
}

#[test]
fn a_bad_pattern_and_a_missing_order_warehouse_are_refused_by_key() {
    let text = SHIPPED.replace("24-(?<code>", "24-(?<code");
    assert!(
        refused(&text).contains("items.rules[0].pattern"),
        "{}",
        refused(&text)
    );
    let text = SHIPPED.replace("default = \"WH-MAIN\"\n", "");
    assert!(
        refused(&text).contains("order source `default`"),
        "{}",
        refused(&text)
    );
}

#[test]
fn skus_map_by_table_then_rules_in_order() -> TestResult {
    let mapping = Mapping::parse(SHIPPED)?;
    assert_eq!(
        mapping.item_code("YOGA-KIT-24-YB01-24-ST08")?,
        "KIT-YOGA-24"
    );
    assert_eq!(mapping.item_code("24-WB03")?, "GEAR-WB03");
    assert_eq!(mapping.item_code("MS-TEE-L-Blue")?, "MS-TEE-L-Blue");
    let unmapped = mapping.item_code("bad sku with spaces");
    assert_eq!(
        unmapped.map_err(|e| e.to_string()),
        Err(
            "no mapping for SKU `bad sku with spaces` (add it under [items] in mapping.toml)"
                .into()
        )
    );
    Ok(())
}

#[test]
fn a_dynamic_bundle_goes_as_its_children_and_a_configurable_as_its_parent() -> TestResult {
    let mapping = Mapping::parse(SHIPPED)?;
    let order = mapping.sales_order(&placed(BUNDLE_ORDER)?)?;
    let lines: Vec<(&str, String, String)> = order
        .lines
        .iter()
        .map(|l| {
            (
                l.item_code.as_str(),
                l.quantity.to_string(),
                l.unit_price.to_string(),
            )
        })
        .collect();
    let expected = [
        ("MS-TEE-L-Blue", "2", "24"),
        ("GEAR-YB01", "1", "25"),
        ("GEAR-ST08", "1", "20"),
        ("MH07-M-Black", "1", "52"),
    ];
    assert_eq!(lines.len(), expected.len());
    for ((code, qty, price), (want_code, want_qty, want_price)) in lines.iter().zip(expected) {
        assert_eq!(*code, want_code);
        assert_eq!(
            Decimal::from_str_exact(qty)?,
            Decimal::from_str_exact(want_qty)?
        );
        assert_eq!(
            Decimal::from_str_exact(price)?,
            Decimal::from_str_exact(want_price)?
        );
    }
    // Σ quantity × price is Magento's subtotal.
    let subtotal: Decimal = order.lines.iter().map(|l| l.quantity * l.unit_price).sum();
    assert_eq!(subtotal, Decimal::from(145));
    assert_eq!(order.shipping_amount, Decimal::from(15));
    Ok(())
}

#[test]
fn as_parent_a_bundle_is_one_line_with_its_own_sku() -> TestResult {
    let text = SHIPPED.replace(r#"bundles = "children""#, r#"bundles = "parent""#);
    let mapping = Mapping::parse(&text)?;
    let order = mapping.sales_order(&placed(BUNDLE_ORDER)?)?;
    let codes: Vec<&str> = order.lines.iter().map(|l| l.item_code.as_str()).collect();
    assert_eq!(codes, ["MS-TEE-L-Blue", "KIT-YOGA-24", "MH07-M-Black"]);
    Ok(())
}

#[test]
fn discounts_tax_codes_and_methods_are_mapped_and_shipping_tax_is_the_rest() -> TestResult {
    let mapping = Mapping::parse(SHIPPED)?;
    let order = mapping.sales_order(&placed(TAX_ORDER)?)?;
    assert_eq!(order.lines.len(), 2);
    assert_eq!(
        order.lines[0].discount_amount,
        Decimal::from_str_exact("7.2")?
    );
    assert_eq!(order.lines[0].tax_amount, Decimal::from_str_exact("5.35")?);
    assert_eq!(order.lines[0].tax_code.as_deref(), Some("US-TX"));
    assert_eq!(order.shipping_tax_amount, Decimal::ZERO);
    assert_eq!(order.warehouse, "WH-MAIN");
    assert!(order.payment_method.is_some());
    assert!(order.shipping_method.is_some());
    Ok(())
}

#[test]
fn a_method_without_a_mapping_or_catch_all_names_the_section() -> TestResult {
    let text = SHIPPED
        .replace("\"*\" = \"CARD\"\n", "")
        .replace("checkmo = \"CHEQUE\"\n", "");
    let mapping = Mapping::parse(&text)?;
    let order = placed(TAX_ORDER)?;
    let err = mapping
        .sales_order(&order)
        .map(|_| ())
        .map_err(|e| e.section);
    assert_eq!(err, Err("payment_methods"));
    Ok(())
}
