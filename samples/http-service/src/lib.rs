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
            _ => respond(out, 404, &[], b"no route\n"),
        }
    }
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
