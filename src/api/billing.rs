//! Wire types of the billing and capacity endpoints (daily consumption, cycle ACU limits, the
//! queue), read leniently: unknown fields are ignored, a number of the wrong type is kept as
//! [`Num::Wrong`] to be counted rather than failing the body, and list items are decoded one
//! by one, so that one odd item never hides the others. Clamping is the caller's: these types
//! say only what the API sent.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A number field as the API sent it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Num {
    /// Absent or null.
    #[default]
    Absent,
    /// A JSON number (finite: JSON has no NaN or infinity).
    Value(f64),
    /// Anything else: a string (`"NaN"`, `"12"`), a bool, an object.
    Wrong,
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => Num::Absent,
            Value::Number(n) => n.as_f64().map_or(Num::Wrong, Num::Value),
            _ => Num::Wrong,
        })
    }
}

/// List items decoded one by one: those that do not fit `T` are counted, not fatal.
#[derive(Debug, Clone)]
pub struct Items<T> {
    /// The items that decoded.
    pub items: Vec<T>,
    /// How many did not.
    pub refused: usize,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items {
            items: Vec::new(),
            refused: 0,
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Items<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A null or a non-list reads as no items, counted once.
        let Value::Array(values) = Value::deserialize(d)? else {
            return Ok(Items {
                items: Vec::new(),
                refused: 1,
            });
        };
        let mut out = Items::default();
        for value in values {
            match serde_json::from_value(value) {
                Ok(item) => out.items.push(item),
                Err(_) => out.refused += 1,
            }
        }
        Ok(out)
    }
}

/// `GET /v3/enterprise/consumption/daily` and `GET /v3/organizations/{org_id}/consumption/daily`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DailyConsumption {
    /// The API's own total; a hint only (the exporter sums the days itself).
    #[serde(default)]
    pub total_acus: Num,
    /// The days of the current cycle (without `time_after`).
    #[serde(default)]
    pub consumption_by_date: Items<ConsumptionDay>,
}

/// One billing day (08:00 UTC to 08:00 UTC).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConsumptionDay {
    /// Start of the day, Unix seconds.
    #[serde(default)]
    pub date: Num,
    /// All products of the day; a hint only.
    #[serde(default)]
    pub acus: Num,
    /// ACUs by product (an open set: devin, cascade, terminal, ...); a missing product is 0.
    #[serde(default)]
    pub acus_by_product: Option<BTreeMap<String, Num>>,
}

/// A page of `GET /v3/enterprise/consumption/acu-limits/devin`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AcuLimitPage {
    /// The limits on this page.
    #[serde(default)]
    pub items: Items<AcuLimit>,
    /// Cursor for the next page.
    #[serde(default)]
    pub end_cursor: Option<String>,
    /// Whether another page follows.
    #[serde(default)]
    pub has_next_page: bool,
}

/// One cycle ACU limit.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AcuLimit {
    /// ACUs per billing cycle; absent or null means none.
    #[serde(default)]
    pub cycle_acu_limit: Num,
    /// `enterprise`, `organization`, ... (an open set).
    #[serde(default)]
    pub scope: Option<String>,
    /// The org of an organization-scope limit.
    #[serde(default)]
    pub org_id: Option<String>,
}

/// `GET /v3/enterprise/queue`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Queue {
    /// Sessions waiting to start.
    #[serde(default)]
    pub queue_size: Num,
    /// `normal`, `elevated`, `high` (an open set); any JSON value, read as text only if text.
    #[serde(default)]
    pub status: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_are_kept_apart_and_items_decode_one_by_one() {
        let body = br#"{"total_acus":"12","extra":{"x":1},"consumption_by_date":[
            {"date":1700000000,"acus":3,"acus_by_product":{"devin":1.5,"cascade":"NaN","review":null}},
            {"date":"yesterday","acus_by_product":{"devin":1}},
            "not a day",
            {"date":1700086400,"acus_by_product":[1,2]}]}"#;
        let c: DailyConsumption = serde_json::from_slice(body).unwrap();
        assert_eq!(c.total_acus, Num::Wrong);
        let days = &c.consumption_by_date;
        assert_eq!((days.items.len(), days.refused), (2, 2));
        let products = days.items[0].acus_by_product.as_ref().unwrap();
        assert_eq!(products["devin"], Num::Value(1.5));
        assert_eq!(products["cascade"], Num::Wrong);
        assert_eq!(products["review"], Num::Absent);
        assert_eq!(days.items[1].date, Num::Wrong);
    }

    #[test]
    fn a_missing_or_odd_list_is_no_items() {
        let c: DailyConsumption = serde_json::from_slice(b"{}").unwrap();
        assert_eq!(c.consumption_by_date.items.len(), 0);
        let p: AcuLimitPage = serde_json::from_slice(br#"{"items":null}"#).unwrap();
        assert_eq!((p.items.items.len(), p.items.refused), (0, 1));
        let q: Queue = serde_json::from_slice(br#"{"queue_size":1e308,"status":7}"#).unwrap();
        assert_eq!(q.queue_size, Num::Value(1e308));
    }
}
