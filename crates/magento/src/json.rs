//! Reading Magento JSON as it really is: numbers that are sometimes strings, booleans that
//! are ints or strings, ids that are strings or ints, `[]` for empty objects. Every read
//! names the full path of the field it wanted, so a payload that cannot be mapped is parked
//! with the field named.
//!
//! Every value is bounded as it is read: text at most [`MAX_TEXT_BYTES`], numbers within
//! ±10^14 (what the events' `decimal(18,4)` holds, [`bridge_events::decimal::fits`]), so a value that could never
//! be published is refused here, naming its field, and never reaches arithmetic or Avro.

use rust_decimal::Decimal;
use serde_json::Value;

/// The longest text field taken (SKUs are at most 64 characters in Magento, names 255).
pub const MAX_TEXT_BYTES: usize = 1024;
/// Why a payload cannot be mapped: the field (full path) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A required field is absent or null.
    #[error("missing field `{path}`")]
    Missing {
        /// Full path, e.g. `items[2].sku`.
        path: String,
    },
    /// The field is there but does not hold what it must.
    #[error("field `{path}`: {reason}")]
    Invalid {
        /// Full path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl FieldError {
    /// The field's path.
    pub fn path(&self) -> &str {
        match self {
            Self::Missing { path } | Self::Invalid { path, .. } => path,
        }
    }
}

/// A JSON object and where it sits in the payload.
#[derive(Clone)]
pub struct Obj<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> Obj<'a> {
    /// The payload root.
    pub fn root(value: &'a Value) -> Self {
        Self {
            value,
            path: String::new(),
        }
    }

    fn path_of(&self, key: &str) -> String {
        match self.path.as_str() {
            "" => key.to_owned(),
            p => format!("{p}.{key}"),
        }
    }

    /// The raw value of `key`, `None` when absent or null.
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    /// Whether `key` holds a non-null value.
    pub fn has(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// A text field; numbers are accepted and printed (ids come both ways).
    pub fn opt_str(&self, key: &str) -> Result<Option<String>, FieldError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.len() > MAX_TEXT_BYTES => Err(self.invalid(
                key,
                format!("{} bytes of text, more than {MAX_TEXT_BYTES}", s.len()),
            )),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => {
                Err(self.invalid(key, format!("expected text, found {}", kind_of(other))))
            }
        }
    }

    /// A required text field, not empty.
    pub fn str(&self, key: &str) -> Result<String, FieldError> {
        match self.opt_str(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(self.invalid(key, "empty".into())),
            None => Err(self.missing(key)),
        }
    }

    /// A decimal given as a JSON number or a numeric string (`"700.000000"`).
    pub fn opt_decimal(&self, key: &str) -> Result<Option<Decimal>, FieldError> {
        let text = match self.raw(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(other) => {
                return Err(
                    self.invalid(key, format!("expected a number, found {}", kind_of(other)))
                );
            }
        };
        if text.len() > 64 {
            return Err(self.invalid(key, "a number of more than 64 characters".into()));
        }
        let parsed = text
            .parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(&text))
            .map_err(|e| self.invalid(key, format!("not a decimal: {e}")))?;
        if !bridge_events::decimal::fits(parsed) {
            return Err(self.invalid(
                key,
                format!("outside ±10^14, the range of decimal(18,4): {text}"),
            ));
        }
        Ok(Some(parsed.normalize()))
    }

    /// A required decimal.
    pub fn decimal(&self, key: &str) -> Result<Decimal, FieldError> {
        self.opt_decimal(key)?.ok_or_else(|| self.missing(key))
    }

    /// A decimal that Magento omits when zero.
    pub fn decimal_or_zero(&self, key: &str) -> Result<Decimal, FieldError> {
        Ok(self.opt_decimal(key)?.unwrap_or_default())
    }

    /// An integer given as a number or a numeric string.
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, FieldError> {
        match self.opt_decimal(key)? {
            None => Ok(None),
            Some(d) if d.fract().is_zero() => i64::try_from(d)
                .map(Some)
                .map_err(|_| self.invalid(key, format!("{d} is out of range"))),
            Some(d) => Err(self.invalid(key, format!("{d} is not a whole number"))),
        }
    }

    /// A flag given as `true`/`false`, `0`/`1` or `"0"`/`"1"`; absent is `false`.
    pub fn flag(&self, key: &str) -> Result<bool, FieldError> {
        match self.raw(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
            Some(Value::String(s)) => match s.trim() {
                "1" | "true" => Ok(true),
                "0" | "false" | "" => Ok(false),
                _ => Err(self.invalid(key, "text that is not a flag".into())),
            },
            Some(other) => {
                Err(self.invalid(key, format!("expected a flag, found {}", kind_of(other))))
            }
        }
    }

    /// A nested object; PHP's `[]` for an empty object reads as absent.
    pub fn opt_obj(&self, key: &str) -> Result<Option<Obj<'a>>, FieldError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Array(a)) if a.is_empty() => Ok(None),
            Some(value @ Value::Object(_)) => Ok(Some(Obj {
                value,
                path: self.path_of(key),
            })),
            Some(other) => {
                Err(self.invalid(key, format!("expected an object, found {}", kind_of(other))))
            }
        }
    }

    /// A required nested object.
    pub fn obj(&self, key: &str) -> Result<Obj<'a>, FieldError> {
        self.opt_obj(key)?.ok_or_else(|| self.missing(key))
    }

    /// The objects of an array field (absent: none).
    pub fn list(&self, key: &str) -> Result<Vec<Obj<'a>>, FieldError> {
        match self.raw(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, value)| match value {
                    Value::Object(_) => Ok(Obj {
                        value,
                        path: format!("{}[{i}]", self.path_of(key)),
                    }),
                    other => Err(FieldError::Invalid {
                        path: format!("{}[{i}]", self.path_of(key)),
                        reason: format!("expected an object, found {}", kind_of(other)),
                    }),
                })
                .collect(),
            Some(other) => {
                Err(self.invalid(key, format!("expected a list, found {}", kind_of(other))))
            }
        }
    }

    /// The error for a missing `key`.
    pub fn missing(&self, key: &str) -> FieldError {
        FieldError::Missing {
            path: self.path_of(key),
        }
    }

    /// The error for an unusable `key`.
    pub fn invalid(&self, key: &str, reason: String) -> FieldError {
        FieldError::Invalid {
            path: self.path_of(key),
            reason,
        }
    }
}

