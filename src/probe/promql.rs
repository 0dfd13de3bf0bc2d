//! `promql` checks: one instant query against Prometheus; conditions on the sample `value` and the number of series `rows`.

use serde::Serialize;

use super::http::{ClientKey, error_chain, response_facts};
use super::{Condition, Facts, ProbeContext, Scalar, expand_self};
use crate::config::validate::Ctx;
use crate::config::{RawCheck, Secret};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    /// Prometheus's base URL (may carry a path prefix and `{self}`).
    pub prometheus_url: String,
    pub query: String,
    pub empty_result: EmptyResult,
    pub bearer_token: Option<Secret>,
    #[serde(skip)]
    client: ClientKey,
}

/// What an empty instant vector means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmptyResult {
    /// The usual case: a ratio or rate with no series means the metric is
    /// gone (exporter down, relabelled away), which must not look healthy.
    Fail,
    /// For queries that select only bad series (`queue_depth > 1000`).
    Pass,
}

/// What one answer from `/api/v1/query` says.
#[derive(Debug, PartialEq)]
pub(crate) struct Answer {
    pub value: Option<Scalar>,
    pub rows: u64,
}

impl Spec {
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> Option<Spec> {
        let url_key = format!("{key}.prometheus-url");
        let prometheus_url = match raw.prometheus_url.as_deref() {
            None => {
                cx.error(
                    &url_key,
                    "a `prometheus-url` is required, e.g. \"http://127.0.0.1:9090\"",
                );
                None
            }
            Some(u) => {
                let valid = super::http::url(cx, &url_key, Some(u));
                if valid.is_some() && (u.contains('?') || u.contains('#')) {
                    cx.error(
                        &url_key,
                        "give Prometheus's base URL without a query; lantern appends /api/v1/query",
                    );
                }
                valid
            }
        };
        let query = match raw.query.as_deref().map(str::trim) {
            Some(q) if !q.is_empty() => Some(q.to_string()),
            _ => {
                cx.error(
                    &format!("{key}.query"),
                    "a PromQL `query` is required, e.g. \"sum(rate(payments_total{result=\\\"ok\\\"}[5m])) / sum(rate(payments_total[5m]))\"",
                );
                None
            }
        };
        let empty_result = match raw.empty_result.as_deref() {
            None | Some("fail") => EmptyResult::Fail,
            Some("pass") => EmptyResult::Pass,
            Some(other) => {
                cx.error(
                    &format!("{key}.empty-result"),
                    format!("`{other}` is not \"fail\" or \"pass\""),
                );
                EmptyResult::Fail
            }
        };
        if empty_result == EmptyResult::Pass {
            // An empty answer has no value, so a `value` condition would turn
            // "nothing to report" into a failure: the opposite of what was asked.
            let on_value = raw
                .conditions
                .iter()
                .flatten()
                .any(|t| Condition::parse(t).is_ok_and(|c| c.subject.name() == "value"));
            if on_value {
                cx.error(
                    &format!("{key}.empty-result"),
                    "with empty-result = \"pass\" an empty answer has no `value` to compare; put the limit into the query (e.g. `queue_depth > 1000`) or use `rows`",
                );
            }
        }
        let bearer_token = cx.secret(
            &format!("{key}.bearer-token"),
            raw.bearer_token.as_deref(),
            raw.bearer_token_file.as_deref(),
        );
        Some(Spec {
            prometheus_url: prometheus_url?,
            query: query?,
            empty_result,
            bearer_token,
            client: ClientKey {
                ca_file: None,
                client_cert: None,
                client_key: None,
                skip_verify: false,
                follow_redirects: false,
                reuse_connections: false,
            },
        })
    }

    pub async fn probe(&self, cx: &ProbeContext) -> Result<Facts, String> {
        let client = cx.http.get(&self.client)?;
        let base = expand_self(&self.prometheus_url, cx.self_addr);
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/query", base.trim_end_matches('/')))
            .map_err(|e| format!("`{base}` is not a URL: {e}"))?;
        url.query_pairs_mut().append_pair("query", &self.query);
        let mut req = client.get(url);
        if let Some(t) = &self.bearer_token {
            req = req.bearer_auth(t.expose());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("querying Prometheus: {}", error_chain(&e)))?;
        let status = resp.status().as_u16();
        let body = response_facts(resp).await?.body.unwrap_or_default();
        let answer = parse_answer(status, &body)?;
        if answer.rows == 0 && self.empty_result == EmptyResult::Fail {
            return Err(format!(
                "query returned no series (`{}`); set empty-result = \"pass\" if empty is healthy",
                self.query
            ));
        }
        Ok(Facts {
            connected: Some(true),
            value: answer.value,
            rows: Some(answer.rows),
            ..Facts::default()
        })
    }
}

