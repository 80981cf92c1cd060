//! Alerts paging over a detection history that the product keeps and returns whole
//! (`Get-MpThreatDetection`, `mdatp threat list`).
//!
//! Invariants:
//! * Order is (detection time in ms, id): stable whatever order the tool prints.
//! * The cursor is the last (time, id) sent, as JSON. A detection is sent once: the next page
//!   starts strictly after the cursor, so two detections in the same millisecond are not lost
//!   and not repeated.
//! * A cursor that does not parse is an invalid-argument error, never "start over" (that would
//!   send the whole history again).

use armadito_plugin_api::{AlertsPage, AlertsQuery, Detection};
use serde::{Deserialize, Serialize};

/// A detection with the full-precision time used for ordering.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub millis: i64,
    pub detection: Detection,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Position {
    t: i64,
    id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("alerts cursor {0:?} is not one this backend wrote")]
pub struct BadCursor(pub String);

/// The page after `query.cursor` (or from `query.since`), at most `limit` detections.
pub fn page(
    mut all: Vec<Timed>,
    query: &AlertsQuery,
    default_limit: u32,
) -> Result<AlertsPage, BadCursor> {
    let after = match &query.cursor {
        Some(c) => Some(serde_json::from_str::<Position>(c).map_err(|_| BadCursor(c.clone()))?),
        None => None,
    };
    all.sort_by(|a, b| (a.millis, &a.detection.id).cmp(&(b.millis, &b.detection.id)));
    let since_ms = query.since.map(|s| s.saturating_mul(1000));
    let mut fresh = all.into_iter().filter(|d| match &after {
        Some(p) => (d.millis, &d.detection.id) > (p.t, &p.id),
        None => since_ms.is_none_or(|s| d.millis >= s),
    });
    let limit = query.limit.unwrap_or(default_limit).max(1) as usize;
    let taken: Vec<Timed> = fresh.by_ref().take(limit).collect();
    let more = fresh.next().is_some();
    let next_cursor = match taken.last() {
        Some(last) => serde_json::to_string(&Position {
            t: last.millis,
            id: last.detection.id.clone(),
        })
        .ok(),
        None => query.cursor.clone(),
    };
    Ok(AlertsPage {
        detections: taken.into_iter().map(|t| t.detection).collect(),
        next_cursor,
        more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: i64, id: &str) -> Timed {
        Timed {
            millis: ms,
            detection: Detection {
                id: id.into(),
                detection_time: ms / 1000,
                ..Detection::default()
            },
        }
    }

    fn ids(p: &AlertsPage) -> Vec<&str> {
        p.detections.iter().map(|d| d.id.as_str()).collect()
    }

    #[test]
    fn pages_in_order_without_loss_or_repeat_on_equal_times() {
        let all = vec![d(3000, "c"), d(1000, "a"), d(2000, "b2"), d(2000, "b1")];
        let q = AlertsQuery {
            limit: Some(2),
            ..Default::default()
        };
        let p1 = page(all.clone(), &q, 10).unwrap();
        assert_eq!(ids(&p1), ["a", "b1"]);
        assert!(p1.more);
        let q2 = AlertsQuery {
            cursor: p1.next_cursor.clone(),
            limit: Some(2),
            ..Default::default()
        };
        let p2 = page(all.clone(), &q2, 10).unwrap();
        assert_eq!(ids(&p2), ["b2", "c"]);
        assert!(!p2.more);
        let q3 = AlertsQuery {
            cursor: p2.next_cursor.clone(),
            ..Default::default()
        };
        let p3 = page(all, &q3, 10).unwrap();
        assert!(p3.detections.is_empty());
        assert_eq!(
            p3.next_cursor, p2.next_cursor,
            "an empty page keeps the cursor"
        );
    }

    #[test]
    fn since_applies_without_cursor_and_bad_cursors_are_errors() {
        let all = vec![d(1000, "a"), d(5000, "b")];
        let q = AlertsQuery {
            since: Some(2),
            ..Default::default()
        };
        assert_eq!(ids(&page(all.clone(), &q, 10).unwrap()), ["b"]);
        let q = AlertsQuery {
            cursor: Some("garbage".into()),
            ..Default::default()
        };
        assert!(page(all, &q, 10).is_err());
    }
}
