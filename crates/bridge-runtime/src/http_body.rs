//! Reading an answer from a system outside Kafka (Magento, the ERP, a key host) with a
//! bound on its size: a misbehaving or hostile server cannot make a service buffer more
//! than the caller allows.

/// The default bound on one answer: far above any real Magento page or ERP answer.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Why an answer's body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Larger than allowed (by `Content-Length` or as it streamed in).
    #[error("answer larger than {limit} bytes")]
    TooLarge {
        /// The bound.
        limit: usize,
    },
    /// The connection failed while reading.
    #[error("reading the answer: {0}")]
    Read(String),
}

/// The body of `response`, at most `limit` bytes.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Read(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
