//! ERP answers as the connectors read them: a loopback server answers every call with the
//! status and body the fuzzer chose (Tryton's login is answered properly so the later
//! JSON-RPC answers are reached), and one connector call chosen by the fuzzer reads it —
//! erp-sim's REST and Tryton's JSON-RPC, the production code paths. Errors are retried or
//! parked by erp-writer; a panic is a finding.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use erp::connector::ErpConnector;
use erp::connector::erp_sim::ErpSimConnector;
use erp::connector::tryton::{TrytonConnector, TrytonSettings};
use libfuzzer_sys::fuzz_target;

type Answer = Arc<Mutex<(u16, Vec<u8>)>>;

struct Bench {
    runtime: tokio::runtime::Runtime,
    answer: Answer,
    erp_sim: ErpSimConnector,
    tryton: TrytonConnector,
}

async fn reply(State(answer): State<Answer>, body: Bytes) -> (StatusCode, Vec<u8>) {
    if body.windows(15).any(|w| w == b"common.db.login") {
        return (
            StatusCode::OK,
            br#"{"id":1,"result":[1,"session-token"]}"#.to_vec(),
        );
    }
    let (status, body) = answer.lock().map(|a| a.clone()).unwrap_or_default();
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
}

fn bench() -> Option<Bench> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .ok()?;
    let answer: Answer = Arc::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .ok()?;
    let base = format!("http://{}", listener.local_addr().ok()?);
    let app = axum::Router::new()
        .fallback(reply)
        .with_state(Arc::clone(&answer));
    runtime.spawn(async move { axum::serve(listener, app).await });
    let timeout = Duration::from_secs(5);
    Some(Bench {
        erp_sim: ErpSimConnector::new(&base, timeout).ok()?,
        tryton: TrytonConnector::new(
            TrytonSettings {
                base_url: base.clone(),
                database: "erp".into(),
                user: "admin".into(),
                password: "fuzz".into(),
            },
            timeout,
        )
        .ok()?,
        runtime,
        answer,
    })
}

const STATUSES: [u16; 6] = [200, 200, 409, 422, 429, 503];

async fn call<C: ErpConnector>(connector: &C, which: u8) {
    match which % 7 {
        0 => drop(connector.find_order("WEB-1").await),
        1 => drop(
            connector
                .find_orders(&["WEB-1".into(), "WEB-2".into()])
                .await,
        ),
        2 => drop(connector.order_refs(None, 100).await),
        3 => drop(connector.stock_levels("WH").await),
        4 => drop(connector.shipments_after(None, 100).await),
        5 => drop(connector.cancel_order("SO-1").await),
        _ => drop(connector.probe().await),
    }
}

fuzz_target!(|data: &[u8]| {
    static BENCH: OnceLock<Option<Bench>> = OnceLock::new();
    let Some(bench) = BENCH.get_or_init(bench) else {
        return;
    };
    let [selector, which, body @ ..] = data else {
        return;
    };
    if let Ok(mut answer) = bench.answer.lock() {
        *answer = (STATUSES[usize::from(*selector % 6)], body.to_vec());
    }
    bench.runtime.block_on(async {
        if selector & 0x80 == 0 {
            call(&bench.erp_sim, *which).await;
        } else {
            call(&bench.tryton, *which).await;
        }
    });
});