/// The JSON type of `value`, for error texts: the value itself is never quoted (it may be
/// personal data).
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_outside_decimal_18_4_are_refused_naming_the_field() {
        let value = json!({"items": [{"qty_ordered": "1e27"}, {"qty_ordered": 1e20}, {"qty_ordered": "99999999999999.9999"}]});
        let root = Obj::root(&value);
        let items = root.list("items").unwrap_or_default();
        let errors: Vec<String> = items
            .iter()
            .map(|i| {
                i.decimal("qty_ordered")
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            })
            .collect();
        assert!(
            errors[0].contains("items[0].qty_ordered") && errors[0].contains("decimal(18,4)"),
            "{}",
            errors[0]
        );
        assert!(errors[1].contains("items[1].qty_ordered"), "{}", errors[1]);
        assert_eq!(
            errors[2], "",
            "the largest value decimal(18,4) holds is taken"
        );
    }

    #[test]
    fn long_text_is_refused_and_errors_never_quote_values() {
        let value = json!({"sku": "x".repeat(MAX_TEXT_BYTES + 1), "email": {"a": "jane.doe@example.com"}, "flag": "jane"});
        let root = Obj::root(&value);
        let long = root
            .str("sku")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            long.contains("`sku`") && long.contains("more than 1024"),
            "{long}"
        );
        let wrong = root
            .str("email")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!wrong.contains("jane"), "{wrong}");
        let flag = root
            .flag("flag")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!flag.contains("jane"), "{flag}");
    }
}
