//! The Magento REST calls order-ingest makes, through the shared client.

pub use magento_rest::*;
