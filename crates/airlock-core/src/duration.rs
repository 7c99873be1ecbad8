//! Human durations in the config (`"30s"`, `"10m"`, `"2h"`).

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Deserializes a human duration string such as `"30s"` or `"10m"`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
}
