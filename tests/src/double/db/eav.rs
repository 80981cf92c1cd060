//! The "store only differences" EAV tables (§9).
//!
//! The first agent to report an attribute for an antivirus defines the base
//! value (agent 0) forever; every other agent only stores the attributes
//! where it differs. The double reproduces this literally because the
//! admin-visible effective configuration depends on report order.

use serde_json::Value;

use super::rows::EavRow;
use crate::double::php::{Pv, ci_eq, loose_eq};

/// Type of the per-agent marker row whose id becomes `*_details_id`.
pub const MARKER: &str = "hasAVConfig";

/// One reported `{attr, value}` pair, prepared by the endpoint.
#[derive(Debug, Clone)]
pub struct EavEntry {
    pub attr: String,
    /// The decoded JSON value, used for PHP's loose `==` against the base.
    pub raw: Value,
    /// The value as bound into the column (`None` = SQL NULL).
    pub stored: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct EavTable {
    pub rows: Vec<EavRow>,
    next_id: i64,
}

impl EavTable {
    fn alloc(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// `isValueForAgentInDB`: a row with a NULL value counts as absent.
    fn find(&self, attr: &str, av: i64, agent: i64) -> Option<&EavRow> {
        self.rows.iter().find(|r| {
            r.plugin_armadito_agents_id == agent
                && r.plugin_armadito_antiviruses_id == av
                && r.value.is_some()
                && ci_eq(&r.type_, attr)
        })
    }

    fn insert(&mut self, attr: &str, value: Option<String>, av: i64, agent: i64) -> i64 {
        let id = self.alloc();
        self.rows.push(EavRow {
            id,
            type_: attr.to_string(),
            value,
            plugin_armadito_agents_id: agent,
            plugin_armadito_antiviruses_id: av,
        });
        id
    }

    /// `performOptimizedInsertion()` for agent `agent` with antivirus `av`;
    /// returns the id of the agent's marker row (first one, any antivirus).
    pub fn perform_optimized_insertion(
        &mut self,
        agent: i64,
        av: i64,
        entries: &[EavEntry],
    ) -> i64 {
        for e in entries {
            let agent_exists = self.find(&e.attr, av, agent).is_some();
            let base = self.find(&e.attr, av, 0);
            let base_exists = base.is_some();
            let base_equal = base
                .and_then(|b| b.value.as_deref())
                .map(|bv| loose_eq(&Pv::Str(bv), &Pv::of(&e.raw)))
                .unwrap_or(false);
            if base_equal {
                self.rows.retain(|r| {
                    !(r.plugin_armadito_agents_id == agent
                        && r.plugin_armadito_antiviruses_id == av
                        && ci_eq(&r.type_, &e.attr))
                });
            } else if agent_exists {
                for r in self.rows.iter_mut().filter(|r| {
                    r.plugin_armadito_agents_id == agent
                        && r.plugin_armadito_antiviruses_id == av
                        && ci_eq(&r.type_, &e.attr)
                }) {
                    r.value = e.stored.clone();
                }
            } else if base_exists {
                self.insert(&e.attr, e.stored.clone(), av, agent);
            } else {
                self.insert(&e.attr, e.stored.clone(), av, 0);
            }
        }
        // Marker upsert.
        let has_marker = self.rows.iter().any(|r| {
            r.plugin_armadito_agents_id == agent
                && r.plugin_armadito_antiviruses_id == av
                && r.type_ == MARKER
        });
        if has_marker {
            for r in self.rows.iter_mut().filter(|r| {
                r.plugin_armadito_agents_id == agent
                    && r.plugin_armadito_antiviruses_id == av
                    && r.type_ == MARKER
            }) {
                r.value = Some("1".into());
            }
        } else {
            self.insert(MARKER, Some("1".into()), av, agent);
        }
        self.marker_id(agent)
    }

    /// Id of the agent's first marker row regardless of antivirus (0 if none).
    pub fn marker_id(&self, agent: i64) -> i64 {
        self.rows
            .iter()
            .find(|r| r.plugin_armadito_agents_id == agent && r.type_ == MARKER)
            .map(|r| r.id)
            .unwrap_or(0)
    }

    /// Base(av) overlaid by overrides(agent, av), in base insertion order;
    /// the marker is not part of the configuration.
    pub fn effective(&self, agent: i64, av: i64) -> Vec<(String, Option<String>)> {
        let mut out: Vec<(String, Option<String>)> = Vec::new();
        for r in self
            .rows
            .iter()
            .filter(|r| r.plugin_armadito_agents_id == 0 && r.plugin_armadito_antiviruses_id == av)
        {
            if out.iter().any(|(k, _)| ci_eq(k, &r.type_)) {
                continue;
            }
            let value = match self.find(&r.type_, av, agent) {
                Some(o) => o.value.clone(),
                None => self
                    .find(&r.type_, av, 0)
                    .map(|b| b.value.clone())
                    .unwrap_or_else(|| r.value.clone()),
            };
            out.push((r.type_.clone(), value));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(attr: &str, v: Value) -> EavEntry {
        let stored = crate::double::php::scalar_to_string(&v).filter(|_| !v.is_null());
        EavEntry {
            attr: attr.into(),
            raw: v,
            stored,
        }
    }

    #[test]
    fn first_reporter_defines_base_others_store_differences() {
        let mut t = EavTable::default();
        let m2 = t.perform_optimized_insertion(2, 1, &[e("a", json!("x")), e("b", json!(1))]);
        assert_eq!(m2, 3);
        assert_eq!(t.rows.len(), 3);
        // agent 3: same a, different b → one override
        let m3 = t.perform_optimized_insertion(3, 1, &[e("a", json!("x")), e("b", json!(2))]);
        assert_eq!(m3, 5);
        assert_eq!(
            t.effective(3, 1),
            vec![
                ("a".into(), Some("x".into())),
                ("b".into(), Some("2".into()))
            ]
        );
        assert_eq!(
            t.effective(2, 1),
            vec![
                ("a".into(), Some("x".into())),
                ("b".into(), Some("1".into()))
            ]
        );
        // agent 3 changes b again → UPDATE, then back to base → DELETE
        t.perform_optimized_insertion(3, 1, &[e("b", json!(7))]);
        assert_eq!(
            t.rows
                .iter()
                .filter(|r| r.plugin_armadito_agents_id == 3)
                .count(),
            2
        );
        t.perform_optimized_insertion(3, 1, &[e("b", json!("1"))]);
        assert_eq!(
            t.rows
                .iter()
                .filter(|r| r.plugin_armadito_agents_id == 3)
                .count(),
            1
        );
        // PHP 7: 0 == "x" is true, so 0 is considered equal to the base "x"
        t.perform_optimized_insertion(3, 1, &[e("a", json!(0))]);
        assert_eq!(t.effective(3, 1)[0], ("a".into(), Some("x".into())));
    }
}
