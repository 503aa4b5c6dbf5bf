//! The HTTP surface: the part of Confluent's Schema Registry REST API that schema
//! registry clients (schema_registry_converter, Confluent serializers, kcat) use.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::compat::Compatibility;
use crate::journal::KafkaJournal;
use crate::registry::{Entry, Registration, Registry, RegistryError, parse_version};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The registry state shared by all requests. Writes hold the lock across the journal
/// append, so entries reach the journal in the order they are applied.
pub struct Shared {
    /// The current state.
    pub registry: Mutex<Registry>,
    /// Where changes are made durable; `None` keeps them in memory only.
    pub journal: Option<KafkaJournal>,
}

/// An error as Confluent's API shapes it: `{"error_code": N, "message": "..."}`.
pub struct ApiError {
    code: u32,
    message: String,
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl ApiError {
    fn unprocessable(message: impl Into<String>) -> Self {
        Self {
            code: 42201,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status_code = if self.code >= 10_000 {
            self.code / 100
        } else {
            self.code
        };
        let status =
            StatusCode::from_u16(status_code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        reply(
            status,
            json!({"error_code": self.code, "message": self.message}),
        )
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Result<Response, ApiError> {
    Ok(reply(StatusCode::OK, body))
}

type Flags = Query<HashMap<String, String>>;

fn flag(flags: &Flags, name: &str) -> bool {
    flags.get(name).is_some_and(|v| v == "true")
}

/// The body of register, lookup and compatibility requests.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

fn schema_request(body: &Bytes) -> Result<String, ApiError> {
    let request: SchemaRequest = serde_json::from_slice(body).map_err(|e| ApiError {
        code: 422,
        message: format!("unrecognized request body: {e}"),
    })?;
    if request.schema_type.as_deref().is_some_and(|t| t != "AVRO") {
        return Err(ApiError::unprocessable(
            "only AVRO schemas are supported by this registry",
        ));
    }
    if !request.references.is_empty() {
        return Err(ApiError::unprocessable(
            "schema references are not supported by this registry",
        ));
    }
    Ok(request.schema)
}

async fn persist(
    shared: &Shared,
    registry: &mut Registry,
    entries: Vec<Entry>,
) -> Result<(), ApiError> {
    for entry in entries {
        if let Some(journal) = &shared.journal {
            journal.append(&entry).await.map_err(|e| {
                tracing::warn!(error = %e, "journal append failed");
                ApiError {
                    code: 50001,
                    message: format!("error while storing the schema: {e}"),
                }
            })?;
        }
        registry.apply(entry);
    }
    Ok(())
}

/// Builds the router over the shared state; with `basic_auth` every route requires it.
pub fn router(shared: Arc<Shared>, basic_auth: Option<(String, String)>) -> Router {
    let router = routes(shared);
    match basic_auth {
        Some((user, password)) => {
            let expected = Arc::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ));
            router.layer(axum::middleware::from_fn(move |request, next| {
                require(Arc::clone(&expected), request, next)
            }))
        }
        None => router,
    }
}

/// Answers `401` unless the request carries the expected `Authorization` (compared in
/// constant time).
async fn require(
    expected: Arc<String>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let same = given.len() == expected.len()
        && given
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        return next.run(request).await;
    }
    let mut response = reply(
        StatusCode::UNAUTHORIZED,
        json!({"error_code": 401, "message": "Unauthorized"}),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"schema-registry\""),
    );
    response
}

fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|| async { reply(StatusCode::OK, json!({})) }))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route(
            "/schemas/types",
            get(|| async { reply(StatusCode::OK, json!(["AVRO"])) }),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatible_with_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatible_with),
        )
        .route("/config", get(global_config).put(set_global_config))
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/mode",
            get(|| async { reply(StatusCode::OK, json!({"mode": "READWRITE"})) }),
        )
        .with_state(shared)
}

async fn subjects(State(s): State<Arc<Shared>>, q: Flags) -> Result<Response, ApiError> {
    ok(json!(s.registry.lock().await.subjects(flag(&q, "deleted"))))
}

async fn versions(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    q: Flags,
) -> Result<Response, ApiError> {
    ok(json!(
        s.registry
            .lock()
            .await
            .versions(&subject, flag(&q, "deleted"))?
    ))
}

async fn register(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let text = schema_request(&body)?;
    let mut registry = s.registry.lock().await;
    match registry.prepare_register(&subject, &text)? {
        Registration::Existing(id) => ok(json!({"id": id})),
        Registration::New(entry) => {
            let id = match &entry {
                Entry::Schema { id, version, .. } => {
                    tracing::info!(subject, id, version, "schema registered");
                    *id
                }
                _ => 0,
            };
            persist(&s, &mut registry, vec![entry]).await?;
            ok(json!({"id": id}))
        }
    }
}

async fn lookup(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let text = schema_request(&body)?;
    ok(json!(s.registry.lock().await.lookup(&subject, &text)?))
}

async fn version(
    State(s): State<Arc<Shared>>,
    Path((subject, version)): Path<(String, String)>,
    q: Flags,
) -> Result<Response, ApiError> {
    let v = parse_version(&version)?;
    ok(json!(s.registry.lock().await.version(
        &subject,
        v,
        flag(&q, "deleted")
    )?))
}

