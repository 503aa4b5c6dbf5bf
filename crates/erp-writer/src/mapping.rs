//! `mapping.toml`: how Magento's words become the ERP's — SKU → item code (a table, then
//! rules), MSI source → warehouse, shipping method, payment method, tax rate → tax code,
//! the lifecycle (which Magento statuses create the order in the ERP, whether
//! cancellations and credit memos follow) and who owns which field. Loaded and checked
//! at start: an unknown key, a bad pattern, or a field owned by both sides stops the
//! service with the key named. A record that cannot be mapped names the missing key.

use std::collections::BTreeMap;
use std::path::Path;

use bridge_events::order::{OrderLine, OrderPlaced};
use regex::Regex;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::connector::{CustomerDoc, LineDoc, SalesOrderDoc};

/// Why the mapping file is refused.
#[derive(Debug, thiserror::Error)]
pub enum MappingFileError {
    /// It cannot be read.
    #[error("cannot read mapping file `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// It is not valid (unknown key, wrong type): the key is in the message.
    #[error("mapping file `{path}`: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// Why one order cannot be mapped: the key to add to `mapping.toml`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no mapping for {what} `{value}` (add it under [{section}] in mapping.toml)")]
pub struct Unmapped {
    /// What, e.g. `SKU`.
    pub what: &'static str,
    /// The value, e.g. the SKU.
    pub value: String,
    /// The section to add it to.
    pub section: &'static str,
}

/// An item rule: a SKU matching `pattern` has item code `code` (`$1`, `${name}` refer to
/// the pattern's groups).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRule {
    /// A regular expression over the whole SKU.
    pub pattern: String,
    /// The item code template.
    pub code: String,
}

/// How bundle lines reach the ERP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BundleLines {
    /// Each child as its own line, priced as Magento priced it, when the children add up to
    /// the bundle (dynamic price); otherwise the bundle as one line.
    #[default]
    Children,
    /// The bundle as one line with its own SKU.
    Parent,
}

/// `[items]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Items {
    /// Exact SKU → item code.
    pub table: BTreeMap<String, String>,
    /// Tried in order after the table.
    pub rules: Vec<ItemRule>,
    /// Bundles as children or as one line.
    pub bundles: BundleLines,
}

/// `[lifecycle]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifecycle {
    /// Magento statuses at which the order is created in the ERP (placed or updated into).
    /// Statuses not listed (`pending_payment`, `payment_review`, ...) wait for one that is;
    /// an order first seen cancelled is not created.
    pub create_on: Vec<String>,
    /// Cancel the ERP order when Magento cancels.
    pub cancel: bool,
    /// Book a credit note for each Magento credit memo.
    pub credit: bool,
    /// The MSI source whose warehouse an order ships from.
    pub order_source: String,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            create_on: ["pending", "processing", "complete", "closed"]
                .map(String::from)
                .to_vec(),
            cancel: true,
            credit: true,
            order_source: "default".into(),
        }
    }
}

/// `[customers]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Customers {
    /// Book guest orders on this one ERP customer instead of one customer per guest order.
    pub guest_account: Option<String>,
}

/// `[owners]`: who owns which field. erp-writer writes the fields Magento owns into the
/// ERP; magento-writer writes the fields the ERP owns into Magento. A field under both is
/// refused: one owner per field, one direction per flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Owners {
    /// Fields Magento owns.
    pub magento: Vec<String>,
    /// Fields the ERP owns.
    pub erp: Vec<String>,
}

