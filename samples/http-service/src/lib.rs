//! `http_service`: a licensed web service as a `wasi:http/proxy` component.
//!
//! Routes:
//! - `GET /hello?name=NAME`: 200 `hello NAME` (`hello world` without a name);
//! - `POST /echo`: 200 with the request body, and `x-echo-length` set to its
//!   length;
//! - `GET /spin`: loops forever (the per-request time limit's case);
//! - `GET /sleep?ms=N`: waits N milliseconds on the monotonic clock, then
//!   200 `slept N ms` (a request still open when the service is stopped);
//! - `GET /alloc?mib=N`: allocates and touches N MiB, then 200 `alloc ok`
//!   (the per-request memory limit's case);
//! - `GET /fetch?to=HOST:PORT`: sends `GET /` to `http://HOST:PORT` through
//!   `wasi:http/outgoing-handler` and answers 200 `fetched STATUS: BODY`,
//!   or 502 `fetch failed: ERROR` (the outgoing-request grants' case);
//! - anything else: 404 `no route`.
//!
//! Host tests check: responses equal to the plain runner's, concurrent
//! requests, 504 for a request over its time limit while the others go on,
//! SIGTERM finishing open requests, and 503 while the license is away.
use std::io::{Read as _, Write as _};

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(Service);

struct Service;

impl wasip2::exports::http::incoming_handler::Guest for Service {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (route, query) = path.split_once('?').unwrap_or((&path, ""));
        let param = |name: &str| {
            query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_owned()))
        };
        let method = request.method();
        match (&method, route) {
            (Method::Get, "/hello") => {
                let name = param("name").unwrap_or_else(|| "world".to_owned());
                respond(out, 200, &[], format!("hello {name}\n").as_bytes());
            }
            (Method::Post, "/echo") => {
                let body = read_body(&request);
                let len = body.len().to_string();
                respond(out, 200, &[("x-echo-length", len.as_bytes())], &body);
            }
            (Method::Get, "/spin") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            (Method::Get, "/sleep") => {
                let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(1000);
                wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                respond(out, 200, &[], format!("slept {ms} ms\n").as_bytes());
            }
            (Method::Get, "/alloc") => {
                let mib: usize = param("mib").and_then(|v| v.parse().ok()).unwrap_or(1);
                let mut v = vec![0u8; mib << 20];
                for i in (0..v.len()).step_by(4096) {
                    v[i] = 1;
                }
                std::hint::black_box(&v);
                respond(out, 200, &[], b"alloc ok\n");
            }
            (Method::Get, "/fetch") => match fetch(&param("to").unwrap_or_default()) {
                Ok((status, body)) => {
                    respond(out, 200, &[], format!("fetched {status}: {}", String::from_utf8_lossy(&body)).as_bytes())
                }
                Err(e) => respond(out, 502, &[], format!("fetch failed: {e}\n").as_bytes()),
            },
            _ => respond(out, 404, &[], b"no route\n"),
        }
    }
}

/// `GET http://AUTHORITY/`: the status and body, or the error code.
fn fetch(authority: &str) -> Result<(u16, Vec<u8>), String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{OutgoingRequest, Scheme};
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "bad scheme".to_owned())?;
    request.set_authority(Some(authority)).map_err(|()| format!("bad authority {authority:?}"))?;
    request.set_path_with_query(Some("/")).map_err(|()| "bad path".to_owned())?;
    let body = request.body().map_err(|()| "no request body".to_owned())?;
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(format!("{e:?}")),
        Some(Err(())) | None => return Err("no response".to_owned()),
    };
    let status = response.status();
    let incoming = response.consume().map_err(|()| "no response body".to_owned())?;
    let mut bytes = Vec::new();
    {
        let mut stream = incoming.stream().map_err(|()| "no response stream".to_owned())?;
        stream.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    }
    IncomingBody::finish(incoming);
    Ok((status, bytes))
}

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let body = request.consume().expect("the body is consumed once");
    let mut bytes = Vec::new();
    {
        let mut stream = body.stream().expect("the body has a stream");
        stream.read_to_end(&mut bytes).expect("the body can be read");
    }
    IncomingBody::finish(body);
    bytes
}

fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &[u8])], body: &[u8]) {
    let fields = Fields::new();
    fields.set("content-type", &[b"text/plain".to_vec()]).expect("a valid header");
    for (name, value) in headers {
        fields.set(name, &[value.to_vec()]).expect("a valid header");
    }
    let response = OutgoingResponse::new(fields);
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    {
        let mut stream = outgoing.write().expect("the body has a stream");
        stream.write_all(body).expect("the body can be written");
        stream.flush().expect("the body can be flushed");
    }
    OutgoingBody::finish(outgoing, None).expect("the body finishes");
}
