use jiff::Timestamp;

use crate::StoreError;

pub(crate) fn ms_to_ts(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}
