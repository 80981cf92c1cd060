//! Building the plugin's URLs from the configured `server`.
//!
//! Invariants:
//! - every endpoint URL is `<base>/api/<name>/`, with the trailing slash (without it Apache's
//!   `DirectorySlash` answers 301 and a POST turned into GET arrives empty, server-api.md §1.1)
//!   and never a `//` in the path, whatever slashes the configured base has;
//! - the base has no credentials, query or fragment, so a URL built here can be logged and shown
//!   in errors as is.

use reqwest::Url;

use super::endpoint::Endpoint;
use super::error::TransportError;

/// Example shown in URL errors.
const EXAMPLE: &str = "https://glpi.example.org/glpi/plugins/armadito";

/// Parses and normalises the configured server URL (the plugin directory, e.g.
/// `https://glpi.example.org/glpi/plugins/armadito`, with or without trailing slash; the old
/// agent's default `http://127.0.0.1/glpi/plugins/armadito/` is accepted as is).
///
/// The returned URL's path has runs of `/` collapsed and no trailing `/` (except the root).
pub fn normalize_server_url(server: &str) -> Result<Url, TransportError> {
    let trimmed = server.trim();
    let invalid = |reason: String| TransportError::InvalidServerUrl {
        url: redact_url(trimmed),
        reason,
    };
    if trimmed.is_empty() {
        return Err(invalid(format!("it is empty; expected e.g. {EXAMPLE}")));
    }
    let mut url = Url::parse(trimmed).map_err(|e| {
        let hint = if trimmed.contains("://") {
            String::new()
        } else {
            " (missing http:// or https://?)".to_owned()
        };
        invalid(format!("{e}{hint}; expected e.g. {EXAMPLE}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not http or https; expected e.g. {EXAMPLE}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("no host; expected e.g. {EXAMPLE}")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials in the server URL are not supported: set [http] user and password"
                .to_owned(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!(
            "it must not have a query (?…) or fragment (#…); expected e.g. {EXAMPLE}"
        )));
    }
    let path = collapse_slashes(url.path());
    let path = path.trim_end_matches('/');
    let mut segments = path.rsplit('/');
    let last = segments.next().unwrap_or("");
    let before_last = segments.next().unwrap_or("");
    if last == "api" || (before_last == "api" && last.parse::<Endpoint>().is_ok()) {
        return Err(invalid(format!(
            "it must be the plugin directory, not an API URL; expected e.g. {EXAMPLE}"
        )));
    }
    url.set_path(if path.is_empty() { "/" } else { path });
    Ok(url)
}

/// `<base>/api/<name>/`.
pub fn endpoint_url(base: &Url, endpoint: Endpoint) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/api/{}/", endpoint.name()));
    url
}

/// `<base>/api/<name>/?agent_id=N` (a single `agent_id`; the old agent sent it twice).
pub fn endpoint_url_for_agent(base: &Url, endpoint: Endpoint, agent_id: i64) -> Url {
    let mut url = endpoint_url(base, endpoint);
    url.set_query(Some(&format!("agent_id={agent_id}")));
    url
}

/// `s` with the password of its userinfo (if any) replaced by `***`. Works on strings that do
/// not parse as URLs too, so it is safe to apply to any user input before showing it.
pub fn redact_url(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &s[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return s.to_owned();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let redacted_userinfo = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        // A lone userinfo may itself be a token: hide it too.
        "***".to_owned()
    };
    format!(
        "{}{}{}",
        &s[..rest_start],
        redacted_userinfo,
        &s[rest_start + at..]
    )
}

fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' {
            if !prev_slash {
                out.push(c);
            }
            prev_slash = true;
        } else {
            out.push(c);
            prev_slash = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(server: &str, e: Endpoint) -> String {
        endpoint_url(&normalize_server_url(server).expect("valid"), e).to_string()
    }

    #[test]
    fn trailing_slash_forms_give_the_same_urls() {
        for server in [
            "https://glpi.example.org/glpi/plugins/armadito",
            "https://glpi.example.org/glpi/plugins/armadito/",
            "https://glpi.example.org/glpi/plugins/armadito//",
            "  https://glpi.example.org//glpi/plugins//armadito/ ",
        ] {
            assert_eq!(
                ep(server, Endpoint::Agents),
                "https://glpi.example.org/glpi/plugins/armadito/api/agents/",
                "{server}"
            );
        }
    }

    #[test]
    fn old_agent_default() {
        assert_eq!(
            ep("http://127.0.0.1/glpi/plugins/armadito/", Endpoint::Jobs),
            "http://127.0.0.1/glpi/plugins/armadito/api/jobs/"
        );
    }

    #[test]
    fn every_endpoint() {
        for e in Endpoint::ALL {
            let u = ep("https://h:8443/p/plugins/armadito", e);
            assert_eq!(
                u,
                format!("https://h:8443/p/plugins/armadito/api/{}/", e.name())
            );
            assert!(!u["https://".len()..].contains("//"), "{u}");
        }
    }

    #[test]
    fn root_base() {
        assert_eq!(ep("https://h", Endpoint::States), "https://h/api/states/");
        assert_eq!(ep("https://h/", Endpoint::States), "https://h/api/states/");
    }

    #[test]
    fn agent_query() {
        let base = normalize_server_url("https://h/glpi/plugins/armadito/").expect("valid");
        assert_eq!(
            endpoint_url_for_agent(&base, Endpoint::Jobs, 42).as_str(),
            "https://h/glpi/plugins/armadito/api/jobs/?agent_id=42"
        );
        assert_eq!(
            endpoint_url_for_agent(&base, Endpoint::AvConfigs, 7).as_str(),
            "https://h/glpi/plugins/armadito/api/avconfigs/?agent_id=7"
        );
        assert_eq!(
            endpoint_url_for_agent(&base, Endpoint::Schedulers, 7).as_str(),
            "https://h/glpi/plugins/armadito/api/schedulers/?agent_id=7"
        );
    }

    #[test]
    fn rejects_bad_server_urls() {
        for (bad, needle) in [
            ("", "empty"),
            ("glpi.example.org/glpi", "missing http"),
            ("ftp://h/glpi", "not http or https"),
            ("https://user:pw@h/glpi", "user and password"),
            ("https://h/glpi?x=1", "query"),
            (
                "https://h/glpi/plugins/armadito/api/agents/",
                "plugin directory",
            ),
            ("https://h/glpi/plugins/armadito/api", "plugin directory"),
        ] {
            let e = normalize_server_url(bad).expect_err(bad).to_string();
            assert!(e.contains(needle), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("http://u:p@h:1/x"), "http://u:***@h:1/x");
        assert_eq!(redact_url("http://tok@h/x"), "http://***@h/x");
        assert_eq!(redact_url("http://h/x@y"), "http://h/x@y");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("socks5://a:b:c@h"), "socks5://a:***@h");
    }
}
