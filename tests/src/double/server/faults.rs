//! Canned answers of injected faults. They imitate what really sits in
//! front of or around the plugin (Apache error pages, GLPI maintenance mode,
//! a broken database) so that the agent's error handling meets realistic
//! bytes.

use crate::double::Fault;
use crate::double::api::{ApiResponse, PLUGIN_VERSION};

fn plugin_json(status: u16, body: &str) -> ApiResponse {
    ApiResponse {
        status,
        headers: vec![
            (
                "server-type".into(),
                format!("glpi/armadito {PLUGIN_VERSION}"),
            ),
            ("Content-Type".into(), "application/json".into()),
            ("X-ArmaditoPlugin-Version".into(), PLUGIN_VERSION.into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

fn apache_page(status: u16, reason: &str, text: &str) -> String {
    format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{status} {reason}</title>\n</head><body>\n<h1>{reason}</h1>\n<p>{text}</p>\n<hr>\n<address>{} Server at 127.0.0.1 Port 80</address>\n</body></html>\n",
        super::routes::SERVER
    )
}

fn html(status: u16, body: String) -> ApiResponse {
    ApiResponse {
        status,
        headers: vec![(
            "Content-Type".into(),
            "text/html; charset=iso-8859-1".into(),
        )],
        body: body.into_bytes(),
    }
}

/// Response for a fault that answers without processing (`None` for
/// `DropConnection` and `Delay`, which are handled by the caller).
pub(crate) fn canned(fault: Fault) -> Option<ApiResponse> {
    Some(match fault {
        Fault::Status500Json => plugin_json(500, "{\"error\" : \"Error getTableId : MySQL server has gone away\"}"),
        Fault::Status500InvalidJson => plugin_json(
            500,
            "{\"error\" : \"Invalid UUID : \"4C4C4544-0033-4A10-8051-\\FFFFFFFFFFF\"\"}",
        ),
        Fault::Status400Json => plugin_json(400, "{\"error\" : \"Json parsing error : Syntax error\"}"),
        Fault::Status503RetryAfter(secs) => {
            let mut r = html(
                503,
                apache_page(
                    503,
                    "Service Unavailable",
                    "The server is temporarily unable to service your\nrequest due to maintenance downtime or capacity\nproblems. Please try again later.",
                ),
            );
            r.headers.push(("Retry-After".into(), secs.to_string()));
            r
        }
        Fault::Html200 => ApiResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html; charset=UTF-8".into())],
            body: b"<!DOCTYPE html>\n<html>\n<head><title>GLPI</title></head>\n<body>\n<div class='center'><p class='red'>Service is down for maintenance. It will be back shortly.</p></div>\n</body>\n</html>\n".to_vec(),
        },
        Fault::Html500 => html(
            500,
            apache_page(
                500,
                "Internal Server Error",
                "The server encountered an internal error or\nmisconfiguration and was unable to complete\nyour request.",
            ),
        ),
        Fault::InvalidJson200 => plugin_json(200, "{ \"jobs\": [{\"job_id\": 12, \"job_type\": \"Scan\", \"job_priority\": \"2\", \"obj\": {\"scan_name\": \"Full"),
        // The whole answer; the router sends only its first half (see `routes::truncated`).
        Fault::Truncated200 => plugin_json(200, "{\"agent_id\": 1,\"scheduler_id\": 1}"),
        Fault::DropConnection | Fault::Delay(_) | Fault::Stall => return None,
    })
}