impl Default for Owners {
    fn default() -> Self {
        Self {
            magento: [
                "orders",
                "customers",
                "cancellations",
                "credit_memos",
                "stock_movements",
            ]
            .map(String::from)
            .to_vec(),
            erp: ["totals", "order_verdicts", "stock_levels", "prices"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// The fields `[owners]` knows.
pub const FIELDS: &[&str] = &[
    "orders",
    "customers",
    "cancellations",
    "credit_memos",
    "stock_movements",
    "totals",
    "order_verdicts",
    "stock_levels",
    "prices",
];

/// What erp-writer writes into the ERP: these must be Magento's.
const WRITTEN_TO_ERP: &[&str] = &["orders", "customers", "cancellations", "credit_memos"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    items: Items,
    #[serde(default)]
    warehouses: BTreeMap<String, String>,
    #[serde(default)]
    shipping_methods: BTreeMap<String, String>,
    #[serde(default)]
    payment_methods: BTreeMap<String, String>,
    #[serde(default)]
    tax_codes: BTreeMap<String, String>,
    #[serde(default)]
    lifecycle: Lifecycle,
    #[serde(default)]
    customers: Customers,
    #[serde(default)]
    owners: Owners,
}

/// A checked mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    file: MappingFile,
    rules: Vec<(Regex, String)>,
    tax_codes: Vec<(Decimal, String)>,
}

/// The catch-all key of the method and tax tables.
pub const ANY: &str = "*";

impl Mapping {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, MappingFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| MappingFileError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and checks mapping text; the error names the key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: MappingFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for (field, list) in [
            ("owners.magento", &file.owners.magento),
            ("owners.erp", &file.owners.erp),
        ] {
            if let Some(unknown) = list.iter().find(|f| !FIELDS.contains(&f.as_str())) {
                return Err(format!(
                    "{field}: unknown field `{unknown}`, expected one of {}",
                    FIELDS.join(", ")
                ));
            }
        }
        if let Some(both) = file
            .owners
            .magento
            .iter()
            .find(|f| file.owners.erp.contains(f))
        {
            return Err(format!(
                "owners: `{both}` is owned by both magento and erp; one owner per field, one direction per flow"
            ));
        }
        if let Some(not_ours) = WRITTEN_TO_ERP
            .iter()
            .find(|f| file.owners.erp.iter().any(|o| o == *f))
        {
            return Err(format!(
                "owners.erp: `{not_ours}` is written into the ERP by erp-writer, so Magento must own it"
            ));
        }
        let mut rules = Vec::with_capacity(file.items.rules.len());
        for (n, rule) in file.items.rules.iter().enumerate() {
            let anchored = format!("^(?:{})$", rule.pattern);
            let regex =
                Regex::new(&anchored).map_err(|e| format!("items.rules[{n}].pattern: {e}"))?;
            rules.push((regex, rule.code.clone()));
        }
        let mut tax_codes = Vec::new();
        for (rate, code) in &file.tax_codes {
            if rate == ANY {
                continue;
            }
            let parsed: Decimal = rate
                .parse()
                .map_err(|_| format!("tax_codes.\"{rate}\": not a tax rate in percent"))?;
            tax_codes.push((parsed.normalize(), code.clone()));
        }
        if file.lifecycle.create_on.is_empty() {
            return Err("lifecycle.create_on: name at least one Magento status".into());
        }
        if !file.warehouses.contains_key(&file.lifecycle.order_source) {
            return Err(format!(
                "warehouses: no warehouse for the order source `{}` (lifecycle.order_source)",
                file.lifecycle.order_source
            ));
        }
        Ok(Self {
            file,
            rules,
            tax_codes,
        })
    }

    /// The lifecycle settings.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.file.lifecycle
    }

    /// Whether Magento status `status` creates the order in the ERP.
    pub fn creates_on(&self, status: &str) -> bool {
        self.file.lifecycle.create_on.iter().any(|s| s == status)
    }

    /// The ERP item code of `sku`.
    pub fn item_code(&self, sku: &str) -> Result<String, Unmapped> {
        if let Some(code) = self.file.items.table.get(sku) {
            return Ok(code.clone());
        }
        for (regex, template) in &self.rules {
            if let Some(captures) = regex.captures(sku) {
                let mut code = String::new();
                captures.expand(template, &mut code);
                return Ok(code);
            }
        }
        Err(Unmapped {
            what: "SKU",
            value: sku.to_owned(),
            section: "items",
        })
    }

    /// The ERP warehouse of MSI source `source`.
    pub fn warehouse(&self, source: &str) -> Result<String, Unmapped> {
        self.file
            .warehouses
            .get(source)
            .cloned()
            .ok_or_else(|| Unmapped {
                what: "MSI source",
                value: source.to_owned(),
                section: "warehouses",
            })
    }

    fn lookup(
        table: &BTreeMap<String, String>,
        key: Option<&str>,
        what: &'static str,
        section: &'static str,
    ) -> Result<Option<String>, Unmapped> {
        if table.is_empty() {
            return Ok(None);
        }
        match key.and_then(|k| table.get(k)).or_else(|| table.get(ANY)) {
            Some(code) => Ok(Some(code.clone())),
            None => Err(Unmapped {
                what,
                value: key.unwrap_or("(none)").to_owned(),
                section,
            }),
        }
    }

    fn tax_code(&self, rate: Decimal) -> Result<Option<String>, Unmapped> {
        if self.file.tax_codes.is_empty() {
            return Ok(None);
        }
        let rate = rate.normalize();
        let exact = self.tax_codes.iter().find(|(r, _)| *r == rate);
        match exact
            .map(|(_, code)| code)
            .or_else(|| self.file.tax_codes.get(ANY))
        {
            Some(code) => Ok(Some(code.clone())),
            None => Err(Unmapped {
                what: "tax rate",
                value: rate.to_string(),
                section: "tax_codes",
            }),
        }
    }

    /// The ERP sales order of a placed order.
    pub fn sales_order(&self, order: &OrderPlaced) -> Result<SalesOrderDoc, Unmapped> {
        let mut lines = Vec::new();
        let mut line_tax = Decimal::ZERO;
        for line in self.erp_lines(&order.lines) {
            line_tax += line.tax_amount;
            lines.push(LineDoc {
                item_code: self.item_code(&line.sku)?,
                sku: line.sku.clone(),
                description: line.name.clone(),
                quantity: line.qty_ordered,
                unit_price: line.unit_price,
                discount_amount: line.discount_amount,
                tax_rate: line.tax_percent,
                tax_amount: line.tax_amount,
                tax_code: self.tax_code(line.tax_percent)?,
                source_line: line.line_id.clone(),
            });
        }
        let customer = match (&self.file.customers.guest_account, order.customer_is_guest) {
            (Some(account), true) => CustomerDoc {
                external_ref: account.clone(),
                name: "Web shop guests".into(),
            },
            _ => CustomerDoc {
                external_ref: order.customer_ref.clone(),
                name: order.customer_ref.clone(),
            },
        };
        Ok(SalesOrderDoc {
            external_ref: order.order_ref.clone(),
            customer,
            currency: order.order_currency.clone(),
            order_date: date_of(order.created_at),
            warehouse: self.warehouse(&self.file.lifecycle.order_source)?,
            shipping_method: Self::lookup(
                &self.file.shipping_methods,
                order.shipping_method.as_deref(),
                "shipping method",
                "shipping_methods",
            )?,
            payment_method: Self::lookup(
                &self.file.payment_methods,
                Some(&order.payment_method),
                "payment method",
                "payment_methods",
            )?,
            shipping_amount: order.totals.shipping_amount,
            shipping_tax_amount: order.totals.tax_amount - line_tax,
            lines,
        })
    }

    /// The lines that carry money: top-level lines, or a dynamic bundle's children.
    fn erp_lines<'a>(&self, lines: &'a [OrderLine]) -> Vec<&'a OrderLine> {
        let mut out = Vec::new();
        for line in lines.iter().filter(|l| l.parent_line_id.is_none()) {
            let children: Vec<&OrderLine> = lines
                .iter()
                .filter(|c| c.parent_line_id.as_deref() == Some(line.line_id.as_str()))
                .collect();
            let children_total: Decimal = children.iter().map(|c| c.row_total).sum();
            let as_children = line.product_type == "bundle"
                && self.file.items.bundles == BundleLines::Children
                && !children.is_empty()
                && children_total == line.row_total
                && line.discount_amount.is_zero()
                && line.tax_amount.is_zero();
            if as_children {
                out.extend(children);
            } else {
                out.push(line);
            }
        }
        out
    }
}

/// `YYYY-MM-DD` (UTC) of epoch milliseconds.
fn date_of(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../deploy/config/mapping.toml");
    const BUNDLE_ORDER: &str = include_str!(
        "../../order-ingest/tests/fixtures/magento/orders/order_simple_bundle_configurable_pending.json"
    );
    const TAX_ORDER: &str = include_str!(
        "../../order-ingest/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
    );

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn placed(json: &str) -> Result<OrderPlaced, Box<dyn std::error::Error>> {
        let value: serde_json::Value = serde_json::from_str(json)?;
        let mapped = order_ingest::magento::map_order(
            &order_ingest::magento::Obj::root(&value),
            "magento:default",
            0,
        )?;
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
}
