//! What the mapping tests share: the dev fixtures and the source they map from.

use rust_decimal::Decimal;
use serde_json::Value;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The `source` the fixtures are mapped from.
pub const SOURCE: &str = "magento:default";

/// A dev fixture (`tests/fixtures/magento/<path>`), parsed.
pub fn fixture(path: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let full = format!(
        "{}/tests/fixtures/magento/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    Ok(serde_json::from_str(&std::fs::read_to_string(full)?)?)
}

/// A decimal from text (0 if it does not parse: the assertion then fails visibly).
pub fn d(text: &str) -> Decimal {
    text.parse().unwrap_or_default()
}
