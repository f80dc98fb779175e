//! What a SKU is, for every service that takes one: the inventory writer that
//! creates products, the orders writer that orders them, and their OpenAPI
//! documents (one rule, so that a SKU one accepts the other accepts too).

/// 1 to 64 ASCII letters, digits, dots, underscores and hyphens. utoipa takes
/// only literals, so the documents spell it out; their tests hold each copy
/// to this one (`outflow_service::openapi::patterns_of`).
pub const PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

pub fn is_valid(sku: &str) -> bool {
    (1..=64).contains(&sku.len()) && sku.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_rule_and_the_pattern_agree() {
        let pattern = regex::Regex::new(super::PATTERN).unwrap();
        let samples = [
            ("MUG-1", true),
            ("a.b_c", true),
            ("", false),
            ("A B", false),
            ("É", false),
            ("MUG\0", false),
            ("MUG-1\n", false),
            (&"x".repeat(64), true),
            (&"x".repeat(65), false),
        ];
        for (sku, valid) in samples {
            assert_eq!(super::is_valid(sku), valid, "{sku:?}");
            assert_eq!(pattern.is_match(sku), valid, "the pattern on {sku:?}");
        }
    }
}