/// Reads Prometheus's JSON envelope. An error answer (a bad query is HTTP 400,
/// a failed evaluation 422, a timeout 503) carries the reason in `error`.
pub(crate) fn parse_answer(http_status: u16, body: &str) -> Result<Answer, String> {
    let json: serde_json::Value = serde_json::from_str(body).map_err(|_| {
        let snippet: String = body.trim().chars().take(200).collect();
        format!("HTTP {http_status} from Prometheus, not a query answer: `{snippet}`")
    })?;
    match json["status"].as_str() {
        Some("success") => {}
        Some("error") => {
            return Err(format!(
                "Prometheus refused the query ({}): {}",
                json["errorType"].as_str().unwrap_or("error"),
                json["error"].as_str().unwrap_or("no reason given")
            ));
        }
        _ => return Err(format!("HTTP {http_status}: the answer has no `status`")),
    }
    let data = &json["data"];
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("vector") => {
            let series = result.as_array().ok_or("`data.result` is not a list")?;
            let value = match series.first() {
                Some(s) => Some(sample(&s["value"])?),
                None => None,
            };
            Ok(Answer {
                value,
                rows: series.len() as u64,
            })
        }
        // A range selector (`x[5m]`): the newest sample of the first series.
        Some("matrix") => {
            let series = result.as_array().ok_or("`data.result` is not a list")?;
            let value = match series.first() {
                Some(s) => s["values"]
                    .as_array()
                    .and_then(|v| v.last())
                    .map(sample)
                    .transpose()?,
                None => None,
            };
            Ok(Answer {
                value,
                rows: series.len() as u64,
            })
        }
        Some("scalar") => Ok(Answer {
            value: Some(sample(result)?),
            rows: 1,
        }),
        Some("string") => {
            let text = result[1]
                .as_str()
                .ok_or("a string result without its text")?;
            Ok(Answer {
                value: Some(Scalar::Text(text.to_string())),
                rows: 1,
            })
        }
        other => Err(format!(
            "unknown resultType {}",
            other.map_or("(none)".to_string(), |t| format!("`{t}`"))
        )),
    }
}

/// `[timestamp, "value"]`: Prometheus writes sample values as strings so that
/// NaN and ±Inf survive JSON. NaN stays NaN, so `value > 0.95` cannot hold.
fn sample(pair: &serde_json::Value) -> Result<Scalar, String> {
    let text = pair[1]
        .as_str()
        .ok_or_else(|| format!("a sample is not [time, \"value\"]: {pair}"))?;
    let n = match text {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        t => t
            .parse::<f64>()
            .map_err(|_| format!("sample value `{t}` is not a number"))?,
    };
    Ok(Scalar::Number(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(values: &[&str]) -> String {
        let series: Vec<String> = values
            .iter()
            .map(|v| format!(r#"{{"metric":{{"job":"shop"}},"value":[1700000000.1,"{v}"]}}"#))
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            series.join(",")
        )
    }

    fn number(a: &Answer) -> f64 {
        match a.value {
            Some(Scalar::Number(n)) => n,
            ref other => panic!("not a number: {other:?}"),
        }
    }

    #[test]
    fn a_vector_gives_the_first_sample_and_counts_its_series() {
        let a = parse_answer(200, &vector(&["0.97", "0.5"])).unwrap();
        assert_eq!(number(&a), 0.97);
        assert_eq!(a.rows, 2);
    }

    #[test]
    fn an_empty_vector_has_no_value_and_no_rows() {
        let a = parse_answer(200, &vector(&[])).unwrap();
        assert_eq!(
            a,
            Answer {
                value: None,
                rows: 0
            }
        );
    }

    #[test]
    fn a_scalar_is_one_value() {
        let a = parse_answer(
            200,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}"#,
        )
        .unwrap();
        assert_eq!(number(&a), 42.0);
        assert_eq!(a.rows, 1);
    }

    #[test]
    fn nan_parses_as_nan_and_passes_no_threshold() {
        let a = parse_answer(200, &vector(&["NaN"])).unwrap();
        assert!(number(&a).is_nan());
        let facts = Facts {
            value: a.value,
            ..Facts::default()
        };
        for c in [
            "value > 0.95",
            "value >= 0.95",
            "value < 0.95",
            "value == 1",
        ] {
            let c = Condition::parse(c).unwrap();
            assert!(
                c.evaluate(&facts, std::time::Duration::ZERO).is_err(),
                "{c}"
            );
        }
    }

    #[test]
    fn infinities_parse_with_their_sign() {
        assert_eq!(
            number(&parse_answer(200, &vector(&["+Inf"])).unwrap()),
            f64::INFINITY
        );
        assert_eq!(
            number(&parse_answer(200, &vector(&["-Inf"])).unwrap()),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn a_matrix_gives_the_newest_sample_of_the_first_series() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"3"]]}]}}"#;
        let a = parse_answer(200, body).unwrap();
        assert_eq!(number(&a), 3.0);
        assert_eq!(a.rows, 1);
    }

    #[test]
    fn an_error_answer_carries_prometheus_reason() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected end of input"}"#;
        let e = parse_answer(400, body).unwrap_err();
        assert!(e.contains("bad_data") && e.contains("parse error"), "{e}");
    }

    #[test]
    fn a_non_json_answer_names_the_http_status() {
        let e = parse_answer(502, "Bad Gateway").unwrap_err();
        assert!(e.contains("HTTP 502") && e.contains("Bad Gateway"), "{e}");
    }

    #[test]
    fn garbage_samples_are_errors_not_panics() {
        for body in [
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"abc"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":7}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":{}}}"#,
            r#"{"status":"success","data":{"resultType":"histogram"}}"#,
            r#"{"status":"success"}"#,
            r#"[]"#,
        ] {
            assert!(parse_answer(200, body).is_err(), "{body}");
        }
    }
}
