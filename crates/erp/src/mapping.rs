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
mod tests;