async fn version_schema(
    State(s): State<Arc<Shared>>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let v = parse_version(&version)?;
    let found = s.registry.lock().await.version(&subject, v, false)?;
    Ok(reply(
        StatusCode::OK,
        serde_json::from_str(&found.schema).unwrap_or(Value::String(found.schema)),
    ))
}

async fn delete_subject(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    q: Flags,
) -> Result<Response, ApiError> {
    delete(&s, &subject, None, flag(&q, "permanent")).await
}

async fn delete_version(
    State(s): State<Arc<Shared>>,
    Path((subject, version)): Path<(String, String)>,
    q: Flags,
) -> Result<Response, ApiError> {
    let v = parse_version(&version)?;
    delete(&s, &subject, Some(v), flag(&q, "permanent")).await
}

async fn delete(
    s: &Shared,
    subject: &str,
    version: Option<Option<u32>>,
    permanent: bool,
) -> Result<Response, ApiError> {
    let mut registry = s.registry.lock().await;
    let (deleted, entries) = registry.prepare_delete(subject, version, permanent)?;
    persist(s, &mut registry, entries).await?;
    match version {
        None => ok(json!(deleted)),
        Some(_) => ok(json!(deleted.first())),
    }
}

async fn schema_by_id(
    State(s): State<Arc<Shared>>,
    Path(id): Path<u32>,
) -> Result<Response, ApiError> {
    ok(json!({"schema": s.registry.lock().await.schema_by_id(id)?}))
}

async fn raw_schema_by_id(
    State(s): State<Arc<Shared>>,
    Path(id): Path<u32>,
) -> Result<Response, ApiError> {
    let text = s.registry.lock().await.schema_by_id(id)?.to_owned();
    Ok(reply(
        StatusCode::OK,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn id_versions(
    State(s): State<Arc<Shared>>,
    Path(id): Path<u32>,
) -> Result<Response, ApiError> {
    let registry = s.registry.lock().await;
    registry.schema_by_id(id)?;
    let usages: Vec<Value> = registry
        .usages_of(id)
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    ok(json!(usages))
}

async fn compatible_with(
    State(s): State<Arc<Shared>>,
    Path((subject, version)): Path<(String, String)>,
    q: Flags,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = parse_version(&version)?;
    compatibility(&s, &subject, Some(v), flag(&q, "verbose"), &body).await
}

async fn compatible_with_all(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    q: Flags,
    body: Bytes,
) -> Result<Response, ApiError> {
    compatibility(&s, &subject, None, flag(&q, "verbose"), &body).await
}

async fn compatibility(
    s: &Shared,
    subject: &str,
    against: Option<Option<u32>>,
    verbose: bool,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let text = schema_request(body)?;
    let problems = s
        .registry
        .lock()
        .await
        .check_compatibility(subject, &text, against)?;
    let mut answer = json!({"is_compatible": problems.is_empty()});
    if verbose {
        answer["messages"] = json!(problems);
    }
    ok(answer)
}

#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: Compatibility,
}

fn config_request(body: &Bytes) -> Result<Compatibility, ApiError> {
    serde_json::from_slice::<ConfigRequest>(body)
        .map(|r| r.compatibility)
        .map_err(|e| ApiError {
            code: 42203,
            message: format!("invalid compatibility level: {e}"),
        })
}

async fn global_config(State(s): State<Arc<Shared>>) -> Result<Response, ApiError> {
    ok(json!({"compatibilityLevel": s.registry.lock().await.global_compatibility()}))
}

async fn set_global_config(
    State(s): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let level = config_request(&body)?;
    let mut registry = s.registry.lock().await;
    persist(
        &s,
        &mut registry,
        vec![Entry::Config {
            subject: None,
            compatibility: Some(level),
        }],
    )
    .await?;
    ok(json!({"compatibility": level}))
}

async fn subject_config(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    q: Flags,
) -> Result<Response, ApiError> {
    let registry = s.registry.lock().await;
    match registry.subject_compatibility(&subject) {
        Some(level) => ok(json!({"compatibilityLevel": level})),
        None if flag(&q, "defaultToGlobal") => {
            ok(json!({"compatibilityLevel": registry.global_compatibility()}))
        }
        None => Err(ApiError {
            code: 40408,
            message: format!(
                "subject `{subject}` does not have subject-level compatibility configured"
            ),
        }),
    }
}

async fn set_subject_config(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let level = config_request(&body)?;
    let mut registry = s.registry.lock().await;
    persist(
        &s,
        &mut registry,
        vec![Entry::Config {
            subject: Some(subject),
            compatibility: Some(level),
        }],
    )
    .await?;
    ok(json!({"compatibility": level}))
}

async fn delete_subject_config(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    let mut registry = s.registry.lock().await;
    let previous = registry
        .subject_compatibility(&subject)
        .unwrap_or_else(|| registry.global_compatibility());
    persist(
        &s,
        &mut registry,
        vec![Entry::Config {
            subject: Some(subject),
            compatibility: None,
        }],
    )
    .await?;
    ok(json!({"compatibilityLevel": previous}))
}
