//! Signature freshness from an age, with the configured thresholds.

use armadito_plugin_api::UpdateStatus;

/// `age_days` = days since the last signature update (fractional); `None` = unknown.
pub fn update_status(age_days: Option<f64>, late: u32, critical: u32) -> UpdateStatus {
    match age_days {
        None => UpdateStatus::NonAvailable,
        Some(a) if a > f64::from(critical) => UpdateStatus::Critical,
        Some(a) if a > f64::from(late) => UpdateStatus::Late,
        Some(_) => UpdateStatus::UpToDate,
    }
}

/// The worse of two statuses (`NonAvailable` only when both are).
pub fn worst(a: UpdateStatus, b: UpdateStatus) -> UpdateStatus {
    let rank = |s: UpdateStatus| match s {
        UpdateStatus::NonAvailable => 0,
        UpdateStatus::UpToDate => 1,
        UpdateStatus::Late => 2,
        UpdateStatus::Critical => 3,
    };
    if rank(a) >= rank(b) { a } else { b }
}

/// Now, unix seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(update_status(Some(0.5), 3, 7), UpdateStatus::UpToDate);
        assert_eq!(update_status(Some(4.0), 3, 7), UpdateStatus::Late);
        assert_eq!(update_status(Some(7.5), 3, 7), UpdateStatus::Critical);
        assert_eq!(update_status(None, 3, 7), UpdateStatus::NonAvailable);
        assert_eq!(
            worst(UpdateStatus::UpToDate, UpdateStatus::Late),
            UpdateStatus::Late
        );
        assert_eq!(
            worst(UpdateStatus::NonAvailable, UpdateStatus::UpToDate),
            UpdateStatus::UpToDate
        );
    }
}
