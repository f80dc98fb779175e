//! What a SKU is, for every service that takes one: the inventory writer that
//! creates products, the orders writer that orders them, and their OpenAPI
//! documents (one rule, so that a SKU one accepts the other accepts too).

/// 1 to 64 ASCII letters, digits, dots, underscores and hyphens.
pub const PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

pub fn is_valid(sku: &str) -> bool {
    (1..=64).contains(&sku.len()) && sku.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_rule_and_the_pattern_agree() {
        for (sku, valid) in [("MUG-1", true), ("a.b_c", true), ("", false), ("A B", false), ("É", false), (&"x".repeat(64), true), (&"x".repeat(65), false)] {
            assert_eq!(super::is_valid(sku), valid, "{sku}");
            let pattern_says = sku.len() <= 64 && !sku.is_empty() && sku.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            assert_eq!(pattern_says, valid, "{sku}");
        }
    }
}
