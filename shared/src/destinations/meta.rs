//! Meta custom audiences.
//!
//! Being written: this module is replaced by the connector.

use std::sync::Arc;

use crate::config::MetaAudienceConnection;
use crate::ports::{Destination, DestinationError, Secrets};

/// Opens the connection `name`.
pub async fn open(
    name: &str,
    _config: &MetaAudienceConnection,
    _secrets: &dyn Secrets,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Err(DestinationError::Invalid {
        connection: name.to_string(),
        message: "this connector is not available yet".into(),
    })
}
