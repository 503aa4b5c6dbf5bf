//! The ERP's own arithmetic: it owns the financial totals. Line net = quantity × unit
//! price − discount; line tax is taken as sent when the caller sends it (an invoice line
//! with its tax), otherwise computed from the rate and rounded half away from zero to the
//! cent, as Magento does per row. The "wrong tax rounding" fault truncates instead.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Order totals, in the order currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Σ quantity × unit price.
    pub subtotal: Decimal,
    /// Σ line discounts (positive).
    pub discount_amount: Decimal,
    /// Shipping, before tax.
    pub shipping_amount: Decimal,
    /// Σ line tax + shipping tax.
    pub tax_amount: Decimal,
    /// subtotal − discount + shipping + tax.
    pub grand_total: Decimal,
}

/// How line tax is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaxRounding {
    /// Half away from zero, per line (Magento's way).
    HalfUp,
    /// Truncated to the cent: the "wrong tax rounding" fault.
    Truncate,
}

/// One priced line as the ERP computes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    /// quantity × unit price, to the cent.
    pub gross: Decimal,
    /// The discount.
    pub discount: Decimal,
    /// The tax.
    pub tax: Decimal,
}

/// Rounds to the cent, half away from zero.
pub fn cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Prices one line. `given_tax` wins unless `rounding` is the fault, which recomputes.
pub fn price_line(
    quantity: Decimal,
    unit_price: Decimal,
    discount: Decimal,
    tax_rate_percent: Decimal,
    given_tax: Option<Decimal>,
    rounding: TaxRounding,
) -> PricedLine {
    let gross = cents(quantity * unit_price);
    let net = gross - discount;
    let computed = net * tax_rate_percent / Decimal::ONE_HUNDRED;
    let tax = match (rounding, given_tax) {
        (TaxRounding::Truncate, _) => computed.round_dp_with_strategy(2, RoundingStrategy::ToZero),
        (TaxRounding::HalfUp, Some(tax)) => tax,
        (TaxRounding::HalfUp, None) => cents(computed),
    };
    PricedLine {
        gross,
        discount,
        tax,
    }
}

/// Totals of priced lines plus shipping.
pub fn totals(lines: &[PricedLine], shipping: Decimal, shipping_tax: Decimal) -> Totals {
    let subtotal: Decimal = lines.iter().map(|l| l.gross).sum();
    let discount_amount: Decimal = lines.iter().map(|l| l.discount).sum();
    let tax_amount: Decimal = lines.iter().map(|l| l.tax).sum::<Decimal>() + shipping_tax;
    Totals {
        subtotal,
        discount_amount,
        shipping_amount: shipping,
        tax_amount,
        grand_total: subtotal - discount_amount + shipping + tax_amount,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap_or_default()
    }

    #[test]
    fn the_fixture_order_adds_up_to_magentos_grand_total() {
        // order_discount_tax_invoiced_processing.json: 2 × 36 and 1 × 32, 10 % off, 8.25 % tax.
        let lines = [
            price_line(
                d("2"),
                d("36"),
                d("7.2"),
                d("8.25"),
                None,
                TaxRounding::HalfUp,
            ),
            price_line(
                d("1"),
                d("32"),
                d("3.2"),
                d("8.25"),
                None,
                TaxRounding::HalfUp,
            ),
        ];
        assert_eq!(lines[0].tax, d("5.35"));
        assert_eq!(lines[1].tax, d("2.38"));
        let totals = totals(&lines, d("10"), Decimal::ZERO);
        assert_eq!(totals.subtotal, d("104"));
        assert_eq!(totals.discount_amount, d("10.4"));
        assert_eq!(totals.tax_amount, d("7.73"));
        assert_eq!(totals.grand_total, d("111.33"));
    }

    #[test]
    fn truncating_tax_is_a_cent_off_where_half_up_rounds_up() {
        let right = price_line(
            d("1"),
            d("90"),
            d("0"),
            d("8.25"),
            Some(d("7.43")),
            TaxRounding::HalfUp,
        );
        let wrong = price_line(
            d("1"),
            d("90"),
            d("0"),
            d("8.25"),
            Some(d("7.43")),
            TaxRounding::Truncate,
        );
        assert_eq!(right.tax, d("7.43"));
        assert_eq!(wrong.tax, d("7.42"));
    }

    #[test]
    fn given_tax_is_kept_as_sent() {
        let line = price_line(
            d("3"),
            d("9.99"),
            d("0"),
            d("19"),
            Some(d("5.69")),
            TaxRounding::HalfUp,
        );
        assert_eq!(line.gross, d("29.97"));
        assert_eq!(line.tax, d("5.69"));
    }
}
