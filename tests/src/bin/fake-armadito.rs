//! A fake Armadito AV daemon for tests, speaking the real protocols exactly (backends.md A):
//!
//! * `fake-armadito rpc SOCKET SCENARIO RECORD`: JSON-RPC 2.0 on a unix socket (`@name` =
//!   abstract), frames = compact JSON + `\r\n\r\n`, methods `status`, `scan` (events as
//!   `notify_event` notifications filtered on `scan_id`), `listen`.
//! * `fake-armadito rest ADDR SCENARIO RECORD`: the armadito-scand 0.11–0.12 REST API
//!   (`/api/register`, token header, `/status`, `/scan`, blocking long-poll `/event`,
//!   `/unregister`, `/version`, User-Agent required), with its error bodies.
//!
//! SCENARIO (JSON): `{"info": <a6o_info or StatusEvent>, "version": "…", "scan": [item…],
//! "listen": [item…]}` where an item is `{"event": {…}}`, `{"raw": "bytes"}` (sent as one
//! frame, e.g. invalid JSON), `{"close": true}` (rpc: close the connection; rest: the daemon
//! exits), `{"stall": true}` (send nothing more) or `{"sleep_ms": N}`. In rpc events, a
//! missing `scan_id` in the `u.ev_*` body is set to the request's id.
//!
//! RECORD: one JSON line per connection and per message received, so tests can prove what
//! the client sent (or that it sent nothing). It prints `READY <addr>` once listening.
//! Run it through `setpriv` to make it a non-root impostor.

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("fake-armadito runs on Linux only");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
fn main() {
    imp::main()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::{HashMap, VecDeque};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread;
    use std::time::Duration;

    use serde_json::{Value, json};

    struct Recorder(Mutex<std::fs::File>);

    impl Recorder {
        fn open(path: &str) -> Recorder {
            Recorder(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("record file"),
            ))
        }
        fn write(&self, v: Value) {
            let mut f = self.0.lock().unwrap();
            let _ = writeln!(f, "{v}");
            let _ = f.flush();
        }
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        if args.len() != 5 {
            eprintln!("usage: fake-armadito rpc|rest SOCKET|ADDR SCENARIO RECORD");
            std::process::exit(2);
        }
        let scenario: Value =
            serde_json::from_str(&std::fs::read_to_string(&args[3]).expect("scenario"))
                .expect("scenario JSON");
        let rec = Arc::new(Recorder::open(&args[4]));
        match args[1].as_str() {
            "rpc" => rpc(&args[2], Arc::new(scenario), rec),
            "rest" => rest(&args[2], Arc::new(scenario), rec),
            other => panic!("unknown mode {other}"),
        }
    }

    fn items(scenario: &Value, key: &str) -> Vec<Value> {
        scenario[key].as_array().cloned().unwrap_or_default()
    }

    // ------------------------------------------------------------------------------------------
    // JSON-RPC
    // ------------------------------------------------------------------------------------------

    fn rpc(socket: &str, scenario: Arc<Value>, rec: Arc<Recorder>) {
        let listener = match socket.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr =
                    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
                UnixListener::bind_addr(&addr).expect("bind abstract socket")
            }
            None => UnixListener::bind(socket).expect("bind socket"),
        };
        println!("READY {socket}");
        let _ = std::io::stdout().flush();
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(conn) = conn else { continue };
            let (scenario, rec) = (Arc::clone(&scenario), Arc::clone(&rec));
            thread::spawn(move || rpc_conn(n, conn, &scenario, &rec));
        }
    }

    fn send_frame(conn: &mut UnixStream, bytes: &[u8]) -> bool {
        let mut b = bytes.to_vec();
        b.extend_from_slice(b"\r\n\r\n");
        conn.write_all(&b).is_ok()
    }

    /// Plays `items`; returns false when the connection must end.
    fn play(conn: &mut UnixStream, list: &[Value], scan_id: Option<i64>) -> bool {
        for item in list {
            if let Some(ev) = item.get("event") {
                let mut ev = ev.clone();
                if let (Some(id), Some(u)) =
                    (scan_id, ev.get_mut("u").and_then(Value::as_object_mut))
                {
                    for body in u.values_mut() {
                        if let Some(b) = body.as_object_mut() {
                            b.entry("scan_id").or_insert(json!(id));
                        }
                    }
                }
                let msg = json!({"jsonrpc": "2.0", "method": "notify_event", "params": ev});
                if !send_frame(conn, msg.to_string().as_bytes()) {
                    return false;
                }
            } else if let Some(raw) = item.get("raw").and_then(Value::as_str) {
                send_frame(conn, raw.as_bytes());
            } else if item.get("close").is_some() {
                let _ = conn.shutdown(std::net::Shutdown::Both);
                return false;
            } else if item.get("stall").is_some() {
                thread::sleep(Duration::from_secs(3600));
            } else if let Some(ms) = item.get("sleep_ms").and_then(Value::as_u64) {
                thread::sleep(Duration::from_millis(ms));
            }
        }
        true
    }

    fn rpc_conn(n: usize, mut conn: UnixStream, scenario: &Value, rec: &Recorder) {
        rec.write(json!({"conn": n, "connected": true}));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            let got = match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => k,
            };
            rec.write(json!({"conn": n, "bytes": got}));
            buf.extend_from_slice(&chunk[..got]);
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let frame: Vec<u8> = buf.drain(..end + 4).collect();
                let text = String::from_utf8_lossy(&frame[..end]).to_string();
                let Ok(req) = serde_json::from_str::<Value>(&text) else {
                    rec.write(json!({"conn": n, "invalid": text}));
                    let err = json!({"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null});
                    send_frame(&mut conn, err.to_string().as_bytes());
                    continue;
                };
                rec.write(json!({"conn": n, "request": req.clone()}));
                let id = req.get("id").cloned();
                let method = req["method"].as_str().unwrap_or("").to_string();
                let reply = |result: Value| json!({"jsonrpc": "2.0", "result": result, "id": id});
                match method.as_str() {
                    "status" => {
                        send_frame(
                            &mut conn,
                            reply(scenario["info"].clone()).to_string().as_bytes(),
                        );
                    }
                    "scan" => {
                        let p = &req["params"];
                        let complete = [
                            "root_path",
                            "send_progress",
                            "recursive",
                            "threaded",
                            "scan_id",
                        ]
                        .iter()
                        .all(|k| p.get(k).is_some());
                        if !complete {
                            let err = json!({"jsonrpc":"2.0","error":{"code":-32099,"message":"field not found"},"id":id});
                            send_frame(&mut conn, err.to_string().as_bytes());
                            continue;
                        }
                        if id.is_some() {
                            send_frame(&mut conn, reply(Value::Null).to_string().as_bytes());
                        }
                        if !play(&mut conn, &items(scenario, "scan"), p["scan_id"].as_i64()) {
                            return;
                        }
                    }
                    "listen" => {
                        if id.is_some() {
                            send_frame(&mut conn, reply(Value::Null).to_string().as_bytes());
                        }
                        if !play(&mut conn, &items(scenario, "listen"), None) {
                            return;
                        }
                    }
                    _ => {
                        let err = json!({"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":id});
                        send_frame(&mut conn, err.to_string().as_bytes());
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // REST (Gen 1)
    // ------------------------------------------------------------------------------------------

    #[derive(Default)]
    struct Queues {
        by_token: HashMap<String, VecDeque<Value>>,
        next: u64,
    }

    type Shared = Arc<(Mutex<Queues>, Condvar)>;

    fn rest(addr: &str, scenario: Arc<Value>, rec: Arc<Recorder>) {
        let listener = TcpListener::bind(addr).expect("bind");
        println!("READY {}", listener.local_addr().unwrap());
        let _ = std::io::stdout().flush();
        let shared: Shared = Arc::default();
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(conn) = conn else { continue };
            let (scenario, rec, shared) =
                (Arc::clone(&scenario), Arc::clone(&rec), Arc::clone(&shared));
            thread::spawn(move || rest_conn(n, conn, &scenario, &rec, &shared));
        }
    }

    fn respond(conn: &mut TcpStream, code: u16, body: &Value) {
        let reason = match code {
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            415 => "Unsupported Media Type",
            422 => "Unprocessable Entity",
            _ => "Internal Server Error",
        };
        let text = body.to_string();
        let head = format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nX-Armadito-Api-Version: armadito.v0\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(text.as_bytes());
    }

    fn push(shared: &Shared, token: &str, ev: Value) {
        let (lock, cv) = &**shared;
        if let Some(q) = lock.lock().unwrap().by_token.get_mut(token) {
            q.push_back(ev);
        }
        cv.notify_all();
    }

    fn rest_conn(n: usize, mut conn: TcpStream, scenario: &Value, rec: &Recorder, shared: &Shared) {
        rec.write(json!({"conn": n, "connected": true}));
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    rec.write(json!({"conn": n, "closed_before_request": true}));
                    return;
                }
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push(line.trim_end().to_string());
        }
        let request_line = head.first().cloned().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let header = |name: &str| {
            head.iter().skip(1).find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let len: usize = header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        let _ = reader.read_exact(&mut body);
        let body = String::from_utf8_lossy(&body).to_string();
        let ua = header("user-agent");
        let token = header("x-armadito-token");
        rec.write(
            json!({"conn": n, "method": method, "path": path, "user_agent": ua, "token": token,
        "content_type": header("content-type"), "body": body}),
        );

        let (route, needs_token) = match path.split('?').next().unwrap_or("") {
            "/api/register" => ("register", false),
            "/api/unregister" => ("unregister", true),
            "/api/ping" => ("ping", true),
            "/api/event" => ("event", true),
            "/api/scan" => ("scan", true),
            "/api/status" => ("status", true),
            "/api/version" => ("version", false),
            _ => {
                return respond(&mut conn, 404, &json!({"code":404, "message": "Not found"}));
            }
        };
        if ua.is_none() {
            return respond(
                &mut conn,
                403,
                &json!({"code":403, "message": "Request forbidden. Make sure your request has a User-Agent header"}),
            );
        }
        let bad_request = json!({"code":400, "message": "Bad Request. Make sure your request has a X-Armadito-Token header and if POST request contains valid JSON"});
        let internal =
            json!({"code":500,"message":"Request processing triggered an internal error"});
        if needs_token && token.is_none() {
            return respond(&mut conn, 400, &bad_request);
        }
        let token = token.unwrap_or_default();
        let (lock, cv) = &**shared;
        if needs_token && !lock.lock().unwrap().by_token.contains_key(&token) {
            return respond(&mut conn, 500, &internal);
        }
        let expected = if route == "scan" { "POST" } else { "GET" };
        if method != expected {
            return respond(
                &mut conn,
                405,
                &json!({"code":405, "message": "Method not allowed"}),
            );
        }
        match route {
            "register" => {
                let mut q = lock.lock().unwrap();
                q.next += 1;
                let t = format!("{}", 4_611_686_018_427_387_000u64 + q.next);
                q.by_token.insert(t.clone(), VecDeque::new());
                respond(&mut conn, 200, &json!({"token": t}));
            }
            "unregister" => {
                lock.lock().unwrap().by_token.remove(&token);
                cv.notify_all();
                respond(&mut conn, 200, &Value::Null);
            }
            "ping" => respond(&mut conn, 200, &json!({"status": "ok"})),
            "version" => respond(
                &mut conn,
                200,
                &json!({"antivirus-version": scenario["version"]}),
            ),
            "status" => {
                let mut ev = scenario["info"].clone();
                ev["event_type"] = json!("StatusEvent");
                respond(&mut conn, 200, &Value::Null);
                push(shared, &token, ev);
            }
            "scan" => {
                let json_type = header("content-type")
                    .is_some_and(|c| c.split(';').next() == Some("application/json"));
                if !json_type {
                    return respond(
                        &mut conn,
                        415,
                        &json!({"code":415, "message": "Unsupported Media Type. Content-Type must be application/json"}),
                    );
                }
                let Ok(req) = serde_json::from_str::<Value>(&body) else {
                    return respond(&mut conn, 400, &bad_request);
                };
                if !req["path"].is_string() {
                    return respond(
                        &mut conn,
                        422,
                        &json!({"code":422, "message": "Unprocessable request. Make sure the JSON request is valid"}),
                    );
                }
                respond(&mut conn, 200, &Value::Null);
                let list = items(scenario, "scan");
                let shared = Arc::clone(shared);
                thread::spawn(move || {
                    for item in list {
                        if let Some(ev) = item.get("event") {
                            push(&shared, &token, ev.clone());
                        } else if item.get("close").is_some() {
                            std::process::exit(0);
                        } else if item.get("stall").is_some() {
                            return;
                        } else if let Some(ms) = item.get("sleep_ms").and_then(Value::as_u64) {
                            thread::sleep(Duration::from_millis(ms));
                        }
                    }
                });
            }
            "event" => {
                // long poll: block until this token has an event
                let mut q = lock.lock().unwrap();
                loop {
                    match q.by_token.get_mut(&token) {
                        None => {
                            drop(q);
                            return respond(&mut conn, 500, &internal);
                        }
                        Some(events) => {
                            if let Some(ev) = events.pop_front() {
                                drop(q);
                                return respond(&mut conn, 200, &ev);
                            }
                        }
                    }
                    q = cv.wait(q).unwrap();
                }
            }
            _ => {}
        }
    }
}
