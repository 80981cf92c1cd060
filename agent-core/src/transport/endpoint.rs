//! The plugin's seven endpoints, the two methods the agent uses, and which requests may be sent
//! twice.
//!
//! Invariant: [`Endpoint::replay_safety`] is the single source of truth the retry loop consults
//! before re-sending anything. A request classified [`ReplaySafety::UnsentOnly`] is re-sent only
//! when the previous attempt provably never reached the server (connection refused, DNS failure,
//! connect timeout), because the server acts on it with a non-idempotent side effect.

/// An API endpoint of the Armadito GLPI plugin (`<server>/api/<name>/`, server-api.md §1.1).
/// Its text (`name`, `Display`, `FromStr`) is the path segment, also stored in the outbox.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "lowercase")]
pub enum Endpoint {
    /// `POST agents/`: enrollment.
    Agents,
    /// `GET jobs/?agent_id=N` (fetch) and `POST jobs/` (job result).
    Jobs,
    /// `POST scans/`: scan progress/result.
    Scans,
    /// `POST states/`: antivirus state.
    States,
    /// `POST alerts/`: virus alerts.
    Alerts,
    /// `POST avconfigs/`: antivirus configuration (a `GET` is documented but not implemented).
    AvConfigs,
    /// `POST schedulers/`: scheduler report (a `GET` is documented but not implemented).
    Schedulers,
}

/// The HTTP methods the agent uses. The server never checks the method (server-api.md §1.2), but
/// the method still says what the agent means, and `GET jobs` differs from `POST jobs` in replay
/// safety.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl From<Method> for reqwest::Method {
    fn from(m: Method) -> Self {
        match m {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        }
    }
}

/// Whether a request may be re-sent after an attempt that may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplaySafety {
    /// Sending it twice has the same effect as sending it once (overwrite, or server-side
    /// de-duplication): retry on any retryable failure.
    Safe,
    /// Every request that reaches the server has a side effect that a second one would repeat:
    /// retry only when the failed attempt surely never reached the server.
    UnsentOnly,
}

impl Endpoint {
    /// All endpoints, in the order of the server documentation.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Agents,
        Endpoint::Jobs,
        Endpoint::Scans,
        Endpoint::States,
        Endpoint::Alerts,
        Endpoint::AvConfigs,
        Endpoint::Schedulers,
    ];

    /// The path segment under `api/`.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Whether `method` on this endpoint may be re-sent after it may have reached the server.
    ///
    /// - `POST agents`: every request consumes one use of the enrollment key, even the
    ///   re-enrollment of a known UUID (server-api.md §0.7) → [`ReplaySafety::UnsentOnly`].
    /// - `GET jobs`: the server marks the returned jobs `downloaded` *before* answering; a lost
    ///   answer loses those jobs, a second GET will not return them → [`ReplaySafety::UnsentOnly`].
    /// - `POST jobs/scans/states/avconfigs/schedulers`: overwrites keyed by job or agent →
    ///   [`ReplaySafety::Safe`].
    /// - `POST alerts`: de-duplicated server-side by checksum → [`ReplaySafety::Safe`].
    /// - `GET avconfigs/schedulers`: read-only (and not implemented by the server) → safe.
    pub const fn replay_safety(self, method: Method) -> ReplaySafety {
        match (self, method) {
            (Endpoint::Agents, _) | (Endpoint::Jobs, Method::Get) => ReplaySafety::UnsentOnly,
            _ => ReplaySafety::Safe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_server_directories() {
        let names: Vec<&str> = Endpoint::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(
            names,
            [
                "agents",
                "jobs",
                "scans",
                "states",
                "alerts",
                "avconfigs",
                "schedulers"
            ]
        );
    }

    #[test]
    fn all_is_every_endpoint_and_names_parse_back() {
        use strum::VariantArray;
        assert_eq!(Endpoint::ALL.as_slice(), Endpoint::VARIANTS);
        for e in Endpoint::ALL {
            assert_eq!(e.name().parse::<Endpoint>(), Ok(e));
            assert_eq!(e.to_string(), e.name());
        }
        assert!("Jobs".parse::<Endpoint>().is_err());
        assert!("api".parse::<Endpoint>().is_err());
        assert_eq!(
            (Method::Get.as_str(), Method::Post.to_string()),
            ("GET", "POST".into())
        );
    }

    #[test]
    fn replay_safety_table() {
        use Endpoint::*;
        use ReplaySafety::*;
        assert_eq!(Agents.replay_safety(Method::Post), UnsentOnly);
        assert_eq!(Jobs.replay_safety(Method::Get), UnsentOnly);
        for e in [Jobs, Scans, States, Alerts, AvConfigs, Schedulers] {
            assert_eq!(e.replay_safety(Method::Post), Safe, "POST {e}");
        }
        assert_eq!(AvConfigs.replay_safety(Method::Get), Safe);
        assert_eq!(Schedulers.replay_safety(Method::Get), Safe);
    }
}
