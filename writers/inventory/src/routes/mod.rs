//! One file per endpoint.

pub mod create_product;
pub mod get_product;
pub mod restock;

use outflow_service::error::ApiError;

use crate::product::InvalidProduct;

impl From<InvalidProduct> for ApiError {
    fn from(error: InvalidProduct) -> Self {
        ApiError::unprocessable("invalid_product", error.to_string())
    }
}
