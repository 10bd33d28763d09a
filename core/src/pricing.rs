//! List prices of the models a session budget can cap, and the list cost of a model request.
//!
//! Prices are Anthropic's published list prices in US dollars per million tokens (input,
//! output); prompt-cache writes cost 1.25× the input price (five-minute lifetime) and cache
//! reads 0.1× of it. Costs are kept in nano-dollars (10⁻⁹ USD) so fractional token prices stay
//! exact; budgets and the rendered `list_cost` are in cents. A model is matched by its id's
//! longest listed prefix, so dated ids (`claude-sonnet-4-5-20250929`) price like their family.
//! A model not listed has no list price and cannot be budgeted (`model_not_budgetable`).

use crate::event::{Budget, ModelUsage, MonetaryAmount};

/// Nano-dollars per cent.
pub const NANOS_PER_CENT: u128 = 10_000_000;

/// A model's list price in nano-dollars per token (= dollars per billion tokens, or
/// 1,000 × dollars per million tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPrice {
    /// Uncached input.
    pub input: u128,
    /// Output.
    pub output: u128,
}

impl ListPrice {
    const fn per_million(input_dollars_milli: u128, output_dollars_milli: u128) -> Self {
        // `x` thousandths of a dollar per million tokens is `x` nano-dollars per token.
        Self {
            input: input_dollars_milli,
            output: output_dollars_milli,
        }
    }

    /// The list cost of one request's `usage`, in nano-dollars.
    pub fn cost(&self, usage: &ModelUsage) -> u128 {
        let tokens = |n: u64| u128::from(n);
        tokens(usage.input_tokens) * self.input
            + tokens(usage.output_tokens) * self.output
            + tokens(usage.cache_creation_input_tokens) * self.input * 5 / 4
            + tokens(usage.cache_read_input_tokens) * self.input / 10
    }
}

/// Model id prefixes and their prices (thousandths of a dollar per million tokens).
const PRICES: &[(&str, ListPrice)] = &[
    ("claude-opus-4-6", ListPrice::per_million(5_000, 25_000)),
    ("claude-opus-4-5", ListPrice::per_million(5_000, 25_000)),
    ("claude-opus-4-1", ListPrice::per_million(15_000, 75_000)),
    ("claude-opus-4", ListPrice::per_million(15_000, 75_000)),
    ("claude-sonnet-4", ListPrice::per_million(3_000, 15_000)),
    ("claude-3-7-sonnet", ListPrice::per_million(3_000, 15_000)),
    ("claude-haiku-4-5", ListPrice::per_million(1_000, 5_000)),
    ("claude-3-5-haiku", ListPrice::per_million(800, 4_000)),
    ("claude-3-haiku", ListPrice::per_million(250, 1_250)),
];

/// The list price of model `id`, if it has one.
pub fn list_price(id: &str) -> Option<ListPrice> {
    PRICES
        .iter()
        .filter(|(prefix, _)| {
            id.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, price)| *price)
}

/// Whole cents of `nanos` (rounded down), as the API's monetary amount.
pub fn amount(nanos: u128) -> MonetaryAmount {
    MonetaryAmount {
        amount: (nanos / NANOS_PER_CENT).to_string(),
        currency: crate::event::Currency::Usd,
    }
}

/// The cap of `budget` in nano-dollars, or `None` when its amount is not a whole number of cents.
pub fn cap_nanos(budget: &Budget) -> Option<u128> {
    let Budget::Limit { max_list_cost } = budget;
    max_list_cost
        .amount
        .parse::<u128>()
        .ok()
        .and_then(|cents| cents.checked_mul(NANOS_PER_CENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, write: u64, read: u64) -> ModelUsage {
        ModelUsage {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: write,
            cache_read_input_tokens: read,
            speed: None,
        }
    }

    #[test]
    fn the_longest_prefix_prices_a_model() {
        let opus_45 = list_price("claude-opus-4-5-20251101").expect("priced");
        assert_eq!(opus_45.input, 5_000);
        let opus_4 = list_price("claude-opus-4-20250514").expect("priced");
        assert_eq!(opus_4.input, 15_000);
        assert_eq!(
            list_price("claude-opus-4-1").map(|p| p.output),
            Some(75_000)
        );
        assert_eq!(
            list_price("claude-sonnet-4-6").map(|p| p.input),
            Some(3_000)
        );
        assert_eq!(
            list_price("claude-sonnet-4-5-20250929").map(|p| p.input),
            Some(3_000)
        );
        // Whole segments only; unknown families and other providers are not priced.
        assert_eq!(list_price("claude-opus-40"), None);
        assert_eq!(list_price("gpt-5"), None);
        assert_eq!(list_price("mock-model"), None);
    }

    #[test]
    fn a_request_costs_its_tokens_at_list_price() {
        let sonnet = list_price("claude-sonnet-4-6").expect("priced");
        // $3/M in, $15/M out: 1M in + 100k out = $4.50; 1M cache writes $3.75; 1M reads $0.30.
        assert_eq!(
            sonnet.cost(&usage(1_000_000, 100_000, 0, 0)),
            450 * NANOS_PER_CENT
        );
        assert_eq!(
            sonnet.cost(&usage(0, 0, 1_000_000, 0)),
            375 * NANOS_PER_CENT
        );
        assert_eq!(sonnet.cost(&usage(0, 0, 0, 1_000_000)), 30 * NANOS_PER_CENT);
        // Fractions of a cent are kept, and rendered rounded down.
        assert_eq!(sonnet.cost(&usage(1, 0, 0, 0)), 3_000);
        assert_eq!(
            amount(sonnet.cost(&usage(400_000, 1_000, 0, 0))).amount,
            "121"
        );
    }

    #[test]
    fn a_cap_is_whole_cents() {
        let budget = |amount: &str| Budget::Limit {
            max_list_cost: MonetaryAmount {
                amount: amount.into(),
                currency: crate::event::Currency::Usd,
            },
        };
        assert_eq!(cap_nanos(&budget("100")), Some(100 * NANOS_PER_CENT));
        assert_eq!(cap_nanos(&budget("1.5")), None);
        assert_eq!(cap_nanos(&budget("-1")), None);
    }
}
