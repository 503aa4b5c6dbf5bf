//! The JSON-RPC transport to Tryton: one capped answer per POST, the session login (a 401
//! logs in again once), calls in the user's context, and the search/read helpers the
//! connector's operations are written with.

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Session, TrytonConnector, unavailable};
use crate::connector::ErpError;

impl TrytonConnector {
    pub(super) async fn post(
        &self,
        url: &str,
        header: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value), ErpError> {
        let mut request = self.client.post(url).json(body);
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let method = body
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("tryton.rpc");
        let response = bridge_runtime::http_trace::send(request, method)
            .await
            .map_err(unavailable)?;
        let status = response.status().as_u16();
        Ok((status, crate::connector::json_answer(response).await?))
    }

    pub(super) async fn login(&self) -> Result<Session, ErpError> {
        let url = format!("{}/{}/rpc/", self.settings.base_url, self.settings.database);
        let body = json!({"id": 1, "method": "common.db.login",
            "params": [self.settings.user, {"password": self.settings.password}, "en"]});
        let (status, answer) = self.post(&url, None, &body).await?;
        if status == 401 {
            return Err(ErpError::Protocol("tryton refused the login".into()));
        }
        // The answer is never quoted: a login answer can carry the server's internals.
        let result = answer.get("result").ok_or_else(|| {
            ErpError::Protocol(format!(
                "tryton login answered HTTP {status} without a `result` (check writer.erp.tryton user, password and database)"
            ))
        })?;
        let uid = result.get(0).and_then(Value::as_i64);
        let token = result.get(1).and_then(Value::as_str);
        let (Some(uid), Some(token)) = (uid, token) else {
            return Err(ErpError::Protocol(format!(
                "tryton login answered HTTP {status} without a user id and session token"
            )));
        };
        let raw = format!("{}:{uid}:{token}", self.settings.user);
        let header = format!(
            "Session {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        let body =
            json!({"id": 2, "method": "model.res.user.get_preferences", "params": [true, {}]});
        let (_, prefs) = self.post(&url, Some(&header), &body).await?;
        let company = prefs
            .pointer("/result/company")
            .cloned()
            .unwrap_or(Value::Null);
        Ok(Session {
            header,
            context: json!({"company": company, "language": "en"}),
        })
    }

    /// `method(params..., context)`; logs in when needed (and once more on a 401).
    pub(super) async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ErpError> {
        self.call_in(method, params, &json!({})).await
    }

    /// [`Self::call`] with `extra` keys in the context (e.g. `locations` for quantities).
    pub(super) async fn call_in(
        &self,
        method: &str,
        params: Vec<Value>,
        extra: &Value,
    ) -> Result<Value, ErpError> {
        let url = format!("{}/{}/rpc/", self.settings.base_url, self.settings.database);
        for attempt in 0..2 {
            let mut session = self.session.lock().await;
            if session.is_none() {
                *session = Some(self.login().await?);
            }
            let Some(current) = session.as_ref() else {
                continue;
            };
            let mut context = current.context.clone();
            if let (Some(context), Some(extra)) = (context.as_object_mut(), extra.as_object()) {
                context.extend(extra.clone());
            }
            let mut with_context = params.clone();
            with_context.push(context);
            let body = json!({"id": 3, "method": method, "params": with_context});
            let (status, answer) = self.post(&url, Some(&current.header), &body).await?;
            if status == 401 && attempt == 0 {
                *session = None;
                continue;
            }
            if status == 429 || status >= 500 {
                return Err(ErpError::Unavailable {
                    reason: format!("tryton answered HTTP {status} to {method}"),
                    retry_after: None,
                });
            }
            if let Some(error) = answer.get("error") {
                let kind = error.get(0).and_then(Value::as_str).unwrap_or_default();
                let message = error
                    .pointer("/1/0")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| error.to_string());
                return Err(if kind == "UserError" || kind == "UserWarning" {
                    ErpError::Rejected {
                        code: "validation".into(),
                        reason: message,
                    }
                } else {
                    ErpError::Protocol(format!("{method}: {error}"))
                });
            }
            return answer
                .get("result")
                .cloned()
                .ok_or_else(|| ErpError::Protocol(format!("{method} answered {answer}")));
        }
        Err(ErpError::Protocol(
            "tryton kept refusing the session".into(),
        ))
    }

    /// `model.<model>.search_read(domain, 0, limit, None, fields)` with `extra` context.
    pub(super) async fn search_read(
        &self,
        model: &str,
        domain: Value,
        limit: Option<u32>,
        fields: Value,
        extra: &Value,
    ) -> Result<Value, ErpError> {
        let limit = limit.map_or(Value::Null, |l| json!(l));
        let params = vec![domain, json!(0), limit, Value::Null, fields];
        self.call_in(&format!("model.{model}.search_read"), params, extra)
            .await
    }

    /// `model.<model>.read(ids, fields)`: the records, or none when Tryton answers oddly.
    pub(super) async fn read(
        &self,
        model: &str,
        ids: &[i64],
        fields: Value,
    ) -> Result<Vec<Value>, ErpError> {
        let rows = self
            .call(&format!("model.{model}.read"), vec![json!(ids), fields])
            .await?;
        Ok(rows.as_array().cloned().unwrap_or_default())
    }

    /// One field of one record (`Null` when it is not there).
    pub(super) async fn read_field(
        &self,
        model: &str,
        id: i64,
        field: &str,
    ) -> Result<Value, ErpError> {
        let rows = self.read(model, &[id], json!([field])).await?;
        Ok(rows
            .first()
            .and_then(|row| row.get(field))
            .cloned()
            .unwrap_or_default())
    }

    pub(super) async fn search(&self, model: &str, domain: Value) -> Result<Vec<i64>, ErpError> {
        let ids = self
            .call(
                &format!("model.{model}.search"),
                vec![domain, json!(0), Value::Null, Value::Null],
            )
            .await?;
        Ok(ids
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default())
    }

    pub(super) async fn one(
        &self,
        model: &str,
        domain: Value,
        what: &str,
    ) -> Result<i64, ErpError> {
        self.search(model, domain)
            .await?
            .first()
            .copied()
            .ok_or_else(|| ErpError::Rejected {
                code: "unknown_reference".into(),
                reason: format!("tryton has no {what}"),
            })
    }
}
