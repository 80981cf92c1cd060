//! AVConfig helpers shared by both front-ends: value forms and the confirmation step.

pub mod values;

use armadito_plugin_api::ConfigRejection;

/// Why an attribute outside the allow-list is refused.
pub fn not_changeable(attr: &str) -> ConfigRejection {
    ConfigRejection {
        attr: attr.to_string(),
        reason: "not changeable remotely (not in the Defender backend's allow-list)".into(),
    }
}

pub fn rejected(attr: &str, reason: impl Into<String>) -> ConfigRejection {
    ConfigRejection {
        attr: attr.to_string(),
        reason: reason.into(),
    }
}

/// The reason given when a write succeeded but the value read back differs.
pub const NOT_IN_EFFECT: &str =
    "written but not in effect when read back (tamper protection or a policy overrides it)";
